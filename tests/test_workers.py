"""The process pools' workers: spawned, and gone with their parent."""

import pathlib
import signal
import subprocess
import sys
import time


def test_workers_exit_when_their_build_is_killed(tmp_path):
  """kill -9 of a build must not leave its workers running."""
  script = tmp_path / "build.py"
  script.write_text(
    "import os, time\n"
    "from varec import workers\n"
    "if __name__ == '__main__':\n"
    "  with workers.executor(1) as pool:\n"
    "    print(pool.submit(os.getpid).result(), flush=True)\n"
    "    time.sleep(600)\n"
  )
  build = subprocess.Popen(
    [sys.executable, str(script)],
    stdout=subprocess.PIPE,
    text=True,
    cwd=pathlib.Path(__file__).parents[1],
  )
  worker = int(build.stdout.readline())
  assert _alive(worker)
  build.send_signal(signal.SIGKILL)
  build.wait()
  deadline = time.monotonic() + 20
  while _alive(worker) and time.monotonic() < deadline:
    time.sleep(0.2)
  assert not _alive(worker)


def _alive(pid: int) -> bool:
  """Running (a zombie, exited but not yet reaped, counts as gone)."""
  try:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
  except FileNotFoundError:
    return False
  return "\nState:\tZ" not in status
