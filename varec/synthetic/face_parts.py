"""The face, part by part, for one frame's action units.

Each part adds its shapes (face units) to a `canvas.Canvas`: fills and lines in
the albedo layer, soft shapes in the shade layer. `draw_face` adds them in
painting order, so later parts cover earlier ones (the lids cover the eyeballs,
the front hair the forehead). `g(name)` is an action unit's intensity (0 when
the expression does not use it); the action units move the landmarks like FACS
units.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from varec.synthetic import appearance
from varec.synthetic import canvas as canvas_lib
from varec.synthetic import geometry
from varec.synthetic import shapes

ActionUnits = Callable[[str], float]
# A lip corner: (u, v, sneer intensity).
Corner = tuple[float, float, float]


def draw_face(
  c: canvas_lib.Canvas,
  s: appearance.Speaker,
  head: shapes.HeadShapes,
  g: ActionUnits,
  blink: float,
) -> None:
  """Adds hair, face and features for action-unit intensities g(name) to `c`."""
  jaw_off = 0.42 * g("jaw_drop")  # The jaw follows the mouth opening.
  back_hair_and_ears(c, s, head)
  skin(c, s, head, g, jaw_off)
  shading(c, s, g)
  wrinkles(c, s, g)
  corners = lip_corners(c, s, g)
  for side in (-1, 1):
    eye(c, s, g, side, blink)
  for side in (-1, 1):
    brow(c, s, g, side)
  nose(c, s, g)
  mouth(c, s, g, corners, jaw_off)
  front_hair(c, s, head)


def _darker(s: appearance.Speaker, k: float) -> np.ndarray:
  """The skin colour darkened by a fraction k (creases, folds, nostrils)."""
  return np.array(s.skin) * (1 - k)


def _nose_up(g: ActionUnits) -> float:
  """How far the nose tip and nostrils rise (wrinkled nose, raised upper
  lip)."""
  return 0.04 * g("nose_wrinkle") + 0.02 * g("upper_lip_up")


def _light_side(s: appearance.Speaker) -> float:
  """-1 ... 1: how far the key light comes from image right."""
  return np.sin(np.radians(s.light_azimuth))


def back_hair_and_ears(
  c: canvas_lib.Canvas, s: appearance.Speaker, head: shapes.HeadShapes
) -> None:
  """What lies behind the face: long hair, a bun, the ears."""
  hair = np.array(s.hair)
  if head.hair_back is not None:
    c.fill(head.hair_back, hair * 0.85, dz=-0.3)
  if head.bun is not None:
    c.fill(head.bun, hair, dz=-0.5)
  if head.show_ears:
    for side in (-1, 1):
      c.fill(
        geometry.ellipse(side * s.face_width, 0.28, 0.15, 0.32),
        _darker(s, 0.05),
        dz=-0.3,
      )
      c.soft(
        geometry.ellipse(side * 1.03 * s.face_width, 0.28, 0.07, 0.2, 12),
        0.25,
        -0.3,
      )


def skin(
  c: canvas_lib.Canvas,
  s: appearance.Speaker,
  head: shapes.HeadShapes,
  g: ActionUnits,
  jaw_off: float,
) -> None:
  """The face skin, its lower part following the jaw, and stubble."""
  outline = head.outline.copy()
  below = geometry.smoothstep((outline[:, 1] - 0.85) / 0.75)
  outline[:, 1] += jaw_off * below
  outline[:, 0] *= (
    1
    - 0.05 * g("jaw_drop") * below
    + 0.03 * g("smile") * np.exp(-(((outline[:, 1] - 0.6) / 0.35) ** 2))
  )
  c.fill(outline, np.array(s.skin))
  c.soft(outline, 0.0)  # Clears the neck shadow where the face is.
  if s.stubble > 0:
    beard = head.beard.copy()
    beard[:, 1] += jaw_off * geometry.smoothstep((beard[:, 1] - 0.85) / 0.75)
    c.soft(beard, 0.16 * s.stubble)


def shading(
  c: canvas_lib.Canvas, s: appearance.Speaker, g: ActionUnits
) -> None:
  """Soft shading: eye sockets, cheekbones, the nose's sides and tip, the
  chin."""
  nl, nw = s.nose_length, s.nose_width
  cheek_up = g("cheek_up")
  lx = _light_side(s)
  socket = 0.12 + 0.28 * np.sin(np.radians(s.light_elevation))
  for side in (-1, 1):
    c.soft(
      geometry.ellipse(side * s.eye_spacing, -0.13 + s.brow_height, 0.3, 0.2),
      socket,
    )
    c.soft(geometry.ellipse(side * 0.2, -0.04, 0.08, 0.12, 10), socket * 0.9)
    c.soft(geometry.ellipse(side * 0.8, 0.72, 0.14, 0.3, 12), 0.1)
    c.soft(
      geometry.ellipse(side * 0.5, 0.42 - 0.12 * cheek_up, 0.22, 0.13, 12),
      -(0.05 + 0.12 * cheek_up),
    )
    # The side of the nose away from the light is in shadow.
    side_shadow = 0.08 + (0.3 * abs(lx) if side * lx < 0 else 0.0)
    c.soft(
      [
        (side * 0.07, -0.02),
        (side * 0.13, -0.02),
        (side * 0.24 * nw, 0.58 * nl),
        (side * 0.12, 0.6 * nl),
      ],
      side_shadow,
      dz=0.15,
    )
  c.soft(
    geometry.ellipse(0.0, 0.72 * nl - _nose_up(g), 0.2 * nw, 0.06, 12),
    0.3,
    dz=0.15,
  )
  c.soft(geometry.ellipse(0.05 * lx, 0.45 * nl, 0.06, 0.16, 10), -0.12, dz=0.3)


def wrinkles(
  c: canvas_lib.Canvas, s: appearance.Speaker, g: ActionUnits
) -> None:
  """Forehead lines, the frown's vertical lines, a wrinkled nose: only when
  strong enough."""
  brow_lift = 0.23 * g("brow_inner_up") + 0.2 * g("brow_outer_up")
  wr = min(1.0, max(g("brow_inner_up"), g("brow_outer_up")))
  if wr > 0.05:
    ext = 0.25 + 0.3 * g("brow_outer_up")
    for k in range(3):
      vk = -0.7 - 0.13 * k + s.brow_height - 0.3 * brow_lift
      c.line(
        geometry.bezier((-ext, vk + 0.03), (0, vk), (ext, vk + 0.03), 10),
        _darker(s, 0.22 * wr),
        0.022,
      )
  wg = min(1.0, 0.8 * g("brow_together") + 0.4 * g("brow_down"))
  if wg > 0.05:
    for side in (-1, 1):
      c.line(
        [(side * 0.05, -0.3), (side * 0.06, -0.12)], _darker(s, 0.3 * wg), 0.022
      )
  wn = g("nose_wrinkle")
  if wn > 0.05:
    for k in range(3):
      vk = 0.07 * k
      c.line(
        geometry.bezier((-0.13, vk + 0.02), (0, vk), (0.13, vk + 0.02), 8),
        _darker(s, 0.3 * wn),
        0.022,
        dz=0.1,
      )
    for side in (-1, 1):
      c.line(
        [(side * 0.13, 0.1), (side * 0.22, 0.25)],
        _darker(s, 0.3 * wn),
        0.022,
        dz=0.1,
      )


def lip_corners(
  c: canvas_lib.Canvas, s: appearance.Speaker, g: ActionUnits
) -> list[Corner]:
  """Moves the lip corners and draws the folds they pull; returns the corners.

  The corners are pulled up (smile), down (frown), out (stretch), in (press);
  contempt's sneer raises the speaker's contempt_side corner only.
  """
  nl, nw = s.nose_length, s.nose_width
  cheek_up = g("cheek_up")
  mw = 0.36 * s.mouth_width
  corners = []
  for side in (-1, 1):
    sneer = g("sneer") if side == s.contempt_side else 0.0
    du = (
      0.085 * g("smile")
      + 0.09 * g("stretch")
      - 0.035 * g("press")
      - 0.06 * g("jaw_drop")
      + 0.05 * sneer
      - 0.01 * g("frown")
      + 0.02 * g("upper_lip_up")
    )
    dv = (
      -0.17 * g("smile")
      + 0.13 * g("frown")
      - 0.16 * sneer
      + 0.03 * g("stretch")
      - 0.05 * g("upper_lip_up")
      + 0.1 * g("jaw_drop")
    )
    corners.append((side * (mw + du), 1.0 + dv, sneer))
  # Nasolabial folds from the nose wings to beyond the corners.
  fold = (
    0.1
    + 0.5 * g("smile")
    + 0.5 * g("upper_lip_up")
    + 0.3 * g("nose_wrinkle")
    + 0.25 * cheek_up
  )
  for side, (cu, cv_, sneer) in zip((-1, 1), corners):
    f = min(1.0, fold + 0.4 * sneer)
    nasolabial = geometry.bezier(
      (side * (0.2 + 0.04 * nw), 0.56 * nl),
      (side * 0.38, 0.82),
      (cu + side * 0.07, cv_ + 0.06),
      10,
    )
    c.line(nasolabial, _darker(s, 0.28 * f), 0.02)
    if sneer > 0.05:  # The dimple beside the raised corner.
      dimple = geometry.bezier(
        (cu + side * 0.03, cv_ - 0.06),
        (cu + side * 0.06, cv_),
        (cu + side * 0.04, cv_ + 0.06),
        6,
      )
      c.line(dimple, _darker(s, 0.35 * sneer), 0.025)
  if cheek_up > 0.05:  # Crow's feet.
    for side in (-1, 1):
      ox = side * (s.eye_spacing + 0.25 * s.eye_size)
      for k in (-1, 0, 1):
        c.line(
          [(ox, 0.02 * k), (ox + side * 0.09, 0.05 * k)],
          _darker(s, 0.15 * cheek_up),
          0.012,
        )
  return corners


def eye(
  c: canvas_lib.Canvas,
  s: appearance.Speaker,
  g: ActionUnits,
  side: int,
  blink: float,
) -> None:
  """Sclera, iris and pupil, then the lids (skin) hide what lies outside
  them."""
  es = s.eye_size
  cheek_up = g("cheek_up")
  ex = side * s.eye_spacing
  ew = 0.21 * es
  h_up = (
    0.1
    * es
    * (
      1
      + 0.85 * g("lid_up")
      - 0.3 * g("lid_tight")
      - 0.45 * g("lids_low")
      - 0.4 * g("gaze_down")
      - 0.25 * cheek_up
    )
  )
  h_lo = (
    0.065
    * es
    * (1 + 0.3 * g("lid_up") - 0.55 * g("lid_tight") - 0.6 * cheek_up)
  )
  crease = max(h_up, 0.0) + 0.07
  h_up = h_up * (1 - blink) - h_lo * blink  # Closed: upper lid meets the lower.
  inner, outer = (ex - side * ew, 0.01), (ex + side * ew, -0.02)
  top = geometry.bezier(inner, (ex - side * 0.02, -h_up), outer, 12)
  bottom = geometry.bezier(outer, (ex + side * 0.02, h_lo), inner, 12)
  c.fill(np.concatenate([top, bottom]), (218, 226, 232), dz=-0.05)
  iris_v = -0.005 + 0.06 * g("gaze_down")
  r = 0.1 * es
  c.fill(geometry.ellipse(ex, iris_v, r, r, 20), s.iris, dz=-0.05)
  c.fill(
    geometry.ellipse(ex, iris_v, 0.45 * r, 0.45 * r, 12), (15, 15, 18), dz=-0.05
  )
  c.fill(
    geometry.ellipse(ex + 0.03, iris_v - 0.03, 0.15 * r, 0.15 * r, 8),
    (235, 240, 245),
    dz=-0.05,
  )
  skin_colour = np.array(s.skin)
  c.fill(np.concatenate([top, top[::-1] + [0, -0.28]]), skin_colour, dz=-0.05)
  c.fill(
    np.concatenate([bottom, bottom[::-1] + [0, 0.14]]), skin_colour, dz=-0.05
  )
  c.line(top, (25, 25, 30), 0.035, dz=-0.05)
  c.line(bottom, _darker(s, 0.3), 0.015, dz=-0.05)
  c.line(
    geometry.bezier(
      (ex - side * 0.15, -0.02), (ex, -crease), (ex + side * 0.2, -0.04), 10
    ),
    _darker(s, 0.25 * (1 - blink)),
    0.018,
    dz=-0.05,
  )
  if cheek_up > 0.05:  # Raised cheeks bulge under the lower lid.
    bulge = geometry.bezier(
      (ex - side * 0.12, h_lo + 0.06),
      (ex, h_lo + 0.1),
      (ex + side * 0.15, h_lo + 0.05),
      8,
    )
    c.line(bulge, _darker(s, 0.2 * cheek_up), 0.015)


def brow(
  c: canvas_lib.Canvas, s: appearance.Speaker, g: ActionUnits, side: int
) -> None:
  """A brow through inner, peak and outer points moved by the brow action
  units."""
  skin_colour = np.array(s.skin)
  colour = (
    np.minimum(np.array(s.hair), skin_colour * 0.45) * 0.6 + skin_colour * 0.18
  )
  thick = s.brow_thickness * np.linspace(0.085, 0.035, 12)[:, None] * [0, 0.5]
  inner = (
    0.17 - 0.06 * g("brow_together"),
    -0.30
    - 0.23 * g("brow_inner_up")
    + 0.15 * g("brow_down")
    + 0.03 * g("brow_together"),
  )
  peak = (
    0.5,
    -0.40
    - s.brow_arch
    - 0.10 * g("brow_inner_up")
    - 0.2 * g("brow_outer_up")
    + 0.09 * g("brow_down"),
  )
  outer = (
    0.86,
    -0.33
    - 0.02 * g("brow_inner_up")
    - 0.2 * g("brow_outer_up")
    + 0.03 * g("brow_down"),
  )
  centre = geometry.bezier(inner, peak, outer, 12) * (side, 1) + (
    0,
    s.brow_height,
  )
  c.fill(np.concatenate([centre - thick, (centre + thick)[::-1]]), colour)


def nose(c: canvas_lib.Canvas, s: appearance.Speaker, g: ActionUnits) -> None:
  """Nostrils and alar creases."""
  nl, nw = s.nose_length, s.nose_width
  nose_up = _nose_up(g)
  for side in (-1, 1):
    c.fill(
      geometry.ellipse(
        side * 0.09 * nw, 0.66 * nl - nose_up, 0.055 * nw, 0.026, 10
      ),
      _darker(s, 0.6),
      dz=0.3,
    )
    crease = geometry.bezier(
      (side * 0.16 * nw, 0.52 * nl - nose_up),
      (side * 0.24 * nw, 0.62 * nl),
      (side * 0.15 * nw, 0.69 * nl - nose_up),
      8,
    )
    c.line(crease, _darker(s, 0.3), 0.02, dz=0.25)


def _lip_contours(
  s: appearance.Speaker, g: ActionUnits, corners: list[Corner], jaw_off: float
):
  """Inner and outer lip contours between the two corners, 17 points each.

  Returns:
    (u, inner_up, inner_lo, outer_up, outer_lo): the shared u and the four v
    curves.
  """
  (ulx, uly, _), (urx, ury, _) = corners
  t = np.linspace(-1, 1, 17)
  base_u = ulx + (urx - ulx) * (t + 1) / 2
  base_v = uly + (ury - uly) * (t + 1) / 2
  mid = 0.5 * (uly + ury)
  seam = 1.0 - 0.03 * g("chin_up")
  parts = g("lips_part")
  up_c = seam - 0.04 * parts - 0.04 * g("jaw_drop")
  lo_c = seam + 0.09 * parts + jaw_off + 0.03 * g("stretch")
  bell = 1 - t**2
  inner_up = (
    base_v + (up_c - mid) * bell - 0.08 * g("upper_lip_up") * (1 - t**4)
  )
  inner_lo = np.maximum(
    base_v + (lo_c - mid) * bell ** (0.9 - 0.4 * g("jaw_drop")), inner_up
  )
  thin = max(
    1 - 0.65 * g("press") - 0.3 * g("stretch") - 0.2 * g("smile"), 0.25
  )
  # Cupid's bow: the upper lip is fuller either side of the middle, dips at it.
  bow = (
    1
    + 0.25 * np.exp(-(((np.abs(t) - 0.25) / 0.15) ** 2))
    - 0.2 * np.exp(-((t / 0.08) ** 2))
  )
  outer_up = inner_up - 0.075 * s.lip_thickness * thin * bell**0.4 * bow
  outer_lo = inner_lo + 0.1 * s.lip_thickness * thin * bell**0.5
  return base_u, inner_up, inner_lo, outer_up, outer_lo


def mouth(
  c: canvas_lib.Canvas,
  s: appearance.Speaker,
  g: ActionUnits,
  corners: list[Corner],
  jaw_off: float,
) -> None:
  """The open mouth and teeth, the lips, and the soft shadows around them."""
  base_u, inner_up, inner_lo, outer_up, outer_lo = _lip_contours(
    s, g, corners, jaw_off
  )
  up_i = np.stack([base_u, inner_up], 1)
  lo_i = np.stack([base_u, inner_lo], 1)
  lips = np.array(s.lips)
  if np.max(inner_lo - inner_up) > 0.01:
    c.fill(np.concatenate([up_i, lo_i[::-1]]), (40, 36, 80), dz=0.05)
    teeth = np.stack([base_u * 0.92, np.minimum(inner_up + 0.09, inner_lo)], 1)
    c.fill(
      np.concatenate([up_i * [0.92, 1], teeth[::-1]]), (205, 215, 222), dz=0.05
    )
  c.fill(
    np.concatenate([np.stack([base_u, outer_up], 1), up_i[::-1]]),
    lips * 0.88,
    dz=0.08,
  )
  c.fill(
    np.concatenate([lo_i, np.stack([base_u, outer_lo], 1)[::-1]]), lips, dz=0.08
  )
  c.line(up_i, lips * 0.5, 0.022, dz=0.08)
  lo_bottom = float(outer_lo[8])
  c.soft(
    geometry.ellipse(0.0, lo_bottom + 0.07, 0.2, 0.05, 12),
    0.15 + 0.2 * g("chin_up"),
  )
  c.soft(
    geometry.ellipse(0.0, 1.42 * s.face_length + jaw_off, 0.2, 0.12, 12), -0.08
  )
  c.soft(geometry.ellipse(0.0, lo_bottom - 0.03, 0.14, 0.025, 10), -0.1, 0.08)
  for cu, cv_, _ in corners:
    c.soft(geometry.ellipse(cu, cv_, 0.04, 0.04, 8), 0.2, 0.05)


def front_hair(
  c: canvas_lib.Canvas, s: appearance.Speaker, head: shapes.HeadShapes
) -> None:
  """Front hair over the forehead, with strands for texture and a sheen."""
  hair = np.array(s.hair)
  c.fill(head.hair_cap, hair, dz=-0.05)
  for strand, k in head.strands:
    c.line(strand, np.clip(hair * k, 0, 255), 0.012, dz=-0.05)
  c.soft(head.hair_cap, 0.0, -0.05)
  c.soft(
    geometry.ellipse(0.25 * _light_side(s), -s.forehead - 0.35, 0.45, 0.15, 12),
    -0.15,
    -0.05,
  )
