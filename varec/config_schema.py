"""One schema for configs: a checkpoint's stored config, from any varec version,
upgraded once to today's complete config (`upgrade`).

Checkpoints carry their run's config as JSON. A field added to `configs/base.py`
after a checkpoint was written is missing from it; it takes the value that
checkpoint was trained (or its data built) with, which `OLD_MEANINGS` records
where it is not base's default today. Everything downstream of `upgrade` reads
config fields directly (`config.model.cnn`), never with a fallback.
"""

from __future__ import annotations

import copy
import json

import ml_collections

from configs import base

# Every field added to the config since the first varec checkpoints, with what a
# checkpoint lacking it was trained with: the behaviour before the field
# existed.
OLD_MEANINGS = {
  "data.builder_config": None,
  "data.faces_cropped": False,
  "data.follow_symlinks": False,
  "data.num_labelled_frames": 50,
  "data.neutral_onset_frames": 0,
  "data.prototypes_csv": None,  # Table 2's emotions.
  "data.fps": 25.0,
  "data.detect_max_side": 320,
  "data.face_detector": "dlib_hog",
  "data.detect_every": 5,
  "data.face_margin": 0.1,
  "data.face_margin_px": 0,
  "data.grayscale": "mean_rgb",
  # Square crops of the detected box (base: aligned).
  "data.align_faces": False,
  "data.crop_interpolation": "area",
  # Crops were stored at 96, whatever the model's input side.
  "data.crop_size": 96,
  "data.window_length": 10,
  # Whole frames equalised only (base: each crop too).
  "data.equalize_faces": False,
  "data.equalize_frames": True,  # §4.5's whole-frame equalisation, always.
  "data.mesh_crops": False,  # Face-mesh builds stored landmarks only.
  "model.cnn": "fig3",
  "model.mesh_features": ("blendshapes",),
  # No probe stage before it existed; its settings are base's, unused.
  "probe.num_epochs": 10,
  "probe.batch_size": 128,
  "probe.learning_rate": None,
  # Each stage trained num_epochs, however few steps they gave.
  "probe.min_steps": 0,
  "cnn.min_steps": 0,
  "rnn.min_steps": 0,
  "joint.min_steps": 0,
  "model.frozen_blocks": 0,
  "model.class_prototypes": [],
  "flip_average": False,
  "augment.enabled": False,  # Trained without augmentation (base: with).
  "augment.max_shift": 0.08,
  "augment.max_scale": 0.0,
  "augment.max_rotation": 0.0,
  "augment.max_shading": 0.0,
  "augment.erase_probability": 0.0,
  "augment.max_contrast": 0.25,
  "augment.max_brightness": 20.0,
  "loss.prototype_weight": 0.0,
  "loss.prototype_temperature": 0.02,
  "loss.distill_weight": 0.0,
  "loss.distill_temperature": 2.0,
  "warmup_epochs": 0.0,
  "sgd_decay": 0.0,  # SGD without Keras' decay (base: 1e-5).
  "restart": False,
  "compute_dtype": "float32",
}


def _merge(into: dict, values: dict) -> None:
  """Writes `values` into `into`, recursing into dicts both have."""
  for key, value in values.items():
    if isinstance(value, dict) and isinstance(into.get(key), dict):
      _merge(into[key], value)
    else:
      into[key] = copy.deepcopy(value)


def _set(tree: dict, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  for key in parents:
    tree = tree.setdefault(key, {})
  tree[leaf] = value


def _kind(value):
  """The JSON kind a field's value must have; None where any goes
  (placeholders)."""
  if value is None:
    return None
  if isinstance(value, bool):
    return bool
  if isinstance(value, (int, float)):
    return (int, float)
  if isinstance(value, (list, tuple)):
    return (list, tuple)
  if isinstance(value, dict):
    return dict
  return type(value)


def type_problems(
  stored: dict, reference: dict | None = None, prefix=""
) -> list[str]:
  """Fields of a stored config whose values are not of the kind today's
  config holds there (e.g. image_size "48"), by dotted name."""
  if reference is None:
    reference = json.loads(base.get_config().to_json())
  problems = []
  for key, value in stored.items():
    if key not in reference:
      continue
    kind, name = _kind(reference[key]), f"{prefix}{key}"
    if kind is dict and isinstance(value, dict):
      problems += type_problems(value, reference[key], f"{name}.")
    elif (
      kind is not None
      and value is not None
      and (
        not isinstance(value, kind)
        or (kind != bool and isinstance(value, bool))
      )
    ):
      problems.append(f"{name} is {value!r}, not a {_kind_name(kind)}")
  return problems


def _kind_name(kind) -> str:
  return {bool: "boolean", dict: "group of fields", str: "string"}.get(
    kind, "number" if kind == (int, float) else "list"
  )


def upgrade(stored: dict) -> ml_collections.ConfigDict:
  """A checkpoint's stored config (JSON dict) as a complete config of today's
  schema.

  Fields it has are kept as they are; fields it lacks take their `OLD_MEANINGS`
  value, and any other field base's default. Nothing is checked here
  (`config_checks` does that).
  """
  complete = json.loads(base.get_config().to_json())
  for dotted, value in OLD_MEANINGS.items():
    _set(complete, dotted, value)
  _merge(complete, stored)
  return ml_collections.ConfigDict(complete)
