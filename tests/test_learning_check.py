"""Small sets: a stage's floor of optimisation steps (`<stage>.min_steps`), and
the end-of-run check that a model learnt anything (issue 30, item 6)."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from configs import demo
from configs import real_faces
from configs import rnn10
from configs import rnn10_10_5
from varec import checkpoints
from varec import config_checks
from varec import config_schema
from varec import emotions
from varec import learning_check
from varec import run_logs
from varec import steps
from varec import train_lib

from tests.helpers import tiny_config

ROOT = pathlib.Path(__file__).parent.parent


class _Mesh:
  size = 1


@pytest.mark.parametrize(
  "num_train, num_epochs, min_steps, epochs, warmup",
  [
    (16_000, 5, 1250, 5, 250),  # The demo's cnn stage on the embedded set.
    (448, 5, 1250, 179, 251),  # 7 steps an epoch: 1,253 steps, 1/5 warmup.
    (448, 5, 0, 5, 7),  # No floor: the epochs given.
    (448, 200, 1250, 200, 7),  # Epochs enough: the floor does not bind.
  ],
)
def test_a_small_set_trains_min_steps_in_more_epochs(
  num_train, num_epochs, min_steps, epochs, warmup
):
  config = demo.get_config()
  config.cnn.num_epochs, config.cnn.min_steps = num_epochs, min_steps
  schedule = steps.stage_schedule("cnn", config, num_train, _Mesh())
  assert (schedule.steps_per_epoch, schedule.epochs) == (
    num_train // 64,
    epochs,
  )
  assert schedule.steps >= min_steps and schedule.warmup_steps == warmup
  assert schedule.lengthened == (epochs > num_epochs)


def _embedded_set_steps(config, name: str) -> int:
  """Steps a stage takes on the embedded dataset: 22 actors and their mirror
  images split 8:2:1 by person, so 32 training speakers x 10 videos, each 50
  labelled frames, 5 windows."""
  videos = 32 * 10
  examples = videos * (50 if name in steps.FRAME_STAGES else 5)
  schedule = steps.stage_schedule(name, config, examples, _Mesh())
  assert not schedule.lengthened, (name, schedule)
  return schedule.steps


def test_the_floors_do_not_bind_on_the_embedded_dataset():
  """The demo and the paper configs train there exactly as before min_steps."""
  for config in (
    demo.get_config(),
    rnn10.get_config(),
    rnn10_10_5.get_config(),
  ):
    for name in config.stages:
      _embedded_set_steps(config, name)
  config = demo.get_config()
  assert _embedded_set_steps(config, "cnn") == config.cnn.min_steps == 1250
  assert _embedded_set_steps(config, "rnn") == config.rnn.min_steps == 240
  for config in (rnn10.get_config(), rnn10_10_5.get_config()):
    assert all(config[s].min_steps == 0 for s in steps.STAGES)
  # The recipe as measured on the embedded set (README): 2 probe, 3 cnn, 20 rnn
  # epochs.
  config = real_faces.get_config()
  config.probe.num_epochs, config.cnn.num_epochs, config.rnn.num_epochs = (
    2,
    3,
    20,
  )
  for name in config.stages:
    assert _embedded_set_steps(config, name) == config[name].min_steps


def test_old_checkpoints_trained_without_a_floor():
  stored = json.loads(demo.get_config().to_json())
  for name in steps.STAGES:
    del stored[name]["min_steps"]
  config = config_schema.upgrade(stored)
  assert all(config[s].min_steps == 0 for s in steps.STAGES)
  config = tiny_config()
  config.cnn.min_steps = -1
  with pytest.raises(config_checks.ConfigError, match="cnn.min_steps must be"):
    config_checks.check_config(config)


def test_the_floor_lengthens_a_stage_and_its_schedule(
  tiny_builder, tmp_path, monkeypatch
):
  config = tiny_config()  # 2 cnn steps an epoch on the tiny build.
  config.cnn.num_epochs, config.cnn.min_steps = 2, 7
  config.rnn.num_epochs = 1
  built = {}
  real_stage_state = steps.stage_state

  def recording_stage_state(name, *args, **kwargs):
    built[name] = (kwargs["num_steps"], kwargs["warmup_steps"])
    return real_stage_state(name, *args, **kwargs)

  monkeypatch.setattr(steps, "stage_state", recording_stage_state)
  train_lib.train_and_evaluate(config, tmp_path, builder=tiny_builder)
  records = run_logs.read_metrics(tmp_path)
  cnn = [(r["epoch"], r["step"]) for r in records if r["split"] == "train"][:4]
  # ceil(7 / 2) = 4 epochs of 2 steps, not 2 epochs.
  assert cnn == [(1, 2), (2, 4), (3, 6), (4, 8)]
  assert [r["stage"] for r in records if r["split"] == "train"] == [
    "cnn"
  ] * 4 + ["rnn"]
  # Cosine over all 8 steps; warmup 1 of the 2 epochs asked for: half of them.
  assert built["cnn"] == (8, 4) and built["rnn"] == (2, 2)
  summary = run_logs.read_summary(tmp_path)
  assert summary["stages"]["cnn"]["schedule"] == {
    "batch_size": 32,
    "steps_per_epoch": 2,
    "num_epochs": 2,
    "min_steps": 7,
    "epochs": 4,
    "warmup_steps": 4,
    "steps": 8,
    "lengthened": True,
  }
  assert (
    json.loads((tmp_path / "timings.json").read_text())["cnn"]["epochs"] == 4
  )
  meta = checkpoints.restore_meta(
    checkpoints.managers(tmp_path)[checkpoints.LATEST]
  )
  assert meta.completed_stages == ("cnn", "rnn") and meta.step == 10


def _records(stage, val_ccc, accuracy, train_ccc=(0.0, 0.0)):
  """metrics.jsonl records of a stage: one validation per epoch, and the first
  and last epochs' training CCC."""
  records = []
  for epoch, (ccc, acc) in enumerate(zip(val_ccc, accuracy), 1):
    train = train_ccc[0] if epoch == 1 else train_ccc[1]
    for split, c, extra in (
      ("train", train, {}),
      ("validation", ccc, {"video_accuracy": acc}),
    ):
      records.append(
        {
          "stage": stage,
          "epoch": epoch,
          "step": epoch * 10,
          "split": split,
          "ccc_valence": c,
          "ccc_arousal": c,
          **extra,
        }
      )
  return records


