"""The canvas that face parts draw on: shapes in face units, projected once per
frame by `compositing.Renderer`. Its own module so that `face_parts` (which
draws on it) and `compositing` (which renders it) do not import each other."""

from __future__ import annotations

import numpy as np


class Canvas:
  """Collects shapes in face units so that one projection serves a whole
  frame."""

  def __init__(self):
    self.points, self.depths, self.ops = [], [], []

  def _add(self, op, uv, dz, *args):
    uv = np.asarray(uv, np.float64)
    self.points.append(uv)
    self.depths.append(np.full(len(uv), dz))
    self.ops.append((op, len(uv), args))

  def fill(self, uv, colour, dz=0.0, to_mask=True):
    """Opaque polygon: albedo colour (and head coverage unless
    to_mask=False)."""
    self._add("fill", uv, dz, tuple(map(float, colour)), to_mask)

  def line(self, uv, colour, width, dz=0.0):
    """Polyline in albedo, width in face units."""
    self._add("line", uv, dz, tuple(map(float, colour)), width)

  def soft(self, uv, value, dz=0.0):
    """Polygon in the shade layer (blurred later): >0 darkens, <0 brightens."""
    self._add("soft", uv, dz, float(value))
