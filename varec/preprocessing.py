"""Preprocessing of the paper's §4.5, one small function per step.

1. decode frames at their native rate, resampling to the configured rate;
2. grayscale as the mean of R, G and B, then histogram equalisation;
3. dlib frontal face detection, square crop with a margin, resize (beyond
   the paper, by default: aligned on 5 landmarks, `varec.face_alignment`);
4. horizontal flip (the mirrored actor counts as a new speaker);
5. labels: the last N frames carry the emotion's Table 2 prototype;
6. fixed-length windows for the RNN, cut from the labelled frames.

Stored crops become model input through `model_input` (resize and, beyond the
paper, histogram equalisation of each face crop). `config_from_data` turns a
run's (or a checkpoint's, upgraded by `varec.config_schema`) `config.data` into
the `PreprocessConfig` here, so training data, evaluation and prediction are
cut alike.

The speaker split (step 5 of §4.5) lives in `varec.splits`. `preprocess_video`
chains steps 1-3 and 5 for one file; everything else here is a pure function
on numpy arrays.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import threading

import cv2
import numpy as np

from configs import base
from varec import emotions
from varec import face_alignment

MIRROR_SUFFIX = "_mirror"
# A video decoding to fewer than this share of the frames its header announces is rejected.
TRUNCATION_TOLERANCE = 0.75


class VideoError(Exception):
  """A video that cannot be used; the message names the file and the reason."""

  def __init__(self, path, reason: str):
    super().__init__(f"{path}: {reason}")
    self.path = str(path)
    self.reason = reason


_DEFAULTS = (
  base.get_data_config()
)  # The one set of defaults: configs/base.py's data fields.


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
  """Parameters of §4.5; defaults are configs/base.py's (which says where they leave the paper)."""

  fps: float = _DEFAULTS.fps  # Target frame rate; other rates are resampled.
  crop_size: int = (
    _DEFAULTS.crop_size
  )  # Side of the square face crop the builds store.
  face_margin: float = (
    _DEFAULTS.face_margin
  )  # Added on each side of the face box, as a fraction.
  detect_max_side: int = (
    _DEFAULTS.detect_max_side
  )  # Frames are downscaled to this for detection.
  detect_every: int = (
    _DEFAULTS.detect_every
  )  # Detect on every k-th frame (and the last).
  num_labelled_frames: int = (
    _DEFAULTS.num_labelled_frames
  )  # The last N frames carry the label.
  window_length: int = _DEFAULTS.window_length  # Frames per RNN window.
  window_stride: int = (
    _DEFAULTS.window_length
  )  # Step between window starts (non-overlapping).
  faces_cropped: bool = (
    _DEFAULTS.faces_cropped
  )  # Frames are already face crops: no detection.
  pad_short_clips: bool = (
    False  # Pad clips shorter than a window by repeating their first frame.
  )
  # Beyond the paper: crop along dlib's 5 landmarks, eyes level (`varec.face_alignment`).
  align_faces: bool = _DEFAULTS.align_faces


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
)

# Builds named the stored crop side `image_size` before it was called `crop_size`; the
# builder-config names (a digest of these fields) and the preprocessing cache keep the old
# name, so that builds and caches made before are still found.
_BUILD_NAMES = {"crop_size": "image_size"}


def config_from_data(
  data, pad_short_clips: bool | None = None
) -> PreprocessConfig:
  """The `PreprocessConfig` of a complete data config (`config.data` of a run, or a
  checkpoint's after `config_schema.upgrade`).

  Short clips are padded for `video_folder` data, whose clips and stills may be
  shorter than a window; the paper's datasets reject them.
  """
  if pad_short_clips is None:
    pad_short_clips = data.name == "video_folder"
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
    _BUILD_NAMES.get(k, k): v for k, v in dataclasses.asdict(config).items()
  }


def upgrade_recorded(recorded: dict) -> dict:
  """A build's recorded preprocessing (`info.metadata["preprocess"]`) under today's names."""
  today = {old: new for new, old in _BUILD_NAMES.items()}
  return {today.get(k, k): v for k, v in recorded.items()}


@dataclasses.dataclass
class PreprocessedVideo:
  """One video after §4.5 steps 1-3 and 5."""

  frames: np.ndarray  # (T, S, S, 1) uint8 face crops.
  boxes: np.ndarray  # (T, 4) int32 face box (x0, y0, x1, y1) in source pixels.
  detected: (
    np.ndarray
  )  # (T,) bool: the box comes from a detection on this frame.
  labelled: np.ndarray  # (T,) bool: the frame carries the emotion's label.
  source_fps: float
  num_detection_attempts: int
  num_failed_detections: int
  num_padded_frames: int = (
    0  # Copies of the first frame put in front of a short clip.
  )
  # Pre-cropped frames in which no face was found for alignment, used as they are.
  num_alignment_fallbacks: int = 0

  @property
  def detection_rate(self) -> float:
    """Share of the attempted detections that found a face (NaN when none ran)."""
    if not self.num_detection_attempts:
      return float("nan")
    return 1.0 - self.num_failed_detections / self.num_detection_attempts


