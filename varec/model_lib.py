"""The CNN+RNN as functions of a config: building it, its variables, and the
compiled inference helpers (CNN features, the CNN's own head, batched apply).

Used by training, evaluation, prediction and the checkpoint importers alike;
nothing here trains, reads a dataset or writes files.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Callable

from absl import logging
from flax import linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from varec import checkpoints
from varec import config_schema
from varec import face_mesh
from varec import mesh_reader
from varec import models


@dataclasses.dataclass(frozen=True)
class CNNKind:
  """One kind of per-frame CNN (`config.model.cnn`): everything varec asks of
  it."""

  # The CNN a config describes.
  build: Callable[[ml_collections.ConfigDict], nn.Module]
  # The smallest input side it can take (a feature map of at least one pixel).
  min_image_size: Callable[[ml_collections.ConfigDict], int]
  num_blocks: int  # Leading blocks `model.frozen_blocks` can keep as loaded.
  # What its convolutions and feature layer can compute in.
  compute_dtypes: tuple[str, ...]
  # Keeps a pretrained classifier whose logits it sows as 'emotion_logits'.
  has_classifier: bool = False
  # What it reads per frame: (shape, dtype) of one frame's model input.
  frame_input: Callable[[ml_collections.ConfigDict], tuple] = lambda config: (
    (config.data.image_size,) * 2 + (1,),
    np.uint8,
  )


def _fig3(config: ml_collections.ConfigDict) -> models.FrameCNN:
  m = config.model
  return models.FrameCNN(
    filters=tuple(m.filters),
    kernel_size=m.kernel_size,
    num_features=m.num_features,
    dropout_rate=m.dropout_rate,
    frozen_blocks=m.frozen_blocks,
    dtype=jnp.dtype(config.compute_dtype),
  )


def _fig3_min_image_size(config: ml_collections.ConfigDict) -> int:
  k = config.model.kernel_size - 1
  # SAME conv, pool /2, VALID conv (-k), pool /2, VALID conv (-k) >= 1.
  return 2 * (2 * (1 + k) + k)


def _mini_xception(config: ml_collections.ConfigDict) -> models.MiniXception:
  m = config.model
  return models.MiniXception(
    num_features=m.num_features,
    dropout_rate=m.dropout_rate,
    frozen_blocks=m.frozen_blocks,
    class_prototypes=tuple(tuple(p) for p in m.class_prototypes),
  )


def _reads_crops(config: ml_collections.ConfigDict) -> bool:
  """Whether a face-mesh model reads each face's crop beside its landmarks."""
  return "crop" in config.model.mesh_features


def _face_mesh(config: ml_collections.ConfigDict) -> models.FaceMesh:
  m = config.model
  crops = _reads_crops(config)
  return models.FaceMesh(
    task=config.data.face_detector,
    features=tuple(m.mesh_features),
    # Fig. 3's CNN, as configs/demo.py trains it, on the crop.
    pixels=_fig3(config) if crops else None,
    crop_size=config.data.image_size if crops else 0,
    dropout_rate=m.dropout_rate,
    class_prototypes=tuple(tuple(p) for p in m.class_prototypes),
  )


CNNS = {
  "fig3": CNNKind(
    build=_fig3,
    min_image_size=_fig3_min_image_size,
    num_blocks=len(models.FrameCNN.BLOCKS),
    compute_dtypes=("float32", "bfloat16"),
  ),
  # Two 3x3 VALID convolutions; the strided layers pad.
  "mini_xception": CNNKind(
    build=_mini_xception,
    min_image_size=lambda config: 5,
    num_blocks=len(models.MiniXception().BLOCKS),
    compute_dtypes=("float32",),
    has_classifier=True,
  ),
  # MediaPipe's blendshapes of a face's landmarks (its detector, landmark and
  # blendshape networks: the face_landmarker.task that data.face_detector
  # names).
  "face_mesh": CNNKind(
    build=_face_mesh,
    min_image_size=lambda config: (
      _fig3_min_image_size(config) if _reads_crops(config) else 1
    ),
    num_blocks=len(models.FaceMesh.BLOCKS),
    compute_dtypes=("float32",),
    has_classifier=True,
    frame_input=lambda config: (
      (mesh_reader.with_crop_size(config.data.image_size),)
      if _reads_crops(config)
      else (face_mesh.NUM_LANDMARKS, 3),
      np.float32,
    ),
  ),
}

