"""varec.config_checks: every config problem refused, naming its field,
before any work."""

import json
import math

import pytest

from configs import face_mesh as face_mesh_config
from configs import real_faces as configs_real_faces
from varec import checkpoints
from varec import config_checks
from varec import emotions

from tests.helpers import tiny_config


def test_stages_must_be_known_each_once_and_in_order():
  config = tiny_config()
  config.stages = ("rnn", "cnn")
  with pytest.raises(
    config_checks.ConfigError,
    match="stages must be one or more of probe, cnn, rnn, "
    r"joint, each once, in this order; got \('rnn'",
  ):
    config_checks.check_config(config)


def test_the_probe_stage_needs_a_pretrained_cnn():
  config = tiny_config()
  config.stages = ("probe", "cnn", "rnn")
  with pytest.raises(config_checks.ConfigError, match="probe stage"):
    config_checks.check_config(config)


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("num_runs", 0, "num_runs must be at least 1"),
    ("seed", -1, "seed must be 0"),
  ],
)
def test_run_count_and_seed_are_checked(field, value, message):
  config = tiny_config()
  config[field] = value
  with pytest.raises(config_checks.ConfigError, match=message):
    config_checks.check_config(config)


def test_distillation_refuses_a_stage_it_does_not_act_in():
  config = tiny_config()
  config.model.cnn, config.init_from = "mini_xception", "pretrained"
  config.loss.distill_weight = 1.0
  config.stages = ("cnn", "rnn", "joint")
  with pytest.raises(config_checks.ConfigError, match="drop joint"):
    config_checks.check_config(config)


def test_training_on_stills_refuses_context_dependent_equalisation():
  config = configs_real_faces.get_config()
  config.data.faces_cropped = True
  config_checks.check_config(config)  # The recipe equalises nothing.
  config.data.equalize_frames = True
  with pytest.raises(config_checks.ConfigError, match="equalize_faces=True"):
    config_checks.check_config(config)


def test_a_face_mesh_build_refuses_crop_augmentation(face_landmarker_task):
  config = face_mesh_config.get_config()
  config.data.face_detector = str(face_landmarker_task)
  assert config.data.flip_augment  # Mirror speakers: their landmarks mirrored.
  config_checks.check_config(config)
  config.augment.enabled = True
  with pytest.raises(config_checks.ConfigError, match="augment.enabled"):
    config_checks.check_config(config)


@pytest.mark.parametrize(
  "features, mesh_crops",
  [
    ((), False),
    (("pose",), False),
    (("blendshapes", "eyes"), False),
    # The crop feature and the build's crops go together.
    (("blendshapes", "crop"), False),
    (("blendshapes",), True),
  ],
)
def test_face_mesh_features_are_checked(
  face_landmarker_task, features, mesh_crops
):
  config = face_mesh_config.get_config()
  config.data.face_detector = str(face_landmarker_task)
  config.model.mesh_features = features
  config.data.mesh_crops = mesh_crops
  with pytest.raises(config_checks.ConfigError, match="mesh_features"):
    config_checks.check_config(config)


@pytest.mark.parametrize(
  "field, value, message",
  [
    (
      "optimizer",
      "rmsprop",
      "optimizer must be one of adam, sgd, got 'rmsprop'",
    ),
    (
      "lr_schedule",
      "linear",
      "lr_schedule must be one of constant, cosine, got 'linear'",
    ),
    ("warmup_epochs", -1.0, "warmup_epochs must be a finite number of epochs"),
    (
      "warmup_epochs",
      math.nan,
      "warmup_epochs must be a finite number of epochs",
    ),
    (
      "warmup_epochs",
      math.inf,
      "warmup_epochs must be a finite number of epochs",
    ),
    ("momentum", 1.0, "momentum must be at least 0 and below 1, got 1.0"),
    ("momentum", -0.5, "momentum must be at least 0 and below 1, got -0.5"),
    ("sgd_decay", -1e-5, "sgd_decay must be a finite number, 0 or more"),
    ("sgd_decay", math.nan, "sgd_decay must be a finite number, 0 or more"),
    (
      "cnn.learning_rate",
      math.inf,
      "cnn.learning_rate must be positive and finite",
    ),
    (
      "rnn.learning_rate",
      math.nan,
      "rnn.learning_rate must be positive and finite",
    ),
  ],
)
def test_optimizer_fields_are_checked(field, value, message):
  config = tiny_config()
  *parents, leaf = field.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value
  with pytest.raises(config_checks.ConfigError) as raised:
    config_checks.check_config(config)
  # The only problem, named by its field.
  assert str(raised.value).startswith(f"config: {message}"), raised.value
  assert ";" not in str(raised.value)


def test_every_problem_is_reported_at_once():
  config = tiny_config()
  config.optimizer, config.lr_schedule = "rmsprop", "linear"
  with pytest.raises(
    config_checks.ConfigError,
    match="config: optimizer must be one of .*; lr_schedule must be one of",
  ):
    config_checks.check_config(config)


def test_batch_sizes_must_share_over_the_devices():
  config = tiny_config()  # Batches of 32 frames (cnn) and 4 windows (rnn).
  config_checks.check_config(config, num_devices=4)
  config_checks.check_config(config)  # Without devices: not compared.
  with pytest.raises(
    config_checks.ConfigError,
    match=r"rnn\.batch_size \(4\) must be a multiple of the 3 devices",
  ):
    config_checks.check_config(config, num_devices=3)


_SPEAKERS = {"train": ("F01", "M02"), "validation": ("F03",), "test": ("M04",)}


def _meta(config, completed=()) -> checkpoints.CheckpointMeta:
  """What a checkpoint of `config`, trained on `_SPEAKERS`, records."""
  return checkpoints.CheckpointMeta.from_json(
    {
      "config": json.loads(config.to_json()),
      "completed_stages": list(completed),
      "speakers": {k: list(v) for k, v in _SPEAKERS.items()},
      **emotions.TABLE2.to_meta(),
    }
  )


def test_a_run_resumes_only_a_checkpoint_of_its_own():
  config = tiny_config()
  meta = _meta(config)
  config_checks.check_resumable(
    meta, config, _SPEAKERS, emotions.TABLE2, "runs/a"
  )
  config.restart = True  # Changes nothing of what the run trains.
  config_checks.check_resumable(
    meta, config, _SPEAKERS, emotions.TABLE2, "runs/a"
  )
  config.cnn.num_epochs = 3
  with pytest.raises(
    ValueError,
    match=r"runs/a holds an unfinished run of another config "
    r"\(cnn\.num_epochs: 2 there, 3 now\): train into a new --workdir, or pass "
    r"--config\.restart=True",
  ):
    config_checks.check_resumable(
      meta, config, _SPEAKERS, emotions.TABLE2, "runs/a"
    )
  with pytest.raises(
    ValueError, match="holds a finished run of another config"
  ):
    config_checks.check_resumable(
      _meta(tiny_config(), ("cnn", "rnn")),
      config,
      _SPEAKERS,
      emotions.TABLE2,
      "runs/a",
    )
  config = tiny_config()
  with pytest.raises(ValueError, match="another speaker split"):
    config_checks.check_resumable(
      meta, config, {**_SPEAKERS, "test": ("M05",)}, emotions.TABLE2, "runs/a"
    )
