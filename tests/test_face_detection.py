"""varec.face_detection: BlazeFace's outputs decoded and merged, and the
squares an image is read in (MediaPipe's detector on real faces:
tests/test_face_mesh.py)."""

import math

import numpy as np
import pytest

from varec import face_detection


def test_overlapping_detections_merge_by_score_and_apart_ones_stay():
  boxes = np.zeros((len(face_detection.ANCHORS), 16), np.float32)
  logits = np.full(len(face_detection.ANCHORS), -10.0, np.float32)
  # Two anchors of one cell (same centre): one face found twice, 4 px apart;
  # a third anchor far away: another face.
  boxes[[0, 1, 500], 2:4] = 20.0
  boxes[1, 0] = 4.0
  logits[[0, 1, 500]] = [2.0, 0.0, 1.0]
  # The whole image as the one square, in fractions of its side.
  # pylint: disable=protected-access
  candidates = face_detection._candidates(boxes, logits, 0.5, (0, 0, 1), (1, 1))
  # pylint: disable=protected-access
  found = face_detection._weighted_nms(*candidates)
  assert len(found) == 2
  first, second = found
  weights = 1 / (1 + np.exp(-np.array([2.0, 0.0])))
  shift = 4.0 * weights[1] / weights.sum() / face_detection.DETECTOR_SIDE
  anchor = face_detection.ANCHORS[0]
  half = 10.0 / face_detection.DETECTOR_SIDE
  np.testing.assert_allclose(
    first.box,
    [
      anchor[0] - half + shift,
      anchor[1] - half,
      anchor[0] + half + shift,
      anchor[1] + half,
    ],
    atol=1e-6,
  )
  assert first.score == pytest.approx(weights[0])  # The leader's own score.
  assert second.score == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_squares_hold_every_face_at_least_min_face_wide():
  rng = np.random.default_rng(0)
  for _ in range(200):
    width, height = rng.integers(100, 2000, 2)
    min_face = float(rng.uniform(20, 120))
    views = np.array(face_detection.squares(height, width, min_face))
    size = rng.uniform(min_face, min(width, height))
    x, y = rng.uniform(0, width - size), rng.uniform(0, height - size)
    inside = (
      (views[:, 0] <= x)
      & (views[:, 1] <= y)
      & (views[:, 0] + views[:, 2] >= x + size)
      & (views[:, 1] + views[:, 2] >= y + size)
    )
    share = size / views[:, 2]
    assert np.any(inside & (share >= face_detection.MIN_FACE_SHARE)), (
      width,
      height,
      min_face,
      size,
    )
  assert face_detection.squares(480, 640, None) == [(0.0, -80.0, 640.0)]
  with pytest.raises(ValueError, match="min_face"):
    face_detection.squares(480, 640, 0)
