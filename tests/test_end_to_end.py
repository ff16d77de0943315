"""The demo pipeline at a tiny size, through the real command lines:
build the small synthetic dataset (`tfds build`), train, evaluate, and Table
3 over two runs."""

import json
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).parent.parent


# train.py's status when training finished but learnt nothing, as these runs of
# a few dozen steps may (the checkpoints stay, and eval.py reads them as any).
LEARNT_NOTHING = 3


def _run(*args, timeout=900):
  result = subprocess.run(
    [sys.executable, *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )
  ok = (0, LEARNT_NOTHING) if args[0] == "train.py" else (0,)
  assert result.returncode in ok, result.stderr[-4000:]
  if result.returncode == LEARNT_NOTHING:
    assert "TRAINING LEARNT NOTHING" in result.stderr, result.stderr[-4000:]
  return result.stdout


def _demo_flags(data_dir, **overrides):
  flags = {
    "data.builder_config": "small",
    "data.data_dir": str(data_dir),
    "cnn.num_epochs": 1,
    "rnn.num_epochs": 3,
    # The epochs given (the demo's step floors are the full set's).
    "cnn.min_steps": 0,
    "rnn.min_steps": 0,
    **overrides,
  }
  return ["--config=configs/demo.py"] + [
    f"--config.{k}={v}" for k, v in flags.items()
  ]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """The small synthetic set, built by TFDS' own command line (the design
  card's route)."""
  data_dir = tmp_path_factory.mktemp("tfds")
  result = subprocess.run(
    [
      str(pathlib.Path(sys.executable).with_name("tfds")),
      "build",
      "data_builder/synthetic_adfes",
      "--config=small",
      f"--data_dir={data_dir}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=900,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-4000:]
  files = {p.name for p in data_dir.rglob("*") if p.is_file()}
  assert any(".array_record-" in f for f in files) and not any(
    ".tfrecord-" in f for f in files
  )
  return data_dir


def test_build_dataset_reads_the_tfds_build(data_dir):
  out = _run(
    "-m",
    "varec.build_dataset",
    "--data.name=synthetic_adfes",
    f"--data.data_dir={data_dir}",
    "--data.builder_config=small",
  )
  assert "40 videos, 4 speakers" in out, out


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("demo")
  out = _run("train.py", *_demo_flags(data_dir), f"--workdir={workdir}")
  assert "Validation after training" in out and "video_accuracy" in out
  return workdir


def test_eval_writes_every_output(trained, tmp_path):
  out = _run("eval.py", f"--checkpoint={trained}", f"--output={tmp_path}")
  assert "validation" in out and "test" in out
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  for split in ("validation", "test"):
    m = metrics["splits"][split]
    assert m["videos"] > 0
    for key in (
      "accuracy",
      "macro_precision",
      "macro_recall",
      "pn_accuracy",
      "frame_ccc_valence",
      "frame_ccc_arousal",
      "frame_rmse_valence",
      "frame_rmse_arousal",
    ):
      assert key in m
    assert set(m["per_emotion"]["joy"]) == {"videos", "precision", "recall"}
  videos = pd.read_csv(tmp_path / "videos.csv")
  frames = pd.read_csv(tmp_path / "frames.csv")
  assert {
    "video",
    "speaker",
    "true_emotion",
    "predicted_emotion",
    "votes_joy",
  } <= set(videos.columns)
  assert {
    "video",
    "frame",
    "valence",
    "arousal",
    "nearest_emotion",
    "labelled",
  } <= set(frames.columns)
  # Every frame of every video has a prediction; 50 frames of each are labelled.
  assert frames.groupby("video")["labelled"].sum().eq(50).all()
  assert len(frames) > 50 * len(videos)
  figures = tmp_path / "figures"
  assert (figures / "fig4_confusion_test.png").stat().st_size > 0
  assert (figures / "fig5_distribution_validation.png").stat().st_size > 0
  assert (
    len(list((figures / "fig6" / "test").glob("*.png")))
    == (videos.split == "test").sum()
  )
  assert (
    len(list((figures / "fig7" / "test").glob("*.png")))
    == videos[videos.split == "test"].true_emotion.nunique()
  )


def test_eval_bad_checkpoints_say_what_to_do(tmp_path, trained):
  result = subprocess.run(
    [sys.executable, "eval.py", f"--checkpoint={tmp_path / 'none'}"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=False,
  )
  assert (
    result.returncode != 0
    and "does not exist" in result.stderr
    and "train.py" in result.stderr
  )
  (tmp_path / "partial" / "checkpoints" / "best").mkdir(parents=True)
  result = subprocess.run(
    [sys.executable, "eval.py", f"--checkpoint={tmp_path / 'partial'}"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=False,
  )
  assert (
    result.returncode != 0 and "no complete varec checkpoint" in result.stderr
  )


def test_table3_over_two_runs(data_dir, tmp_path):
  workdir = tmp_path / "runs"
  out = _run(
    "train.py",
    *_demo_flags(data_dir, num_runs=2, **{"rnn.num_epochs": 1}),
    f"--workdir={workdir}",
  )
  assert "Average PN Accuracy" in out
  table = pd.read_csv(workdir / "table3.csv")
  assert set(table.split) == {"train+validation", "test"} and set(
    table.runs
  ) == {2}
  assert set(table.metric) == {
    "macro_precision",
    "macro_recall",
    "accuracy",
    "pn_accuracy",
  }
  md = (workdir / "table3.md").read_text()
  assert "Training and Validation" in md and "Testing" in md
  # The two runs used different speaker splits.
  splits = [
    json.loads((workdir / f"run_{i}" / "eval" / "metrics.json").read_text())
    for i in range(2)
  ]
  assert all(s["splits"]["test"]["videos"] > 0 for s in splits)


def test_eval_on_another_dataset_from_the_command_line(
  trained, data_dir, tmp_path
):
  # Every video of a dataset, as the one split `all` (here the training set's
  # own build).
  out = _run(
    "eval.py",
    f"--checkpoint={trained}",
    f"--data.data_dir={data_dir}",
    "--data.builder_config=small",
    f"--output={tmp_path}",
    "--nofigures",
  )
  assert "all" in out
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert (
    list(metrics["splits"]) == ["all"]
    and metrics["splits"]["all"]["videos"] == 40
  )
  assert metrics["splits"]["all"]["left_out"] == {}
  result = subprocess.run(
    [
      sys.executable,
      "eval.py",
      f"--checkpoint={trained}",
      "--data.face_margin=0.3",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode != 0 and "comes from its checkpoint" in result.stderr