# -- 1. Decoding and frame rate -------------------------------------------------


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


def read_video(path) -> tuple[np.ndarray, float]:
  """Decodes every frame of a video file: ((T, H, W, 3) uint8 BGR, fps).

  Raises:
    VideoError: see `open_video`; also a file that decodes to no frame or to
      far fewer frames than its header announces.
  """
  capture, fps = open_video(path)
  try:
    # Some containers (MPEG program streams) only estimate this from the duration.
    announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    while True:
      ok, frame = capture.read()
      if not ok:
        break
      frames.append(frame)
  finally:
    capture.release()
  if not frames:
    raise VideoError(path, "no frame could be decoded")
  if announced > 0 and len(frames) < announced * TRUNCATION_TOLERANCE:
    raise VideoError(
      path,
      f"truncated or corrupt: decoded {len(frames)} of the {announced} "
      "frames its header announces",
    )
  if announced > 0 and len(frames) < announced:
    logging.warning(
      "%s: decoded %d of the %d frames its header announces; using those",
      path,
      len(frames),
      announced,
    )
  return np.stack(frames), fps


def resample_indices(
  num_frames: int, source_fps: float, target_fps: float
) -> np.ndarray:
  """Indices of the source frames nearest to a `target_fps` time grid."""
  duration = num_frames / source_fps
  num_target = max(1, int(round(duration * target_fps)))
  times = np.arange(num_target) / target_fps
  return np.minimum(
    np.round(times * source_fps).astype(np.int64), num_frames - 1
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


# -- 3. Face detection and crop -------------------------------------------------

_detector_local = threading.local()


def _dlib_detector():
  # One detector per process/thread: dlib objects are not picklable.
  if not hasattr(_detector_local, "detector"):
    import dlib  # pylint: disable=g-import-not-at-top

    _detector_local.detector = dlib.get_frontal_face_detector()
  return _detector_local.detector


def detect_faces(gray: np.ndarray, max_side: int) -> np.ndarray:
  """dlib HOG face detection on a copy downscaled to `max_side`.

  Returns (N, 4) float boxes (x0, y0, x1, y1) in `gray`'s pixels, largest first.
  """
  scale = min(1.0, max_side / max(gray.shape[:2]))
  small = (
    gray
    if scale == 1.0
    else cv2.resize(
      gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
    )
  )
  faces = sorted(
    _dlib_detector()(small, 0), key=lambda r: -r.width() * r.height()
  )
  boxes = np.array(
    [[f.left(), f.top(), f.right(), f.bottom()] for f in faces], np.float64
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


def fill_missing_boxes(boxes: np.ndarray, attempted: np.ndarray) -> np.ndarray:
  """Gives every frame a box from the frames where detection succeeded.

  Attempted frames whose detection failed reuse the nearest successful box in
  time (ties go to the earlier frame); frames not attempted are interpolated
  linearly between the attempted frames around them.

  Args:
    boxes: (T, 4) float, NaN rows where there is no detection.
    attempted: (T,) bool, frames on which detection ran.

  Returns:
    (T, 4) float boxes; raises ValueError if no frame has a detection.
  """
  found = ~np.isnan(boxes).any(axis=1)
  if not found.any():
    raise ValueError("no face detected in any frame")
  found_idx = np.flatnonzero(found)
  filled = boxes.copy()
  for t in np.flatnonzero(attempted & ~found):
    filled[t] = boxes[found_idx[np.argmin(np.abs(found_idx - t))]]
  anchors = np.flatnonzero(attempted | found)
  frames = np.arange(len(boxes))
  return np.stack(
    [np.interp(frames, anchors, filled[anchors, k]) for k in range(4)], axis=1
  )


def square_box(box: np.ndarray, margin: float) -> np.ndarray:
  """Square (x0, y0, x1, y1) around a face box's centre, enlarged by `margin` per side."""
  x0, y0, x1, y1 = box
  side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
  cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
  half = side / 2.0
  return np.round([cx - half, cy - half, cx + half, cy + half]).astype(np.int64)


def crop_and_resize(gray: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
  """Crops integer box (x0, y0, x1, y1) from `gray`, replicating edge pixels
  where the box leaves the frame, and resizes to (size, size)."""
  x0, y0, x1, y1 = (int(v) for v in box)
  h, w = gray.shape
  pad = max(0, -x0, -y0, x1 - w, y1 - h)
  if pad:
    gray = np.pad(gray, pad, mode="edge")
    x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
  crop = gray[y0:y1, x0:x1]
  interpolation = cv2.INTER_AREA if crop.shape[0] >= size else cv2.INTER_LINEAR
  return cv2.resize(crop, (size, size), interpolation=interpolation)


# -- 4. Horizontal flip ---------------------------------------------------------


def flip_horizontal(frames: np.ndarray) -> np.ndarray:
  """Mirrors frames (..., H, W, C) left-right."""
  return frames[..., ::-1, :]


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


def model_input(crops: np.ndarray, data) -> np.ndarray:
  """Stored (..., S, S, 1) face crops as the model of data config `data` sees them.

  Each crop is equalised on its own if `data.equalize_faces`, then resized to
  `data.image_size`. Training, evaluation and prediction all go through here.
  """
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


def face_boxes(gray: np.ndarray, config: PreprocessConfig, name: str):
  """(boxes (T, 4), detected (T,), attempts) for equalised full frames, per §4.5 step 3."""
  attempted = detection_schedule(len(gray), config.detect_every)
  boxes = np.full((len(gray), 4), np.nan)
  for i in np.flatnonzero(attempted):
    box = detect_largest_face(gray[i], config.detect_max_side)
    if box is not None:
      boxes[i] = box
  detected = ~np.isnan(boxes).any(axis=1)
  if not detected.any():
    raise VideoError(
      name, f"no face found in any of {attempted.sum()} frames tried"
    )
  return fill_missing_boxes(boxes, attempted), detected, int(attempted.sum())


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
    gray, square_box(box, config.face_margin), config.crop_size
  )


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
    gray, square_box(whole_frame_box(gray), 0.0), config.crop_size
  ), False


def preprocess_frames(
  frames: np.ndarray,
  source_fps: float,
  config: PreprocessConfig,
  *,
  name: str = "video",
) -> PreprocessedVideo:
  """Steps 1-3 and 5 on decoded BGR (or RGB) frames (T, H, W, 3).

  A clip shorter than a window (a still, a few frames), with
  `config.pad_short_clips`, is padded in front with copies of its first frame,
  each labelled like that frame: a still is all apex, while the copies of a
  short clip's unlabelled neutral start stay unlabelled.
  """
  if needs_resampling(source_fps, config.fps):
    logging.info(
      "%s: resampling from %.3f to %.3f fps", name, source_fps, config.fps
    )
    frames = frames[resample_indices(len(frames), source_fps, config.fps)]
  if len(frames) < config.window_length and not config.pad_short_clips:
    raise VideoError(
      name,
      f"only {len(frames)} frames at {config.fps:g} fps, "
      f"shorter than one window of {config.window_length}",
    )
  gray = np.stack([equalize_histogram(grayscale_mean_rgb(f)) for f in frames])
  attempts = fallbacks = 0
  if config.faces_cropped:
    crops, aligned = zip(*(precropped_face(g, config) for g in gray))
    crops = np.stack(crops)
    fallbacks = aligned.count(False) if config.align_faces else 0
    if fallbacks:
      logging.info(
        "%s: no face found to align in %d of %d pre-cropped frames; used as they are",
        name,
        fallbacks,
        len(gray),
      )
    boxes, detected = (
      np.stack([whole_frame_box(g) for g in gray]),
      np.ones(len(gray), bool),
    )
  else:
    boxes, detected, attempts = face_boxes(gray, config, name)
    crops = np.stack([face_crop(g, b, config) for g, b in zip(gray, boxes)])
  labelled = labelled_mask(len(crops), config.num_labelled_frames)
  num_padded = max(0, config.window_length - len(crops))
  if num_padded:
    logging.info(
      "%s: %d frames, padded with %d copies of the first",
      name,
      len(crops),
      num_padded,
    )
    crops, boxes, detected, labelled = (
      pad_front(a, config.window_length)
      for a in (crops, boxes, detected, labelled)
    )
  return PreprocessedVideo(
    frames=crops[..., None],
    boxes=np.round(boxes).astype(np.int32),
    detected=detected,
    labelled=labelled,
    source_fps=source_fps,
    num_detection_attempts=attempts,
    num_failed_detections=int(attempts - detected[num_padded:].sum())
    if attempts
    else 0,
    num_padded_frames=num_padded,
    num_alignment_fallbacks=fallbacks,
  )


IMAGE_EXTENSIONS = frozenset(
  {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
)


def read_frame_folder(path) -> np.ndarray:
  """Images of a folder, in file-name order, or one image file, as (T, H, W, 3) uint8
  BGR frames.

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
  frames = []
  for file in files:
    image = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if image is None:
      raise VideoError(file, "cannot be read as an image")
    if frames and image.shape != frames[0].shape:
      raise VideoError(
        file,
        f"size {image.shape[:2]} differs from the folder's first image "
        f"{frames[0].shape[:2]}",
      )
    frames.append(image)
  return np.stack(frames)


def preprocess_video(path, config: PreprocessConfig) -> PreprocessedVideo:
  """Reads a video file, an image (a still: one frame) or a folder of frame images
  taken to be at `config.fps`, and runs `preprocess_frames`; raises VideoError."""
  path = pathlib.Path(path)
  if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
    return preprocess_frames(
      read_frame_folder(path), config.fps, config, name=str(path)
    )
  frames, fps = read_video(path)
  return preprocess_frames(frames, fps, config, name=str(path))
