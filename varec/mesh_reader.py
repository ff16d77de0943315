"""Faces as face-mesh models read them: landmarks frame after frame.

`MeshReader` follows faces through a video as MediaPipe's VIDEO mode does,
`still_landmarks` reads a pre-cropped face framed alike, and `model_input`
turns a face's landmarks into what a face-mesh model (`models.FaceMesh`)
reads. Dataset builds (`preprocess.clip`) and `predict.py` (`predictor`) both
go through here; the networks themselves are `varec.face_mesh`'s.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from varec import face_detection
from varec import face_mesh

# The narrowest face predict.py and the builds find by default, in pixels,
# and the most faces predict.py follows in a frame.
MIN_FACE_PX = 60
MAX_FACES = 10


def model_input(landmarks: np.ndarray) -> np.ndarray:
  """A face's (478, 3) landmarks in source pixels as the face-mesh model reads
  them: centred on their mean, in units of their spread (float32).

  A shift and a uniform scale, which the blendshape network undoes itself
  (it centres and scales its 146 points), so its scores are MediaPipe's; the
  head's features no longer depend on where the face was or how large.
  """
  points = np.asarray(landmarks, np.float64)
  centred = points - points.mean(0)
  spread = np.sqrt((centred[:, :2] ** 2).sum(-1).mean())
  return (centred / max(spread, 1e-9)).astype(np.float32)


def with_crop_size(crop_size: int) -> int:
  """The length of `with_crop`'s vector for crops of side `crop_size`."""
  return face_mesh.NUM_LANDMARKS * 3 + crop_size * crop_size


def with_crop(landmarks: np.ndarray, crops: np.ndarray) -> np.ndarray:
  """(..., 478, 3) landmarks (`model_input`) and (..., S, S, 1) uint8 crops
  of the same faces as one float32 (..., 1434 + S * S) vector per face: what
  a face-mesh model with the crop feature reads (`split_crop` undoes it).

  One array per frame, so that windows, batches and mirror speakers handle
  these inputs as they handle crops or landmarks alone.
  """
  lead = landmarks.shape[:-2]
  if crops.shape[:-3] != lead:
    raise ValueError(
      f"landmarks {landmarks.shape} and crops {crops.shape} are not of the "
      "same faces"
    )
  return np.concatenate(
    [
      landmarks.reshape(lead + (-1,)).astype(np.float32),
      crops.reshape(lead + (-1,)).astype(np.float32),
    ],
    axis=-1,
  )


def split_crop(x, crop_size: int):
  """(landmarks (..., 478, 3), crops (..., S, S, 1) in 0-255) of `with_crop`'s
  vectors; numpy or jax arrays."""
  n = face_mesh.NUM_LANDMARKS * 3
  lead = x.shape[:-1]
  return (
    x[..., :n].reshape(lead + (face_mesh.NUM_LANDMARKS, 3)),
    x[..., n:].reshape(lead + (crop_size, crop_size, 1)),
  )


@dataclasses.dataclass
class _Track:
  """One face followed from frame to frame (MediaPipe's VIDEO mode)."""

  person: int
  roi: face_mesh.Roi


class MeshReader:
  """Faces and their landmarks frame after frame, as MediaPipe's VIDEO mode
  follows them: the detector runs on every `detect_every`-th frame (and whenever
  no face is followed); in between, each face's ROI comes from its landmarks in
  the frame before (`face_mesh.Roi.of_landmarks`). A face the landmark network
  no longer confirms (presence <= 0.5) is dropped. Detections are matched to
  followed faces by their boxes' overlap, so a person keeps their number; new
  faces get new numbers, the largest first. With `stills`, each frame is one
  pre-cropped face, read on its own (`still_landmarks`).
  """

  def __init__(
    self,
    landmarker: face_mesh.FaceLandmarker,
    detect_every: int,
    min_face: float | None,
    max_faces: int,
    stills: bool = False,
  ):
    self.landmarker = landmarker
    self.stills = stills
    self.detect_every = max(1, detect_every)
    self.min_face = min_face
    self.max_faces = max_faces
    self._tracks: list[_Track] = []
    self._position = 0
    self._next_person = 0
    self.detections = 0

  def read(self, rgb: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{person: (box (4,), landmarks (478, 3) in source pixels)} of one RGB
    frame."""
    if self.stills:
      points = still_landmarks(self.landmarker, rgb)
      return {} if points is None else {0: (landmark_box(points), points)}
    if self._position % self.detect_every == 0 or not self._tracks:
      self._detect(rgb)
    self._position += 1
    if not self._tracks:
      return {}
    points, presence = self.landmarker.landmarks(
      rgb, [t.roi for t in self._tracks]
    )
    kept, faces = [], {}
    for track, p, score in zip(self._tracks, points, presence):
      if score > face_mesh.MIN_PRESENCE:
        track.roi = face_mesh.Roi.of_landmarks(p)
        kept.append(track)
        faces[track.person] = (landmark_box(p), p)
    self._tracks = kept
    return faces

  def _detect(self, rgb: np.ndarray) -> None:
    self.detections += 1
    found = self.landmarker.detect(rgb, self.min_face)
    # The largest faces, largest first, so that numbers go by size.
    rois = sorted(
      (face_mesh.Roi.of_detection(d) for d in found), key=lambda r: -max(r.size)
    )
    rois = rois[: self.max_faces]
    tracks = []
    for roi in rois:
      overlaps = [
        face_detection.iou(roi.box, t.roi.box[None])[0] for t in self._tracks
      ]
      best = int(np.argmax(overlaps)) if overlaps else -1
      if best >= 0 and overlaps[best] > 0.3:
        tracks.append(_Track(self._tracks.pop(best).person, roi))
      else:
        tracks.append(_Track(self._next_person, roi))
        self._next_person += 1
    self._tracks = tracks


def still_landmarks(
  landmarker: face_mesh.FaceLandmarker, rgb: np.ndarray
) -> np.ndarray | None:
  """The (478, 3) landmarks of a pre-cropped face (an image that is the face's
  box, as small as 48x48), or None where the network finds no face.

  Framed as a face in a video is: the image taken as the detector's box
  (`face_mesh.Roi.of_detection`'s scale, level, edges replicated), then, from
  those landmarks, the ROI the next video frame would get
  (`face_mesh.Roi.of_landmarks`), and the landmarks read again there.
  """
  height, width = rgb.shape[:2]
  roi = face_mesh.Roi(
    ((width - 1) / 2, (height - 1) / 2),
    (width * face_mesh.ROI_SCALE, height * face_mesh.ROI_SCALE),
    0.0,
  )
  points, _ = landmarker.landmarks(rgb, [roi])
  points, presence = landmarker.landmarks(
    rgb, [face_mesh.Roi.of_landmarks(points[0])]
  )
  return points[0] if presence[0] > face_mesh.MIN_PRESENCE else None


def landmark_box(points: np.ndarray) -> np.ndarray:
  """(x0, y0, x1, y1): the box of a face's landmarks (source pixels)."""
  return np.concatenate([points[:, :2].min(0), points[:, :2].max(0)]).astype(
    np.float64
  )
