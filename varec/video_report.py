"""predict.py's outputs for one video, from `Predictor.iter_frames`'s per-frame stream.

frames.csv (one row per frame), summary.json (the headline `expression`, the
apex phase's vote; the paper's majority vote; and the other decisions fit for
real clips: dominant emotion, apex, segments),
trajectory.png, timeline.png and, on request, annotated.mp4 (`_Annotator`).
The folder is written beside its target and moved into place whole.
Nothing here runs the model.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import logging
import os
import pathlib
import shutil

import cv2
import numpy as np
import pandas as pd

from varec import emotions
from varec import inference
from varec import metrics
from varec import plots
from varec import preprocessing

FRAME_COLUMNS = (
  "frame",
  "time_s",
  "face_found",
  "box_x0",
  "box_y0",
  "box_x1",
  "box_y1",
  "valence",
  "arousal",
  "nearest_emotion",
)


SUMMARY = "summary.json"


def write(
  predictor, path, output=None, annotate: bool = False
) -> tuple[pd.DataFrame, dict]:
  """Predicts every frame of `path` with a `varec.predictor.Predictor`; with `output`,
  writes frames.csv, summary.json, trajectory.png, timeline.png (and annotated.mp4
  if `annotate`) there.

  Returns the per-frame table (the columns of frames.csv) and the summary.

  Raises:
    preprocessing.VideoError: unreadable file, no frame, or no face in any frame.
    OSError: `output` cannot be written.
  """
  path = pathlib.Path(path)
  if output is None:
    return _report(predictor, path, None, annotate)
  output = pathlib.Path(output)
  if output.exists() and not output.is_dir():
    raise OSError(
      f"cannot write the outputs of {path} to {output}: a file is in the way"
    )
  # Written beside the target and moved into place whole, so a failure (or a kill)
  # never leaves a mix of new and old outputs.
  # Named by the process, so that two runs into one folder never share it.
  staging = output.with_name(f".{output.name}.partial{os.getpid()}")
  if staging.exists():
    shutil.rmtree(staging)
  staging.mkdir(parents=True)
  try:
    result = _report(predictor, path, staging, annotate)
    if output.exists():
      old = output.with_name(f".{output.name}.old{os.getpid()}")
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
  return result


@dataclasses.dataclass
class _Trajectory:
  """The frames with a face that have an output."""

  va: list = dataclasses.field(default_factory=list)
  nearest: list = dataclasses.field(default_factory=list)
  frame: list = dataclasses.field(default_factory=list)
  time_s: list = dataclasses.field(default_factory=list)


def _report(
  predictor, path: pathlib.Path, output: pathlib.Path | None, annotate: bool
) -> tuple[pd.DataFrame, dict]:
  stats = collections.Counter()
  rows, points = _frame_rows(predictor, path, output, annotate, stats)
  if not points.va and stats["non_finite_outputs"]:
    raise preprocessing.VideoError(
      path,
      f"the model's output is not finite (NaN or inf) for all "
      f"{stats['non_finite_outputs']} frames with a face: the checkpoint is broken (a run "
      "that diverged?)",
    )
  if not points.va:
    raise preprocessing.VideoError(
      path, f"no face found in any of {stats['frames']} frames"
    )
  va, nearest = np.asarray(points.va), np.asarray(points.nearest)
  frame_index, time_s = np.asarray(points.frame), np.asarray(points.time_s)
  summary = _summary(predictor, path, stats, va, nearest, frame_index, time_s)
  if output is not None:
    (output / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    _plots(
      predictor,
      path,
      output,
      summary,
      stats["frames"],
      va,
      nearest,
      frame_index,
    )
  return pd.DataFrame(rows, columns=FRAME_COLUMNS), summary


def _frame_rows(
  predictor, path, output, annotate, stats
) -> tuple[list, _Trajectory]:
  """The rows of frames.csv, written as they come, and the trajectory."""
  rows, points, annotator = [], _Trajectory(), None
  csv_file = (
    open(output / "frames.csv", "w", newline="") if output is not None else None
  )
  try:
    writer = csv.writer(csv_file) if csv_file is not None else None
    if writer is not None:
      writer.writerow(FRAME_COLUMNS)
    for frame, va in predictor.iter_frames(
      path, keep_bgr=annotate, stats=stats
    ):
      if va is not None and not np.isfinite(va).all():
        # No emotion from a NaN: the frame gets none.
        stats["non_finite_outputs"] += 1
        va = None
      nearest = (
        None
        if va is None
        else int(metrics.frame_emotions(va, predictor.prototypes))
      )
      va = None if va is None else va[:2]
      box = (
        [None] * 4 if frame.box is None else [int(round(v)) for v in frame.box]
      )
      row = (
        frame.index,
        round(frame.time_s, 4),
        frame.box is not None,
        *box,
        None if va is None else round(float(va[0]), 5),
        None if va is None else round(float(va[1]), 5),
        None if nearest is None else predictor.label_space.emotions[nearest],
      )
      if writer is not None:
        writer.writerow(row)
      rows.append(row)
      if va is not None:
        points.va.append(va)
        points.nearest.append(nearest)
        points.frame.append(frame.index)
        points.time_s.append(frame.time_s)
      stats["frames"] += 1
      if annotate:
        annotator = annotator or _Annotator(
          output / "annotated.mp4",
          frame.bgr.shape,
          predictor.preprocess.fps,
          predictor.label_space,
        )
        annotator.write(frame, va, nearest)
  finally:
    if csv_file is not None:
      csv_file.close()
    if annotator is not None:
      annotator.close()
  return rows, points


def _plots(
  predictor, path, output, summary, num_frames, va, nearest, frame_index
) -> None:
  """trajectory.png and timeline.png."""
  step = max(1, len(va) // 2000)  # A readable plot of a long video.
  plots.trajectory(
    va[::step],
    nearest[::step],
    predictor.label_space,
    f"{path.name}: {summary['expression']} ({summary['expression_pn_group']})",
    output / "trajectory.png",
  )
  every_frame = np.full((num_frames, 2), np.nan)
  every_frame[frame_index] = va
  apex = summary["apex"]
  plots.timeline(
    every_frame,
    predictor.preprocess.fps,
    [(s["start_s"], s["end_s"], s["emotion"]) for s in summary["segments"]],
    predictor.label_space,
    f"{path.name}: {summary['expression']}; most frequent "
    f"{summary['dominant_emotion']} ({summary['dominant_share']:.0%} of face "
    f"frames), majority {summary['emotion']}",
    output / "timeline.png",
    apex=(apex["time_s"], apex["valence"], apex["arousal"]),
  )


def _summary(
  predictor,
  path,
  stats,
  va: np.ndarray,
  nearest: np.ndarray,
  frame_index: np.ndarray,
  time_s: np.ndarray,
) -> dict:
  """summary.json; `va`, `nearest`, `frame_index` and `time_s` hold the frames with a face."""
  names, groups = predictor.label_space.emotions, predictor.label_space.groups
  fps = predictor.preprocess.fps
  vote = metrics.video_vote(nearest)
  counts = np.bincount(nearest, minlength=len(names))
  neutral = predictor.label_space.neutral_index
  dominant, share = metrics.dominant_emotion(nearest, neutral)
  smoothing = metrics.window_frames(metrics.TRAJECTORY_SMOOTHING_S, fps)
  min_segment = metrics.window_frames(metrics.MIN_SEGMENT_S, fps)
  expression, intensity_share = metrics.intensity_vote(
    nearest,
    metrics.smooth(va, smoothing, frame_index),
    predictor.label_space.neutral_point(),
    neutral,
  )
  summary = {
    "video": str(path),
    "frames": stats["frames"],
    "fps": fps,
    "expression": names[expression],
    "expression_pn_group": groups[expression],
    "expression_intensity_share": intensity_share,
    "emotion": names[vote],
    "pn_group": groups[vote],
    "decision": "most frequent per-frame emotion (decisions.frame_emotion) over "
    "all frames with a face",
    "votes": {e: int(c) for e, c in zip(names, counts) if c},
    "dominant_emotion": names[dominant],
    "dominant_share": share,
    "dominant_pn_group": groups[dominant],
    "apex": _apex(predictor, va, smoothing, frame_index, time_s),
    "decisions": _decisions(predictor, smoothing, min_segment),
    "model_output": inference.output_description(
      predictor.model.meta, predictor.window_length, predictor.window_policy
    ),
    "mean_valence": float(va[:, 0].mean()),
    "mean_arousal": float(va[:, 1].mean()),
    "face_share": len(va) / stats["frames"],
    "frames_with_several_faces_detected": int(stats["multiple_faces"]),
    # The checkpoint's, but for faces_cropped, which describes this input.
    "preprocessing": dataclasses.asdict(predictor.preprocess),
    "checkpoint": str(predictor.model.path),
  }
  summary.update(_notes(path, stats))
  # Last: one entry per segment, thousands in a long video.
  summary["segments"] = _segments(
    names, fps, nearest, min_segment, frame_index, time_s
  )
  return summary


def _apex(predictor, va, smoothing: int, frame_index, time_s) -> dict:
  """summary.json's apex: the smoothed frame furthest from neutral."""
  apex = metrics.apex_frame(
    va, predictor.label_space.neutral_point(), smoothing, frame_index
  )
  apex_va = metrics.smooth(va, smoothing, frame_index)[apex]
  return {
    "frame": int(frame_index[apex]),
    "time_s": round(float(time_s[apex]), 4),
    "emotion": predictor.label_space.emotions[
      int(metrics.nearest_emotion(apex_va, predictor.prototypes))
    ],
    "valence": float(apex_va[0]),
    "arousal": float(apex_va[1]),
  }


