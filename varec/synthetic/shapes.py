"""A speaker's static head shapes in face units: outline, beard area and hair.

Built once per speaker from its proportions and hair style; `face_parts` moves
and draws them every frame.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from varec.synthetic import appearance
from varec.synthetic import geometry

# Where the hair at the sides ends (v, face units): above the ears for short
# styles, below them for long ones.
_SIDE_END = {
  "short": -0.2,
  "crop": -0.25,
  "receding": -0.15,
  "medium": 0.2,
  "curly": 0.35,
  "bun": -0.1,
  "long": 0.3,
  "bob": 0.3,
  "fringe": 0.3,
}


@dataclasses.dataclass
class HeadShapes:
  """Neutral outlines of one speaker's head (face units)."""

  outline: np.ndarray  # Face skin, closed.
  beard: np.ndarray  # Stubble area: the jaw closed above the upper lip.
  # Front hair: the silhouette over the skull down to the hairline.
  hair_cap: np.ndarray
  hair_back: np.ndarray | None  # Long styles: the hair behind the face.
  bun: np.ndarray | None
  show_ears: bool
  # Polylines inside the cap, brightness factors.
  strands: list[tuple[np.ndarray, float]]


def head_shapes(speaker: appearance.Speaker) -> HeadShapes:
  """The speaker's neutral head shapes; curls and strands are drawn from its
  texture_seed."""
  s = speaker
  top = -(s.forehead + 0.6)  # Top of the skull.
  outline = _outline(s, top)
  # One generator for the curls and the strands, drawn in that order.
  rng = np.random.default_rng(s.texture_seed)
  side_end = _SIDE_END[s.hair_style]
  sil, rx, ry = _hair_silhouette(s, top, side_end, rng)
  hair_cap = np.concatenate([sil, _hairline(s, side_end)])
  bun = None
  if s.hair_style == "bun":
    bun = geometry.ellipse(0.0, top - s.hair_volume - 0.22, 0.38, 0.32, 20)
  return HeadShapes(
    outline=outline,
    beard=_beard(outline),
    hair_cap=hair_cap,
    hair_back=_hair_back(s.hair_style, sil, rx),
    bun=bun,
    show_ears=s.hair_style not in ("long", "bob", "fringe", "curly"),
    strands=_strands(hair_cap, rx, ry, rng),
  )


def _outline(s: appearance.Speaker, top: float) -> np.ndarray:
  """A smooth closed curve through the right half's landmarks and their
  mirror images."""
  fw, L = s.face_width, s.face_length
  half = [
    (0.0, top),
    (0.6 * fw, top + 0.14),
    (0.9 * fw, -0.95),
    (1.0 * fw, -0.35),
    (1.0 * fw, 0.15),
    (0.95 * fw, 0.6),
    (s.jaw_width, 1.15 * L),
    (0.5 * (s.jaw_width + s.chin_width) + 0.05, 1.5 * L),
    (s.chin_width, 1.63 * L),
    (0.0, 1.67 * L),
  ]
  right = np.array(half)
  return geometry.catmull_rom_closed(
    np.concatenate([right, right[-2:0:-1] * [-1, 1]]), 6
  )


def _beard(outline: np.ndarray) -> np.ndarray:
  # The jaw part of the outline (contiguous: right jaw, chin, left jaw) closed
  # above the upper lip.
  jaw = outline[outline[:, 1] > 0.55]
  upper = np.array(
    [(-0.42, 0.66), (-0.2, 0.73), (0.0, 0.75), (0.2, 0.73), (0.42, 0.66)]
  )
  return np.concatenate([jaw * [0.97, 1.0], upper])


