"""One frame: the canvas of face shapes, the head's light and the composite.

Per frame, `face_parts` collects the face's shapes on a `canvas.Canvas` in face
units; one projection for the head pose maps them all to pixels, and they are
drawn into three layers over the head's region of interest: albedo (colour),
mask (head coverage) and shade (soft shadows, blurred later). A light map of a
lit head ellipsoid and neck, computed once, follows the head; the lit head is
then blended over the static backdrop. Soft shading gives the gradients that
dlib's HOG face detector, trained on real faces, responds to.
"""

from __future__ import annotations

import cv2
import numpy as np

from varec.synthetic import appearance
from varec.synthetic import backdrop
from varec.synthetic import canvas as canvas_lib
from varec.synthetic import face_parts
from varec.synthetic import geometry
from varec.synthetic import shapes

_AA = cv2.LINE_AA


class Renderer:
  """Draws frames of one speaker at one frame size; static layers are cached."""

  def __init__(self, speaker: appearance.Speaker, size: tuple[int, int]):
    self.spk = speaker
    self.place = geometry.place(speaker, size)
    self.neck_w = 0.6 + 0.08 * (speaker.sex == "M")
    self.head = shapes.head_shapes(speaker)
    self.background, self.shoulders_px = backdrop.render_backdrop(
      speaker, size, self.place
    )
    margin = 0.6 * self.place.a  # Room for head motion, pitch and the jaw drop.
    self.roi = _head_roi(self.head, self.place, size, margin)
    # Light map over the ROI plus a margin, sliced per frame to follow the head.
    self.light_margin = int(np.ceil(margin))
    self.light = _light_map(
      speaker, self.place, self.roi, self.light_margin, self.neck_w
    )
    t = speaker.light_tint
    self.tint = np.array([1 - 0.07 * t, 1.0, 1 + 0.07 * t], np.float32)

  def draw(
    self, au: dict[str, float], pose: geometry.Pose, blink: float
  ) -> np.ndarray:
    """One frame (H, W, 3) uint8 for action units `au`, head `pose` and
    eyelid closure."""
    x0, y0, x1, y1 = self.roi
    origin = np.array([x0, y0], np.float64)
    h, w = y1 - y0, x1 - x0
    albedo = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    shade = np.zeros((h, w), np.float32)
    self._draw_neck(albedo, mask, shade, pose, origin)
    c = canvas_lib.Canvas()
    face_parts.draw_face(
      c, self.spk, self.head, lambda k: au.get(k, 0.0), blink
    )
    self._rasterise(c, pose, origin, albedo, mask, shade)
    # Clothes cover the neck: erase it from the head mask where the shirt is.
    cv2.fillPoly(
      mask,
      [geometry.to_fixed(self.shoulders_px, origin)],
      0,
      _AA,
      geometry.SHIFT,
    )
    return self._composite(albedo, mask, shade, pose)

  def _draw_neck(
    self, albedo, mask, shade, pose: geometry.Pose, origin: np.ndarray
  ) -> None:
    # The neck follows the head's translation only partly and does not rotate.
    nw = self.neck_w
    neck = np.array(
      [(-nw, 0.8), (nw, 0.8), (nw * 1.08, 4.5), (-nw * 1.08, 4.5)]
    )
    body_pose = geometry.Pose(0.5 * pose.tx, 0.5 * pose.ty)
    neck_px = geometry.to_fixed(
      self.place.project(neck, body_pose, -0.9), origin
    )
    cv2.fillPoly(albedo, [neck_px], self.spk.skin, _AA, geometry.SHIFT)
    cv2.fillPoly(mask, [neck_px], 255, _AA, geometry.SHIFT)
    cv2.fillPoly(shade, [neck_px], 0.2, cv2.LINE_8, geometry.SHIFT)

  def _rasterise(
    self,
    c: canvas_lib.Canvas,
    pose: geometry.Pose,
    origin: np.ndarray,
    albedo,
    mask,
    shade,
  ) -> None:
    """Projects all of the canvas's shapes at once and draws them in order."""
    lengths = [n for _, n, _ in c.ops]
    px = self.place.project(
      np.concatenate(c.points), pose, np.concatenate(c.depths)
    )
    px = geometry.to_fixed(px, origin)
    for (op, _, args), p in zip(c.ops, np.split(px, np.cumsum(lengths)[:-1])):
      if op == "fill":
        cv2.fillPoly(albedo, [p], args[0], _AA, geometry.SHIFT)
        if args[1]:
          cv2.fillPoly(mask, [p], 255, _AA, geometry.SHIFT)
      elif op == "line":
        cv2.polylines(
          albedo,
          [p],
          False,
          args[0],
          max(1, round(args[1] * self.place.a)),
          _AA,
          geometry.SHIFT,
        )
      else:
        cv2.fillPoly(shade, [p], args[0], cv2.LINE_8, geometry.SHIFT)

  def _composite(self, albedo, mask, shade, pose: geometry.Pose) -> np.ndarray:
    """Lights the head layers (the light map follows the face centre) over
    the backdrop."""
    a, cx, cy = self.place.a, self.place.cx, self.place.cy
    x0, y0, x1, y1 = self.roi
    h, w = y1 - y0, x1 - x0
    m = self.light_margin
    centre = self.place.project(np.array([[0.0, 0.1]]), pose)[0]
    ox, oy = np.clip(np.round(centre - (cx, cy + 0.1 * a)), -m, m).astype(int)
    light = self.light[m - oy : m - oy + h, m - ox : m - ox + w]
    shade = cv2.GaussianBlur(shade, (0, 0), 0.07 * a)
    lit = (light * (1 - shade))[..., None] * self.tint
    alpha = mask.astype(np.float32)[..., None] * (1 / 255)
    frame = self.background.copy()
    bg = frame[y0:y1, x0:x1].astype(np.float32)
    out = bg + (albedo * lit - bg) * alpha
    out = cv2.GaussianBlur(out, (0, 0), 0.45 + 0.004 * a)
    frame[y0:y1, x0:x1] = np.clip(out, 0, 255)
    return frame