def _data(videos=8, emotions_trained=4):
  """`learning_check.data_record` of a balanced validation of `videos` videos
  (2 people)."""
  trained = emotions.TABLE2.emotions[:emotions_trained]
  per_video = np.arange(videos) % emotions_trained
  windows = {
    split: {
      "video_id": np.repeat(np.arange(videos), 5),
      "emotion": np.repeat(per_video, 5),
    }
    for split in ("train", "validation")
  }
  speakers = {
    "train": ("F01", "F01_mirror", "M02", "M02_mirror"),
    "validation": ("F03", "F03_mirror", "M04", "M04_mirror"),
  }
  return learning_check.data_record(windows, speakers, emotions.TABLE2, trained)


def test_chance_and_the_videos_that_beat_it():
  data = _data(videos=8, emotions_trained=4)
  assert data["chance_accuracy"] == 0.25 and data["validation_people"] == 2
  # P(X >= 5) = 0.027 < 0.05 <= P(X >= 4) = 0.114 for X ~ Binomial(8, 0.25).
  assert data["videos_needed"] == 5
  # 4 videos of 2 emotions: even 4 right has p = 1/16.
  assert _data(videos=4, emotions_trained=2)["videos_needed"] is None
  needed = _data(videos=40, emotions_trained=10)["videos_needed"]

  def tail(k, n, p):  # P(X >= k) for X ~ Binomial(n, p).
    return stats.binom.sf(k - 1, n, p)

  assert tail(needed, 40, 0.1) < 0.05 <= tail(needed - 1, 40, 0.1)


@pytest.mark.parametrize(
  "val_ccc, accuracy, nothing, ccc_flat, at_chance",
  [
    (
      (0.0, 0.0, 0.0),
      (0.25, 0.25, 0.25),
      True,
      True,
      True,
    ),  # The report's run.
    ((0.01, 0.02), (0.5, 0.5), True, True, True),  # 4 of 8: luck at p 0.11.
    (
      (0.0, 0.4),
      (0.25, 0.25),
      False,
      False,
      True,
    ),  # Valence-arousal, no classes.
    ((0.01, 0.02), (0.75, 0.75), False, True, False),  # 6 of 8 right.
    ((float("nan"), -0.2, 0.3), (1.0, 0.25, 0.75), False, False, False),
  ],
)
def test_a_stage_learnt_nothing_when_ccc_and_accuracy_are_at_chance(
  val_ccc, accuracy, nothing, ccc_flat, at_chance
):
  check = learning_check.check_stage(
    "rnn",
    _records("cnn", (0.9,), (1.0,)) + _records("rnn", val_ccc, accuracy),
    _data(),
  )
  assert check["checked"] and check["stage"] == "rnn"
  assert (check["learnt_nothing"], check["ccc_at_chance"]) == (
    nothing,
    ccc_flat,
  )
  assert check["accuracy_at_chance"] == at_chance
  # Its best epoch by CCC, as the best checkpoint (NaN never best).
  finite = [c if np.isfinite(c) else -np.inf for c in val_ccc]
  assert check["epoch"] == int(np.argmax(finite)) + 1


