"""Training-time augmentation of face crops, beyond the paper's mirror images.

A CNN trained on a few dozen speakers memorises their faces; small changes in
where the face detector puts the box (shift, scale, in-plane head roll) and
in lighting (contrast, brightness) are what a new speaker's crops differ by
first, so training frames are jittered along exactly those axes.
"""

import cv2
import ml_collections
import numpy as np


def random_affine(rng: np.random.Generator, size: int, max_shift: float, max_scale: float,
                  max_rotation: float) -> np.ndarray:
  """A 2x3 matrix: rotation (degrees) and scale about the centre, then a shift (share of side)."""
  angle = rng.uniform(-max_rotation, max_rotation)
  scale = rng.uniform(1 - max_scale, 1 + max_scale)
  matrix = cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, scale)
  matrix[:, 2] += rng.uniform(-max_shift, max_shift, 2) * size
  return matrix


def augment(frames: np.ndarray, rng: np.random.Generator,
            config: ml_collections.ConfigDict) -> np.ndarray:
  """Randomly moves, scales, rotates and relights uint8 frames (N, [T,] S, S, 1).

  One draw per example, so a window's frames move together. Geometry follows
  `config.max_shift` (share of the side), `config.max_scale` (zoom 1 +- this)
  and `config.max_rotation` (degrees), filling uncovered pixels by replicating
  the edge like the face crop does; contrast scales around the example's mean
  by 1 +- `config.max_contrast`; brightness shifts by up to
  +-`config.max_brightness` gray levels.
  """
  n, size = len(frames), frames.shape[-2]
  out = np.empty(frames.shape, np.float32)
  for i in range(n):
    matrix = random_affine(rng, size, config.max_shift, config.max_scale, config.max_rotation)
    for index in np.ndindex(frames.shape[1:-3]):  # The frames of a window, if any.
      out[(i,) + index + (..., 0)] = cv2.warpAffine(
          frames[(i,) + index + (..., 0)], matrix, (size, size), flags=cv2.INTER_LINEAR,
          borderMode=cv2.BORDER_REPLICATE)
  shape = (n,) + (1,) * (frames.ndim - 1)
  mean = out.mean(axis=tuple(range(1, frames.ndim)), keepdims=True)
  contrast = rng.uniform(1 - config.max_contrast, 1 + config.max_contrast, shape)
  brightness = rng.uniform(-config.max_brightness, config.max_brightness, shape)
  return np.clip((out - mean) * contrast + mean + brightness, 0, 255).round().astype(np.uint8)