def _decisions(predictor, smoothing: int, min_segment: int) -> dict:
  """summary.json's decisions: how dominant_emotion, apex and segments are made."""
  names = predictor.label_space.emotions
  neutral = predictor.label_space.neutral_index
  centre = (
    "the origin" if neutral is None else f"the {names[neutral]} prototype"
  )
  dominant_rule = (
    "the majority emotion, as the vocabulary has no neutral one"
    if neutral is None
    else f"most frequent per-frame emotion other than {names[neutral]}, "
    f"the majority when every frame is {names[neutral]}"
  )
  return {
    "frame_emotion": metrics.frame_emotion_rule(predictor.classifier),
    "expression": "the headline: the vote of the apex phase. A frame's intensity is the "
    f"distance of its smoothed (valence, arousal) from {centre}; the frames at half the "
    "clip's peak intensity or more vote for their emotions, each with its intensity, "
    f"{names[neutral] if neutral is not None else 'no emotion'} left out unless it is all "
    "there is; expression_intensity_share is the winner's share of the vote. A neutral "
    "onset or offset has no vote however long it lasts",
    "dominant_emotion": f"{dominant_rule}; dominant_share is its share of all frames "
    "with a face",
    "apex": f"frame furthest from {centre} on the valence-arousal trajectory smoothed by "
    f"a centred {smoothing}-frame ({metrics.TRAJECTORY_SMOOTHING_S} s) moving "
    "average; its emotion, valence and arousal are the smoothed ones",
    "segments": "per-frame emotion runs, flicker removed: runs shorter than "
    f"{min_segment} frames ({metrics.MIN_SEGMENT_S} s) form one segment of "
    "their most frequent emotion where together at least that long, else "
    "join the runs beside them; segments cover the frames with a face, a "
    "frame without one ends a segment, and end_s is when its last frame ends",
  }