def test_without_validation_records_it_says_it_cannot_tell():
  check = learning_check.check_stage(
    "rnn", _records("cnn", (0.0,), (0.25,)), _data()
  )
  assert not check["checked"] and not check["learnt_nothing"]


def test_the_message_names_the_numbers_and_what_to_change():
  config = demo.get_config()
  records = _records("cnn", (0.0,) * 5, (0.25,) * 5, train_ccc=(0.01, 0.02))
  summary = {
    "stages": {
      "cnn": {
        "schedule": {
          "steps": 35,
          "steps_per_epoch": 7,
          "epochs": 5,
          "min_steps": 0,
        }
      }
    },
    "data": _data(),
    "verdict": learning_check.check_stage("cnn", records, _data()),
  }
  message = learning_check.learnt_nothing_message(
    "workdir/mine", config, summary
  )
  for text in (
    "TRAINING LEARNT NOTHING: workdir/mine",
    "8 videos of 2 people",
    "CCC 0.000",
    "below 0.05",
    "video accuracy 0.250 (2 of 8): chance 0.250",
    "above it takes 5 of 8",
    "cnn 35 (7 an epoch x 5, cnn.min_steps=0)",
    "--config.cnn.min_steps=1250",
    "--config.cnn.learning_rate=0.003",
    "configs/real_faces.py",
    "Check the labels",
    "checkpoints are kept (workdir/mine/checkpoints)",
    "status 3",
  ):
    assert text in message, (text, message)
  # A stage that fitted its training frames memorised them: more steps will not
  # help.
  records = _records("cnn", (0.0,) * 5, (0.25,) * 5, train_ccc=(0.1, 0.8))
  summary["verdict"] = learning_check.check_stage("cnn", records, _data())
  assert "memorised" in learning_check.learnt_nothing_message(
    "workdir/mine", config, summary
  )


def _train_py(*args):
  return subprocess.run(
    [sys.executable, "train.py", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )


def test_train_py_ends_loudly_with_status_3_when_nothing_was_learnt(
  manual_dir, tmp_path
):
  """A run that cannot learn (learning rate 1e-9) on the tiny set: train.py
  ends with the message and status 3, its checkpoints kept; rerun, the same."""
  workdir = tmp_path / "run"
  flags = [
    "--config=configs/demo.py",
    f"--workdir={workdir}",
    "--config.data.name=adfes",
    f"--config.data.manual_dir={manual_dir}",
    f"--config.data.data_dir={tmp_path / 'data'}",
    "--config.data.crop_size=32",
    "--config.data.image_size=32",
    "--config.data.num_labelled_frames=20",
    "--config.model.filters=(4,8,8)",
    "--config.model.num_features=16",
    "--config.cnn.num_epochs=1",
    "--config.cnn.batch_size=32",
    "--config.cnn.learning_rate=1e-9",
    "--config.rnn.num_epochs=1",
    "--config.rnn.batch_size=4",
    "--config.rnn.learning_rate=1e-9",
    "--config.cnn.min_steps=3",  # 2 steps an epoch: 2 epochs.
    "--config.rnn.min_steps=0",
  ]
  result = _train_py(*flags)
  assert result.returncode == learning_check.LEARNT_NOTHING_STATUS == 3, (
    result.stderr[-3000:]
  )
  assert "Validation after training" in result.stdout
  assert "TRAINING LEARNT NOTHING" in result.stderr
  assert "cnn 4 (2 an epoch x 2, cnn.min_steps=3)" in result.stderr
  assert "What to change" in result.stderr and "Traceback" not in result.stderr
  summary = run_logs.read_summary(workdir)
  assert summary["verdict"]["learnt_nothing"]
  assert summary["verdict"]["message"] in result.stderr
  # Nothing is lost: the best checkpoint is there for eval.py.
  manager, step = checkpoints.resolve(workdir)
  assert checkpoints.restore_meta(manager, step).completed_stages == (
    "cnn",
    "rnn",
  )
  again = _train_py(*flags)
  assert again.returncode == 3 and "nothing left to train" in again.stdout
  assert "TRAINING LEARNT NOTHING" in again.stderr
