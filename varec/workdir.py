"""The layout of a training workdir, known here only.

    <workdir>/checkpoints/latest/<step>/  the newest checkpoints, for resuming
    <workdir>/checkpoints/best/<step>/    the best by validation CCC, for
    eval.py and predict.py
    <workdir>/metrics.jsonl               per-epoch metrics
    <workdir>/tensorboard/                the same, for TensorBoard
    <workdir>/timings.json                wall times per stage
    <workdir>/training_summary.json       stage schedules; whether the run
    learnt anything
    <workdir>/eval/                       eval.py's output (eval_<dataset>/ for
    another dataset)
    <workdir>/run_<i>/                    run i of a multi-run workdir (num_runs
    > 1), a workdir

A `Workdir` is path-like (`os.fspath`): it goes wherever a folder path goes.
"""

from __future__ import annotations

import os
import pathlib

LATEST = "latest"
BEST = "best"
# The metrics file of an evaluation's output folder.
EVAL_METRICS = "metrics.json"
_CHECKPOINTS = "checkpoints"
_RUN_PREFIX = "run_"


class Workdir(os.PathLike):
  """The paths of one training workdir."""

  def __init__(self, root):
    self.root = pathlib.Path(root)

  def __fspath__(self) -> str:
    return os.fspath(self.root)

  def __str__(self) -> str:
    return str(self.root)

  def __repr__(self) -> str:
    return f"Workdir({str(self.root)!r})"

  def __eq__(self, other) -> bool:
    return isinstance(other, Workdir) and self.root == other.root

  def __hash__(self) -> int:
    return hash(self.root)

  @classmethod
  def of_checkpoint(cls, step_dir) -> Workdir | None:
    """The workdir a checkpoint step folder
    (<workdir>/checkpoints/<kind>/<step>) is in."""
    step_dir = pathlib.Path(step_dir)
    if step_dir.parent.parent.name != _CHECKPOINTS:
      return None
    return cls(step_dir.parent.parent.parent)

  @property
  def checkpoints(self) -> pathlib.Path:
    return self.root / _CHECKPOINTS

  def checkpoint_dir(self, kind: str) -> pathlib.Path:
    """The folder of the `LATEST` or `BEST` checkpoints."""
    return self.checkpoints / kind

  @property
  def metrics(self) -> pathlib.Path:
    return self.root / "metrics.jsonl"

  @property
  def tensorboard(self) -> pathlib.Path:
    return self.root / "tensorboard"

  @property
  def timings(self) -> pathlib.Path:
    return self.root / "timings.json"

  @property
  def training_summary(self) -> pathlib.Path:
    return self.root / "training_summary.json"

  def run_records(self) -> tuple[pathlib.Path, ...]:
    """Everything training writes: what `config.restart` discards."""
    return (
      self.checkpoints,
      self.tensorboard,
      self.metrics,
      self.timings,
      self.training_summary,
    )

  def eval_dir(self, dataset: str | None = None) -> pathlib.Path:
    """eval.py's default output: eval/, or eval_<dataset>/ (a file-name-safe
    name) for another dataset."""
    return self.root / ("eval" if dataset is None else f"eval_{dataset}")

  @property
  def eval_metrics(self) -> pathlib.Path:
    return self.eval_dir() / EVAL_METRICS

  def run(self, index: int) -> Workdir:
    """Run `index` of a multi-run workdir."""
    return Workdir(self.root / f"{_RUN_PREFIX}{index}")

  def evaluated_runs(self) -> list[Workdir]:
    """The runs of a multi-run workdir that have been evaluated, in run
    order."""
    runs = [
      Workdir(p.parent.parent)
      for p in self.root.glob(
        f"{_RUN_PREFIX}*/{self.eval_metrics.relative_to(self.root)}"
      )
    ]
    return sorted(runs, key=lambda run: int(run.root.name[len(_RUN_PREFIX) :]))
