"""Checkpoint configs of earlier varec versions upgrade to today's complete
config."""

import dataclasses
import json

from configs import base
from configs import demo
from varec import config_checks
from varec import config_schema
from varec import model_lib
from varec.preprocess import config as preprocess_config

# The config of a checkpoint written by the first varec (before alignment,
# crop_size, augmentation, the CNN registry, compute_dtype, ...): only the
# fields it had then.
FIRST_CHECKPOINT = {
  "seed": 3,
  "data": {
    "name": "adfes",
    "data_dir": None,
    "manual_dir": None,
    "orientations": ["forward"],
    "image_size": 48,
    "flip_augment": True,
    "split_mirror_separately": False,
    "split_ratios": [8, 2, 1],
  },
  "model": {
    "filters": [8, 16, 16],
    "kernel_size": 5,
    "num_features": 32,
    "dropout_rate": 0.5,
    "rnn_hidden_sizes": [10],
  },
  "stages": ["cnn", "rnn"],
  "init_from": None,
  "cnn": {"num_epochs": 2, "batch_size": 32, "learning_rate": None},
  "rnn": {"num_epochs": 2, "batch_size": 4, "learning_rate": None},
  "joint": {"num_epochs": 1, "batch_size": 4, "learning_rate": None},
  "optimizer": "sgd",
  "momentum": 0.9,
  "lr_schedule": "constant",
  "eval_batch_size": 512,
  "num_runs": 1,
}


def _flat_keys(tree: dict, prefix: str = "") -> set[str]:
  return {
    k
    for key, value in tree.items()
    for k in (
      _flat_keys(value, f"{prefix}{key}.")
      if isinstance(value, dict)
      else [prefix + key]
    )
  }


def test_an_old_checkpoint_config_gets_every_field_with_its_old_meaning():
  config = config_schema.upgrade(FIRST_CHECKPOINT)
  today = _flat_keys(json.loads(base.get_config().to_json()))
  assert _flat_keys(config.to_dict()) == today
  # What it had is kept.
  assert (
    config.seed,
    config.data.image_size,
    tuple(config.model.filters),
    config.optimizer,
  ) == (3, 48, (8, 16, 16), "sgd")
  # What it lacked is what it was trained with, not today's defaults.
  assert (
    config.data.align_faces,
    config.data.equalize_faces,
    config.augment.enabled,
    config.sgd_decay,
  ) == (False, False, False, 0.0)
  assert (
    config.data.crop_size,
    config.model.cnn,
    config.model.frozen_blocks,
    tuple(config.model.class_prototypes),
    config.compute_dtype,
  ) == (96, "fig3", 0, (), "float32")
  assert preprocess_config.config_from_data(
    config.data
  ) == preprocess_config.PreprocessConfig(align_faces=False)
  config_checks.check_config(config)
  assert type(model_lib.build_cnn(config)).__name__ == "FrameCNN"


def test_every_field_added_since_the_first_checkpoints_has_an_old_meaning():
  added = _flat_keys(json.loads(base.get_config().to_json())) - _flat_keys(
    FIRST_CHECKPOINT
  )
  assert added == set(config_schema.OLD_MEANINGS)


def test_a_current_config_upgrades_to_itself():
  config = demo.get_config()
  config.model.cnn, config.compute_dtype = "fig3", "bfloat16"
  stored = json.loads(config.to_json())
  assert json.loads(config_schema.upgrade(stored).to_json()) == stored


def test_upgrade_does_not_change_what_it_is_given():
  stored = {"data": {"image_size": 32}, "stages": []}
  config = config_schema.upgrade(stored)
  assert stored == {"data": {"image_size": 32}, "stages": []}
  assert list(config.stages) == [] and config.data.image_size == 32


def test_a_build_recorded_under_old_names_reads_as_today():
  config = preprocess_config.PreprocessConfig(crop_size=32)
  fields = preprocess_config.build_fields(config)
  assert fields["image_size"] == 32 and "crop_size" not in fields
  assert preprocess_config.upgrade_recorded(fields) == dataclasses.asdict(
    config
  )
