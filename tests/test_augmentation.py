"""Tests of varec/augmentation.py: training-frame jitter."""

import ml_collections
import numpy as np

from varec import augmentation


def _config(**values):
  fields = dict(max_shift=0.0, max_scale=0.0, max_rotation=0.0, max_contrast=0.0,
                max_brightness=0.0)
  return ml_collections.ConfigDict({**fields, **values})


def _frames(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_no_jitter_is_the_identity():
  frames = _frames((3, 32, 32, 1))
  out = augmentation.augment(frames, np.random.default_rng(1), _config())
  np.testing.assert_array_equal(out, frames)


def test_same_generator_state_same_output_and_shape():
  frames = _frames((4, 32, 32, 1))
  config = _config(max_shift=0.1, max_scale=0.1, max_rotation=10, max_contrast=0.2,
                   max_brightness=10)
  a = augmentation.augment(frames, np.random.default_rng(7), config)
  b = augmentation.augment(frames, np.random.default_rng(7), config)
  np.testing.assert_array_equal(a, b)
  assert a.shape == frames.shape and a.dtype == np.uint8
  assert not np.array_equal(a, frames)


def test_frames_of_a_window_move_together_and_examples_differ():
  window = np.repeat(_frames((2, 1, 24, 24, 1)), 5, axis=1)  # Each window: one frame, 5 times.
  out = augmentation.augment(window, np.random.default_rng(3),
                             _config(max_shift=0.2, max_rotation=20, max_brightness=30))
  for example in out:
    assert all(np.array_equal(frame, example[0]) for frame in example)
  moved = augmentation.augment(np.repeat(window[:1], 2, axis=0), np.random.default_rng(3),
                               _config(max_shift=0.2, max_rotation=20))
  assert not np.array_equal(moved[0], moved[1])


def test_brightness_adds_one_offset_per_example_within_bounds():
  frames = np.full((6, 16, 16, 1), 128, np.uint8)
  frames[:, 4:8, 4:8] = 100
  out = augmentation.augment(frames, np.random.default_rng(0), _config(max_brightness=20))
  offsets = out.astype(int) - frames
  for offset in offsets:
    assert np.unique(offset).size == 1 and abs(offset[0, 0, 0]) <= 20
  assert np.unique(offsets[:, 0, 0, 0]).size > 1


def test_shift_moves_a_dot_by_at_most_the_largest_shift():
  frames = np.zeros((20, 40, 40, 1), np.uint8)
  frames[:, 20, 20] = 255
  out = augmentation.augment(frames, np.random.default_rng(0), _config(max_shift=0.1))
  for frame in out[..., 0]:
    y, x = np.unravel_index(frame.argmax(), frame.shape)
    assert abs(y - 20) <= 4 and abs(x - 20) <= 4
  assert len({np.unravel_index(f.argmax(), f.shape) for f in out[..., 0]}) > 1


def test_affine_keeps_rotation_scale_and_shift_within_bounds():
  np.testing.assert_allclose(augmentation.random_affine(np.random.default_rng(0), 9, 0, 0, 0),
                             [[1, 0, 0], [0, 1, 0]], atol=1e-12)
  angles, scales = [], []
  for seed in range(100):
    matrix = augmentation.random_affine(np.random.default_rng(seed), 48, 0.05, 0.1, 15.0)
    scale = np.hypot(matrix[0, 0], matrix[0, 1])
    angles.append(np.degrees(np.arctan2(matrix[0, 1], matrix[0, 0])))
    scales.append(scale)
    # The centre moves only by the shift.
    centre = matrix @ np.array([23.5, 23.5, 1.0])
    assert np.all(np.abs(centre - 23.5) <= 0.05 * 48 + 1e-9)
  assert max(np.abs(angles)) <= 15 and max(angles) > 10 and min(angles) < -10
  assert 0.9 <= min(scales) and max(scales) <= 1.1 and max(scales) - min(scales) > 0.15
