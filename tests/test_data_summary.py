"""The build summary: counts, and every skipped file with its reason."""

import pathlib

from varec.data import summary as summary_lib

from tests.helpers import EXPECTED_SKIPS


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


def test_ten_thousand_skipped_files_are_summarised_not_listed():
  skipped = [
    {"file": f"v{i}.mp4", "reason": "file not found"} for i in range(9_990)
  ] + [
    {"file": f"w{i}.mp4", "reason": "empty file (0 bytes)"} for i in range(10)
  ]
  lines = summary_lib.skipped_lines(skipped)
  assert len(lines) < 25
  assert "    9990 x file not found" in lines
  assert "    10 x empty file (0 bytes)" in lines
  assert lines[0] == "  skipped v0.mp4: file not found"
  few = skipped[:3]
  assert summary_lib.skipped_lines(few) == [
    f"  skipped v{i}.mp4: file not found" for i in range(3)
  ]