def _head_roi(
  head: shapes.HeadShapes,
  place: geometry.Placement,
  size: tuple[int, int],
  margin: float,
) -> tuple[int, int, int, int]:
  """(x0, y0, x1, y1): the pixels the head at rest covers, plus `margin`,
  down to the bottom."""
  width, height = size
  rest = geometry.Pose()
  pts = [place.project(head.hair_cap, rest), place.project(head.outline, rest)]
  if head.hair_back is not None:
    pts.append(place.project(head.hair_back, rest))
  if head.bun is not None:
    pts.append(place.project(head.bun, rest))
  pts = np.concatenate(pts)
  x0 = int(max(0, pts[:, 0].min() - margin))
  x1 = int(min(width, pts[:, 0].max() + margin))
  y0 = int(max(0, pts[:, 1].min() - margin))
  return x0, y0, x1, height


def _light_map(
  s: appearance.Speaker,
  place: geometry.Placement,
  roi: tuple[int, int, int, int],
  m: int,
  neck_w: float,
) -> np.ndarray:
  """Ambient plus diffuse key light on a head ellipsoid over a neck cylinder.

  Covers the ROI plus `m` pixels on every side, so that it can follow the head.
  """
  a, cx, cy = place.a, place.cx, place.cy
  x0, y0, x1, y1 = roi
  yy, xx = np.mgrid[y0 - m : y1 + m, x0 - m : x1 + m].astype(np.float32)
  dx = (xx - cx) / a
  dy = (yy - cy) / a - 0.1
  X, Y = dx / 1.18, dy / 1.85
  r2 = np.minimum(X**2 + Y**2, 0.97)
  head_n = np.stack([X, 0.7 * Y, np.sqrt(1 - r2)], -1)
  Xn = np.clip(dx / (neck_w + 0.1), -0.97, 0.97)
  neck_n = np.stack([Xn, np.zeros_like(Xn), np.sqrt(1 - Xn**2)], -1)
  wneck = geometry.smoothstep((dy - 1.9) / 0.4)[..., None]
  n = head_n * (1 - wneck) + neck_n * wneck
  n /= np.linalg.norm(n, axis=-1, keepdims=True)
  az, el = np.radians(s.light_azimuth), np.radians(s.light_elevation)
  light = np.array(
    [np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)]
  )
  diffuse = np.maximum(n @ light.astype(np.float32), 0)
  return (
    s.ambient + 1.15 * s.light_intensity * (1 - s.ambient) * diffuse
  ).astype(np.float32)
