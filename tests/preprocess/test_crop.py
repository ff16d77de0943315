"""`varec.preprocess.crop`: face crops and model input against independent
numpy computations."""

import cv2
import ml_collections
import numpy as np

from varec import config_schema
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop as crop_lib
from varec.preprocess import grayscale


def test_model_input_resizes_and_equalises_as_configured():
  rng = np.random.default_rng(4)
  crops = rng.integers(100, 130, (3, 32, 32, 1)).astype(np.uint8)
  data = ml_collections.ConfigDict({"image_size": 16, "equalize_faces": True})
  out = crop_lib.model_input(crops, preprocess_config.input_config(data))
  assert out.shape == (3, 16, 16, 1)
  np.testing.assert_array_equal(
    out, crop_lib.resize_crops(grayscale.equalize_faces(crops), 16)
  )
  # Spread over the range; the input spans 30 levels.
  assert out.max() - out.min() > 200
  data.equalize_faces = False
  np.testing.assert_array_equal(
    crop_lib.model_input(crops, preprocess_config.input_config(data)),
    crop_lib.resize_crops(crops, 16),
  )
  # Data configs saved before the option existed mean no crop equalisation.
  legacy = config_schema.upgrade({"data": {"image_size": 32}}).data
  np.testing.assert_array_equal(
    crop_lib.model_input(crops, preprocess_config.input_config(legacy)), crops
  )


def test_resize_crops_averages_areas():
  crops = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) * 10
  out = crop_lib.resize_crops(crops, 2)
  expected = crops[0, :, :, 0].reshape(2, 2, 2, 2).mean(axis=(1, 3))
  np.testing.assert_allclose(out[0, :, :, 0], expected, atol=0.5)


def test_square_box_is_centred_and_enlarged():
  box = crop_lib.square_box(np.array([10.0, 20.0, 30.0, 60.0]), margin=0.25)
  # Side = max(20, 40) * 1.5 = 60, centre (20, 40).
  np.testing.assert_array_equal(box, [-10, 10, 50, 70])


def test_crop_and_resize_matches_slicing_and_pads_with_edges():
  rng = np.random.default_rng(2)
  gray = rng.integers(0, 256, (40, 50), dtype=np.uint8)
  crop = crop_lib.crop_and_resize(gray, np.array([5, 6, 25, 26]), 20)
  np.testing.assert_array_equal(crop, gray[6:26, 5:25])
  out = crop_lib.crop_and_resize(gray, np.array([-4, -4, 6, 6]), 10)
  padded = np.pad(gray, 4, mode="edge")
  np.testing.assert_array_equal(out, padded[0:10, 0:10])


def test_square_box_adds_pixels_after_the_share():
  box = np.array([10.0, 20.0, 30.0, 60.0])  # Side 40, centre (20, 40).
  np.testing.assert_array_equal(
    crop_lib.square_box(box, 0.0, 10), [-10, 10, 50, 70]
  )
  # 40 * 1.5 + 2 * 5 = 70.
  np.testing.assert_array_equal(
    crop_lib.square_box(box, 0.25, 5), [-15, 5, 55, 75]
  )


def test_crops_shrink_by_area_or_linear_sampling():
  rng = np.random.default_rng(3)
  gray = rng.integers(0, 256, (64, 64), dtype=np.uint8)
  box = np.array([0, 0, 64, 64])
  area = crop_lib.crop_and_resize(gray, box, 16)
  linear = crop_lib.crop_and_resize(gray, box, 16, "linear")
  np.testing.assert_array_equal(
    area, cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA)
  )
  np.testing.assert_array_equal(
    linear, cv2.resize(gray, (16, 16), interpolation=cv2.INTER_LINEAR)
  )
  # Averaging 16 pixels of noise flattens it; sampling keeps it.
  assert area.std() < linear.std() / 2
