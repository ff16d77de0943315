"""`varec.preprocess.decode`: frame rates, and the one streaming decode path's
`DecodePolicy` (failed detections, truncated files)."""

import collections
import itertools

import numpy as np
import pytest

from varec import synthetic
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import decode
from varec.preprocess import faces

from tests.helpers import write_video


CONFIG = preprocess_config.PreprocessConfig(
  crop_size=32, detect_every=3, align_faces=False
)


def test_resample_indices_halves_50fps_and_keeps_25fps():
  np.testing.assert_array_equal(
    decode.resample_indices(10, 50.0, 25.0), [0, 2, 4, 6, 8]
  )
  np.testing.assert_array_equal(
    decode.resample_indices(7, 25.0, 25.0), np.arange(7)
  )
  # 30 fps -> 25 fps: 2 s of video gives 50 frames, each the nearest in time.
  idx = decode.resample_indices(60, 30.0, 25.0)
  assert len(idx) == 50
  expected = np.minimum(np.round(np.arange(50) / 25.0 * 30.0), 59)
  np.testing.assert_array_equal(idx, expected)


def test_needs_resampling_tolerates_container_rounding():
  assert not decode.needs_resampling(25.002, 25.0)
  assert decode.needs_resampling(29.97, 25.0)


@pytest.fixture(scope="module")
def gap_video(tmp_path_factory, synthetic_clip):
  """The 24-frame clip with frames 8-14 blanked: detections there fail."""
  frames = synthetic_clip.copy()
  frames[8:15] = 120
  return write_video(tmp_path_factory.mktemp("gap") / "gap.mp4", frames)


def _boxes(path, rule):
  stats = collections.Counter()
  frames = faces.face_boxes(clip.stream_video(path, 25.0), CONFIG, rule, stats)
  return list(frames), stats


def test_fill_gives_failed_frames_a_box_and_skip_none(gap_video):
  filled, stats = _boxes(gap_video, "fill")
  skipped, _ = _boxes(gap_video, "skip")
  failed = [f.index for f in filled if f.attempted and not f.detected]
  assert failed == [9, 12] and stats["detections"] == 9
  assert all(f.box is not None for f in filled)
  # Frame 9 and 12 take the nearest face, found at frames 6 and 15.
  np.testing.assert_array_equal(filled[9].box, filled[6].box)
  np.testing.assert_array_equal(filled[12].box, filled[15].box)
  # Skipped: no face from the last success to the next (6 and 15 excluded).
  without = [f.index for f in skipped if f.box is None]
  assert without == list(range(7, 15))
  for a, b in zip(filled, skipped):
    if b.box is not None:
      np.testing.assert_array_equal(a.box, b.box)


def test_builders_fill_and_skip_leaves_faceless_frames_out(gap_video):
  config = CONFIG
  filled = clip.preprocess_video(gap_video, config)
  skip = decode.DecodePolicy(on_failed_detection="skip")
  skipped = clip.preprocess_video(gap_video, config, skip)
  assert len(filled.frames) == 24 and len(skipped.frames) == 24 - 8
  assert filled.num_failed_detections == skipped.num_failed_detections == 2


@pytest.fixture(scope="module")
def truncated_video(tmp_path_factory, synthetic_clip):
  path = tmp_path_factory.mktemp("cut") / "cut.avi"
  synthetic.write_video(path, np.concatenate([synthetic_clip] * 3), fps=25.0)
  path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
  return path


def test_reject_refuses_a_truncated_file_and_accept_uses_it(truncated_video):
  with pytest.raises(decode.VideoError, match="truncated or corrupt: decoded"):
    clip.preprocess_video(truncated_video, CONFIG)
  accept = decode.DecodePolicy(on_truncation="accept")
  video = clip.preprocess_video(truncated_video, CONFIG, accept)
  stats = {}
  decoded = list(
    clip.stream_video(
      truncated_video, 25.0, on_truncation="accept", stats=stats
    )
  )
  assert stats["source_frames_announced"] == 72
  assert len(video.frames) == len(decoded) == stats["source_frames_decoded"]
  assert len(decoded) < 72 * decode.TRUNCATION_TOLERANCE


def test_the_policies_of_each_entry_point():
  assert decode.BUILD_POLICY == decode.DecodePolicy("fill", "reject")
  assert decode.PREDICT_POLICY == decode.DecodePolicy("skip", "accept")
  with pytest.raises(ValueError, match="on_failed_detection"):
    decode.DecodePolicy(on_failed_detection="guess")
  with pytest.raises(ValueError, match="on_truncation"):
    decode.DecodePolicy(on_truncation="maybe")


def _old_resample_indices(num_frames, source_fps, target_fps):
  num_target = max(1, int(round(num_frames / source_fps * target_fps)))
  times = np.arange(num_target) / target_fps
  return np.minimum(
    np.round(times * source_fps).astype(np.int64), num_frames - 1
  )


def test_streamed_resampling_is_the_whole_array_rule():
  rates = (10.0, 12.5, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0, 100.0)
  for n, source, target in itertools.product(range(1, 40), rates, rates):
    np.testing.assert_array_equal(
      decode.resample_indices(n, source, target),
      _old_resample_indices(n, source, target),
      err_msg=f"{n} frames, {source} -> {target} fps",
    )
