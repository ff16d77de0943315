"""Preprocessing of the paper's §4.5, one small function per step.

1. decode frames at their native rate, resampling to the configured rate;
2. grayscale as the mean of R, G and B, then histogram equalisation;
3. dlib frontal face detection (or an OpenCV Haar cascade), square crop with a margin, resize (beyond
   the paper, by default: aligned on 5 landmarks, `varec.face_alignment`);
4. horizontal flip (the mirrored actor counts as a new speaker);
5. labels: the last N frames carry the emotion's Table 2 prototype;
6. fixed-length windows for the RNN, cut from the labelled frames.

Stored crops become model input through `model_input` (resize and, beyond the
paper, histogram equalisation of each face crop). `config_from_data` turns a
run's (or a checkpoint's, upgraded by `varec.config_schema`) `config.data` into
the `PreprocessConfig` here, so training data, evaluation and prediction are
cut alike.

Steps 1-3 are one streaming path, frame by frame in constant memory, shared
by the dataset builders (`preprocess_video`, which then cuts and labels the
clip) and predict.py (`varec.predictor`): `stream_frames` / `stream_video`
(decode, resample, gray and equalise) then `face_boxes` (detection on a
schedule, boxes in between). What happens on a failed detection (`fill` or
`skip`) and on a truncated file (`reject` or `accept`) is a `DecodePolicy`:
`BUILD_POLICY` for the builders, `PREDICT_POLICY` for predict.py.

The speaker split (step 5 of §4.5) lives in `varec.splits`. Everything else
here is a pure function on numpy arrays.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import pathlib
import itertools
import threading
from collections.abc import Iterable
from collections.abc import Iterator

import cv2
import numpy as np

from configs import base
from varec import emotions
from varec import face_alignment
from varec import face_mesh
from varec import mesh_geometry
from varec import mesh_reader

MIRROR_SUFFIX = "_mirror"
# A video decoding to fewer than this share of the frames its header announces is rejected.
TRUNCATION_TOLERANCE = 0.75


class VideoError(Exception):
  """A video that cannot be used; the message names the file and the reason."""

  def __init__(self, path, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = str(path)
    self.reason = reason


# The one set of defaults: configs/base.py's data fields.
_DEFAULTS = base.get_data_config()


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
  """Parameters of §4.5; defaults are configs/base.py's (which says where they leave the paper)."""

  fps: float = _DEFAULTS.fps  # Target frame rate; other rates are resampled.
  # Side of the square face crop the builds store.
  crop_size: int = _DEFAULTS.crop_size
  # Added on each side of the face box, as a fraction.
  face_margin: float = _DEFAULTS.face_margin
  # Frames are downscaled to this for detection.
  detect_max_side: int = _DEFAULTS.detect_max_side
  # Detect on every k-th frame (and the last).
  detect_every: int = _DEFAULTS.detect_every
  # The last N frames carry the label.
  num_labelled_frames: int = _DEFAULTS.num_labelled_frames
  window_length: int = _DEFAULTS.window_length  # Frames per RNN window.
  # Step between window starts (non-overlapping).
  window_stride: int = _DEFAULTS.window_length
  # Frames are already face crops: no detection.
  faces_cropped: bool = _DEFAULTS.faces_cropped
  # Pad clips shorter than a window by repeating their first frame.
  pad_short_clips: bool = False
  # Beyond the paper: crop along dlib's 5 landmarks, eyes level (`varec.face_alignment`).
  align_faces: bool = _DEFAULTS.align_faces
  # Step 2: equalise whole frames (the paper); off for networks never shown it.
  equalize_frames: bool = _DEFAULTS.equalize_frames
  # Step 3's detector: `DLIB_HOG` (the paper) or an OpenCV Haar cascade file.
  face_detector: str = _DEFAULTS.face_detector
  # How an unaligned face is shrunk to the crop: "area" averages, "linear" samples.
  crop_interpolation: str = _DEFAULTS.crop_interpolation
  # Step 2's colour to gray: "mean_rgb" (the paper) or "luma".
  grayscale: str = _DEFAULTS.grayscale
  # Source pixels added to each side of the box after `face_margin` (fer: 10).
  face_margin_px: int = _DEFAULTS.face_margin_px
  # A face-mesh build also stores each face's gray crop (steps 2-3 in the
  # landmarks' box), for a model that reads both (`model.mesh_features`).
  mesh_crops: bool = _DEFAULTS.mesh_crops

  @property
  def gray(self) -> "GrayConversion | None":
    """Step 2, or None for a face-mesh build without crops (it reads colour
    frames only)."""
    if face_mesh.reads_mesh(self.face_detector) and not self.mesh_crops:
      return None
    return GrayConversion(self.grayscale, self.equalize_frames)


