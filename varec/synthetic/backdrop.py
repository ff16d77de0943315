"""The static part of a frame: the studio backdrop and the speaker's shoulders.

Drawn once per speaker and frame size; the head moves above it.
"""

from __future__ import annotations

import cv2
import numpy as np

from varec.synthetic import appearance
from varec.synthetic import geometry


def render_backdrop(
  s: appearance.Speaker, size: tuple[int, int], place: geometry.Placement
) -> tuple[np.ndarray, np.ndarray]:
  """The backdrop of a (width, height) frame with the speaker's clothed
  shoulders.

  Returns:
    The (H, W, 3) uint8 image and the shoulders' outline (N, 2) in pixels.
  """
  w, h = size
  # One generator for the gradient and the texture, drawn in that order.
  rng = np.random.default_rng(s.texture_seed + 1)
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  xn, yn = xx / w - 0.5, yy / h - 0.5
  c1 = np.array(s.background, np.float32)
  c2 = np.array(s.background2, np.float32)
  ang = rng.uniform(0, 2 * np.pi)
  g = geometry.smoothstep(0.5 + np.cos(ang) * xn + np.sin(ang) * yn)
  bg = c1 + (c2 - c1) * g[..., None]
  bg = _texture(bg, s.background_texture, xx, yy, rng)
  # The same key light brightens one side of the backdrop.
  lx = np.sin(np.radians(s.light_azimuth))
  bg *= (0.93 + 0.24 * lx * xn - 0.1 * (xn**2 + yn**2))[..., None]
  shoulders_px = _shoulders(s, place)
  bg = _clothing(bg, s, place, shoulders_px, lx, xx, yy)
  bg = cv2.GaussianBlur(bg, (0, 0), 0.7)
  return np.clip(bg, 0, 255).astype(np.uint8), shoulders_px


def _texture(
  bg: np.ndarray,
  texture: str,
  xx: np.ndarray,
  yy: np.ndarray,
  rng: np.random.Generator,
) -> np.ndarray:
  """Adds the backdrop's texture (mottled, stripes as of a curtain, tiles,
  bokeh) to bg."""
  h, w = bg.shape[:2]
  if texture == "mottled":
    small = rng.normal(0, 1, (5, 6)).astype(np.float32)
    bg += (
      14 * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    )
  elif texture == "stripes":
    period = rng.uniform(0.06, 0.16) * w
    phase = rng.uniform(0, 2 * np.pi)
    folds = np.sin(
      2 * np.pi * xx / period + phase + 1.5 * np.sin(xx / (2.3 * period))
    )
    bg *= (1 + 0.07 * folds)[..., None]
  elif texture == "tiles":
    period = rng.uniform(0.12, 0.22) * h
    grout = np.minimum(
      np.abs(((xx / period) % 1) - 0.5), np.abs(((yy / period) % 1) - 0.5)
    )
    bg *= (1 - 0.12 * (grout > 0.46))[..., None]
  elif texture == "bokeh":
    spots = np.zeros((h, w), np.float32)
    for _ in range(10):
      cv2.circle(
        spots,
        (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
        int(rng.uniform(0.03, 0.08) * h),
        float(rng.uniform(0.3, 1)),
        -1,
      )
    spots = cv2.GaussianBlur(spots, (0, 0), 0.01 * h + 1)
    bg += 40 * spots[..., None]
  return bg


def _shoulders(s: appearance.Speaker, place: geometry.Placement) -> np.ndarray:
  """Shoulders and neckline in pixels, static in the frame."""
  a = place.a
  v_top = 1.66 * s.face_length + 0.75
  dip = 0.45 if s.neckline == "v" else 0.2
  shoulders = np.array(
    [
      (-0.95, v_top),
      (-0.45, v_top + dip * 0.7),
      (0.0, v_top + dip),
      (0.45, v_top + dip * 0.7),
      (0.95, v_top),
      (1.8, v_top + 0.25),
      (2.6, v_top + 0.6),
      (3.3, v_top + 1.3),
      (3.8, v_top + 5),
      (-3.8, v_top + 5),
      (-3.3, v_top + 1.3),
      (-2.6, v_top + 0.6),
      (-1.8, v_top + 0.25),
    ]
  )
  return np.stack(
    [place.cx + a * shoulders[:, 0], place.cy + a * shoulders[:, 1]], 1
  )


def _clothing(
  bg: np.ndarray,
  s: appearance.Speaker,
  place: geometry.Placement,
  shoulders_px: np.ndarray,
  lx,
  xx: np.ndarray,
  yy: np.ndarray,
) -> np.ndarray:
  """Paints the clothes, lit from the key light's side and with soft folds,
  over bg."""
  h, w = bg.shape[:2]
  a, cx = place.a, place.cx
  cloth = np.zeros((h, w), np.uint8)
  cv2.fillPoly(
    cloth, [geometry.to_fixed(shoulders_px)], 255, cv2.LINE_AA, geometry.SHIFT
  )
  cloth_f = cloth.astype(np.float32)[..., None] / 255
  shading = 0.75 + 0.35 * geometry.smoothstep(0.5 + lx * (xx - cx) / (4 * a))
  folds = 1 + 0.05 * np.sin((xx - cx) / (0.35 * a) + 0.6 * yy / a)
  cloth_col = np.array(s.clothing, np.float32) * (shading * folds)[..., None]
  return bg * (1 - cloth_f) + cloth_col * cloth_f
