"""Video -> frames: §4.5 step 1, a video file (or images) decoded to BGR frames.

Owns the first stage of the data's way (video -> frames -> faces -> model
input): opening and decoding a file one frame at a time (`open_video`,
`decoded_frames`), resampling to the target frame rate (`resampled`), images
and folders of frame images (`image_frames`), the `Frame` each frame travels
the streaming path as, and the `DecodePolicy` that says what the path does
where a file or a detection falls short (`BUILD_POLICY`, `PREDICT_POLICY`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import pathlib
from collections.abc import Iterable
from collections.abc import Iterator

import cv2
import numpy as np

# A video decoding to fewer than this share of the frames its header announces
# is rejected.
TRUNCATION_TOLERANCE = 0.75


class VideoError(Exception):
  """A video that cannot be used; the message names the file and the reason."""

  def __init__(self, path, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = str(path)
    self.reason = reason


# One streaming path from a file to face boxes, for the dataset builders
# (`clip.preprocess_video`) and predict.py (`varec.predictor`) alike:
# `clip.stream_frames` (decode, resample, gray and equalise, one frame at a
# time) then `faces.face_boxes` (detect on a schedule, boxes in between).
# Where a file or a detection falls short is a `DecodePolicy`'s choice, each
# entry point keeping its own default.

FAILED_DETECTION_RULES = ("fill", "skip")
TRUNCATION_RULES = ("reject", "accept")


@dataclasses.dataclass(frozen=True)
class DecodePolicy:
  """What the decode path does where a detection or a file falls short.

  Not part of `config.PreprocessConfig`, whose fields name builds and caches.

  on_failed_detection: `fill` gives a frame whose detection failed the
    nearest successful detection in time (ties go to the earlier frame), so
    every frame has a face once one is found anywhere; `skip` leaves it without
    a face, and a frame between two detections has one only if both found it.
  on_truncation: `reject` refuses a file that decodes to fewer than
    `TRUNCATION_TOLERANCE` of the frames its header announces (and warns
    above that); `accept` uses whatever decodes, for the caller to report.
  """

  on_failed_detection: str = "fill"
  on_truncation: str = "reject"

  def __post_init__(self):
    if self.on_failed_detection not in FAILED_DETECTION_RULES:
      raise ValueError(
        f"on_failed_detection={self.on_failed_detection!r}, not one of "
        f"{FAILED_DETECTION_RULES}"
      )
    if self.on_truncation not in TRUNCATION_RULES:
      raise ValueError(
        f"on_truncation={self.on_truncation!r}, not one of {TRUNCATION_RULES}"
      )


# The dataset builders': every frame of a kept clip has a face, and a file
# missing a quarter of its frames is not training data.
BUILD_POLICY = DecodePolicy(on_failed_detection="fill", on_truncation="reject")
# predict.py's: no invented faces, and a truncated file is predicted (and its
# summary.json says so).
PREDICT_POLICY = DecodePolicy(
  on_failed_detection="skip", on_truncation="accept"
)


@dataclasses.dataclass(eq=False)
class Frame:
  """One frame on its way through the streaming path, at the target rate."""

  index: int  # Position at the target rate.
  time_s: float
  bgr: np.ndarray | None  # The decoded frame, where the caller keeps it.
  gray: np.ndarray | None  # Grayscale, equalised; dropped once cropped.
  box: np.ndarray | None = None  # Face box (x0, y0, x1, y1) in source pixels.
  attempted: bool = False  # Face detection ran on this frame.
  detected: bool = False  # ... and found `box` (the largest face).
  # Every face detection found here, largest first (`boxes[0]` is `box`).
  boxes: np.ndarray | None = None
  # Person id: box of each face followed (`varec.tracking`; one face: {0: box}).
  faces: dict = dataclasses.field(default_factory=dict)
  # Person id: (478, 3) landmarks in source pixels (face-mesh models only).
  meshes: dict = dataclasses.field(default_factory=dict)
  # Person id: (52,) blendshape scores of those landmarks (face-mesh models
  # only).
  blendshapes: dict = dataclasses.field(default_factory=dict)
  # The decoded frame this one is (a video's frame number, a folder's image
  # number), where the stream knows it (`clip.stream_frames`).
  source_index: int | None = None


def open_video(path) -> tuple[cv2.VideoCapture, float]:
  """Opens a video file for decoding: (capture, frame rate); the caller releases
  it.

  Raises:
    VideoError: the file is missing or empty, cannot be opened, or has no frame
    rate.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise VideoError(path, "file not found")
  if path.stat().st_size == 0:
    raise VideoError(path, "empty file (0 bytes)")
  capture = cv2.VideoCapture(str(path))
  fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else None
  if fps is None or not np.isfinite(fps) or fps <= 0:
    capture.release()
    raise VideoError(
      path,
      "cannot be opened as a video (not a video, corrupt, truncated or "
      "unsupported codec)"
      if fps is None
      else f"the container reports no usable frame rate ({fps})",
    )
  return capture, float(fps)