# The data-config fields that set a `PreprocessConfig` (a checkpoint carries them all), each
# an attribute of the same name.
PREPROCESS_FIELDS = (
  "fps",
  "face_margin",
  "detect_max_side",
  "detect_every",
  "num_labelled_frames",
  "window_length",
  "faces_cropped",
  "align_faces",
  "crop_size",
  "equalize_frames",
  "face_detector",
  "crop_interpolation",
  "grayscale",
  "face_margin_px",
  "mesh_crops",
)

# Builds named the stored crop side `image_size` before it was called `crop_size`; the
# builder-config names (a digest of these fields) and the preprocessing cache keep the old
# name, so that builds and caches made before are still found.
_BUILD_NAMES = {"crop_size": "image_size"}
# Fields added after the first builds, with the value builds had before: hashed
# only when they leave it, so that those builds and caches are still found.
_ADDED_BUILD_FIELDS = {
  "equalize_frames": True,
  "face_detector": "dlib_hog",
  "crop_interpolation": "area",
  "grayscale": "mean_rgb",
  "face_margin_px": 0,
  "mesh_crops": False,
}


def config_from_data(data, pad_short_clips: bool = False) -> PreprocessConfig:
  """The `PreprocessConfig` of a complete data config (`config.data` of a run, or a
  checkpoint's after `config_schema.upgrade`).

  `pad_short_clips` is the dataset's (its builder's `PAD_SHORT_CLIPS`: a
  `video_folder`'s clips and stills may be shorter than a window, the paper's
  datasets reject them).
  """
  return PreprocessConfig(
    window_stride=data.window_length,
    pad_short_clips=pad_short_clips,
    **{field: data[field] for field in PREPROCESS_FIELDS},
  )


def data_fields(config: PreprocessConfig) -> dict:
  """The data-config fields of a `PreprocessConfig`: the inverse of `config_from_data`."""
  return {field: getattr(config, field) for field in PREPROCESS_FIELDS}


def build_fields(config: PreprocessConfig) -> dict:
  """The fields of `config` under the names builds hash (builder-config names, caches)."""
  return {
    _BUILD_NAMES.get(k, k): v
    for k, v in dataclasses.asdict(config).items()
    if k not in _ADDED_BUILD_FIELDS or v != _ADDED_BUILD_FIELDS[k]
  }


def upgrade_recorded(recorded: dict) -> dict:
  """A build's recorded preprocessing (`info.metadata["preprocess"]`) under today's names."""
  today = {old: new for new, old in _BUILD_NAMES.items()}
  return {
    **_ADDED_BUILD_FIELDS,
    **{today.get(k, k): v for k, v in recorded.items()},
  }


@dataclasses.dataclass
class PreprocessedVideo:
  """One video after §4.5 steps 1-3 and 5."""

  # (T, S, S, 1) uint8 face crops, or a face-mesh build's (T, 478, 3)
  # float32 landmarks (`mesh_reader.model_input`).
  frames: np.ndarray
  boxes: np.ndarray  # (T, 4) int32 face box (x0, y0, x1, y1) in source pixels.
  # (T,) bool: the box comes from a detection on this frame.
  detected: np.ndarray
  labelled: np.ndarray  # (T,) bool: the frame carries the emotion's label.
  source_fps: float
  num_detection_attempts: int
  num_failed_detections: int
  # Copies of the first frame put in front of a short clip.
  num_padded_frames: int = 0
  # Pre-cropped frames in which no face was found for alignment, used as they are.
  num_alignment_fallbacks: int = 0
  # A face-mesh build's (T, S, S, 1) uint8 face crops (`mesh_crops`), or None.
  crops: np.ndarray | None = None

  @property
  def detection_rate(self) -> float:
    """Share of the attempted detections that found a face (NaN when none ran)."""
    if not self.num_detection_attempts:
      return float("nan")
    return 1.0 - self.num_failed_detections / self.num_detection_attempts


