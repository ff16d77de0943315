"""Preprocessing many videos in parallel: bad files skipped with their reasons, the cache reused."""

import pathlib

import pytest

from varec import preprocessing
from varec.data import discovery
from varec.data import pool

from tests.conftest import EXPECTED_SKIPS, TINY, write_video as _write


def test_read_video_errors(tmp_path, synthetic_clip):
  with pytest.raises(preprocessing.VideoError, match="file not found"):
    preprocessing.read_video(tmp_path / "missing.mp4")
  frames, fps = preprocessing.read_video(
    _write(tmp_path / "ok.mp4", synthetic_clip)
  )
  assert frames.shape == synthetic_clip.shape and fps == pytest.approx(25.0)


def test_preprocess_all_skips_bad_files_and_keeps_going(manual_dir, tmp_path):
  records, skipped = discovery.find_videos(manual_dir)
  done, failed = pool.preprocess_all(
    records, TINY, tmp_path / "cache", workers=2
  )
  assert len(done) == 6
  reasons = {pathlib.Path(s.file).name: s.reason for s in skipped + failed}
  assert set(reasons) == set(EXPECTED_SKIPS)
  for name, fragment in EXPECTED_SKIPS.items():
    assert fragment in reasons[name], (name, reasons[name])
  # Cached results are reused: a second pass writes nothing new.
  mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
  pool.preprocess_all(records, TINY, tmp_path / "cache", workers=1)
  assert mtimes == {
    p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()
  }
  assert not list((tmp_path / "cache").glob("*.tmp*"))
