"""The workdir layout: every path a training run, eval.py and Table 3 use."""

import os
import pathlib

from varec import checkpoints
from varec.workdir import Workdir


def test_a_workdir_names_every_file_of_a_run(tmp_path):
  workdir = Workdir(tmp_path)
  assert (
    os.fspath(workdir) == str(tmp_path) and pathlib.Path(workdir) == tmp_path
  )
  assert (
    workdir.checkpoint_dir(checkpoints.LATEST)
    == tmp_path / "checkpoints" / "latest"
  )
  assert (
    workdir.checkpoint_dir(checkpoints.BEST)
    == tmp_path / "checkpoints" / "best"
  )
  assert (workdir.metrics, workdir.tensorboard, workdir.timings) == (
    tmp_path / "metrics.jsonl",
    tmp_path / "tensorboard",
    tmp_path / "timings.json",
  )
  assert workdir.eval_dir() == tmp_path / "eval"
  assert workdir.eval_dir("other") == tmp_path / "eval_other"
  assert workdir.eval_metrics == tmp_path / "eval" / "metrics.json"
  assert set(workdir.run_records()) == {
    tmp_path / "checkpoints",
    tmp_path / "tensorboard",
    tmp_path / "metrics.jsonl",
    tmp_path / "timings.json",
    tmp_path / "training_summary.json",
  }


def test_runs_of_a_multi_run_workdir_in_run_order(tmp_path):
  workdir = Workdir(tmp_path)
  assert workdir.run(3) == Workdir(tmp_path / "run_3")
  for i in (10, 2, 0):
    workdir.run(i).eval_metrics.parent.mkdir(parents=True)
    workdir.run(i).eval_metrics.write_text("{}")
  workdir.run(5).root.mkdir()  # Not evaluated yet.
  assert workdir.evaluated_runs() == [
    workdir.run(0),
    workdir.run(2),
    workdir.run(10),
  ]


def test_the_workdir_of_a_checkpoint(tmp_path):
  step = Workdir(tmp_path).checkpoint_dir(checkpoints.BEST) / "12"
  assert Workdir.of_checkpoint(step) == Workdir(tmp_path)
  assert Workdir.of_checkpoint(tmp_path / "imported" / "0") is None
