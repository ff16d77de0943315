"""Face-unit geometry: curves, the head surface, the head pose and its
projection.

Faces are built from 3-D landmarks in face units (the cheekbone half-width),
with the origin between the eyes, v pointing down and z towards the camera.
Points are given as (u, v) and get their depth from the head ellipsoid
(`surface_z`) plus a per-shape offset; `Placement.project` rotates them with the
head pose and maps them orthographically to pixels, and `to_fixed` to cv2's
sub-pixel fixed point.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from varec.synthetic import appearance

SHIFT = 4  # Sub-pixel bits for cv2 drawing.
# Head rotation pivots (neck joint behind the face), in face units.
_PITCH_PIVOT = (0.6, -1.0)  # (v, z)
_YAW_PIVOT_Z = -1.0


def catmull_rom_closed(points, samples: int) -> np.ndarray:
  """Smooth closed curve through `points` (N, 2), `samples` points per
  segment."""
  p = np.asarray(points, np.float64)
  p0, p1, p2, p3 = np.roll(p, 1, 0), p, np.roll(p, -1, 0), np.roll(p, -2, 0)
  t = np.linspace(0, 1, samples, endpoint=False)[None, :, None]
  p0, p1, p2, p3 = (q[:, None, :] for q in (p0, p1, p2, p3))
  curve = 0.5 * (
    2 * p1
    + (p2 - p0) * t
    + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
    + (3 * p1 - p0 - 3 * p2 + p3) * t**3
  )
  return curve.reshape(-1, 2)


@functools.cache
def _bezier_basis(n: int) -> np.ndarray:
  t = np.linspace(0, 1, n)[:, None]
  return np.concatenate([(1 - t) ** 2, 2 * t * (1 - t), t**2], 1)


def bezier(p0, p1, p2, n: int = 12) -> np.ndarray:
  """Quadratic curve of n points from p0 to p2 passing through p1 at its
  middle."""
  ctrl = np.array([p0, p1, p2], np.float64)
  ctrl[1] = 2 * ctrl[1] - 0.5 * (ctrl[0] + ctrl[2])
  return _bezier_basis(n) @ ctrl


@functools.cache
def _unit_circle(n: int) -> np.ndarray:
  a = np.linspace(0, 2 * np.pi, n, endpoint=False)
  return np.stack([np.cos(a), np.sin(a)], 1)


def ellipse(cu, cv, ru, rv, n: int = 16) -> np.ndarray:
  """n points of the axis-aligned ellipse centred at (cu, cv) with radii (ru,
  rv)."""
  return _unit_circle(n) * (ru, rv) + (cu, cv)


def surface_z(u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Depth of the head ellipsoid's front surface (0 at the face centre)."""
  r2 = (u / 1.15) ** 2 + ((v - 0.1) / 2.0) ** 2
  return -1.0 + np.sqrt(np.maximum(0.04, 1.0 - r2))


def smoothstep(x):
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3 - 2 * x)


@dataclasses.dataclass
class Pose:
  tx: float = 0.0  # Face units.
  ty: float = 0.0
  pitch: float = 0.0  # Degrees; positive = head down.
  yaw: float = 0.0
  roll: float = 0.0


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where a speaker's face sits in the frame, at rest."""

  cx: float  # Pixel position of the face-unit origin (between the eyes).
  cy: float
  a: float  # Pixels per face unit.

  def project(self, uv: np.ndarray, pose: Pose, dz=0.0) -> np.ndarray:
    """Face-unit points (N, 2) plus depth offsets -> pixel coordinates (N,
    2)."""
    u, v = uv[:, 0], uv[:, 1]
    z = surface_z(u, v) + dz
    yaw, pitch, roll = np.radians([pose.yaw, pose.pitch, pose.roll])
    cy_, sy_ = np.cos(yaw), np.sin(yaw)
    x1 = u * cy_ + (z - _YAW_PIVOT_Z) * sy_
    z1 = -u * sy_ + (z - _YAW_PIVOT_Z) * cy_ + _YAW_PIVOT_Z
    vp, zp = _PITCH_PIVOT
    y1 = vp + (v - vp) * np.cos(pitch) + (z1 - zp) * np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    x2 = x1 * cr - y1 * sr + pose.tx
    y2 = x1 * sr + y1 * cr + pose.ty
    return np.stack([self.cx + self.a * x2, self.cy + self.a * y2], 1)


def place(speaker: appearance.Speaker, size: tuple[int, int]) -> Placement:
  """The speaker's scale and eye-line position in a (width, height) frame."""
  s = speaker
  width, height = size
  a = s.face_height * height / (s.forehead + 1.66 * s.face_length)
  top_of_hair = s.forehead + 0.62 + s.hair_volume
  # Eye line low enough to keep the hair in frame, high enough to show
  # shoulders.
  lo = (top_of_hair + 0.05) * a / height + 0.02
  hi = 1.0 - (1.66 * s.face_length + 1.3) * a / height
  cx = s.x_position * width
  cy = (lo + max(hi - lo, 0.0) * s.y_position) * height
  return Placement(cx, cy, a)


def to_fixed(px: np.ndarray, origin=(0.0, 0.0)) -> np.ndarray:
  """Pixel coordinates -> int32 fixed point for cv2 drawing with `SHIFT`."""
  return np.round((px - origin) * (1 << SHIFT)).astype(np.int32)
