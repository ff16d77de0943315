"""varec.run_logs: a readable console."""

import asyncio
import gc
import sys

from varec import run_logs


class _CallsIntoAClosedLoop:
  """Does on deletion what each write of a failed Orbax save does once the
  save's event loop has closed."""

  def __init__(self):
    self.loop = asyncio.new_event_loop()
    self.loop.close()

  def __del__(self):
    self.loop.call_soon_threadsafe(print)


class _FailsOnDeletion:
  def __del__(self):
    raise ValueError("a real problem")


def test_the_closed_loop_reports_of_a_failed_save_stay_off_the_console(
  monkeypatch,
):
  """train.py on a full disk printed 40 unraisable 'Event loop is closed'
  tracebacks before its one line; the console drops those, and nothing else."""
  reported = []
  monkeypatch.setattr(sys, "unraisablehook", reported.append)
  run_logs.quiet_library_logs()
  run_logs.quiet_library_logs()  # Wraps the hook once.
  _CallsIntoAClosedLoop()
  gc.collect()
  assert not reported
  _FailsOnDeletion()
  gc.collect()
  assert [str(r.exc_value) for r in reported] == ["a real problem"]