COMPUTE_DTYPES = ("float32", "bfloat16")


def cnn_kind(config: ml_collections.ConfigDict) -> CNNKind:
  """The registry entry of `config.model.cnn`.

  Raises:
    ValueError: a kind not in `CNNS`.
  """
  if config.model.cnn not in CNNS:
    raise ValueError(
      f"model.cnn must be one of {', '.join(CNNS)}, got {config.model.cnn!r}"
    )
  return CNNS[config.model.cnn]


def build_model(config: ml_collections.ConfigDict) -> models.CNNRNN:
  return models.CNNRNN(
    cnn=build_cnn(config), hidden_sizes=tuple(config.model.rnn_hidden_sizes)
  )


def build_cnn(
  config: ml_collections.ConfigDict, all_frozen: bool = False
) -> models.FrameCNN | models.MiniXception:
  """The CNN of the CNN+RNN on its own, for single frames; `all_frozen`:
  every block kept as it is (a linear probe of its features)."""
  cnn = cnn_kind(config).build(config)
  if all_frozen:
    return cnn.clone(frozen_blocks=cnn_kind(config).num_blocks)
  return cnn


def min_image_size(config: ml_collections.ConfigDict) -> int:
  """The smallest input side the CNN can take (a feature map of at least one
  pixel)."""
  return cnn_kind(config).min_image_size(config)


def init_variables(
  config: ml_collections.ConfigDict, rng: jax.Array, window_length: int
) -> dict:
  """CNN+RNN variables: {"params": {"cnn", "rnn"}, "batch_stats": {"cnn"}}."""
  shape, dtype = cnn_kind(config).frame_input(config)
  dummy = jnp.zeros((1, window_length) + shape, dtype)
  variables = build_model(config).init({"params": rng}, dummy, train=False)
  variables = {"batch_stats": {"cnn": {}}, **variables}
  return jax.tree_util.tree_map(np.asarray, dict(variables))


def cnn_variables(variables: dict) -> dict:
  """The CNN's own variables inside the CNN+RNN's."""
  # A network without BatchNorm (face_mesh) has no statistics.
  return {
    "params": variables["params"]["cnn"],
    "batch_stats": variables.get("batch_stats", {}).get("cnn", {}),
  }


@functools.cache
def feature_fn(cnn: models.FrameCNN):
  """`fn(cnn_variables, frames) -> features` in inference mode, compiled once
  per architecture."""
  return jax.jit(lambda variables, x: cnn.apply(variables, x, train=False)[0])


def _va_and_class_logits(cnn, variables, x):
  (_, va), state = cnn.apply(
    variables, x, train=False, mutable=["intermediates"]
  )
  return va, state["intermediates"]["emotion_logits"][0]


@functools.cache
def class_logits_fn(cnn: models.MiniXception):
  """`fn(cnn_variables, frames) -> (..., C)`: the logits of a CNN's own
  classifier (`CNNKind.has_classifier`) in inference mode."""
  return jax.jit(
    lambda variables, x: _va_and_class_logits(cnn, variables, x)[1]
  )


def _features_and_outputs(cnn, variables, x):
  """(features, the head's (..., 2[+C]) outputs) in inference mode."""
  if not getattr(cnn, "class_prototypes", ()):
    return cnn.apply(variables, x, train=False)
  (features, va), state = cnn.apply(
    variables, x, train=False, mutable=["intermediates"]
  )
  logits = state["intermediates"]["emotion_logits"][0]
  return features, jnp.concatenate([va, jax.nn.softmax(logits)], axis=-1)


