"""Training-time augmentation of face crops, beyond the paper's mirror images.

A CNN trained on a few dozen speakers memorises their faces; small changes in
where the face detector puts the box (shift, scale, in-plane head roll) and
in lighting (contrast, brightness, light from one side) are what a new
speaker's crops differ by first, so training frames are jittered along
exactly those axes.

Pure JAX, so that it runs inside the compiled training epoch on the device
that trains (no per-step trip through the host): on 2 CPU cores it is also
3x faster than OpenCV's `warpAffine` with NumPy around it.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections


def random_affine(
  key: jax.Array,
  num: int,
  size: int,
  max_shift: float,
  max_scale: float,
  max_rotation: float,
) -> jax.Array:
  """`num` 2x3 matrices mapping source to target pixels: a rotation (degrees)
  and a scale about the centre, as OpenCV's `getRotationMatrix2D`, then a
  shift (share of the side)."""
  k_angle, k_scale, k_shift = jax.random.split(key, 3)
  angle = jnp.radians(
    jax.random.uniform(
      k_angle, (num,), minval=-max_rotation, maxval=max_rotation
    )
  )
  scale = jax.random.uniform(
    k_scale, (num,), minval=1 - max_scale, maxval=1 + max_scale
  )
  shift = (
    jax.random.uniform(k_shift, (num, 2), minval=-max_shift, maxval=max_shift)
    * size
  )
  a, b = scale * jnp.cos(angle), scale * jnp.sin(angle)
  centre = (size - 1) / 2
  tx = (1 - a) * centre - b * centre + shift[:, 0]
  ty = b * centre + (1 - a) * centre + shift[:, 1]
  return jnp.stack([jnp.stack([a, b, tx], -1), jnp.stack([-b, a, ty], -1)], -2)


def warp_affine(images: jax.Array, matrices: jax.Array) -> jax.Array:
  """(N, H, W) images moved by (N, 2, 3) source-to-target matrices, bilinear,
  the border replicated: OpenCV's `warpAffine(INTER_LINEAR,
  BORDER_REPLICATE)` in float."""
  n, h, w = images.shape
  linear, offset = matrices[:, :, :2], matrices[:, :, 2]
  # Each target pixel reads the source where it came from.
  inverse = jnp.linalg.inv(linear)
  ys, xs = jnp.meshgrid(
    jnp.arange(h, dtype=jnp.float32),
    jnp.arange(w, dtype=jnp.float32),
    indexing="ij",
  )
  # (N, H, W, 2)
  target = jnp.stack([xs, ys], -1)[None] - offset[:, None, None, :]
  source = jnp.einsum("nij,nhwj->nhwi", inverse, target)
  x0, y0 = jnp.floor(source[..., 0]), jnp.floor(source[..., 1])
  fx, fy = source[..., 0] - x0, source[..., 1] - y0
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  flat = images.reshape(n, h * w)

  def pixel(y, x):  # Clamped indices: the border replicated.
    index = jnp.clip(y, 0, h - 1) * w + jnp.clip(x, 0, w - 1)
    return jnp.take_along_axis(flat, index.reshape(n, -1), axis=1).reshape(
      n, h, w
    )

  top = (1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1)
  bottom = (1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1)
  return (1 - fy) * top + fy * bottom


def random_shading(
  key: jax.Array, num: int, size: int, max_shading: float
) -> jax.Array:
  """`num` (size, size) gain maps 1 + s * d of light from one side: d runs
  linearly from -1 to 1 across the image along a random direction (the corners
  reach +-sqrt(2)), s is uniform in [0, max_shading].

  A directional light shades a face by a low-order smooth function of the
  surface normal (Basri & Jacobs, 2003), whose first-order part is this ramp; it
  is the lighting change that equalising a whole crop leaves in place.
  """
  k_angle, k_strength = jax.random.split(key)
  angle = jax.random.uniform(k_angle, (num, 1, 1), maxval=2 * jnp.pi)
  strength = jax.random.uniform(k_strength, (num, 1, 1), maxval=max_shading)
  return shading_gain(size, angle, strength)


def shading_gain(size: int, angle, strength) -> jax.Array:
  """(..., size, size) gain maps 1 + strength * d, d running linearly from -1
  to 1 across the image toward `angle` (radians: 0 brightens the right side,
  as x grows); `angle` and `strength` broadcast, e.g. (N, 1, 1) for N maps."""
  centre = (size - 1) / 2
  ys, xs = jnp.meshgrid(
    (jnp.arange(size) - centre) / centre,
    (jnp.arange(size) - centre) / centre,
    indexing="ij",
  )
  return 1 + strength * (xs * jnp.cos(angle) + ys * jnp.sin(angle))


def random_erasing(
  key: jax.Array, num: int, size: int, probability: float
) -> tuple[jax.Array, jax.Array]:
  """Random erasing (Zhong et al., 2020), their settings: with `probability`, a
  rectangle of 2-40% of the (size, size) image, aspect ratio 0.3-3.3
  (log-uniform), anywhere inside it. Returns (num, size, size) masks (True:
  erased) and the uniform 0-255 noise that fills them.
  """
  k_apply, k_area, k_aspect, k_place, k_noise = jax.random.split(key, 5)
  area = jax.random.uniform(k_area, (num,), minval=0.02, maxval=0.4) * size**2
  aspect = jnp.exp(
    jax.random.uniform(
      k_aspect, (num,), minval=jnp.log(0.3), maxval=jnp.log(1 / 0.3)
    )
  )
  height = jnp.clip(jnp.round(jnp.sqrt(area * aspect)), 1, size)
  width = jnp.clip(jnp.round(jnp.sqrt(area / aspect)), 1, size)
  top, left = (
    jax.random.uniform(k_place, (2, num))
    * (size - jnp.stack([height, width]) + 1)
  ).astype(jnp.int32)
  rows = jnp.arange(size)[None, :, None]
  cols = jnp.arange(size)[None, None, :]
  inside = (
    (rows >= top[:, None, None])
    & (rows < (top + height)[:, None, None])
    & (cols >= left[:, None, None])
    & (cols < (left + width)[:, None, None])
  )
  applied = jax.random.uniform(k_apply, (num, 1, 1)) < probability
  noise = jax.random.uniform(k_noise, (num, size, size), maxval=256.0)
  return inside & applied, noise


def augment(
  frames: jax.Array, key: jax.Array, config: ml_collections.ConfigDict
) -> jax.Array:
  """Randomly moves, scales, rotates, shades and relights uint8 frames (N, [T,]
  S, S, 1).

  One draw per example, so a window's frames move together. Geometry follows
  `config.max_shift` (share of the side), `config.max_scale` (zoom 1 +- this)
  and `config.max_rotation` (degrees), filling uncovered pixels by replicating
  the edge like the face crop does; light from one side multiplies the frame
  by a ramp of up to 1 +- `config.max_shading` (`random_shading`); contrast
  scales around the example's mean by 1 +- `config.max_contrast`; brightness
  shifts by up to +-`config.max_brightness` gray levels; last, with
  `config.erase_probability`, a random rectangle is filled with noise
  (`random_erasing`), so that no single part of the face decides alone.
  """
  n, size = frames.shape[0], frames.shape[-2]
  k_geometry, k_contrast, k_brightness = jax.random.split(key, 3)
  # Folded in, so the other draws stay those of configs without these two.
  k_shading, k_erasing = jax.random.fold_in(key, 3), jax.random.fold_in(key, 4)
  out = frames.astype(jnp.float32)
  if config.max_shift or config.max_scale or config.max_rotation:
    out = _move(out, k_geometry, config)
  # Maps of (N, S, S) broadcast over a window's T frames: one per example.
  per_example = (n,) + (1,) * (frames.ndim - 4) + (size, size, 1)
  if config.max_shading:
    gain = random_shading(k_shading, n, size, config.max_shading)
    out = out * gain.reshape(per_example)
  out = _contrast_and_brightness(out, k_contrast, k_brightness, config)
  if config.erase_probability:
    erased, noise = random_erasing(k_erasing, n, size, config.erase_probability)
    # The same rectangle in every frame of a window, as an occluder stays.
    out = jnp.where(
      erased.reshape(per_example), noise.reshape(per_example), out
    )
  return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)


def _move(
  out: jax.Array, key: jax.Array, config: ml_collections.ConfigDict
) -> jax.Array:
  """`augment`'s geometry: float frames (N, [T,] S, S, 1) shifted, scaled and
  rotated, one draw per example (a window's T frames move together)."""
  n, size = out.shape[0], out.shape[-2]
  matrices = random_affine(
    key,
    n,
    size,
    config.max_shift,
    config.max_scale,
    config.max_rotation,
  )
  # T for windows, 1 for frames.
  per_frame = math.prod(out.shape[1:-1]) // (size * size)
  images = out.reshape(n * per_frame, size, size)
  return warp_affine(images, jnp.repeat(matrices, per_frame, axis=0)).reshape(
    out.shape
  )


def _contrast_and_brightness(
  out: jax.Array,
  k_contrast: jax.Array,
  k_brightness: jax.Array,
  config: ml_collections.ConfigDict,
) -> jax.Array:
  """`augment`'s lighting: float frames (N, [T,] S, S, 1) with contrast scaled
  around each example's mean and brightness shifted, one draw per example."""
  shape = (out.shape[0],) + (1,) * (out.ndim - 1)
  mean = out.mean(axis=tuple(range(1, out.ndim)), keepdims=True)
  contrast = jax.random.uniform(
    k_contrast,
    shape,
    minval=1 - config.max_contrast,
    maxval=1 + config.max_contrast,
  )
  brightness = jax.random.uniform(
    k_brightness,
    shape,
    minval=-config.max_brightness,
    maxval=config.max_brightness,
  )
  return (out - mean) * contrast + mean + brightness
