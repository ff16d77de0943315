"""The whole way for one file: video -> frames -> faces -> a labelled clip.

Owns the chain of the other modules' stages, frame by frame in constant
memory: `stream_frames` / `stream_video` (`decode`, then `grayscale`), shared
by the dataset builders and predict.py (`varec.predictor`, which then finds
faces with `faces.face_boxes`); `preprocess_video` and `preprocess_frames`,
the builders' entry points, which then cut each face (`crop`) or read its
landmarks (face-mesh builds) and label the clip (`labels`) as a
`PreprocessedVideo`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterable
from collections.abc import Iterator

import cv2
import numpy as np

from varec import face_mesh
from varec import mesh_reader
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import decode
from varec.preprocess import faces as faces_lib
from varec.preprocess import grayscale
from varec.preprocess import labels


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
  # Pre-cropped frames in which no face was found for alignment, used as they
  # are.
  num_alignment_fallbacks: int = 0
  # A face-mesh build's (T, S, S, 1) uint8 face crops (`mesh_crops`), or None.
  crops: np.ndarray | None = None

  @property
  def detection_rate(self) -> float:
    """Share of the attempted detections that found a face (NaN when none
    ran)."""
    if not self.num_detection_attempts:
      return float("nan")
    return 1.0 - self.num_failed_detections / self.num_detection_attempts


def pad_front(frames: np.ndarray, length: int) -> np.ndarray:
  """Repeats the first frame in front until there are `length` frames."""
  missing = max(0, length - len(frames))
  return (
    np.concatenate([np.repeat(frames[:1], missing, axis=0), frames])
    if missing
    else frames
  )


def _clip(
  frames: Iterable[decode.Frame],
  config: preprocess_config.PreprocessConfig,
  policy: decode.DecodePolicy,
  name: str,
  source_fps,
) -> PreprocessedVideo:
  """Steps 3 and 5 on a whole clip of the streaming path's frames.

  `source_fps` is read once the frames are all in (a stream's is known then).
  With `skip`, frames left without a face are left out of the clip.
  """
  frames = list(frames)
  if len(frames) < config.window_length and not config.pad_short_clips:
    raise decode.VideoError(
      name,
      f"only {len(frames)} frames at {config.fps:g} fps, "
      f"shorter than one window of {config.window_length}",
    )
  if face_mesh.reads_mesh(config.face_detector):
    return _mesh_clip(frames, config, policy, name, source_fps)
  stats = collections.Counter()
  rule = policy.on_failed_detection
  frames = list(faces_lib.face_boxes(frames, config, rule, stats, name))
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
    raise decode.VideoError(
      name, f"no face found in any of {attempts} frames tried"
    )
  gray = [f.gray for f in kept]
  boxes = np.stack([f.box for f in kept])
  detected = np.array([f.detected for f in kept])
  fallbacks = 0
  if config.faces_cropped:
    crops, fallbacks = crop.precropped_faces(gray, config, name)
  else:
    crops = np.stack(
      [crop.face_crop(g, b, config) for g, b in zip(gray, boxes)]
    )
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
  config: preprocess_config.PreprocessConfig,
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
  labelled = labels.labelled_mask(len(inputs), config.num_labelled_frames)
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


def _mesh_landmarks(
  frames: list[decode.Frame], config: preprocess_config.PreprocessConfig
):
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
  frames: list[decode.Frame],
  config: preprocess_config.PreprocessConfig,
  policy: decode.DecodePolicy,
  name: str,
  source_fps,
) -> PreprocessedVideo:
  """`_clip` for face-mesh builds: each frame's face as its landmarks
  (`mesh_reader.model_input`), and with `config.mesh_crops` its crop too, in
  their box (`crop.framed_crop`). A frame without a face takes, with `fill`,
  the face of the nearest frame with one (before it on a tie); with `skip`,
  it is left out."""
  points, found = _mesh_landmarks(frames, config)
  if not found.any():
    raise decode.VideoError(
      name, f"no face found in any of {len(frames)} frames"
    )
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
        crop.framed_crop(frames[k].gray, box, config)[0]
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
  config: preprocess_config.PreprocessConfig,
  *,
  name: str = "video",
  policy: decode.DecodePolicy = decode.BUILD_POLICY,
) -> PreprocessedVideo:
  """Steps 1-3 and 5 on decoded BGR (or RGB) frames (T, H, W, 3).

  A clip shorter than a window (a still, a few frames), with
  `config.pad_short_clips`, is padded in front with copies of its first frame,
  each labelled like that frame: a still is all apex, while the copies of a
  short clip's unlabelled neutral start stay unlabelled.
  """
  stream = grayscale.gray_frames(
    decode.resampled(frames, source_fps, config.fps, name),
    config.fps,
    keep_bgr=face_mesh.reads_mesh(config.face_detector),
    gray=config.gray,
  )
  return _clip(stream, config, policy, name, lambda: source_fps)


def stream_video(
  path,
  target_fps: float,
  *,
  on_truncation: str = "reject",
  stats: dict | None = None,
  keep_bgr: bool = False,
  gray: grayscale.GrayConversion | None = grayscale.PAPER_GRAY,
) -> Iterator[decode.Frame]:
  """Steps 1 and 2 for a video file, one frame at a time: decoded, resampled
  to `target_fps`, converted by `gray`.

  `stats` gets `source_fps` once the file is open, then the frames its header
  announces and those decoded (`decode.decoded_frames`, which applies
  `on_truncation`).

  Raises:
    decode.VideoError: see `decode.open_video` and `decode.decoded_frames`.
  """
  stats = stats if stats is not None else {}
  capture, stats["source_fps"] = decode.open_video(path)
  source = decode.decoded_frames(capture, path, on_truncation, stats)
  numbered = decode.resampled(
    enumerate(source), stats["source_fps"], target_fps, path
  )
  yield from _numbered_gray(numbered, target_fps, keep_bgr, gray)


def stream_frames(
  path,
  target_fps: float,
  *,
  on_truncation: str = "reject",
  stats: dict | None = None,
  keep_bgr: bool = False,
  gray: grayscale.GrayConversion | None = grayscale.PAPER_GRAY,
) -> Iterator[decode.Frame]:
  """`stream_video`, or for an image or a folder of frame images
  (`decode.image_frames`) its frames taken to be at `target_fps`
  (`stats["source_fps"]`)."""
  stats = stats if stats is not None else {}
  if not decode.is_frame_folder(path):
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
  numbered = enumerate(enumerate(decode.image_frames(path)))
  yield from _numbered_gray(numbered, target_fps, keep_bgr, gray)


def _numbered_gray(
  numbered: Iterable[tuple[int, tuple[int, np.ndarray]]],
  target_fps: float,
  keep_bgr: bool,
  gray: grayscale.GrayConversion | None,
) -> Iterator[decode.Frame]:
  """`grayscale.gray_frames` of (target index, (source index, BGR frame)),
  each frame knowing the decoded frame it is (`Frame.source_index`)."""
  for index, (source_index, bgr) in numbered:
    (frame,) = grayscale.gray_frames([(index, bgr)], target_fps, keep_bgr, gray)
    frame.source_index = source_index
    yield frame


def preprocess_video(
  path,
  config: preprocess_config.PreprocessConfig,
  policy: decode.DecodePolicy = decode.BUILD_POLICY,
) -> PreprocessedVideo:
  """Reads a video file, an image (a still: one frame) or a folder of frame
  images taken to be at `config.fps` through `stream_frames`, then steps 3
  and 5; raises decode.VideoError."""
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
