"""One process per workdir, output folder or build: locks, their holders,
stale ones."""

import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from varec import locks

ROOT = pathlib.Path(__file__).parent.parent


def _holder(folder) -> subprocess.Popen:
  """Another process holding `folder`'s lock until killed."""
  process = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import sys, time\n"
      "from varec import locks\n"
      f"with locks.exclusive({str(folder)!r}, 'test'):\n"
      "  print('held', flush=True)\n"
      "  time.sleep(600)\n",
    ],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    text=True,
  )
  assert process.stdout.readline().strip() == "held"
  return process


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
  holder = _holder(tmp_path)
  try:
    with pytest.raises(locks.Busy, match=rf"in use by process {holder.pid}"):
      with locks.exclusive(tmp_path, "train.py"):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # A killed holder leaves its lock file, and no lock: nothing stale blocks.
  assert (tmp_path / locks.LOCK_FILE).exists()
  with locks.exclusive(tmp_path, "train.py"):
    assert (tmp_path / locks.LOCK_FILE).read_text().strip() != str(holder.pid)


def test_a_waiting_process_gets_the_lock_when_it_is_released(tmp_path):
  waited = []
  release = threading.Event()

  def hold():
    with locks.exclusive(tmp_path, "build"):
      waited.append("held")
      release.wait(10)

  thread = threading.Thread(target=hold)
  thread.start()
  while not waited:
    time.sleep(0.05)
  threading.Timer(1.0, release.set).start()
  # flock locks belong to open files: a second open in this process waits too.
  with locks.exclusive(
    tmp_path, "build", wait_s=30, on_wait=lambda holder: waited.append(holder)
  ):
    assert len(waited) == 2 and "process" in waited[1]
  thread.join()


def test_train_py_refuses_a_workdir_in_use(tmp_path):
  holder = _holder(tmp_path / "run")
  try:
    result = subprocess.run(
      [
        sys.executable,
        "train.py",
        "--config=configs/demo.py",
        f"--workdir={tmp_path / 'run'}",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      check=False,
    )
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
    f"train.py: {tmp_path / 'run'} is in use by process {holder.pid} (train.py "
    "allows one at a time): wait for it to finish or stop it, or choose "
    "another folder"
  )
