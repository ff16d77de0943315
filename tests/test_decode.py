"""The one streaming decode path and its `DecodePolicy` (failed detections, truncated files)."""

import collections
import itertools

import numpy as np
import pytest

from varec import preprocessing as pp
from varec import synthetic

from tests.conftest import write_video

CONFIG = pp.PreprocessConfig(crop_size=32, detect_every=3, align_faces=False)


@pytest.fixture(scope="module")
def gap_video(tmp_path_factory, synthetic_clip):
  """The 24-frame clip with frames 8-14 blanked: detections there fail."""
  frames = synthetic_clip.copy()
  frames[8:15] = 120
  return write_video(tmp_path_factory.mktemp("gap") / "gap.mp4", frames)


def _boxes(path, rule):
  stats = collections.Counter()
  frames = pp.face_boxes(pp.stream_video(path, 25.0), CONFIG, rule, stats)
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
  filled = pp.preprocess_video(gap_video, config)
  skip = pp.DecodePolicy(on_failed_detection="skip")
  skipped = pp.preprocess_video(gap_video, config, skip)
  assert len(filled.frames) == 24 and len(skipped.frames) == 24 - 8
  assert filled.num_failed_detections == skipped.num_failed_detections == 2


@pytest.fixture(scope="module")
def truncated_video(tmp_path_factory, synthetic_clip):
  path = tmp_path_factory.mktemp("cut") / "cut.avi"
  synthetic.write_video(path, np.concatenate([synthetic_clip] * 3), fps=25.0)
  path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
  return path


def test_reject_refuses_a_truncated_file_and_accept_uses_it(truncated_video):
  with pytest.raises(pp.VideoError, match="truncated or corrupt: decoded"):
    pp.preprocess_video(truncated_video, CONFIG)
  accept = pp.DecodePolicy(on_truncation="accept")
  video = pp.preprocess_video(truncated_video, CONFIG, accept)
  stats = {}
  decoded = list(
    pp.stream_video(truncated_video, 25.0, on_truncation="accept", stats=stats)
  )
  assert stats["source_frames_announced"] == 72
  assert len(video.frames) == len(decoded) == stats["source_frames_decoded"]
  assert len(decoded) < 72 * pp.TRUNCATION_TOLERANCE


def test_the_policies_of_each_entry_point():
  assert pp.BUILD_POLICY == pp.DecodePolicy("fill", "reject")
  assert pp.PREDICT_POLICY == pp.DecodePolicy("skip", "accept")
  with pytest.raises(ValueError, match="on_failed_detection"):
    pp.DecodePolicy(on_failed_detection="guess")
  with pytest.raises(ValueError, match="on_truncation"):
    pp.DecodePolicy(on_truncation="maybe")


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
      pp.resample_indices(n, source, target),
      _old_resample_indices(n, source, target),
      err_msg=f"{n} frames, {source} -> {target} fps",
    )


def _old_fill(boxes, attempted):
  found_idx = np.flatnonzero(~np.isnan(boxes).any(axis=1))
  filled = boxes.copy()
  for t in np.flatnonzero(attempted & np.isnan(boxes).any(axis=1)):
    filled[t] = boxes[found_idx[np.argmin(np.abs(found_idx - t))]]
  anchors = np.flatnonzero(attempted)
  return np.stack(
    [
      np.interp(np.arange(len(boxes)), anchors, filled[anchors, k])
      for k in range(4)
    ],
    axis=1,
  )


def test_streamed_fill_is_the_whole_array_rule_with_bounded_lookahead():
  rng = np.random.default_rng(0)
  for _ in range(300):
    n, every = rng.integers(1, 50), rng.integers(1, 7)
    attempted = pp.detection_schedule(n, every)
    found = attempted & (rng.random(n) < rng.random())
    if not found.any():
      continue
    boxes = np.where(found[:, None], rng.uniform(0, 300, (n, 4)), np.nan)
    np.testing.assert_array_equal(
      pp.fill_missing_boxes(boxes, attempted), _old_fill(boxes, attempted)
    )
  # A frame comes out once its box is known, not at the end of the video.
  pulled = []

  def frames():
    for i in range(1000):
      pulled.append(i)
      tried = i % 3 == 0  # Every detection finds a face but frame 6's.
      box = np.array([i, 0, i + 10, 10], float) if tried and i != 6 else None
      yield pp.Frame(i, 0.0, None, None, box, tried, box is not None)

  stream = pp.resolved_boxes(frames(), fill=True)
  first = [next(stream) for _ in range(8)]
  assert [f.index for f in first] == list(range(8)) and len(pulled) <= 10
  # 6 is as far from 3 as from 9: the earlier face.
  np.testing.assert_array_equal(first[6].box, [3, 0, 13, 10])