# -- 1. Decoding and frame rate -------------------------------------------------
#
# One streaming path from a file to face boxes, for the dataset builders
# (`preprocess_video`) and predict.py (`varec.predictor`) alike: `stream_frames`
# (decode, resample, gray and equalise, one frame at a time) then `face_boxes`
# (detect on a schedule, boxes in between). Where a file or a detection falls
# short is a `DecodePolicy`'s choice, each entry point keeping its own default.

FAILED_DETECTION_RULES = ("fill", "skip")
TRUNCATION_RULES = ("reject", "accept")


@dataclasses.dataclass(frozen=True)
class DecodePolicy:
  """What the decode path does where a detection or a file falls short.

  Not part of `PreprocessConfig`, whose fields name builds and caches.

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
  # Person id: (52,) blendshape scores of those landmarks (face-mesh models only).
  blendshapes: dict = dataclasses.field(default_factory=dict)


def open_video(path) -> tuple[cv2.VideoCapture, float]:
  """Opens a video file for decoding: (capture, frame rate); the caller releases it.

  Raises:
    VideoError: the file is missing or empty, cannot be opened, or has no frame rate.
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
  # Some containers only estimate this from the duration (0 or negative: unknown).
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
  """(target index k, source frame) for the frames nearest to a `target_fps` grid.

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
  """Rates within 0.5% (e.g. 25 vs 25.002 from container rounding) count as equal."""
  return abs(source_fps - target_fps) > 0.005 * target_fps


# -- 2. Grayscale and histogram equalisation ------------------------------------


_MEAN_OF_CHANNELS = np.full((1, 3), 1 / 3, np.float32)


def grayscale_mean_rgb(frame: np.ndarray) -> np.ndarray:
  """Gray level = mean of the three colour channels, rounded (paper §4.5, not luma)."""
  # The exact rounded mean for all 2**24 colours (checked), ~17x faster than numpy.
  return cv2.transform(np.ascontiguousarray(frame), _MEAN_OF_CHANNELS)


def grayscale_luma(frame: np.ndarray) -> np.ndarray:
  """Gray level = ITU-R BT.601 luma (OpenCV's BGR2GRAY): what fer's network is fed."""
  return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)


# `grayscale`'s values: how colour frames become gray.
GRAYSCALES = {"mean_rgb": grayscale_mean_rgb, "luma": grayscale_luma}


def equalize_histogram(gray: np.ndarray) -> np.ndarray:
  """Histogram equalisation of one uint8 gray image (OpenCV's definition)."""
  return cv2.equalizeHist(gray)


def equalize_faces(crops: np.ndarray) -> np.ndarray:
  """Histogram equalisation of each (..., S, S, 1) uint8 face crop on its own.

  Beyond the paper, which equalises whole frames only (step 2). A face that
  covers a small part of the frame against a much brighter or darker
  background keeps only a few tens of gray levels after that, and the faces
  of different people end up near black or near white; equalising the crop
  spreads every face over the full range again.
  """
  flat = crops.reshape((-1,) + crops.shape[-3:-1])
  return np.stack([equalize_histogram(c) for c in flat]).reshape(crops.shape)


@dataclasses.dataclass(frozen=True)
class GrayConversion:
  """Step 2 for one frame: colour to gray (`GRAYSCALES`), then, if `equalize`,
  histogram equalisation of the whole frame."""

  grayscale: str = "mean_rgb"
  equalize: bool = True

  def __call__(self, bgr: np.ndarray) -> np.ndarray:
    gray = GRAYSCALES[self.grayscale](bgr)
    return equalize_histogram(gray) if self.equalize else gray


def gray_frames(
  indexed: Iterable[tuple[int, np.ndarray]],
  target_fps: float,
  keep_bgr: bool = False,
  gray: GrayConversion | None = GrayConversion(),
) -> Iterator[Frame]:
  """`Frame`s of (target index, BGR frame) pairs, converted by `gray` (step 2;
  None: no gray frame, for readers of colour frames)."""
  for index, bgr in indexed:
    converted = None if gray is None else gray(bgr)
    yield Frame(index, index / target_fps, bgr if keep_bgr else None, converted)


# -- 3. Face detection and crop -------------------------------------------------

_detector_local = threading.local()

# `data.face_detector`'s default: dlib's HOG frontal face detector (the paper's).
DLIB_HOG = "dlib_hog"
# Any other value names an OpenCV Haar cascade file, run with fer's settings (the
# pipeline fer's FER2013 network was trained for): scale step, neighbours, and the
# smallest face side in source pixels.
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 5
HAAR_MIN_FACE = 50
# The narrowest face (pixels, in the image the detector reads) each detector finds
# reliably; `detection_scale` reads frames so that a face `min_face` wide becomes this.
# dlib's HOG frontal detector scans an 80x80 window (dlib: faces "larger than about
# 80x80"; it finds the synthetic actors from 48-60 px, so 80 leaves a margin). A Haar
# cascade: twice its window (24 px for fer's), since with HAAR_MIN_NEIGHBORS faces
# near the window itself are missed (benchmarks/results/detection_scale.md).
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
  """The narrowest face `detector` finds reliably, in pixels of the image it reads."""
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
  frames: Iterable[Frame],
  config: PreprocessConfig,
  stats: dict,
  min_face: float | None = None,
) -> Iterator[Frame]:
  """Runs face detection on `detection_schedule`'s frames (one frame of lookahead
  finds the last), setting `attempted`, `detected` and the largest face's `box`.

  `stats` counts the detections and those that found several faces. `min_face`:
  see `detection_scale` (predict-time only; builds keep their recorded scale).
  """
  every = max(1, config.detect_every)

  def detect(frame: Frame, position: int, last: bool) -> Frame:
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


def _interpolated(start: Frame, end: Frame, frames: list[Frame]) -> None:
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


def resolved_boxes(frames: Iterable[Frame], fill: bool) -> Iterator[Frame]:
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
  waiting: list[Frame] = []  # Failed detections awaiting their nearest face.
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
    Frame(i, 0.0, None, None, box if ok else None, bool(tried or ok), bool(ok))
    for i, (box, tried, ok) in enumerate(zip(boxes, attempted, found))
  ]
  return np.stack([f.box for f in resolved_boxes(frames, fill=True)])


