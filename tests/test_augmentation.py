"""Tests of varec/augmentation.py: training-frame jitter."""

import cv2
import jax
import ml_collections
import numpy as np
import pytest

from varec import augmentation


def _config(**values):
  fields = dict(
    max_shift=0.0,
    max_scale=0.0,
    max_rotation=0.0,
    max_shading=0.0,
    erase_probability=0.0,
    max_contrast=0.0,
    max_brightness=0.0,
  )
  return ml_collections.ConfigDict({**fields, **values})


def _frames(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _augment(frames, seed, config):
  return np.asarray(
    augmentation.augment(frames, jax.random.PRNGKey(seed), config)
  )


def test_no_jitter_is_the_identity():
  frames = _frames((3, 32, 32, 1))
  np.testing.assert_array_equal(_augment(frames, 1, _config()), frames)


def test_same_key_same_output_and_shape():
  frames = _frames((4, 32, 32, 1))
  config = _config(
    max_shift=0.1,
    max_scale=0.1,
    max_rotation=10,
    max_contrast=0.2,
    max_brightness=10,
  )
  a, b = _augment(frames, 7, config), _augment(frames, 7, config)
  np.testing.assert_array_equal(a, b)
  assert a.shape == frames.shape and a.dtype == np.uint8
  assert not np.array_equal(a, frames)
  assert not np.array_equal(a, _augment(frames, 8, config))


def test_frames_of_a_window_move_together_and_examples_differ():
  # Each window: one frame, 5 times.
  window = np.repeat(_frames((2, 1, 24, 24, 1)), 5, axis=1)
  out = _augment(
    window, 3, _config(max_shift=0.2, max_rotation=20, max_brightness=30)
  )
  for example in out:
    assert all(np.array_equal(frame, example[0]) for frame in example)
  moved = _augment(
    np.repeat(window[:1], 2, axis=0), 3, _config(max_shift=0.2, max_rotation=20)
  )
  assert not np.array_equal(moved[0], moved[1])


def test_brightness_adds_one_offset_per_example_within_bounds():
  frames = np.full((6, 16, 16, 1), 128, np.uint8)
  frames[:, 4:8, 4:8] = 100
  offsets = _augment(frames, 0, _config(max_brightness=20)).astype(int) - frames
  for offset in offsets:
    assert np.unique(offset).size == 1 and abs(offset[0, 0, 0]) <= 20
  assert np.unique(offsets[:, 0, 0, 0]).size > 1


def test_shift_moves_a_dot_by_at_most_the_largest_shift():
  frames = np.zeros((20, 40, 40, 1), np.uint8)
  frames[:, 20, 20] = 255
  out = _augment(frames, 0, _config(max_shift=0.1))
  for frame in out[..., 0]:
    y, x = np.unravel_index(frame.argmax(), frame.shape)
    assert abs(y - 20) <= 4 and abs(x - 20) <= 4
  assert len({np.unravel_index(f.argmax(), f.shape) for f in out[..., 0]}) > 1


def test_affine_is_opencvs_rotation_about_the_centre_then_the_shift():
  matrices = np.asarray(
    augmentation.random_affine(jax.random.PRNGKey(0), 200, 48, 0.05, 0.1, 15.0)
  )
  np.testing.assert_allclose(
    augmentation.random_affine(jax.random.PRNGKey(0), 1, 9, 0, 0, 0)[0],
    [[1, 0, 0], [0, 1, 0]],
    atol=1e-6,
  )
  scales = np.hypot(matrices[:, 0, 0], matrices[:, 0, 1])
  angles = np.degrees(np.arctan2(matrices[:, 0, 1], matrices[:, 0, 0]))
  for matrix, angle, scale in zip(matrices, angles, scales):
    expected = cv2.getRotationMatrix2D((23.5, 23.5), float(angle), float(scale))
    np.testing.assert_allclose(matrix[:, :2], expected[:, :2], atol=1e-5)
    # What is left: the shift, at most 5% of the side.
    shift = matrix[:, 2] - expected[:, 2]
    assert np.all(np.abs(shift) <= 0.05 * 48 + 1e-4)
  assert max(np.abs(angles)) <= 15 and max(angles) > 10 and min(angles) < -10
  assert (
    0.9 <= min(scales)
    and max(scales) <= 1.1
    and max(scales) - min(scales) > 0.15
  )


@pytest.mark.parametrize("seed", range(3))
def test_warp_matches_opencv_warp_affine(seed):
  images = _frames((4, 40, 40), seed)
  # Faces are smooth.
  images = cv2.GaussianBlur(images.transpose(1, 2, 0), (5, 5), 2).transpose(
    2, 0, 1
  )
  matrices = np.asarray(
    augmentation.random_affine(jax.random.PRNGKey(seed), 4, 40, 0.1, 0.1, 15)
  )
  got = np.asarray(
    augmentation.warp_affine(images.astype(np.float32), matrices)
  )
  for image, matrix, warped in zip(images, matrices, got):
    expected = cv2.warpAffine(
      image.astype(np.float32),
      matrix.astype(np.float64),
      (40, 40),
      flags=cv2.INTER_LINEAR,
      borderMode=cv2.BORDER_REPLICATE,
    )
    # Float images: exact bilinear.
    np.testing.assert_allclose(warped, expected, atol=1e-2)


def test_shading_is_a_ramp_across_the_face_one_per_example():
  # Windows of 3 identical gray frames: the gain map shows as it is.
  frames = np.full((40, 3, 33, 33, 1), 100, np.uint8)
  out = _augment(frames, 0, _config(max_shading=0.5)).astype(float)[..., 0]
  for example in out:
    assert all(np.array_equal(frame, example[0]) for frame in example)
    image = example[0]
    # Linear through the centre: opposite pixels average to the untouched level.
    np.testing.assert_allclose((image + image[::-1, ::-1]) / 2, 100, atol=1)
    assert image[16, 16] == 100
    # Edges' midpoints lie at most 50% off, corners sqrt(2) times that.
    assert np.abs(image[[0, 16, 16, 32], [16, 0, 32, 16]] - 100).max() <= 51
    assert np.abs(image - 100).max() <= 100 * 0.5 * np.sqrt(2) + 1
  strengths = np.abs(out[:, 0] - 100).max(axis=(1, 2))
  directions = {np.unravel_index(e.argmax(), e.shape) for e in out[:, 0]}
  assert strengths.max() > 40 and strengths.min() < 20 and len(directions) > 3


def test_erasing_fills_one_rectangle_per_example_with_noise():
  frames = np.full((200, 2, 32, 32, 1), 100, np.uint8)
  out = _augment(frames, 0, _config(erase_probability=0.5))[..., 0]
  erased = 0
  for example in out:
    assert np.array_equal(example[0], example[1])
    changed = np.argwhere(example[0] != 100)
    if not len(changed):
      continue
    erased += 1
    (top, left), (bottom, right) = changed.min(0), changed.max(0) + 1
    box = example[0][top:bottom, left:right]
    # A rectangle of noise (a noise pixel may hit 100 by chance) of 2-40% of the
    # crop.
    assert (box != 100).mean() > 0.95
    assert 0.4 * 32**2 + 2 * 32 >= box.size >= 0.02 * 32**2 - 2 * 32
    assert box.std() > 50
  assert 60 < erased < 140
