"""The face mesh's geometry (`varec.mesh_geometry`): MediaPipe's canonical face
read from the .task, head pose and expression shape from a face's landmarks,
and landmarks mirrored as the mirror image's reading."""

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from varec import face_mesh
from varec import mesh_geometry
from varec import mesh_reader


@pytest.fixture(scope="module")
def face(face_landmarker_task):
  return mesh_geometry.canonical_face(str(face_landmarker_task))


def _rotation(yaw, pitch, roll):
  """R = Ry Rx Rz, as `mesh_geometry.head_pose` reads it."""
  cy, sy, cp, sp, cr, sr = (
    np.cos(yaw),
    np.sin(yaw),
    np.cos(pitch),
    np.sin(pitch),
    np.cos(roll),
    np.sin(roll),
  )
  ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
  rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
  rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
  return ry @ rx @ rz


def _posed(face, rotation, scale=3.0, shift=(5.0, -2.0, 1.0)):
  """The canonical face posed, as image-coordinate landmarks (478, 3)."""
  mesh = scale * face.vertices @ rotation.T + np.asarray(shift)
  mesh = mesh * np.array([1.0, -1.0, -1.0])  # canonical -> image axes
  irises = np.repeat(mesh[:1], 10, axis=0)
  return np.concatenate([mesh, irises]).astype(np.float32)


def test_the_canonical_face_is_read_from_the_task(face):
  assert face.vertices.shape == (mesh_geometry.NUM_MESH_VERTICES, 3)
  assert len(face.basis) == len(face.weights) > 10
  assert (face.weights > 0).all()
  assert (face.basis < mesh_geometry.NUM_MESH_VERTICES).all()
  # A face about 15 cm tall, symmetric about x = 0.
  height = np.ptp(face.vertices[:, 1])
  assert 10 < height < 25
  partner = mesh_geometry.mirror_of(face.vertices)
  np.testing.assert_allclose(
    face.vertices[partner] * [-1, 1, 1], face.vertices, atol=1e-4
  )


def test_a_malformed_metadata_file_is_refused():
  with pytest.raises(ValueError, match="canonical vertices"):
    mesh_geometry.parse_metadata(b"")
  with pytest.raises(ValueError, match="wire type"):
    mesh_geometry.parse_metadata(bytes([0x0B, 0x00]))


def test_an_asymmetric_face_has_no_mirror():
  vertices = np.array([[1.0, 0, 0], [-2.0, 0, 0], [-2.1, 0, 0]])
  with pytest.raises(ValueError, match="not symmetric"):
    mesh_geometry.mirror_of(vertices)


@pytest.mark.parametrize(
  "angles", [(0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (0.2, -0.3, 0.25)]
)
def test_pose_and_shape_of_a_posed_canonical_face(face, angles):
  points = mesh_reader.model_input(_posed(face, _rotation(*angles)))
  rotation, scale, _ = mesh_geometry.align(jnp.asarray(points), face)
  np.testing.assert_allclose(
    mesh_geometry.head_pose(rotation), angles, atol=1e-4
  )
  assert float(scale) > 0
  # Pose, size and place removed: nothing is left of the canonical face.
  shape = mesh_geometry.expression_shape(jnp.asarray(points), face)
  assert shape.shape == (mesh_geometry.NUM_MESH_VERTICES * 3,)
  np.testing.assert_allclose(shape, 0, atol=1e-3)


def test_a_deformation_is_in_the_expression_shape_not_the_pose(face):
  # The lower lip and chin 1 cm down (canonical space), the head turned.
  lower = np.flatnonzero(
    (np.abs(face.vertices[:, 0]) < 2)
    & (face.vertices[:, 1] < -3)
    & (face.vertices[:, 1] > -6)
  )
  moved = _posed(face, _rotation(0.3, 0.0, 0.0))
  moved[lower, 1] += 3.0  # image y is down; the face is at scale 3
  points = jnp.asarray(mesh_reader.model_input(moved))
  rotation = mesh_geometry.align(points, face)[0]
  np.testing.assert_allclose(
    mesh_geometry.head_pose(rotation), [0.3, 0, 0], atol=0.02
  )
  shape = np.asarray(mesh_geometry.expression_shape(points, face)).reshape(
    -1, 3
  )
  rest = np.setdiff1d(np.arange(len(shape)), lower)
  moved_by = np.linalg.norm(shape[lower], axis=-1).mean()
  assert 0.5 < moved_by < 1.5
  assert moved_by > 5 * np.linalg.norm(shape[rest], axis=-1).mean()


def test_mirrored_landmarks_are_the_mirror_images_reading(
  face_landmarker_task, real_faces, face
):
  """Mirroring a face's landmarks (x negated, left and right ids swapped)
  gives what the landmark network reads in the mirror image, to about 1% of
  the face's spread; without swapping the ids, 50 times more."""
  task = str(face_landmarker_task)
  partner = mesh_geometry.mirror_indices(task)
  np.testing.assert_array_equal(partner[partner], np.arange(len(partner)))
  landmarker = face_mesh.cached(task)
  for name in ("single_face.jpg", "multi_face.jpg", "45-m7-di-ph.jpg"):
    image = cv2.cvtColor(cv2.imread(str(real_faces / name)), cv2.COLOR_BGR2RGB)
    faces = landmarker(image, min_face=60)
    flipped = landmarker(np.ascontiguousarray(image[:, ::-1]), min_face=60)
    assert len(faces) == len(flipped), name
    width = image.shape[1]
    for reading in faces:
      centre = reading.landmarks[:, :2].mean(0)
      other = min(
        flipped,
        key=lambda f: np.linalg.norm(
          f.landmarks[:, :2].mean(0) - [width - 1 - centre[0], centre[1]]
        ),
      )
      points = mesh_reader.model_input(reading.landmarks)
      target = mesh_reader.model_input(other.landmarks)
      error = np.abs(mesh_geometry.mirror(points, partner) - target).mean()
      unswapped = np.abs(points * [-1, 1, 1] - target).mean()
      assert error < 0.03 and unswapped > 0.3, (name, error, unswapped)
      # The head's yaw and roll change sign, its pitch does not.
      pose = np.asarray(
        mesh_geometry.head_pose(
          mesh_geometry.align(jnp.asarray(points), face)[0]
        )
      )
      mirrored = np.asarray(
        mesh_geometry.head_pose(
          mesh_geometry.align(jnp.asarray(target), face)[0]
        )
      )
      np.testing.assert_allclose(
        mirrored, pose * [-1, 1, -1], atol=np.radians(3)
      )