def face_boxes(
  frames: Iterable[Frame],
  config: PreprocessConfig,
  on_failed_detection: str,
  stats: dict,
  name="video",
  min_face: float | None = None,
) -> Iterator[Frame]:
  """Step 3's boxes for equalised full frames: `detections` (with `min_face`),
  then `resolved_boxes` under `on_failed_detection` (see `DecodePolicy`).

  Pre-cropped frames (`config.faces_cropped`) are their face's box whole.

  Raises:
    VideoError: with `fill`, no face in any frame tried (once all have come).
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
      raise VideoError(
        name, f"no face found in any of {stats['detections']} frames tried"
      )
    yield frame


def square_box(
  box: np.ndarray, margin: float, margin_px: float = 0.0
) -> np.ndarray:
  """Square (x0, y0, x1, y1) around a face box's centre, enlarged per side by
  `margin` of its side, then by `margin_px` pixels."""
  x0, y0, x1, y1 = box
  side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin) + 2.0 * margin_px
  cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
  half = side / 2.0
  return np.round([cx - half, cy - half, cx + half, cy + half]).astype(np.int64)


# `crop_interpolation`'s values: how a crop is shrunk. Enlarging is always linear.
INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}


def crop_and_resize(
  gray: np.ndarray, box: np.ndarray, size: int, interpolation: str = "area"
) -> np.ndarray:
  """Crops integer box (x0, y0, x1, y1) from `gray`, replicating edge pixels
  where the box leaves the frame, and resizes to (size, size), shrinking with
  `interpolation` (`INTERPOLATIONS`)."""
  x0, y0, x1, y1 = (int(v) for v in box)
  h, w = gray.shape
  pad = max(0, -x0, -y0, x1 - w, y1 - h)
  if pad:
    gray = np.pad(gray, pad, mode="edge")
    x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
  crop = gray[y0:y1, x0:x1]
  shrink = crop.shape[0] >= size
  return cv2.resize(
    crop,
    (size, size),
    interpolation=INTERPOLATIONS[interpolation] if shrink else cv2.INTER_LINEAR,
  )


# -- 4. Horizontal flip ---------------------------------------------------------


def flip_horizontal(frames: np.ndarray) -> np.ndarray:
  """Mirrors frames (..., H, W, C) left-right."""
  return frames[..., ::-1, :]


def mirror_input(frames: np.ndarray, data) -> np.ndarray:
  """Model input of data config `data` (`model_input`), its
  faces mirrored: crops flipped, or a face-mesh model's landmarks mirrored
  (`mesh_geometry.mirror`) and, with `data.mesh_crops`, their crops flipped.
  Mirror speakers and test-time flip averaging alike."""
  if not face_mesh.reads_mesh(getattr(data, "face_detector", DLIB_HOG)):
    return flip_horizontal(frames)
  indices = mesh_geometry.mirror_indices(data.face_detector)
  if not data.mesh_crops:
    return mesh_geometry.mirror(frames, indices)
  points, crops = mesh_reader.split_crop(frames, data.image_size)
  return mesh_reader.with_crop(
    mesh_geometry.mirror(points, indices), flip_horizontal(crops)
  )


def mirror_speaker(speaker: str) -> str:
  """Speaker id of an actor's mirror image, which the paper counts as a new speaker."""
  return speaker + MIRROR_SUFFIX


def person_of(speaker: str) -> str:
  """The real person behind a speaker id (a mirror image maps to its original)."""
  return speaker.removesuffix(MIRROR_SUFFIX)


# -- 5. Labels ------------------------------------------------------------------


def labelled_mask(num_frames: int, num_labelled: int) -> np.ndarray:
  """(T,) bool: the last `num_labelled` frames (all frames if the video is shorter)."""
  mask = np.zeros(num_frames, bool)
  mask[max(0, num_frames - num_labelled) :] = True
  return mask


def frame_labels(
  emotion: str,
  num_frames: int,
  label_space: emotions.LabelSpace = emotions.TABLE2,
) -> np.ndarray:
  """(T, 2) float32: the emotion's prototype (valence, arousal) for every frame."""
  proto = label_space.prototype_array()[label_space.index(emotion)]
  return np.tile(proto, (num_frames, 1))


# -- 6. Windows -----------------------------------------------------------------


def window_starts(labelled: np.ndarray, length: int, stride: int) -> np.ndarray:
  """Start frames of the windows that lie wholly inside the labelled frames.

  Windows are aligned to the end of the video, so the apex frames are always
  used even when the labelled span is not a multiple of the stride.
  """
  idx = np.flatnonzero(labelled)
  if len(idx) < length:
    return np.zeros(0, np.int64)
  first, last_start = idx[0], idx[-1] - length + 1
  starts = np.arange(last_start, first - 1, -stride)[::-1]
  # Only contiguous runs of labelled frames make a window.
  return np.array(
    [s for s in starts if labelled[s : s + length].all()], np.int64
  )


def cut_windows(
  array: np.ndarray, starts: np.ndarray, length: int
) -> np.ndarray:
  """Stacks array[s:s+length] for each start: (num_windows, length, ...)."""
  return (
    np.stack([array[s : s + length] for s in starts])
    if len(starts)
    else (np.zeros((0, length) + array.shape[1:], array.dtype))
  )


# -- Stored crops to model input -----------------------------------------------


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
  """(..., S, S, 1) uint8 crops resized to (..., size, size, 1) with area averaging."""
  if crops.shape[-2] == size:
    return crops
  flat = crops.reshape((-1,) + crops.shape[-3:-1])
  out = np.stack(
    [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in flat]
  )
  return out.reshape(crops.shape[:-3] + (size, size, 1))


def model_input(
  frames: np.ndarray, data, crops: np.ndarray | None = None
) -> np.ndarray:
  """Stored frames as the model of data config `data` sees them.

  (..., S, S, 1) face crops are each equalised on their own if
  `data.equalize_faces`, then resized to `data.image_size` (`crop_input`).
  A face-mesh build's landmarks (`mesh_reader.model_input`) are read as
  stored; with `data.mesh_crops`, together with the faces' stored `crops`
  (prepared by `crop_input`) in one vector per face (`mesh_reader.with_crop`).
  Training, evaluation and prediction all go through here.

  Raises:
    ValueError: `data.mesh_crops` and no `crops`.
  """
  if not face_mesh.reads_mesh(getattr(data, "face_detector", DLIB_HOG)):
    return crop_input(frames, data)
  if not data.mesh_crops:
    return frames
  if crops is None:
    raise ValueError(
      "data.mesh_crops: the model reads each face's crop beside its "
      "landmarks, and no crops were given"
    )
  return mesh_reader.with_crop(frames, crop_input(crops, data))


def crop_input(crops: np.ndarray, data) -> np.ndarray:
  """Stored (..., S, S, 1) face crops as a pixel CNN of data config `data`
  sees them: equalised one by one if `data.equalize_faces`, then resized to
  `data.image_size` (`model_input`'s, and a face-mesh build's crops')."""
  if data.equalize_faces:
    crops = equalize_faces(crops)
  return resize_crops(crops, data.image_size)


# -- The whole chain for one file -----------------------------------------------


def pad_front(frames: np.ndarray, length: int) -> np.ndarray:
  """Repeats the first frame in front until there are `length` frames."""
  missing = max(0, length - len(frames))
  return (
    np.concatenate([np.repeat(frames[:1], missing, axis=0), frames])
    if missing
    else frames
  )


def face_crop(
  gray: np.ndarray, box: np.ndarray, config: PreprocessConfig
) -> np.ndarray:
  """The (S, S) crop of the face in `box` of a full frame: aligned on its landmarks
  if `config.align_faces`, else the paper's square around the box with the margin."""
  if config.align_faces:
    return face_alignment.align(
      gray,
      face_alignment.landmarks(gray, box),
      config.crop_size,
      config.face_margin,
    )
  return crop_and_resize(
    gray,
    square_box(box, config.face_margin, config.face_margin_px),
    config.crop_size,
    config.crop_interpolation,
  )


def framed_crop(
  gray: np.ndarray, box: np.ndarray, config: PreprocessConfig
) -> tuple[np.ndarray, bool]:
  """(The (S, S) crop of the face in `box` of a frame, whether it was
  aligned): `face_crop`, or for pre-cropped faces `precropped_face` (the box
  unused). What predict.py and a face-mesh build's crops go through."""
  if config.faces_cropped:
    return precropped_face(gray, config)
  return face_crop(gray, box, config), config.align_faces


def whole_frame_box(gray: np.ndarray) -> np.ndarray:
  """The box (x0, y0, x1, y1) of a whole frame: a pre-cropped face's."""
  return np.array([0.0, 0.0, gray.shape[1], gray.shape[0]])


# Pre-cropped faces are found again before alignment: upsampled to this shorter side (dlib's
# HOG window is 80 px, and stills are often 48 px) and given this share of replicated border
# per side, so that a face cut tightly at its chin or brows still fits the detector's window.
PRECROPPED_DETECT_SIDE = 200
PRECROPPED_BORDER = 0.25


def precropped_face(
  gray: np.ndarray, config: PreprocessConfig
) -> tuple[np.ndarray, bool]:
  """(S, S) crop of a frame that is already a face crop, and whether it was aligned.

  With `config.align_faces`, the face is detected in the upsampled crop and
  aligned like a face in a full frame; where none is found, and without
  alignment, the whole crop is used as it is.
  """
  if config.align_faces:
    scale = max(1.0, PRECROPPED_DETECT_SIDE / min(gray.shape))
    big = (
      gray
      if scale == 1.0
      else cv2.resize(
        gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR
      )
    )
    border = round(PRECROPPED_BORDER * max(big.shape))
    big = cv2.copyMakeBorder(
      big, border, border, border, border, cv2.BORDER_REPLICATE
    )
    boxes = detect_faces(big, config.detect_max_side)
    if len(boxes):
      return face_crop(big, boxes[0], config), True
  return crop_and_resize(
    gray,
    square_box(whole_frame_box(gray), 0.0),
    config.crop_size,
    config.crop_interpolation,
  ), False


def _precropped_faces(gray: list, config: PreprocessConfig, name: str):
  """(crops, alignment fallbacks) of frames that are already face crops."""
  crops, aligned = zip(*(precropped_face(g, config) for g in gray))
  fallbacks = aligned.count(False) if config.align_faces else 0
  if fallbacks:
    logging.info(
      "%s: no face found to align in %d of %d pre-cropped frames; used as they are",
      name,
      fallbacks,
      len(gray),
    )
  return np.stack(crops), fallbacks


