"""The build summary: counts, and every skipped file with its reason."""

import pathlib

from varec.data import summary as summary_lib

from tests.conftest import EXPECTED_SKIPS


def test_build_summary_lists_skipped_files(tiny_builder):
  summary = tiny_builder.info.metadata["build_summary"]
  assert summary["videos"] == 6 and summary["speakers"] == 3
  assert summary["frames"] == 180 and summary["windows"] == 12
  assert summary["detection_rate"] >= 0.95
  assert {pathlib.Path(s["file"]).name for s in summary["skipped"]} == set(
    EXPECTED_SKIPS
  )
  text = summary_lib.format_summary(summary)
  assert "9 file(s) skipped" in text and "holiday.mp4" in text