def _notes(path, stats) -> dict:
  """summary.json's entries on what went wrong, in order: several faces,
  non-finite outputs, a truncated file, pre-cropped frames not aligned."""
  notes = {}
  if stats["multiple_faces"]:
    notes["note"] = (
      "several faces were detected in some frames; the largest face was "
      "followed"
    )
  if stats["non_finite_outputs"]:
    notes["frames_with_non_finite_output"] = int(stats["non_finite_outputs"])
    notes["note_non_finite"] = (
      "the model gave a non-finite output for some frames with a "
      "face; they have no valence, arousal or emotion"
    )
  notes.update(_truncation_note(path, stats))
  if stats["alignment_fallbacks"]:
    notes["frames_used_unaligned"] = int(stats["alignment_fallbacks"])
    notes["note_alignment"] = (
      "no face was found to align in some pre-cropped frames; they "
      "were used whole"
    )
  return notes


def _truncation_note(path, stats) -> dict:
  """The frames announced and decoded, when the file decoded to fewer (logged)."""
  announced, decoded = (
    stats["source_frames_announced"],
    stats["source_frames_decoded"],
  )
  if not (announced > 0 and decoded < announced):
    return {}
  note = (
    f"the file decoded to {decoded} of the {announced} frames its "
    "header announces (truncated or corrupt?); the results cover "
    "the decoded frames"
  )
  logging.warning("%s: %s", path, note)
  return {
    "source_frames_announced": announced,
    "source_frames_decoded": decoded,
    "note_truncated": note,
  }


