"""Process pools for CPU-bound work: spawned workers (not forked: the parent may
hold TensorFlow or JAX threads) that exit with their parent. Used by dataset
builds, the embedded dataset's renderer and eval.py's figures."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
import time


def default_workers() -> int:
  """Worker processes: $VAREC_WORKERS, else one per CPU core."""
  return int(os.environ.get("VAREC_WORKERS", os.cpu_count() or 1))


def _exit_with(parent: int) -> None:
  """In a worker: exit as soon as the process that started it is gone (a
  killed build must not leave its workers decoding, ~340 MB each, forever)."""

  def watch():
    while os.getppid() == parent:
      time.sleep(1.0)
    os._exit(1)

  threading.Thread(target=watch, daemon=True).start()


def _start_worker(parent: int, initializer, initargs) -> None:
  _exit_with(parent)
  if initializer is not None:
    initializer(*initargs)


def executor(
  workers: int, initializer=None, initargs=()
) -> concurrent.futures.ProcessPoolExecutor:
  """A pool of spawned workers, not forked (the parent may hold TensorFlow or
  JAX threads), that exit with their parent; `initializer(*initargs)` runs
  in each as it starts."""
  return concurrent.futures.ProcessPoolExecutor(
    workers,
    mp_context=multiprocessing.get_context("spawn"),
    initializer=_start_worker,
    initargs=(os.getpid(), initializer, initargs),
  )


def _call(call):
  function, args = call
  return function(*args)


def run_calls(calls, workers: int | None = None) -> list:
  """[function(*args) for function, args in calls], in order, over `workers`
  processes (default `default_workers()`; one, or a single call, runs here).
  Functions and arguments must pickle: module-level functions and plain data."""
  workers = default_workers() if workers is None else workers
  if workers <= 1 or len(calls) <= 1:
    return [_call(c) for c in calls]
  with executor(min(workers, len(calls))) as pool:
    return list(pool.map(_call, calls, chunksize=4))
