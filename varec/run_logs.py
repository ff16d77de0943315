"""A run's records: per-epoch metrics (TensorBoard, metrics.jsonl), stage wall
times (timings.json), the training summary (training_summary.json: each stage's
schedule and whether it learnt anything) and a readable console."""

from __future__ import annotations

import json
import logging as pylogging
import contextlib
import os
import sys
import time
import traceback

from absl import logging
import jax
import numpy as np

from varec import checkpoints
from varec import workdir as workdir_lib


class _LibraryInfoFilter(pylogging.Filter):
  """Drops INFO lines of Orbax and TFDS (thousands per run), and Orbax's
  reports of a full disk or denied folder from each of its writer threads,
  which the save raises once (`checkpoints.storage_errors`); their other
  warnings and errors stay."""

  def filter(self, record):
    if "/orbax/" in record.pathname and record.levelno >= pylogging.ERROR:
      text = f"{record.getMessage()} {record.exc_info and record.exc_info[1]}"
      return not any(s in text for s in checkpoints.STORAGE_STATUS)
    return record.levelno >= pylogging.WARNING or not any(
      f"/{lib}/" in record.pathname for lib in ("orbax", "tensorflow_datasets")
    )


def _is_closed_loop_report(unraisable) -> bool:
  """A write of a failed Orbax save that ended after the save's event loop
  closed.

  The save raised the error already (`checkpoints.storage_errors`); each
  tensorstore write still in flight then reports, from its own thread, that it
  cannot call back into the closed loop (40 tracebacks on a full disk).
  """
  frames = traceback.extract_tb(unraisable.exc_traceback)
  return (
    isinstance(unraisable.exc_value, RuntimeError)
    and str(unraisable.exc_value) == "Event loop is closed"
    and bool(frames)
    and frames[-1].filename.endswith(os.path.join("asyncio", "base_events.py"))
  )


class _QuietUnraisableHook:
  """`sys.unraisablehook` without the reports of `_is_closed_loop_report`."""

  def __init__(self, hook):
    self.hook = hook

  def __call__(self, unraisable):
    if not _is_closed_loop_report(unraisable):
      self.hook(unraisable)


def quiet_library_logs() -> None:
  """Keeps the console readable: varec's own INFO lines, libraries' warnings
  only."""
  logging.get_absl_handler().addFilter(_LibraryInfoFilter())
  # Each of Orbax's background writes of a failed save (a full disk) reports the
  # same error as "Task exception was never retrieved"; the save raises it once.
  pylogging.getLogger("asyncio").setLevel(pylogging.CRITICAL)
  if not isinstance(sys.unraisablehook, _QuietUnraisableHook):
    sys.unraisablehook = _QuietUnraisableHook(sys.unraisablehook)


class MetricLogger:
  """Per-epoch metrics to TensorBoard, a JSON-lines file and the console."""

  def __init__(self, workdir: workdir_lib.Workdir, resume_step: int):
    # pylint: disable=g-import-not-at-top
    from tensorboardX import SummaryWriter

    self.path = workdir.metrics
    # Drop epochs logged after the checkpoint we resume from.
    if self.path.exists():
      lines = [
        l
        for l in self.path.read_text().splitlines()
        if l and json.loads(l)["step"] <= resume_step
      ]
      self.path.write_text("".join(l + "\n" for l in lines))
    self.writer = SummaryWriter(str(workdir.tensorboard))

  def write(
    self, stage: str, epoch: int, step: int, split: str, values: dict
  ) -> None:
    for key, value in values.items():
      self.writer.add_scalar(f"{stage}/{split}/{key}", value, step)
    with open(self.path, "a") as f:
      f.write(
        json.dumps(
          {
            "stage": stage,
            "epoch": epoch,
            "step": step,
            "split": split,
            **{k: round(float(v), 6) for k, v in values.items()},
          }
        )
        + "\n"
      )

  def close(self):
    self.writer.close()


class StageClock:
  """Wall times of one stage (this process's share), for `write_timings`."""

  def __init__(self):
    self._start = time.perf_counter()
    self._epoch_start = None
    self.times = {"epoch_train_s": [], "validation_s": 0.0, "checkpoint_s": 0.0}

  def prepared(self, steps_per_epoch: int, batch_size: int) -> None:
    """The stage's data and state are ready (`prepare_s`)."""
    self.times.update(
      steps_per_epoch=steps_per_epoch,
      batch_size=batch_size,
      prepare_s=time.perf_counter() - self._start,
    )

  def start_epoch(self) -> None:
    self._epoch_start = time.perf_counter()

  def first_step(self, step_output) -> None:
    """Records the stage's first step (compilation, mostly), waiting for its
    output."""
    if "first_step_s" not in self.times:
      jax.block_until_ready(step_output)
      self.times["first_step_s"] = time.perf_counter() - self._epoch_start

  def end_epoch(self) -> None:
    self.times["epoch_train_s"].append(time.perf_counter() - self._epoch_start)

  @contextlib.contextmanager
  def timed(self, key: str):
    """Adds the time spent in the `with` block to `key`."""
    start = time.perf_counter()
    yield
    self.times[key] += time.perf_counter() - start

  def finish(self) -> dict:
    self.times["total_s"] = time.perf_counter() - self._start
    return self.times


def write_timings(
  workdir: workdir_lib.Workdir, stage: str, clock: dict
) -> None:
  """Adds a stage's wall times (this process's share of it) to the workdir's
  timings.json.

  `steady_epoch_s` is the median training epoch after the first, which
  carries the compilation (`compile_s`: the first step's excess over a steady
  step); validation and checkpoints are counted apart.
  """
  epochs = clock["epoch_train_s"]
  steady = (
    float(np.median(epochs[1:] if len(epochs) > 1 else epochs))
    if epochs
    else None
  )
  path = workdir.timings
  timings = json.loads(path.read_text()) if path.exists() else {}
  timings[stage] = {
    **clock,
    "epochs": len(epochs),
    "steady_epoch_s": steady,
    # Tracing and compilation: the first step's excess over a steady one.
    "compile_s": clock["first_step_s"] - steady / clock["steps_per_epoch"]
    if steady
    else None,
    "steps_per_s": clock["steps_per_epoch"] / steady if steady else None,
    "devices": [str(d) for d in jax.devices()],
  }
  if jax.process_index() == 0:
    path.write_text(json.dumps(timings, indent=1))


def read_metrics(workdir: workdir_lib.Workdir) -> list[dict]:
  """The per-epoch records of metrics.jsonl (`MetricLogger`), in order; []
  without one."""
  path = workdir_lib.Workdir(workdir).metrics
  if not path.exists():
    return []
  return [json.loads(l) for l in path.read_text().splitlines() if l]


def read_summary(workdir) -> dict:
  """The run's training summary (`write_summary`); {} where there is none (a run
  from before it existed, or one that has not finished a stage)."""
  path = workdir_lib.Workdir(workdir).training_summary
  return json.loads(path.read_text()) if path.exists() else {}


def write_summary(workdir: workdir_lib.Workdir, summary: dict) -> None:
  """Writes the training summary: {"stages": {stage: {"schedule", "learning"}},
  "data": sizes, "verdict": the last stage's learning check and its message}."""
  if jax.process_index() == 0:
    workdir_lib.Workdir(workdir).training_summary.write_text(
      json.dumps(summary, indent=1)
    )
