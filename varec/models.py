"""CNN-RNN valence-arousal model of Yin et al. (2022), §4.1-4.2.

The CNN follows Fig. 3, i.e. Rangulov & Fahim's Keras
`ResearchModels.simple_cnn_ccc_loss` (itself Khorrami et al.'s "simple CNN"):

  BatchNorm -> Conv 64 5x5 SAME -> max-pool 2 -> Conv 128 5x5 VALID
  -> max-pool 2 -> Conv 256 5x5 VALID -> quadrant pooling -> flatten
  -> Dense 300 (feature vector) -> dropout 0.5 -> Dense 2 (valence, arousal).

All convolutions are ReLU without bias (the paper's "258 filters" is Keras'
256). The Keras `Dense(300)` has no activation, so the feature vector is
linear here too. Initialisers and BatchNorm constants are Keras' defaults, so
training starts like the original.
"""

from collections.abc import Sequence

from flax import linen as nn
import jax
import jax.numpy as jnp

# Keras' default initialiser for Conv2D, Dense and the GRU input kernels.
keras_init = nn.initializers.glorot_uniform()


def _blocks(x):
  """(..., H, W, C) -> (..., H//2, 2, W//2, 2, C), dropping an odd edge."""
  *batch, h, w, c = x.shape
  h, w = h // 2, w // 2
  return x[..., : 2 * h, : 2 * w, :].reshape(*batch, h, 2, w, 2, c)


def _windows(x):
  """(..., H, W, C) -> (..., H//2, W//2, C, 4): 2x2 windows, row-major."""
  x = jnp.moveaxis(_blocks(x), (-4, -2), (-2, -1))
  return x.reshape(x.shape[:-2] + (4,))


@jax.custom_jvp
def max_pool(x):
  """2x2 stride-2 VALID max pooling of (..., H, W, C).

  Equals `nn.max_pool(x, (2, 2), strides=(2, 2))`, gradient included (ties go
  to the first maximum in row-major order, as XLA's select-and-scatter does).
  Written as a reshape because select-and-scatter, the gradient of
  `nn.max_pool`, is slow on XLA:CPU: this makes CPU training steps of the
  CNN 1.4x (96x96) to 2x (48x48) faster once XLA's YNNPACK convolutions are
  off (they are slower than its default ones for training).
  """
  return _blocks(x).max(axis=(-4, -2))


@max_pool.defjvp
def _max_pool_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  first = jax.nn.one_hot(jnp.argmax(_windows(x), -1), 4, dtype=t.dtype)
  return max_pool(x), jnp.sum(_windows(t) * first, -1)


def quadrant_pool(x):
  """Averages each quadrant of a (..., H, W, C) map into (..., 2, 2, C).

  The map is cut in half along H and W. For an odd side the middle row
  (column) belongs to both halves, so the result does not depend on which
  side the extra pixel goes to and a horizontally flipped map gives the
  flipped quadrants. For an even side this is the average pool with window
  and stride H/2 (at 96x96 input: 18x18 map, Keras' `AvgPool2D(9, strides=9)`).
  """
  h, w = x.shape[-3:-1]
  rows = (slice(0, (h + 1) // 2), slice(h // 2, h))
  cols = (slice(0, (w + 1) // 2), slice(w // 2, w))
  return jnp.stack(
      [
          jnp.stack([x[..., r, c, :].mean(axis=(-3, -2)) for c in cols], -2)
          for r in rows
      ],
      -3,
  )


class FrameCNN(nn.Module):
  """Per-frame CNN: (..., H, W, 1) frames -> (features, valence-arousal).

  Frames may be uint8 (scaled by 1/255) or float, taken to be in [0, 1]
  already; either way the CNN computes in float32. Any leading batch shape
  is kept.

  Returns the Dense feature vector before dropout (what the RNN consumes, as
  in Rangulov & Fahim's extractor) and the per-frame (valence, arousal).

  Attributes:
    filters: widths of the three convolutions.
    kernel_size: side of the square convolution kernels.
    num_features: size of the feature vector.
    dropout_rate: dropout between the feature vector and the head.
  """

  filters: Sequence[int] = (64, 128, 256)
  kernel_size: int = 5
  num_features: int = 300
  dropout_rate: float = 0.5

  @nn.compact
  def __call__(self, x, *, train: bool):
    scale = 1 / 255 if jnp.issubdtype(x.dtype, jnp.integer) else 1.0
    x = x.astype(jnp.float32) * scale
    # Keras BatchNormalization defaults (momentum 0.99, epsilon 1e-3).
    x = nn.BatchNorm(
        use_running_average=not train, momentum=0.99, epsilon=1e-3
    )(x)
    k = (self.kernel_size, self.kernel_size)
    for i, (filters, padding) in enumerate(
        zip(self.filters, ('SAME', 'VALID', 'VALID'), strict=True)
    ):
      if i:
        x = max_pool(x)
      x = nn.Conv(
          filters, k, padding=padding, use_bias=False, kernel_init=keras_init
      )(x)
      x = nn.relu(x)
    x = quadrant_pool(x)
    x = x.reshape(x.shape[:-3] + (-1,))
    features = nn.Dense(
        self.num_features, kernel_init=keras_init, name='features'
    )(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    va = nn.Dense(2, kernel_init=keras_init, name='va')(x)
    return features, va


class GRUStack(nn.Module):
  """Stacked GRUs over time, then (valence, arousal) at every step.

  (B, T, F) -> (B, T, 2). Each layer starts from a zero hidden state.
  `nn.GRUCell` is the "reset after" GRU, like Keras 2's default `GRU`.
  Rangulov & Fahim predict at the last step only; every step predicts here
  so that every labelled frame of a window contributes to the loss.
  """

  hidden_sizes: Sequence[int] = (10,)

  @nn.compact
  def __call__(self, x):
    for i, size in enumerate(self.hidden_sizes):
      gru = nn.scan(
          nn.GRUCell,
          variable_broadcast='params',
          split_rngs={'params': False},
          in_axes=1,
          out_axes=1,
      )(features=size, kernel_init=keras_init, name=f'gru{i}')
      carry = jnp.zeros((x.shape[0], size), x.dtype)
      _, x = gru(carry, x)
    return nn.Dense(2, kernel_init=keras_init, name='va')(x)


class CNNRNN(nn.Module):
  """FrameCNN on every frame of a window, GRUStack over the window.

  (B, T, H, W, 1) frames -> (B, T, 2) valence-arousal per frame. The CNN's
  own valence-arousal head is kept (unused here) so that a CNN trained on
  single frames loads into `variables[...]['cnn']` unchanged. Dropout acts
  only on that head, so the GRUs see the features undropped, as in Rangulov &
  Fahim's CNN-RNN.
  """

  hidden_sizes: Sequence[int] = (10,)
  filters: Sequence[int] = (64, 128, 256)
  kernel_size: int = 5
  num_features: int = 300
  dropout_rate: float = 0.5

  @nn.compact
  def __call__(self, x, *, train: bool):
    b, t = x.shape[:2]
    features, _ = FrameCNN(
        filters=self.filters,
        kernel_size=self.kernel_size,
        num_features=self.num_features,
        dropout_rate=self.dropout_rate,
        name='cnn',
    )(x.reshape((b * t,) + x.shape[2:]), train=train)
    return GRUStack(self.hidden_sizes, name='rnn')(features.reshape(b, t, -1))
