"""Any video in, a valence-arousal trajectory out, in constant memory.

The video is read frame by frame and preprocessed exactly as for training
(`varec.preprocessing`, no flip). A checkpoint whose GRU was never trained (a
pretrained CNN, zero-shot, or a CNN-only run) gives each frame its CNN's own
output. Otherwise each frame's CNN features are computed once;
its (valence, arousal) is the last output of the GRU over the 10-frame window
that ends at it. This keeps every prediction in the setting the GRU was
trained in (10 frames from a zero state) rather than carrying its state over
thousands of frames, and it is causal, so nothing waits for the video to end:
memory holds one batch of frames whatever the video's length. At the start
of a stretch of frames with a face, the window is padded by repeating its
first frame. Frames without a face get no prediction.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import logging
import pathlib
import shutil
from collections.abc import Iterator

import cv2
import jax
import numpy as np
import pandas as pd

from varec import emotions
from varec import inference
from varec import metrics
from varec import model_lib
from varec import models
from varec import plots
from varec import preprocessing

FRAME_COLUMNS = ("frame", "time_s", "face_found", "box_x0", "box_y0", "box_x1", "box_y1",
                 "valence", "arousal", "nearest_emotion")


@dataclasses.dataclass
class _Frame:
  index: int
  time_s: float
  bgr: np.ndarray | None  # Kept only when annotating.
  gray: np.ndarray
  box: np.ndarray | None = None  # Face box (x0, y0, x1, y1) in source pixels.


def stream_frames(path, target_fps: float,
                  stats: dict | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
  """(index, time in s, BGR frame) at `target_fps`, decoded one at a time.

  Other rates are resampled like `preprocessing.resample_indices`: target
  frame k is the source frame nearest to time k / target_fps. `stats` gets
  the source frames the header announces and those decoded.
  """
  capture, source_fps = preprocessing.open_video(path)
  stats = stats if stats is not None else {}
  # Some containers only estimate this from the duration (0 or negative: unknown).
  stats["source_frames_announced"] = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
  try:
    resample = preprocessing.needs_resampling(source_fps, target_fps)
    if resample:
      logging.info("%s: resampling from %.3f to %.3f fps", path, source_fps, target_fps)
    source_index, emitted = 0, 0
    while True:
      ok, frame = capture.read()
      if not ok:
        break
      if not resample:
        yield source_index, source_index / target_fps, frame
        emitted += 1
      # Emit this source frame for every target time it is nearest to.
      while resample and round(emitted * source_fps / target_fps) == source_index:
        yield emitted, emitted / target_fps, frame
        emitted += 1
      source_index += 1
  finally:
    capture.release()
    stats["source_frames_decoded"] = source_index
  if emitted == 0:
    raise preprocessing.VideoError(path, "no frame could be decoded")


class Predictor:
  """A trained CNN+RNN applied to whole videos; see the module docstring.

  Besides the paper's majority vote, a video's summary has decisions that fit
  real clips, mostly neutral around short expressions: the dominant emotion
  other than neutral, the apex of the smoothed trajectory, and emotion
  segments without flicker (`varec.metrics`; smoothing set in seconds).
  """

  def __init__(self, model: inference.TrainedModel, batch_size: int = 128,
               faces_cropped: bool | None = None):
    """`faces_cropped`: the input frames are face crops; None = as the model's training data."""
    self.model = model
    self.batch_size = batch_size
    config = model.config
    data = config.data
    self.data = data
    # Every preprocessing setting is the checkpoint's: crops are cut as the dataset
    # builders stored the training data, then go through the same `model_input`.
    self.preprocess = preprocessing.config_from_data(data, pad_short_clips=False)
    if faces_cropped is not None:
      self.preprocess = dataclasses.replace(self.preprocess, faces_cropped=faces_cropped)
    self.window_length = self.preprocess.window_length
    self.uses_gru = inference.trained_gru(model.meta)
    if not self.uses_gru:
      logging.warning("%s: %s", model.path,
                      inference.output_description(model.meta, self.window_length))
    gru = models.GRUStack(tuple(config.model.rnn_hidden_sizes))
    cnn = model_lib.build_cnn(config)
    cnn_vars = model_lib.cnn_variables(model.variables)
    rnn_vars = {"params": model.variables["params"]["rnn"]}
    features, frame_va = model_lib.feature_fn(cnn), model_lib.frame_va_fn(cnn)
    self._features = lambda x: features(cnn_vars, x)
    self._last_output = jax.jit(lambda w: gru.apply(rnn_vars, w)[:, -1])
    self._frame_va = lambda x: frame_va(cnn_vars, x)
    self.label_space = model.label_space
    self.prototypes = model.label_space.prototype_array()

  @classmethod
  def from_checkpoint(cls, path, **kwargs) -> "Predictor":
    return cls(inference.TrainedModel.load(path), **kwargs)

  # -- Streaming stages ------------------------------------------------------------

  def _with_boxes(self, frames, stats) -> Iterator[_Frame]:
    """Adds face boxes: detection every k-th frame, boxes interpolated in between.

    A frame has a face only if it lies between two detections that both found
    one; a failed detection is not papered over here, unlike in training data.
    """
    if self.preprocess.faces_cropped:  # The whole frame is the face's crop.
      for frame in frames:
        frame.box = preprocessing.whole_frame_box(frame.gray)
        yield frame
      return
    every = self.preprocess.detect_every
    pending: list[_Frame] = []
    anchor: _Frame | None = None
    for frame in frames:
      pending.append(frame)
      if frame.index % every == 0:
        yield from self._resolve(anchor, pending, stats)
        anchor, pending = pending[-1], []
    if pending:  # The last frame is always tried, as in training.
      yield from self._resolve(anchor, pending, stats)

  def _resolve(self, anchor: _Frame | None, pending: list[_Frame], stats) -> Iterator[_Frame]:
    """Detects on pending[-1] and gives the frames since `anchor` their boxes."""
    end = pending[-1]
    boxes = preprocessing.detect_faces(end.gray, self.preprocess.detect_max_side)
    stats["detections"] += 1
    stats["multiple_faces"] += len(boxes) > 1
    end.box = boxes[0] if len(boxes) else None
    for frame in pending[:-1]:
      if anchor is not None and anchor.box is not None and end.box is not None:
        w = (frame.index - anchor.index) / (end.index - anchor.index)
        frame.box = (1 - w) * anchor.box + w * end.box
      yield frame
    yield end

  def _predict(self, frames: Iterator[_Frame], stats) -> Iterator[tuple[_Frame, np.ndarray | None]]:
    """(frame, (valence, arousal) or None), in order, batch by batch."""
    history: collections.deque = collections.deque(maxlen=self.window_length)
    batch: list[_Frame] = []

    def flush():
      with_face = [f for f in batch if f.box is not None]
      outputs = {}
      if with_face:
        crops = preprocessing.model_input(np.stack([self._crop(f, stats) for f in with_face])
                                          [..., None], self.data)
        if self.uses_gru:
          va = self._run(self._last_output, self._windows(
              history, with_face, self._run(self._features, crops)))
        else:
          va = self._run(self._frame_va, crops)
        outputs = dict(zip((f.index for f in with_face), va))
      for f in batch:
        yield f, outputs.get(f.index)
      batch.clear()

    for frame in frames:
      batch.append(frame)
      if len(batch) == self.batch_size:
        yield from flush()
    yield from flush()

  def _windows(self, history: collections.deque, frames: list[_Frame],
               features: np.ndarray) -> np.ndarray:
    """The GRU window ending at each frame; `history` carries features across batches."""
    windows = []
    for f, feature in zip(frames, features):
      if history and history[-1][0] != f.index - 1:
        history.clear()  # A gap without a face starts a new stretch.
      history.append((f.index, feature))
      stretch = [h for _, h in history]
      windows.append(np.stack([stretch[0]] * (self.window_length - len(stretch)) + stretch))
    return np.stack(windows)

  def _crop(self, frame: _Frame, stats) -> np.ndarray:
    """The face crop of a frame, cut as the training data's were."""
    if not self.preprocess.faces_cropped:
      return preprocessing.face_crop(frame.gray, frame.box, self.preprocess)
    crop, aligned = preprocessing.precropped_face(frame.gray, self.preprocess)
    stats["alignment_fallbacks"] += self.preprocess.align_faces and not aligned
    return crop

  def _run(self, fn, inputs: np.ndarray) -> np.ndarray:
    """Applies `fn` to a batch padded to `batch_size`, so it compiles once."""
    pad = self.batch_size - len(inputs)
    padded = np.concatenate([inputs, np.repeat(inputs[-1:], pad, axis=0)]) if pad else inputs
    return np.asarray(fn(padded))[:len(inputs)]

  # -- Public API ------------------------------------------------------------------

  def iter_frames(self, path, keep_bgr: bool = False, stats: dict | None = None):
    """Yields (frame, (valence, arousal) or None) for every frame of a video file."""
    stats = stats if stats is not None else collections.Counter()

    def decoded():
      for index, time_s, bgr in stream_frames(path, self.preprocess.fps, stats):
        gray = preprocessing.equalize_histogram(preprocessing.grayscale_mean_rgb(bgr))
        yield _Frame(index, time_s, bgr if keep_bgr else None, gray)

    yield from self._predict(self._with_boxes(decoded(), stats), stats)

  def predict_video(self, path, output=None, annotate: bool = False) -> pd.DataFrame:
    """Predicts every frame of `path`; with `output`, writes frames.csv, summary.json,
    trajectory.png, timeline.png (and annotated.mp4 if `annotate`) there.

    Returns the per-frame table (the columns of frames.csv).

    Raises:
      preprocessing.VideoError: unreadable file, no frame, or no face in any frame.
    """
    path = pathlib.Path(path)
    if output is None:
      return self._predict_video(path, None, annotate)
    output = pathlib.Path(output)
    if output.exists() and not output.is_dir():
      raise OSError(f"cannot write the outputs of {path} to {output}: a file is in the way")
    # Written beside the target and moved into place whole, so a failure (or a kill)
    # never leaves a mix of new and old outputs.
    staging = output.with_name(f".{output.name}.partial")
    if staging.exists():
      shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
      frames = self._predict_video(path, staging, annotate)
      if output.exists():
        old = output.with_name(f".{output.name}.old")
        if old.exists():
          shutil.rmtree(old)
        output.rename(old)
        staging.rename(output)
        shutil.rmtree(old)
      else:
        staging.rename(output)
    finally:
      if staging.exists():
        shutil.rmtree(staging)
    return frames

  def _predict_video(self, path: pathlib.Path, output: pathlib.Path | None,
                     annotate: bool) -> pd.DataFrame:
    stats = collections.Counter()
    writer = annotator = None
    csv_file = open(output / "frames.csv", "w", newline="") if output is not None else None
    rows, va_points, nearest_points, face_frames, face_times = [], [], [], [], []
    try:
      if csv_file is not None:
        writer = csv.writer(csv_file)
        writer.writerow(FRAME_COLUMNS)
      for frame, va in self.iter_frames(path, keep_bgr=annotate, stats=stats):
        if va is not None and not np.isfinite(va).all():
          stats["non_finite_outputs"] += 1  # No emotion from a NaN: the frame gets none.
          va = None
        nearest = None if va is None else int(metrics.nearest_emotion(va, self.prototypes))
        box = [None] * 4 if frame.box is None else [int(round(v)) for v in frame.box]
        row = (frame.index, round(frame.time_s, 4), frame.box is not None, *box,
               None if va is None else round(float(va[0]), 5),
               None if va is None else round(float(va[1]), 5),
               None if nearest is None else self.label_space.emotions[nearest])
        if writer is not None:
          writer.writerow(row)
        if output is None:
          rows.append(row)
        if va is not None:
          va_points.append(va)
          nearest_points.append(nearest)
          face_frames.append(frame.index)
          face_times.append(frame.time_s)
        stats["frames"] += 1
        if annotate:
          annotator = annotator or _Annotator(output / "annotated.mp4", frame.bgr.shape,
                                              self.preprocess.fps, self.label_space)
          annotator.write(frame, va, nearest)
    finally:
      if csv_file is not None:
        csv_file.close()
      if annotator is not None:
        annotator.close()
    if not va_points and stats["non_finite_outputs"]:
      raise preprocessing.VideoError(
          path, f"the model's output is not finite (NaN or inf) for all "
          f"{stats['non_finite_outputs']} frames with a face: the checkpoint is broken (a run "
          "that diverged?)")
    if not va_points:
      raise preprocessing.VideoError(path, f"no face found in any of {stats['frames']} frames")
    va_points, nearest_points = np.asarray(va_points), np.asarray(nearest_points)
    face_frames = np.asarray(face_frames)
    summary = self._summary(path, stats, va_points, nearest_points, face_frames,
                            np.asarray(face_times))
    if output is None:
      return pd.DataFrame(rows, columns=FRAME_COLUMNS)
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    step = max(1, len(va_points) // 2000)  # A readable plot of a long video.
    plots.trajectory(va_points[::step], nearest_points[::step], self.label_space,
                     f"{path.name}: {summary['emotion']} ({summary['pn_group']})",
                     output / "trajectory.png")
    every_frame = np.full((stats["frames"], 2), np.nan)
    every_frame[face_frames] = va_points
    apex = summary["apex"]
    plots.timeline(every_frame, self.preprocess.fps,
                   [(s["start_s"], s["end_s"], s["emotion"]) for s in summary["segments"]],
                   self.label_space,
                   f"{path.name}: {summary['dominant_emotion']} ({summary['dominant_share']:.0%} "
                   f"of face frames), majority {summary['emotion']}", output / "timeline.png",
                   apex=(apex["time_s"], apex["valence"], apex["arousal"]))
    return pd.read_csv(output / "frames.csv")

  def _summary(self, path, stats, va: np.ndarray, nearest: np.ndarray, frame_index: np.ndarray,
               time_s: np.ndarray) -> dict:
    """summary.json; `va`, `nearest`, `frame_index` and `time_s` hold the frames with a face."""
    names, groups = self.label_space.emotions, self.label_space.groups
    fps = self.preprocess.fps
    vote = metrics.video_vote(nearest)
    counts = np.bincount(nearest, minlength=len(names))
    neutral = self.label_space.neutral_index
    dominant, share = metrics.dominant_emotion(nearest, neutral)
    smoothing = metrics.window_frames(metrics.TRAJECTORY_SMOOTHING_S, fps)
    min_segment = metrics.window_frames(metrics.MIN_SEGMENT_S, fps)
    origin = np.zeros(2) if neutral is None else self.prototypes[neutral]
    centre = "the origin" if neutral is None else f"the {names[neutral]} prototype"
    dominant_rule = ("the majority emotion, as the vocabulary has no neutral one" if neutral is None
                     else f"most frequent nearest-prototype emotion other than {names[neutral]}, "
                     f"the majority when every frame is {names[neutral]}")
    apex = metrics.apex_frame(va, origin, smoothing, frame_index)
    apex_va = metrics.smooth(va, smoothing, frame_index)[apex]
    summary = {
        "video": str(path), "frames": stats["frames"], "fps": fps,
        "emotion": names[vote], "pn_group": groups[vote],
        "decision": "most frequent nearest-prototype emotion over all frames with a face",
        "votes": {e: int(c) for e, c in zip(names, counts) if c},
        "dominant_emotion": names[dominant], "dominant_share": share,
        "dominant_pn_group": groups[dominant],
        "apex": {"frame": int(frame_index[apex]), "time_s": round(float(time_s[apex]), 4),
                 "emotion": names[int(metrics.nearest_emotion(apex_va, self.prototypes))],
                 "valence": float(apex_va[0]), "arousal": float(apex_va[1])},
        "decisions": {
            "dominant_emotion": f"{dominant_rule}; dominant_share is its share of all frames "
                                "with a face",
            "apex": f"frame furthest from {centre} on the valence-arousal trajectory smoothed by "
                    f"a centred {smoothing}-frame ({metrics.TRAJECTORY_SMOOTHING_S} s) moving "
                    "average; its emotion, valence and arousal are the smoothed ones",
            "segments": "nearest-prototype emotion runs, flicker removed: runs shorter than "
                        f"{min_segment} frames ({metrics.MIN_SEGMENT_S} s) form one segment of "
                        "their most frequent emotion where together at least that long, else "
                        "join the runs beside them; segments cover the frames with a face, a "
                        "frame without one ends a segment, and end_s is when its last frame ends",
        },
        "model_output": inference.output_description(self.model.meta, self.window_length),
        "mean_valence": float(va[:, 0].mean()), "mean_arousal": float(va[:, 1].mean()),
        "face_share": len(va) / stats["frames"],
        "frames_with_several_faces_detected": int(stats["multiple_faces"]),
        # The checkpoint's, but for faces_cropped, which describes this input.
        "preprocessing": dataclasses.asdict(self.preprocess),
        "checkpoint": str(self.model.path),
    }
    if stats["multiple_faces"]:
      summary["note"] = ("several faces were detected in some frames; the largest face was "
                         "followed")
    if stats["non_finite_outputs"]:
      summary["frames_with_non_finite_output"] = int(stats["non_finite_outputs"])
      summary["note_non_finite"] = ("the model gave a non-finite output for some frames with a "
                                    "face; they have no valence, arousal or emotion")
    announced, decoded = stats["source_frames_announced"], stats["source_frames_decoded"]
    if announced > 0 and decoded < announced:
      summary["source_frames_announced"], summary["source_frames_decoded"] = announced, decoded
      summary["note_truncated"] = (f"the file decoded to {decoded} of the {announced} frames its "
                                   "header announces (truncated or corrupt?); the results cover "
                                   "the decoded frames")
      logging.warning("%s: %s", path, summary["note_truncated"])
    if stats["alignment_fallbacks"]:
      summary["frames_used_unaligned"] = int(stats["alignment_fallbacks"])
      summary["note_alignment"] = ("no face was found to align in some pre-cropped frames; they "
                                   "were used whole")
    # Last: one entry per segment, thousands in a long video.
    summary["segments"] = [
        {"start_frame": int(frame_index[first]), "end_frame": int(frame_index[last]),
         "start_s": round(float(time_s[first]), 4),
         "end_s": round(float(time_s[last]) + 1 / fps, 4), "emotion": names[emotion]}
        for first, last, emotion in metrics.segments(nearest, min_segment, frame_index)]
    return summary


class _Annotator:
  """Writes frames with the face box, the current emotion and a valence-arousal inset."""

  def __init__(self, path, shape, fps: float, label_space: emotions.LabelSpace):
    self.height, self.width = shape[:2]
    self.label_space = label_space
    self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                  (self.width, self.height))
    if not self.writer.isOpened():
      raise OSError(f"cannot open a video writer for {path}")
    self.trail: collections.deque = collections.deque(maxlen=50)

  def write(self, frame: _Frame, va, nearest) -> None:
    image = frame.bgr.copy()
    side = max(60, min(self.height, self.width) // 4)
    x0, y0 = self.width - side - 8, 8
    cv2.rectangle(image, (x0, y0), (x0 + side, y0 + side), (255, 255, 255), -1)
    cv2.line(image, (x0 + side // 2, y0), (x0 + side // 2, y0 + side), (200, 200, 200), 1)
    cv2.line(image, (x0, y0 + side // 2), (x0 + side, y0 + side // 2), (200, 200, 200), 1)
    to_px = lambda v, a: (int(x0 + (v + 1) / 2 * side), int(y0 + (1 - a) / 2 * side))
    for v, a in self.label_space.prototypes:
      cv2.drawMarker(image, to_px(v, a), (120, 120, 120), cv2.MARKER_TILTED_CROSS, 6, 1)
    if va is None:
      self.trail.clear()
      cv2.putText(image, "no face", (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 255), 2)
    else:
      self.trail.append(to_px(*va))
      for p, q in zip(list(self.trail)[:-1], list(self.trail)[1:]):
        cv2.line(image, p, q, (255, 128, 0), 1)
      cv2.circle(image, self.trail[-1], 4, (0, 0, 255), -1)
      box = [int(round(v)) for v in frame.box]
      cv2.rectangle(image, tuple(box[:2]), tuple(box[2:]), (0, 255, 0), 2)
      cv2.putText(image, f"{self.label_space.emotions[nearest]}  v={va[0]:+.2f} a={va[1]:+.2f}",
                  (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 0), 2)
    self.writer.write(image)

  def close(self):
    self.writer.release()