@functools.cache
def frame_va_fn(cnn: models.FrameCNN):
  """`fn(cnn_variables, frames) -> (..., 2[+C])`: the CNN's own head in
  inference mode, its (valence, arousal) followed, for a zero-shot classifier
  (`class_prototypes`), by its C class probabilities, which decide each
  frame's emotion (`decisions.frame_emotions`)."""
  return jax.jit(lambda v, x: _features_and_outputs(cnn, v, x)[1])


@functools.cache
def outputs_and_features_fn(cnn: models.FrameCNN):
  """`fn(cnn_variables, frames) -> (..., 2[+C] + F)`: `frame_va_fn`'s outputs,
  then the features, from one pass of the CNN."""
  return jax.jit(
    lambda v, x: jnp.concatenate(
      _features_and_outputs(cnn, v, x)[::-1], axis=-1
    )
  )


def apply_in_batches(
  step_fn, state, inputs: np.ndarray, batch_size: int, fixed_shape: bool = False
) -> np.ndarray:
  """Runs `step_fn(state, batch)` over `inputs` in fixed-size batches (the last
  one padded).

  An input smaller than one batch runs unpadded, unless `fixed_shape`: a stream
  of small inputs then compiles once too.
  """
  outputs = []
  for start in range(0, len(inputs), batch_size):
    chunk = inputs[start : start + batch_size]
    pad = batch_size - len(chunk)
    # One shape for every call.
    if pad and (fixed_shape or len(inputs) > batch_size):
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
    outputs.append(np.asarray(step_fn(state, chunk))[: batch_size - pad])
  return np.concatenate(outputs)


INIT_FROM_HINT = (
  "init_from takes a checkpoint folder: a pretrained CNN (python -m "
  "varec.pretrained fer --out=FOLDER, or python -m varec.import_keras "
  "--h5=WEIGHTS.h5 --out=FOLDER) or a train.py workdir"
)


def check_init_from(path) -> None:
  """Raises ValueError, with what to give instead, unless `path` holds a
  checkpoint."""
  try:
    checkpoints.resolve(path)
  except checkpoints.CheckpointError:
    what = (
      "does not exist"
      if not pathlib.Path(path).exists()
      else "is a file"
      if pathlib.Path(path).is_file()
      else "holds no varec checkpoint"
    )
    raise ValueError(f"init_from: {path} {what}; {INIT_FROM_HINT}") from None


def load_cnn(path, variables: dict, config: ml_collections.ConfigDict) -> dict:
  """`variables` with the CNN's params and BatchNorm statistics from checkpoint
  `path`.

  Raises:
    ValueError: the checkpoint's CNN is not the one `config.model` builds.
  """
  manager, step = checkpoints.resolve(path)
  source, _ = checkpoints.restore(manager, step)
  source_meta = checkpoints.restore_meta(manager, step)
  checkpoints.verify(
    source_meta, source, f"init_from: {manager.directory}/{step}"
  )
  source_config = config_schema.upgrade(source_meta.config)
  source_model = source_config.model.to_dict()
  source_kind, kind = source_model["cnn"], config.model.cnn
  shape = lambda tree: jax.tree_util.tree_map(np.shape, tree)
  if source_kind != kind or shape(source["params"]["cnn"]) != shape(
    variables["params"]["cnn"]
  ):
    settings = {
      k: v for k, v in source_model.items() if k != "class_prototypes"
    }
    raise ValueError(
      f"init_from: {manager.directory} holds a {source_kind} CNN of other "
      f"shapes than config.model builds ({kind}); use the model settings it "
      f"was made with ({settings})"
    )
  source_size = source_config.data.image_size
  if source_size != config.data.image_size:
    logging.warning(
      "init_from: its CNN was trained on %dx%d faces, this run feeds it %dx%d",
      source_size,
      source_size,
      config.data.image_size,
      config.data.image_size,
    )
  logging.info("CNN initialised from %s (step %d)", manager.directory, step)
  return {
    "params": {**variables["params"], "cnn": source["params"]["cnn"]},
    "batch_stats": {
      **variables["batch_stats"],
      "cnn": source["batch_stats"]["cnn"],
    },
  }
