"""Face alignment: the similarity fit, level eyes, one framing for full
frames and crops."""

import cv2
import numpy as np
import pytest

from varec import face_alignment as fa
from varec import synthetic
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop as crop_lib
from varec.preprocess import faces
from varec.preprocess import grayscale


def _gray(frame):
  return grayscale.equalize_histogram(grayscale.grayscale_mean_rgb(frame))


def _landmarks_of_crop(crop):
  """Landmarks found again in an aligned crop, upsampled so that the HOG
  detector sees it."""
  big = cv2.resize(crop, (288, 288), interpolation=cv2.INTER_LINEAR)
  box = faces.detect_largest_face(big, 320)
  assert box is not None, "no face in the aligned crop"
  return fa.landmarks(big, box) * crop.shape[0] / 288


def _ncc(a, b):
  a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
  a, b = a - a.mean(), b - b.mean()
  return float(a @ b / np.sqrt((a @ a) * (b @ b)))


@pytest.fixture(scope="module")
def apex_frame(speakers):
  return synthetic.render_video(
    speakers[0], "surprise", seed=3, size=(360, 288), num_frames=20
  )[-1]


def test_similarity_transform_recovers_rotation_scale_and_shift():
  rng = np.random.default_rng(0)
  source = rng.uniform(0, 100, (5, 2))
  angle, scale, shift = np.radians(20), 0.7, np.array([12.0, -3.0])
  rotation = scale * np.array(
    [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
  )
  matrix = fa.similarity_transform(source, source @ rotation.T + shift)
  np.testing.assert_allclose(
    matrix, np.hstack([rotation, shift[:, None]]), atol=1e-9
  )


def test_crop_template_keeps_the_meaning_of_the_margin():
  # The eye centres are 0.525 template units apart; the crop spans 1.30 * (1 + 2
  # margin) units.
  for margin in (0.0, 0.1, 0.3):
    points = fa.crop_template(96, margin)
    distance = np.linalg.norm(points[0:2].mean(0) - points[2:4].mean(0))
    assert distance == pytest.approx(
      96 * 0.5255 / (1.30 * (1 + 2 * margin)), rel=1e-3
    )
  assert fa.eye_angle(fa.crop_template(96, 0.1)) == pytest.approx(0.0, abs=0.5)


def test_a_face_rotated_by_15_degrees_comes_out_with_level_eyes(apex_frame):
  h, w = apex_frame.shape[:2]
  rotated = cv2.warpAffine(
    apex_frame,
    cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0),
    (w, h),
    borderMode=cv2.BORDER_REPLICATE,
  )
  gray = _gray(rotated)
  box = faces.detect_largest_face(gray, 320)
  before = fa.eye_angle(fa.landmarks(gray, box))
  assert abs(abs(before) - 15) < 3  # The landmarks see the roll...
  config = preprocess_config.PreprocessConfig(align_faces=True)
  aligned = crop_lib.face_crop(gray, box, config)
  # ... and alignment removes it.
  assert abs(fa.eye_angle(_landmarks_of_crop(aligned))) < 2
  unaligned = crop_lib.face_crop(
    gray, box, preprocess_config.PreprocessConfig(align_faces=False)
  )
  assert aligned.shape == unaligned.shape == (96, 96)


def test_pre_cropped_faces_and_full_frames_reach_the_model_framed_alike(
  apex_frame,
):
  gray = _gray(apex_frame)
  box = faces.detect_largest_face(gray, 320)
  # A still as public datasets ship it: cut tightly (no margin) by another
  # detector, 48 px.
  x0, y0, x1, y1 = crop_lib.square_box(box, 0.0)
  still = cv2.resize(gray[y0:y1, x0:x1], (48, 48), interpolation=cv2.INTER_AREA)
  aligned_config = preprocess_config.PreprocessConfig(align_faces=True)
  from_frame = crop_lib.face_crop(gray, box, aligned_config)
  from_still, found = crop_lib.precropped_face(still, aligned_config)
  assert found
  # Without alignment the still is used whole, framed tighter than the video's
  # crops.
  plain_frame = crop_lib.face_crop(
    gray, box, preprocess_config.PreprocessConfig(align_faces=False)
  )
  plain_still, _ = crop_lib.precropped_face(
    still, preprocess_config.PreprocessConfig(align_faces=False)
  )
  assert _ncc(from_frame, from_still) > 0.85
  assert _ncc(from_frame, from_still) > _ncc(plain_frame, plain_still) + 0.1
  # The eyes sit where the template puts them, within 4 px of 96, from either
  # source.
  for crop in (from_frame, from_still):
    eyes = _landmarks_of_crop(crop)
    np.testing.assert_allclose(eyes[:4], fa.crop_template(96, 0.1)[:4], atol=4)


def test_a_crop_without_a_face_is_used_as_it_is():
  noise = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
  crop, found = crop_lib.precropped_face(
    noise, preprocess_config.PreprocessConfig(align_faces=True, crop_size=32)
  )
  assert not found
  expected = crop_lib.crop_and_resize(
    noise, crop_lib.square_box(np.array([0.0, 0.0, 50, 40]), 0.0), 32
  )
  np.testing.assert_array_equal(crop, expected)


def test_large_faces_are_shrunk_by_area_averaging_not_sampled(apex_frame):
  # A face 4x the crop's resolution: the aligned crop of a fine
  # checkerboard-free face matches the crop of the same face at a quarter of the
  # resolution.
  gray = _gray(
    cv2.resize(apex_frame, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
  )
  small = _gray(apex_frame)
  points_big = fa.landmarks(gray, faces.detect_largest_face(gray, 1440))
  crop_big = fa.align(gray, points_big, 96, 0.1)
  crop_small = fa.align(small, points_big / 4, 96, 0.1)
  assert np.abs(crop_big.astype(int) - crop_small.astype(int)).mean() < 12


def test_model_file_comes_from_the_installed_package():
  assert fa.model_file(fa.LANDMARK_MODEL).stat().st_size > 1_000_000
  with pytest.raises(FileNotFoundError, match="face_recognition_models"):
    fa.model_file("no_such_model.dat")


def test_landmarks_from_the_face_surroundings_equal_dlibs_on_the_whole_frame(
  apex_frame,
):
  import dlib  # pylint: disable=g-import-not-at-top

  gray = _gray(apex_frame)
  box = faces.detect_largest_face(gray, 320)
  # pylint: disable=protected-access
  shape = fa._shape_predictor()(
    gray, dlib.rectangle(*(int(round(v)) for v in box))
  )
  whole = [[shape.part(i).x, shape.part(i).y] for i in range(5)]
  np.testing.assert_array_equal(fa.landmarks(gray, box), whole)