def decoded_frames(
  capture: cv2.VideoCapture, path, on_truncation: str, stats: dict
) -> Iterator[np.ndarray]:
  """The BGR frames of an open video, one at a time; releases `capture`.

  `stats` gets the source frames the header announces and those decoded.

  Raises:
    VideoError: no frame decodes; with `on_truncation="reject"`, far fewer
      frames decode than the header announces (only once decoding ends).
  """
  # Some containers only estimate this from the duration (0 or negative:
  # unknown).
  announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
  stats["source_frames_announced"] = announced
  decoded = 0
  try:
    while True:
      ok, frame = capture.read()
      if not ok:
        break
      decoded += 1
      yield frame
  finally:
    capture.release()
    stats["source_frames_decoded"] = decoded
  if not decoded:
    raise VideoError(path, "no frame could be decoded")
  if on_truncation == "reject" and 0 < decoded < announced:
    if decoded < announced * TRUNCATION_TOLERANCE:
      raise VideoError(
        path,
        f"truncated or corrupt: decoded {decoded} of the {announced} "
        "frames its header announces",
      )
    logging.warning(
      "%s: decoded %d of the %d frames its header announces; using those",
      path,
      decoded,
      announced,
    )


def read_video(path) -> tuple[np.ndarray, float]:
  """Decodes every frame of a video file: ((T, H, W, 3) uint8 BGR, fps).

  Raises:
    VideoError: see `open_video` and `decoded_frames` (truncation rejected).
  """
  capture, fps = open_video(path)
  return np.stack(list(decoded_frames(capture, path, "reject", {}))), fps


def _resample(
  frames: Iterable, source_fps: float, target_fps: float
) -> Iterator[tuple[int, object]]:
  """(target index k, source frame) for the frames nearest to a `target_fps`
  grid.

  Target k takes source frame round(k / target_fps * source_fps); there are
  round(duration * target_fps) targets (at least one), those past the last
  frame taking the last. The count needs the number of source frames, so a
  target is held back until enough frames have come to know it is in range
  (a few frames at most, when downsampling).
  """

  def source_of(k: int) -> int:
    return round(k / target_fps * source_fps)

  def count(num_frames: int) -> int:
    return max(1, int(round(num_frames / source_fps * target_fps)))

  held: collections.deque = collections.deque()
  k = num_source = 0
  frame = None
  for frame in frames:
    num_source += 1
    while source_of(k) < num_source:
      held.append((k, frame))
      k += 1
    while held and held[0][0] < count(num_source):
      yield held.popleft()
  if not num_source:
    return
  total = count(num_source)
  while held and held[0][0] < total:
    yield held.popleft()
  for past in range(k, total):  # Past the last frame.
    yield past, frame


def resampled(
  frames: Iterable, source_fps: float, target_fps: float, name="video"
) -> Iterator[tuple[int, object]]:
  """(target index, frame) at `target_fps`: `frames` as they are where the rates
  match (`needs_resampling`), else resampled as `resample_indices` says."""
  if not needs_resampling(source_fps, target_fps):
    yield from enumerate(frames)
    return
  logging.info(
    "%s: resampling from %.3f to %.3f fps", name, source_fps, target_fps
  )
  yield from _resample(frames, source_fps, target_fps)


def resample_indices(
  num_frames: int, source_fps: float, target_fps: float
) -> np.ndarray:
  """Indices of the source frames nearest to a `target_fps` time grid."""
  return np.array(
    [i for _, i in _resample(range(num_frames), source_fps, target_fps)],
    np.int64,
  )


def needs_resampling(source_fps: float, target_fps: float) -> bool:
  """Rates within 0.5% (e.g. 25 vs 25.002 from container rounding) count as
  equal."""
  return abs(source_fps - target_fps) > 0.005 * target_fps


# -- Images and folders of frame images ---------------------------------------

IMAGE_EXTENSIONS = frozenset(
  {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
)


def image_frames(path) -> Iterator[np.ndarray]:
  """Images of a folder, in file-name order, or one image file, as (H, W, 3)
  uint8 BGR frames, one at a time.

  Raises:
    VideoError: no image, an unreadable image, or images of different sizes.
  """
  path = pathlib.Path(path)
  files = (
    [path]
    if path.is_file()
    else sorted(
      p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
    )
  )
  if not files:
    raise VideoError(
      path, f"folder holds no image ({', '.join(sorted(IMAGE_EXTENSIONS))})"
    )
  first = None
  for file in files:
    image = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if image is None:
      raise VideoError(file, "cannot be read as an image")
    if first is not None and image.shape != first:
      raise VideoError(
        file,
        f"size {image.shape[:2]} differs from the folder's first image "
        f"{first[:2]}",
      )
    first = image.shape
    yield image


def read_frame_folder(path) -> np.ndarray:
  """`image_frames` stacked: (T, H, W, 3) uint8 BGR; raises VideoError."""
  return np.stack(list(image_frames(path)))


def is_frame_folder(path) -> bool:
  """A folder of frame images or one image (a still), not a video file."""
  path = pathlib.Path(path)
  return path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS
