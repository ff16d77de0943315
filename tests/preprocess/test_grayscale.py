"""`varec.preprocess.grayscale`: step 2 against an independent numpy
computation."""

import cv2
import numpy as np
from varec.preprocess import config as preprocess_config
from varec.preprocess import grayscale


def test_grayscale_is_the_mean_of_rgb_not_luma():
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
  expected = np.round(frame.astype(np.float64).mean(axis=-1)).astype(np.uint8)
  np.testing.assert_array_equal(grayscale.grayscale_mean_rgb(frame), expected)
  # Pure red: mean gives 85, OpenCV's luma would give 76.
  red = np.zeros((1, 1, 3), np.uint8)
  red[..., 2] = 255
  assert grayscale.grayscale_mean_rgb(red)[0, 0] == 85
  assert cv2.cvtColor(red, cv2.COLOR_BGR2GRAY)[0, 0] != 85


def test_gray_conversion_luma_and_equalisation():
  rng = np.random.default_rng(1)
  frame = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
  luma = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
  np.testing.assert_array_equal(
    grayscale.GrayConversion("luma", False)(frame), luma
  )
  np.testing.assert_array_equal(
    grayscale.GrayConversion("luma", True)(frame), cv2.equalizeHist(luma)
  )
  np.testing.assert_array_equal(
    grayscale.GrayConversion()(frame),
    cv2.equalizeHist(grayscale.grayscale_mean_rgb(frame)),
  )
  assert (
    preprocess_config.PreprocessConfig(grayscale="luma").gray.grayscale
    == "luma"
  )


def _numpy_equalize(gray):
  hist = np.bincount(gray.ravel(), minlength=256)
  cdf = np.cumsum(hist)
  cdf_min = cdf[hist > 0][0]
  lut = np.round((cdf - cdf_min) / (gray.size - cdf_min) * 255.0)
  return np.clip(lut, 0, 255).astype(np.uint8)[gray]


def test_histogram_equalisation_matches_the_textbook_formula():
  rng = np.random.default_rng(1)
  gray = rng.normal(100, 20, (64, 48)).clip(0, 255).astype(np.uint8)
  out = grayscale.equalize_histogram(gray)
  np.testing.assert_allclose(
    out.astype(int), _numpy_equalize(gray).astype(int), atol=1
  )
  # The equalised histogram spans the whole range.
  assert out.min() == 0 and out.max() == 255


def test_equalize_faces_equalises_each_crop_on_its_own():
  rng = np.random.default_rng(3)
  # A dark face and a bright one: after whole-frame equalisation each keeps few
  # gray levels.
  crops = np.stack(
    [rng.integers(20, 45, (2, 24, 24)), rng.integers(215, 240, (2, 24, 24))]
  )
  crops = crops.astype(np.uint8)[..., None]
  out = grayscale.equalize_faces(crops)
  assert out.shape == crops.shape and out.dtype == np.uint8
  for index in np.ndindex(crops.shape[:2]):
    np.testing.assert_allclose(
      out[index][..., 0].astype(int),
      _numpy_equalize(crops[index][..., 0]).astype(int),
      atol=1,
    )
    assert out[index].min() == 0 and out[index].max() == 255
