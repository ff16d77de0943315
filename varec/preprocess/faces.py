"""Frames -> faces: §4.5 step 3's face detection and the face box of every
frame.

Owns the third stage of the data's way (video -> frames -> faces -> model
input): the detectors (dlib's HOG frontal detector, the paper's, or an
OpenCV Haar cascade), the scale they read a frame at (`detection_scale`),
detection on a schedule (`detections`), and the boxes of the frames between
and of failed detections (`resolved_boxes`), in one streaming step
(`face_boxes`). Cutting the crops from these boxes is `varec.preprocess.crop`'s.
"""

from __future__ import annotations

import collections
import itertools
import pathlib
import threading
from collections.abc import Iterable
from collections.abc import Iterator

import cv2
import numpy as np

from varec.preprocess import config as preprocess_config
from varec.preprocess import decode

_detector_local = threading.local()

# `data.face_detector`'s default: dlib's HOG frontal face detector (the
# paper's).
DLIB_HOG = "dlib_hog"
# Any other value names an OpenCV Haar cascade file, run with fer's settings
# (the pipeline fer's FER2013 network was trained for): scale step, neighbours,
# and the smallest face side in source pixels.
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 5
HAAR_MIN_FACE = 50
# The narrowest face (pixels, in the image the detector reads) each detector
# finds reliably; `detection_scale` reads frames so that a face `min_face` wide
# becomes this. dlib's HOG frontal detector scans an 80x80 window (dlib: faces
# "larger than about 80x80"; it finds the synthetic actors from 48-60 px, so 80
# leaves a margin). A Haar cascade: twice its window (24 px for fer's), since
# with HAAR_MIN_NEIGHBORS faces near the window itself are missed
# (benchmarks/results/detection_scale.md).
DLIB_MIN_FACE = 80
HAAR_MIN_FACE_WINDOWS = 2


def _dlib_detector():
  # One detector per process/thread: dlib objects are not picklable.
  if not hasattr(_detector_local, "detector"):
    import dlib  # pylint: disable=g-import-not-at-top

    _detector_local.detector = dlib.get_frontal_face_detector()
  return _detector_local.detector


def haar_cascade(path) -> "cv2.CascadeClassifier":
  """The OpenCV cascade in file `path`, loaded once per process/thread.

  Raises:
    ValueError: naming the file, if it is not a cascade OpenCV can read.
  """
  cascades = _detector_local.__dict__.setdefault("cascades", {})
  try:
    stat = pathlib.Path(path).stat()
  except OSError as e:
    raise ValueError(
      f"{path}: not an OpenCV face cascade file ({e.strerror})"
    ) from None
  # A replaced file is read anew.
  key = (str(path), stat.st_mtime_ns, stat.st_size)
  if key not in cascades:
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
      raise ValueError(
        f"{path}: not an OpenCV face cascade file that can be read"
      )
    cascades[key] = cascade
  return cascades[key]


def smallest_face(detector: str = DLIB_HOG) -> float:
  """The narrowest face `detector` finds reliably, in pixels of the image it
  reads."""
  if detector == DLIB_HOG:
    return DLIB_MIN_FACE
  window = haar_cascade(detector).getOriginalWindowSize()
  return HAAR_MIN_FACE_WINDOWS * max(window)


def detection_scale(
  shape: tuple,
  max_side: int,
  detector: str = DLIB_HOG,
  min_face: float | None = None,
) -> float:
  """The factor a frame of `shape` is resized by for detection.

  Without `min_face`, the checkpoint's recorded detection: down to `max_side`
  (`data.detect_max_side`), never enlarged. With it, the larger of that and
  the scale at which a face `min_face` source pixels wide becomes the
  detector's `smallest_face`, whatever the frame's size.
  """
  scale = min(1.0, max_side / max(shape[:2]))
  if min_face:
    scale = max(scale, smallest_face(detector) / min_face)
  return scale


