"""The CNN+RNN as functions of a config: building it, its variables, and the
compiled inference helpers (CNN features, the CNN's own head, batched apply).

Used by training, evaluation, prediction and the checkpoint importers alike;
nothing here trains, reads a dataset or writes files.
"""

from __future__ import annotations

import functools

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from varec import checkpoints
from varec import models

CNNS = ("fig3", "mini_xception")

COMPUTE_DTYPES = ("float32", "bfloat16")

def build_model(config: ml_collections.ConfigDict) -> models.CNNRNN:
  return models.CNNRNN(cnn=build_cnn(config), hidden_sizes=tuple(config.model.rnn_hidden_sizes))

def build_cnn(config: ml_collections.ConfigDict) -> models.FrameCNN | models.MiniXception:
  """The CNN of the CNN+RNN on its own, for single frames.

  Checkpoints from before `model.cnn` existed read as the Fig. 3 CNN, unfrozen.
  """
  m = config.model
  kind, frozen = m.get("cnn", "fig3"), m.get("frozen_blocks", 0)
  if kind == "mini_xception":
    return models.MiniXception(
        num_features=m.num_features, dropout_rate=m.dropout_rate, frozen_blocks=frozen,
        class_prototypes=tuple(tuple(p) for p in m.get("class_prototypes", ())))
  if kind != "fig3":
    raise ValueError(f"model.cnn must be one of {', '.join(CNNS)}, got {kind!r}")
  return models.FrameCNN(filters=tuple(m.filters), kernel_size=m.kernel_size,
                         num_features=m.num_features, dropout_rate=m.dropout_rate,
                         frozen_blocks=frozen,
                         dtype=jnp.dtype(config.get("compute_dtype", "float32")))

def min_image_size(config: ml_collections.ConfigDict) -> int:
  """The smallest input side the CNN can take (a feature map of at least one pixel)."""
  if config.model.get("cnn", "fig3") == "mini_xception":
    return 5  # Two 3x3 VALID convolutions; the strided layers pad.
  k = config.model.kernel_size - 1
  # SAME conv, pool /2, VALID conv (-k), pool /2, VALID conv (-k) >= 1.
  return 2 * (2 * (1 + k) + k)

def init_variables(config: ml_collections.ConfigDict, rng: jax.Array, window_length: int) -> dict:
  """CNN+RNN variables: {"params": {"cnn", "rnn"}, "batch_stats": {"cnn"}}."""
  size = config.data.image_size
  dummy = jnp.zeros((1, window_length, size, size, 1), jnp.uint8)
  variables = build_model(config).init({"params": rng}, dummy, train=False)
  return jax.tree_util.tree_map(np.asarray, dict(variables))


def cnn_variables(variables: dict) -> dict:
  """The CNN's own variables inside the CNN+RNN's."""
  return {"params": variables["params"]["cnn"], "batch_stats": variables["batch_stats"]["cnn"]}

@functools.cache
def feature_fn(cnn: models.FrameCNN):
  """`fn(cnn_variables, frames) -> features` in inference mode, compiled once per architecture."""
  return jax.jit(lambda variables, x: cnn.apply(variables, x, train=False)[0])

@functools.cache
def frame_va_fn(cnn: models.FrameCNN):
  """`fn(cnn_variables, frames) -> valence-arousal` of the CNN's own head, in inference mode."""
  return jax.jit(lambda variables, x: cnn.apply(variables, x, train=False)[1])

def apply_in_batches(step_fn, state, inputs: np.ndarray, batch_size: int,
                     fixed_shape: bool = False) -> np.ndarray:
  """Runs `step_fn(state, batch)` over `inputs` in fixed-size batches (the last one padded).

  An input smaller than one batch runs unpadded, unless `fixed_shape`: a stream
  of small inputs then compiles once too.
  """
  outputs = []
  for start in range(0, len(inputs), batch_size):
    chunk = inputs[start:start + batch_size]
    pad = batch_size - len(chunk)
    if pad and (fixed_shape or len(inputs) > batch_size):  # One shape for every call.
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
    outputs.append(np.asarray(step_fn(state, chunk))[:batch_size - pad])
  return np.concatenate(outputs)

def extract_features(config, variables: dict, frames: np.ndarray) -> np.ndarray:
  """300-d CNN features of windows (N, T, S, S, 1) -> (N, T, F), in inference mode."""
  fn = feature_fn(build_cnn(config))
  cnn_vars = cnn_variables(variables)
  n, t = frames.shape[:2]
  flat = frames.reshape((n * t,) + frames.shape[2:])
  # Chunks of eval_batch_size frames: memory bounded by the model, not the dataset.
  features = apply_in_batches(fn, cnn_vars, flat, config.eval_batch_size)
  return features.reshape(n, t, -1)

def load_cnn(path, variables: dict, config: ml_collections.ConfigDict) -> dict:
  """`variables` with the CNN's params and BatchNorm statistics from checkpoint `path`.

  Raises:
    ValueError: the checkpoint's CNN is not the one `config.model` builds.
  """
  manager, step = checkpoints.resolve(path)
  source, _ = checkpoints.restore(manager, step)
  meta = checkpoints.restore_meta(manager, step) or {}
  source_model = meta.get("config", {}).get("model", {})
  source_kind, kind = source_model.get("cnn", "fig3"), config.model.get("cnn", "fig3")
  shape = lambda tree: jax.tree_util.tree_map(np.shape, tree)
  if source_kind != kind or shape(source["params"]["cnn"]) != shape(variables["params"]["cnn"]):
    raise ValueError(f"init_from: {manager.directory} holds a {source_kind} CNN of other shapes "
                     f"than config.model builds ({kind}); use the model settings it was made with "
                     f"({ {k: v for k, v in source_model.items() if k != 'class_prototypes'} })")
  source_size = meta.get("config", {}).get("data", {}).get("image_size")
  if source_size and source_size != config.data.image_size:
    logging.warning("init_from: its CNN was trained on %dx%d faces, this run feeds it %dx%d",
                    source_size, source_size, config.data.image_size, config.data.image_size)
  logging.info("CNN initialised from %s (step %d)", manager.directory, step)
  return {"params": {**variables["params"], "cnn": source["params"]["cnn"]},
          "batch_stats": {**variables["batch_stats"], "cnn": source["batch_stats"]["cnn"]}}
