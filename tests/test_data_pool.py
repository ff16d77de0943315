"""Preprocessing many videos in parallel: bad files skipped with their
reasons, the cache reused."""

import pathlib

import pytest

from varec.data import discovery
from varec.data import pool
from varec.preprocess import decode

from tests.helpers import EXPECTED_SKIPS, TINY, write_video as _write


def test_read_video_errors(tmp_path, synthetic_clip):
  with pytest.raises(decode.VideoError, match="file not found"):
    decode.read_video(tmp_path / "missing.mp4")
  frames, fps = decode.read_video(_write(tmp_path / "ok.mp4", synthetic_clip))
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


def _record(path, video_id):
  return discovery.VideoRecord(
    path=path,
    video_id=video_id,
    speaker="F01",
    emotion="joy",
    orientation="forward",
  )


def test_a_long_file_name_gets_a_cache_name_every_file_system_takes(
  tmp_path, synthetic_clip
):
  path = _write(tmp_path / "ok.mp4", synthetic_clip)
  long_id = "F01-Joy-" + "very long legal name " * 11  # 239 characters.
  (tmp_path / "cache").mkdir()
  cache, reason = pool._preprocess_one(
    _record(path, long_id), TINY, tmp_path / "cache"
  )
  assert reason is None and len(cache.name.encode()) < 120
  # Another file whose id is cut to the same prefix: the digest keeps them
  # apart.
  other = _write(tmp_path / "other.mp4", synthetic_clip)
  assert pool._cache_path(
    _record(other, long_id + "x"), TINY, tmp_path
  ).name != (cache.name)


def test_a_cache_it_cannot_write_skips_that_file_only(
  tmp_path, synthetic_clip, monkeypatch
):
  path = _write(tmp_path / "ok.mp4", synthetic_clip)

  def full_disk(file, **arrays):
    pathlib.Path(file).write_bytes(b"half")
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(pool.np, "savez_compressed", full_disk)
  (tmp_path / "cache").mkdir()
  cache, reason = pool._preprocess_one(
    _record(path, "F01-Joy"), TINY, tmp_path / "cache"
  )
  assert cache is None and "No space left on device" in reason
  assert "cannot write its preprocessed cache" in reason
  assert not list((tmp_path / "cache").iterdir())  # No half-written file.


def test_an_unreadable_file_is_said_to_be_unreadable(
  tmp_path, synthetic_clip, monkeypatch
):
  path = _write(tmp_path / "ok.mp4", synthetic_clip)
  # chmod 000 does not stop root, who runs these tests in CI: what os.access
  # says.
  real_access = pool.os.access
  monkeypatch.setattr(
    pool.os, "access", lambda p, mode: p != path and real_access(p, mode)
  )
  video, reason = pool.try_preprocess(_record(path, "F01-Joy"), TINY)
  assert (
    video is None and reason == "permission denied: this user cannot read it"
  )