def _clip(
  frames: Iterable[Frame],
  config: PreprocessConfig,
  policy: DecodePolicy,
  name: str,
  source_fps,
) -> PreprocessedVideo:
  """Steps 3 and 5 on a whole clip of the streaming path's frames.

  `source_fps` is read once the frames are all in (a stream's is known then).
  With `skip`, frames left without a face are left out of the clip.
  """
  frames = list(frames)
  if len(frames) < config.window_length and not config.pad_short_clips:
    raise VideoError(
      name,
      f"only {len(frames)} frames at {config.fps:g} fps, "
      f"shorter than one window of {config.window_length}",
    )
  if face_mesh.reads_mesh(config.face_detector):
    return _mesh_clip(frames, config, policy, name, source_fps)
  stats = collections.Counter()
  frames = list(
    face_boxes(frames, config, policy.on_failed_detection, stats, name)
  )
  attempts = stats["detections"]
  kept = [f for f in frames if f.box is not None]
  if len(kept) < len(frames):
    logging.info(
      "%s: %d of %d frames without a face left out",
      name,
      len(frames) - len(kept),
      len(frames),
    )
  if not kept:
    raise VideoError(name, f"no face found in any of {attempts} frames tried")
  gray = [f.gray for f in kept]
  boxes = np.stack([f.box for f in kept])
  detected = np.array([f.detected for f in kept])
  fallbacks = 0
  if config.faces_cropped:
    crops, fallbacks = _precropped_faces(gray, config, name)
  else:
    crops = np.stack([face_crop(g, b, config) for g, b in zip(gray, boxes)])
  return _assembled(
    crops[..., None],
    boxes,
    detected,
    config,
    name,
    source_fps(),
    attempts,
    int(attempts - sum(f.detected for f in frames)) if attempts else 0,
    fallbacks,
  )


def _assembled(
  inputs: np.ndarray,
  boxes: np.ndarray,
  detected: np.ndarray,
  config: PreprocessConfig,
  name: str,
  source_fps: float,
  attempts: int,
  failed: int,
  fallbacks: int = 0,
  crops: np.ndarray | None = None,
) -> PreprocessedVideo:
  """A clip's model inputs (face crops or landmarks, and a face-mesh build's
  `crops`) as a `PreprocessedVideo`: its last frames labelled, a clip shorter
  than a window padded in front."""
  labelled = labelled_mask(len(inputs), config.num_labelled_frames)
  num_padded = max(0, config.window_length - len(inputs))
  if num_padded:
    logging.info(
      "%s: %d frames, padded with %d copies of the first",
      name,
      len(inputs),
      num_padded,
    )
    inputs, boxes, detected, labelled = (
      pad_front(a, config.window_length)
      for a in (inputs, boxes, detected, labelled)
    )
    if crops is not None:
      crops = pad_front(crops, config.window_length)
  return PreprocessedVideo(
    frames=inputs,
    boxes=np.round(boxes).astype(np.int32),
    detected=detected,
    labelled=labelled,
    source_fps=source_fps,
    num_detection_attempts=attempts,
    num_failed_detections=failed,
    num_padded_frames=num_padded,
    num_alignment_fallbacks=fallbacks,
    crops=crops,
  )


def _mesh_landmarks(frames: list[Frame], config: PreprocessConfig):
  """(T, 478, 3) landmarks (NaN where none) and whether each frame has them,
  for the largest face of each frame (`mesh_reader.MeshReader`)."""
  reader = mesh_reader.MeshReader(
    face_mesh.cached(config.face_detector),
    config.detect_every,
    mesh_reader.MIN_FACE_PX,
    max_faces=1,
    stills=config.faces_cropped,
  )
  found = np.full((len(frames), face_mesh.NUM_LANDMARKS, 3), np.nan, np.float32)
  for i, frame in enumerate(frames):
    faces = reader.read(cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB))
    if faces:
      found[i] = next(iter(faces.values()))[1]
  return found, ~np.isnan(found[:, 0, 0])


def _mesh_clip(
  frames: list[Frame],
  config: PreprocessConfig,
  policy: DecodePolicy,
  name: str,
  source_fps,
) -> PreprocessedVideo:
  """`_clip` for face-mesh builds: each frame's face as its landmarks
  (`mesh_reader.model_input`), and with `config.mesh_crops` its crop too,
  in their box (`framed_crop`). A frame without a face takes, with `fill`, the face of
  the nearest frame with one (before it on a tie); with `skip`, it is left
  out."""
  points, found = _mesh_landmarks(frames, config)
  if not found.any():
    raise VideoError(name, f"no face found in any of {len(frames)} frames")
  with_face = np.flatnonzero(found)
  if policy.on_failed_detection == "skip":
    keep, detected = with_face, np.ones(len(with_face), bool)
  else:
    # The nearest frame with a face, for every frame.
    gaps = np.abs(np.arange(len(frames))[:, None] - with_face[None])
    keep, detected = with_face[gaps.argmin(axis=1)], found
  points = points[keep]
  boxes = np.stack([mesh_reader.landmark_box(p) for p in points])
  crops = (
    np.stack(
      [
        framed_crop(frames[k].gray, box, config)[0]
        for k, box in zip(keep, boxes)
      ]
    )[..., None]
    if config.mesh_crops
    else None
  )
  return _assembled(
    np.stack([mesh_reader.model_input(p) for p in points]),
    boxes,
    detected,
    config,
    name,
    source_fps(),
    # Every frame is read for its face, by detection or by following it.
    len(frames),
    int(len(frames) - found.sum()),
    crops=crops,
  )


def preprocess_frames(
  frames: np.ndarray,
  source_fps: float,
  config: PreprocessConfig,
  *,
  name: str = "video",
  policy: DecodePolicy = BUILD_POLICY,
) -> PreprocessedVideo:
  """Steps 1-3 and 5 on decoded BGR (or RGB) frames (T, H, W, 3).

  A clip shorter than a window (a still, a few frames), with
  `config.pad_short_clips`, is padded in front with copies of its first frame,
  each labelled like that frame: a still is all apex, while the copies of a
  short clip's unlabelled neutral start stay unlabelled.
  """
  stream = gray_frames(
    resampled(frames, source_fps, config.fps, name),
    config.fps,
    keep_bgr=face_mesh.reads_mesh(config.face_detector),
    gray=config.gray,
  )
  return _clip(stream, config, policy, name, lambda: source_fps)


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


def stream_video(
  path,
  target_fps: float,
  *,
  on_truncation: str = "reject",
  stats: dict | None = None,
  keep_bgr: bool = False,
  gray: GrayConversion | None = GrayConversion(),
) -> Iterator[Frame]:
  """Steps 1 and 2 for a video file, one frame at a time: decoded, resampled
  to `target_fps`, converted by `gray`.

  `stats` gets `source_fps` once the file is open, then the frames its header
  announces and those decoded (`decoded_frames`, which applies
  `on_truncation`).

  Raises:
    VideoError: see `open_video` and `decoded_frames`.
  """
  stats = stats if stats is not None else {}
  capture, stats["source_fps"] = open_video(path)
  source = decoded_frames(capture, path, on_truncation, stats)
  indexed = resampled(source, stats["source_fps"], target_fps, path)
  yield from gray_frames(indexed, target_fps, keep_bgr, gray)


def stream_frames(
  path,
  target_fps: float,
  *,
  on_truncation: str = "reject",
  stats: dict | None = None,
  keep_bgr: bool = False,
  gray: GrayConversion | None = GrayConversion(),
) -> Iterator[Frame]:
  """`stream_video`, or for an image or a folder of frame images (`image_frames`)
  its frames taken to be at `target_fps` (`stats["source_fps"]`)."""
  stats = stats if stats is not None else {}
  if not is_frame_folder(path):
    yield from stream_video(
      path,
      target_fps,
      on_truncation=on_truncation,
      stats=stats,
      keep_bgr=keep_bgr,
      gray=gray,
    )
    return
  stats["source_fps"] = target_fps
  indexed = enumerate(image_frames(path))
  yield from gray_frames(indexed, target_fps, keep_bgr, gray)


def preprocess_video(
  path, config: PreprocessConfig, policy: DecodePolicy = BUILD_POLICY
) -> PreprocessedVideo:
  """Reads a video file, an image (a still: one frame) or a folder of frame images
  taken to be at `config.fps` through `stream_frames`, then steps 3 and 5;
  raises VideoError."""
  stats = {}
  stream = stream_frames(
    path,
    config.fps,
    on_truncation=policy.on_truncation,
    stats=stats,
    keep_bgr=face_mesh.reads_mesh(config.face_detector),
    gray=config.gray,
  )
  return _clip(stream, config, policy, str(path), lambda: stats["source_fps"])