def _hair_silhouette(
  s: appearance.Speaker, top: float, side_end: float, rng: np.random.Generator
):
  """Outer edge of the hair over the skull, and the skull-concentric radii
  (rx, ry)."""
  ang = np.linspace(np.pi, 2 * np.pi, 25)
  rx, ry = 1.06 * s.face_width + s.hair_volume, -top + s.hair_volume
  sil = np.stack([rx * np.cos(ang), ry * np.sin(ang) * 0.98], 1)
  if s.hair_style == "curly":
    sil *= (1 + 0.05 * np.sin(ang * 14 + rng.uniform(0, 6)))[:, None]
  sil = np.concatenate([[(-rx, side_end)], sil, [(rx, side_end)]])
  return sil, rx, ry


def _hairline(s: appearance.Speaker, side_end: float) -> np.ndarray:
  """Where the hair meets the face, from the right side over the forehead to
  the left."""
  fw, fh = s.face_width, s.forehead
  temple = 0.2 if s.hair_style == "receding" else 0.0
  hairline = np.array(
    [
      (0.99 * fw, side_end + 0.05),
      (0.97 * fw, -0.55),
      (0.78 * fw, -0.93 * fh - temple),
      (0.35, -fh - 0.03 - 0.5 * temple),
      (0.0, -fh),
    ]
  )
  if s.hair_style == "fringe":
    hairline = np.array(
      [
        (0.99 * fw, side_end + 0.05),
        (0.96 * fw, -0.62),
        (0.6, -0.86),
        (0.2, -0.88),
        (0.0, -0.87),
      ]
    )
  return np.concatenate([hairline, hairline[-2::-1] * [-1, 1]])


def _hair_back(style: str, sil: np.ndarray, rx: float) -> np.ndarray | None:
  """For long styles, the hair behind the face (drawn before it), else None."""
  back = {
    "long": [
      (rx + 0.2, 0.5),
      (rx + 0.3, 1.6),
      (rx + 0.35, 2.6),
      (0.7, 2.85),
      (-0.7, 2.85),
      (-rx - 0.35, 2.6),
      (-rx - 0.3, 1.6),
      (-rx - 0.2, 0.5),
    ],
    "bob": [
      (rx + 0.08, 0.4),
      (rx + 0.02, 1.15),
      (0.8, 1.45),
      (-0.8, 1.45),
      (-rx - 0.02, 1.15),
      (-rx - 0.08, 0.4),
    ],
    "curly": [
      (rx + 0.15, 0.4),
      (rx + 0.1, 1.0),
      (0.7, 1.35),
      (-0.7, 1.35),
      (-rx - 0.1, 1.0),
      (-rx - 0.15, 0.4),
    ],
    "fringe": [
      (rx + 0.15, 0.5),
      (rx + 0.2, 1.5),
      (0.8, 2.0),
      (-0.8, 2.0),
      (-rx - 0.2, 1.5),
      (-rx - 0.15, 0.5),
    ],
  }.get(style)
  if back is None:
    return None
  crown = sil[1:-1:4] * 1.04
  return geometry.catmull_rom_closed(np.concatenate([crown, back]), 4)


def _strands(
  hair_cap: np.ndarray, rx: float, ry: float, rng: np.random.Generator
):
  """Arcs concentric with the skull, cut to the part inside the cap, for
  texture."""
  cap_px = np.round(hair_cap * 1000).astype(np.float32)
  strands = []
  for _ in range(24):
    k = rng.uniform(0.7, 0.97)
    start = rng.uniform(np.pi, 2 * np.pi - 0.6)
    t = np.linspace(start, start + rng.uniform(0.4, 0.9), 12)
    arc = np.stack([rx * k * np.cos(t), ry * k * np.sin(t)], 1)
    inside = np.array(
      [
        cv2.pointPolygonTest(cap_px, (float(x), float(y)), True) > 25
        for x, y in arc * 1000
      ]
    )
    if inside.sum() >= 4:
      first = int(np.argmax(inside))
      run = np.argmin(np.append(inside[first:], False))
      strands.append((arc[first : first + run], rng.uniform(0.7, 1.3)))
  return strands