def _segments(names, fps, nearest, min_segment, frame_index, time_s) -> list:
  """summary.json's segments: nearest-emotion runs without flicker."""
  return [
    {
      "start_frame": int(frame_index[first]),
      "end_frame": int(frame_index[last]),
      "start_s": round(float(time_s[first]), 4),
      "end_s": round(float(time_s[last]) + 1 / fps, 4),
      "emotion": names[emotion],
    }
    for first, last, emotion in metrics.segments(
      nearest, min_segment, frame_index
    )
  ]


class _Annotator:
  """Writes frames with the face box, the current emotion and a valence-arousal inset."""

  def __init__(self, path, shape, fps: float, label_space: emotions.LabelSpace):
    self.height, self.width = shape[:2]
    self.label_space = label_space
    self.writer = cv2.VideoWriter(
      str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (self.width, self.height)
    )
    if not self.writer.isOpened():
      raise OSError(f"cannot open a video writer for {path}")
    self.trail: collections.deque = collections.deque(maxlen=50)

  def write(self, frame, va, nearest) -> None:
    image = frame.bgr.copy()
    side = max(60, min(self.height, self.width) // 4)
    x0, y0 = self.width - side - 8, 8
    cv2.rectangle(image, (x0, y0), (x0 + side, y0 + side), (255, 255, 255), -1)
    cv2.line(
      image,
      (x0 + side // 2, y0),
      (x0 + side // 2, y0 + side),
      (200, 200, 200),
      1,
    )
    cv2.line(
      image,
      (x0, y0 + side // 2),
      (x0 + side, y0 + side // 2),
      (200, 200, 200),
      1,
    )
    to_px = lambda v, a: (
      int(x0 + (v + 1) / 2 * side),
      int(y0 + (1 - a) / 2 * side),
    )
    for v, a in self.label_space.prototypes:
      cv2.drawMarker(
        image, to_px(v, a), (120, 120, 120), cv2.MARKER_TILTED_CROSS, 6, 1
      )
    if va is None:
      self.trail.clear()
      cv2.putText(
        image,
        "no face",
        (10, 28),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.8,
        (0, 0, 255),
        2,
      )
    else:
      self.trail.append(to_px(*va))
      for p, q in zip(list(self.trail)[:-1], list(self.trail)[1:]):
        cv2.line(image, p, q, (255, 128, 0), 1)
      cv2.circle(image, self.trail[-1], 4, (0, 0, 255), -1)
      box = [int(round(v)) for v in frame.box]
      cv2.rectangle(image, tuple(box[:2]), tuple(box[2:]), (0, 255, 0), 2)
      cv2.putText(
        image,
        f"{self.label_space.emotions[nearest]}  v={va[0]:+.2f} a={va[1]:+.2f}",
        (10, 28),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.7,
        (0, 255, 0),
        2,
      )
    self.writer.write(image)

  def close(self):
    self.writer.release()