def detect_faces(
  gray: np.ndarray,
  max_side: int,
  detector: str = DLIB_HOG,
  min_face: float | None = None,
) -> np.ndarray:
  """Face detection (`detector`: `DLIB_HOG` or a Haar cascade file) on a copy
  downscaled to `max_side`: the recorded detection.

  With `min_face`, where `detection_scale` reads finer than that, the faces
  only the finer reading finds (centres outside every box found before) are
  added; the faces found before keep their boxes, so a video whose faces the
  checkpoint saw is cropped exactly as before. A Haar cascade's finer
  reading looks for faces from `min_face` where that is below `HAAR_MIN_FACE`.

  Returns (N, 4) float boxes (x0, y0, x1, y1) in `gray`'s pixels, largest first.
  """
  recorded = detection_scale(gray.shape, max_side)
  boxes = _detect_at(gray, recorded, detector, HAAR_MIN_FACE)
  scale = detection_scale(gray.shape, max_side, detector, min_face)
  if scale > recorded:
    smallest = min(HAAR_MIN_FACE, min_face)
    finer = _detect_at(gray, scale, detector, smallest)
    centres = (finer[:, :2] + finer[:, 2:]) / 2
    inside = (
      (boxes[None, :, :2] < centres[:, None]).all(-1)
      & (centres[:, None] < boxes[None, :, 2:]).all(-1)
    ).any(1)
    boxes = np.concatenate([boxes, finer[~inside]])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    boxes = boxes[np.argsort(-area, kind="stable")]
  return boxes


def _detect_at(
  gray: np.ndarray, scale: float, detector: str, smallest: float
) -> np.ndarray:
  """`detect_faces`' boxes, largest first, of one reading at `scale` (a Haar
  cascade's faces from `smallest` source pixels)."""
  small = (
    gray
    if scale == 1.0
    else cv2.resize(
      gray,
      None,
      fx=scale,
      fy=scale,
      interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR,
    )
  )
  if detector == DLIB_HOG:
    found = [
      [f.left(), f.top(), f.right(), f.bottom()]
      for f in _dlib_detector()(small, 0)
    ]
  else:
    min_side = max(1, round(smallest * scale))
    found = [
      [x, y, x + w, y + h]
      for x, y, w, h in haar_cascade(detector).detectMultiScale(
        small,
        scaleFactor=HAAR_SCALE_FACTOR,
        minNeighbors=HAAR_MIN_NEIGHBORS,
        flags=cv2.CASCADE_SCALE_IMAGE,
        minSize=(min_side, min_side),
      )
    ]
  boxes = np.array(
    sorted(found, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])), np.float64
  )
  return boxes.reshape(-1, 4) / scale


def detect_largest_face(gray: np.ndarray, max_side: int) -> np.ndarray | None:
  """The largest face found by `detect_faces`, or None."""
  boxes = detect_faces(gray, max_side)
  return boxes[0] if len(boxes) else None


def detection_schedule(num_frames: int, every: int) -> np.ndarray:
  """Frames on which detection runs: every `every`-th frame and the last one."""
  attempted = np.zeros(num_frames, bool)
  attempted[:: max(1, every)] = True
  attempted[-1] = True
  return attempted


def detections(
  frames: Iterable[decode.Frame],
  config: preprocess_config.PreprocessConfig,
  stats: dict,
  min_face: float | None = None,
) -> Iterator[decode.Frame]:
  """Runs face detection on `detection_schedule`'s frames (one frame of
  lookahead finds the last), setting `attempted`, `detected` and the largest
  face's `box`.

  `stats` counts the detections and those that found several faces. `min_face`:
  see `detection_scale` (predict-time only; builds keep their recorded scale).
  """
  every = max(1, config.detect_every)

  def detect(frame: decode.Frame, position: int, last: bool) -> decode.Frame:
    if position % every == 0 or last:
      boxes = detect_faces(
        frame.gray, config.detect_max_side, config.face_detector, min_face
      )
      stats["detections"] += 1
      stats["multiple_faces"] += len(boxes) > 1
      frame.attempted, frame.detected = True, bool(len(boxes))
      frame.box = boxes[0] if len(boxes) else None
      frame.boxes = boxes
    return frame

  previous = None
  for position, frame in enumerate(frames):
    if previous is not None:
      yield detect(previous, position - 1, last=False)
    previous = frame
  if previous is not None:
    yield detect(previous, position, last=True)


