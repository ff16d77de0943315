"""One process at a time per workdir, output folder or dataset build.

An advisory lock (`fcntl.flock`) on a `.varec.lock` file in the folder, which
records its holder's process id. The operating system releases it when the
holder exits, however it exits (kill -9 included), so a lock left by a dead
process never blocks anyone: stale locks need no detection.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import time

LOCK_FILE = ".varec.lock"


class Busy(Exception):
  """Another process holds the folder; the message names it and what to do."""


def _holder(path: pathlib.Path) -> str:
  try:
    pid = path.read_text().strip()
  except OSError:
    pid = ""
  return f"process {pid}" if pid else "another process"


@contextlib.contextmanager
def exclusive(folder, job: str, wait_s: float = 0.0, on_wait=None):
  """Holds `folder`'s lock for `job` (e.g. "train.py") while the block runs.

  Waits up to `wait_s` seconds for another holder, calling `on_wait(holder)`
  once when it starts waiting.

  Raises:
    Busy: another process still holds it after `wait_s`.
  """
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / LOCK_FILE
  with open(path, "a+", encoding="utf-8") as lock:
    deadline = time.monotonic() + wait_s
    waiting = False
    while True:
      try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        if time.monotonic() >= deadline:
          raise Busy(
            f"{folder} is in use by {_holder(path)} ({job} allows one at a "
            "time): wait for it to finish or stop it, or choose another folder"
          ) from None
        if not waiting and on_wait is not None:
          on_wait(_holder(path))
        waiting = True
        time.sleep(0.5)
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    try:
      yield
    finally:
      lock.seek(0)
      lock.truncate()
      fcntl.flock(lock, fcntl.LOCK_UN)