def _interpolated(
  start: decode.Frame, end: decode.Frame, frames: list[decode.Frame]
) -> None:
  """Boxes of the frames between two attempted ones, linear in time; none where
  either end has none."""
  if start.box is None or end.box is None:
    return
  xp = [start.index, end.index]
  at = [f.index for f in frames]
  boxes = np.stack(
    [np.interp(at, xp, [start.box[k], end.box[k]]) for k in range(4)], axis=1
  )
  for frame, box in zip(frames, boxes):
    frame.box = box


def resolved_boxes(
  frames: Iterable[decode.Frame], fill: bool
) -> Iterator[decode.Frame]:
  """Gives the frames of `detections` their boxes, in order.

  A failed detection keeps no box, or with `fill` takes the nearest successful
  one in time (ties go to the earlier frame); frames not attempted are
  interpolated between the attempted frames around them. A frame is held
  until its box is known: with `fill`, until the nearest success is, which
  needs as many frames ahead as the gap behind (or, before the first face,
  until one is found). Failed frames still waiting at the end (no face in the
  whole video, with `fill`) keep no box.
  """
  held: collections.deque = collections.deque()
  waiting: list[
    decode.Frame
  ] = []  # Failed detections awaiting their nearest face.
  found = start = None  # The last success; the last attempted frame yielded.
  for frame in itertools.chain(frames, [None]):
    if frame is not None:
      held.append(frame)
      if frame.detected:
        for w in waiting:
          nearest = found is not None and w.index - found.index <= (
            frame.index - w.index
          )
          w.box = found.box if nearest else frame.box
        waiting, found = [], frame
      elif frame.attempted and fill:
        waiting.append(frame)
    # Any later success lies at least as far away as the one before.
    while (
      waiting
      and found is not None
      and (
        frame is None or frame.index + 1 >= 2 * waiting[0].index - found.index
      )
    ):
      waiting.pop(0).box = found.box
    if frame is None:
      waiting = []  # No face anywhere: they keep none.
    while held:
      at = next((i for i, f in enumerate(held) if f.attempted), None)
      if at is None or (waiting and held[at] is waiting[0]):
        break
      between = list(itertools.islice(held, at))
      if between:
        _interpolated(start, held[at], between)
      start = held[at]
      for _ in range(at + 1):
        yield held.popleft()


def fill_missing_boxes(boxes: np.ndarray, attempted: np.ndarray) -> np.ndarray:
  """`resolved_boxes` with `fill` on whole arrays: every frame gets a box.

  Args:
    boxes: (T, 4) float, NaN rows where there is no detection.
    attempted: (T,) bool, frames on which detection ran (the first and last
      among them).

  Returns:
    (T, 4) float boxes; raises ValueError if no frame has a detection.
  """
  found = ~np.isnan(boxes).any(axis=1)
  if not found.any():
    raise ValueError("no face detected in any frame")
  frames = [
    decode.Frame(
      i, 0.0, None, None, box if ok else None, bool(tried or ok), bool(ok)
    )
    for i, (box, tried, ok) in enumerate(zip(boxes, attempted, found))
  ]
  return np.stack([f.box for f in resolved_boxes(frames, fill=True)])


def whole_frame_box(gray: np.ndarray) -> np.ndarray:
  """The box (x0, y0, x1, y1) of a whole frame: a pre-cropped face's."""
  return np.array([0.0, 0.0, gray.shape[1], gray.shape[0]])


def face_boxes(
  frames: Iterable[decode.Frame],
  config: preprocess_config.PreprocessConfig,
  on_failed_detection: str,
  stats: dict,
  name="video",
  min_face: float | None = None,
) -> Iterator[decode.Frame]:
  """Step 3's boxes for equalised full frames: `detections` (with `min_face`),
  then `resolved_boxes` under `on_failed_detection` (see `decode.DecodePolicy`).

  Pre-cropped frames (`config.faces_cropped`) are their face's box whole.

  Raises:
    decode.VideoError: with `fill`, no face in any frame tried (once all have
    come).
  """
  if config.faces_cropped:
    for frame in frames:
      frame.box, frame.detected = whole_frame_box(frame.gray), True
      yield frame
    return
  fill = on_failed_detection == "fill"
  found = detections(frames, config, stats, min_face)
  for frame in resolved_boxes(found, fill):
    if fill and frame.box is None:
      raise decode.VideoError(
        name, f"no face found in any of {stats['detections']} frames tried"
      )
    yield frame
