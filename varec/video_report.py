"""predict.py's outputs for one video, from `Predictor.iter_frames`'s per-frame stream.

frames.csv (one row per frame and person, one for a frame without a face),
summary.json (the headline `expression`, the apex phase's vote; the paper's
majority vote; and the other decisions fit for real clips: dominant emotion,
apex, segments; the whole video's for its main person, then `people`, each
person's), trajectory.png and timeline.png (a panel, a row, per person) and,
on request, annotated.mp4 (`_Annotator`).
The folder is written beside its target and moved into place whole.
Nothing here runs the model.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import itertools
import json
import logging
import math
import os
import pathlib
import shutil

import cv2
import numpy as np
import pandas as pd

from varec import blendshape_emotions
from varec import emotions
from varec import html_report
from varec import inference
from varec import metrics
from varec import plots
from varec import preprocessing

FRAME_COLUMNS = (
  "frame",
  "time_s",
  "person",
  "face_found",
  "box_x0",
  "box_y0",
  "box_x1",
  "box_y1",
  "valence",
  "arousal",
  "nearest_emotion",
)
_PERSON = FRAME_COLUMNS.index("person")


SUMMARY = "summary.json"


def write(
  predictor,
  path,
  output=None,
  annotate: bool = False,
  report: pathlib.Path | None = None,
) -> tuple[pd.DataFrame, dict]:
  """Predicts every frame of `path` with a `varec.predictor.Predictor`; with `output`,
  writes frames.csv, summary.json, trajectory.png, timeline.png (and annotated.mp4
  if `annotate`; with `report`, the path of the run's report.html, the video's
  page of it, `varec.html_report`) there.

  Returns the per-frame table (the columns of frames.csv) and the summary.

  Raises:
    preprocessing.VideoError: unreadable file, no frame, or no face in any frame.
    OSError: `output` cannot be written.
  """
  path = pathlib.Path(path)
  if output is None:
    return _report(predictor, path, None, annotate, None)
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
    try:
      result = _report(predictor, path, staging, annotate, report)
    except OSError as e:
      raise _in_output(e, staging, output) from None
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


def _in_output(error: OSError, staging: pathlib.Path, output: pathlib.Path):
  """`error` naming the file where it was to end up in `output`, not in the
  hidden staging folder the user never sees."""
  if not error.filename:
    return error
  try:
    inside = pathlib.Path(error.filename).relative_to(staging)
  except ValueError:
    return error
  return OSError(error.errno, error.strerror, str(output / inside))


@dataclasses.dataclass
class _Trajectory:
  """One person's frames that have an output."""

  va: list = dataclasses.field(default_factory=list)
  nearest: list = dataclasses.field(default_factory=list)
  frame: list = dataclasses.field(default_factory=list)
  time_s: list = dataclasses.field(default_factory=list)
  # Blendshape scores (face-mesh models), else None per frame.
  blendshapes: list = dataclasses.field(default_factory=list)

  def add(self, frame, va, nearest, blendshapes=None) -> None:
    self.va.append(va)
    self.nearest.append(nearest)
    self.frame.append(frame.index)
    self.time_s.append(frame.time_s)
    self.blendshapes.append(blendshapes)

  def arrays(self) -> tuple[np.ndarray, ...]:
    """(va, nearest, frame index, time_s, facial activity or None) as arrays
    (`blendshape_emotions.facial_activity` from the person's resting face)."""
    activity = None
    if self.blendshapes and all(b is not None for b in self.blendshapes):
      scores = np.asarray(self.blendshapes)
      activity = blendshape_emotions.facial_activity(
        scores, blendshape_emotions.resting_face(scores)
      )
    return (
      np.asarray(self.va),
      np.asarray(self.nearest),
      np.asarray(self.frame),
      np.asarray(self.time_s),
      activity,
    )


def _report(
  predictor,
  path: pathlib.Path,
  output: pathlib.Path | None,
  annotate: bool,
  report: pathlib.Path | None,
) -> tuple[pd.DataFrame, dict]:
  stats = collections.Counter()
  rows, people = _frame_rows(
    predictor, path, output, annotate, report is not None, stats
  )
  rows, people, dropped = _without_short_tracks(
    predictor, rows, people, stats["frames"]
  )
  if not people and stats["non_finite_outputs"]:
    raise preprocessing.VideoError(
      path,
      f"the model's output is not finite (NaN or inf) for all "
      f"{stats['non_finite_outputs']} frames with a face: the checkpoint is broken (a run "
      "that diverged?)",
    )
  if not people:
    raise preprocessing.VideoError(
      path, f"no face found in any of {stats['frames']} frames"
    )
  summary = _summary(predictor, path, stats, people, dropped)
  if output is not None:
    with open(output / "frames.csv", "w", newline="") as csv_file:
      writer = csv.writer(csv_file)
      writer.writerow(FRAME_COLUMNS)
      writer.writerows(rows)
    (output / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    _plots(predictor, path, output, summary, stats["frames"], people)
    if report is not None:
      _page(predictor, path, output, summary, rows, people, report)
  return pd.DataFrame(rows, columns=FRAME_COLUMNS), summary


def _page(predictor, path, output, summary, rows, people, report) -> None:
  """The video's page of the HTML report `report` and its apex thumbnails."""
  apex_boxes = {}
  for person in summary["people"]:
    at = (person["apex"]["frame"], person["person"])
    row = next(r for r in rows if (r[0], r[_PERSON]) == at)
    apex_boxes[person["person"]] = row[_PERSON + 2 : _PERSON + 6]
  html_report.write_thumbnails(output, path, summary, apex_boxes)
  trajectories = {}
  for p, t in people.items():
    va, _, _, time_s, _ = t.arrays()
    trajectories[p] = (time_s, va)
  html_report.write_page(
    output, summary, trajectories, predictor.label_space, report
  )


def _row(frame, person, box, va, nearest, label_space) -> tuple:
  """One row of frames.csv: a person's face on a frame, or a frame without one."""
  box = [None] * 4 if box is None else [int(round(v)) for v in box]
  return (
    frame.index,
    round(frame.time_s, 4),
    person,
    person is not None,
    *box,
    None if va is None else round(float(va[0]), 5),
    None if va is None else round(float(va[1]), 5),
    None if nearest is None else label_space.emotions[nearest],
  )


def _frame_rows(
  predictor, path, output, annotate, report, stats
) -> tuple[list, dict[int, _Trajectory]]:
  """The rows of frames.csv (one per frame and person) and each person's
  trajectory; the annotated video and the report's player as they come."""
  rows, people, annotator, player = [], {}, None, None
  try:
    for frame, outputs in predictor.iter_frames(
      path, keep_bgr=annotate or report, stats=stats
    ):
      stats["frames"] += 1
      faces = {}
      for person, box in frame.faces.items():
        va = outputs[person]
        if not np.isfinite(va).all():
          # No emotion from a NaN: the face gets none.
          stats["non_finite_outputs"] += 1
          va = None
        nearest = (
          None
          if va is None
          else int(metrics.frame_emotions(va, predictor.prototypes))
        )
        va = None if va is None else va[:2]
        rows.append(
          _row(frame, person, box, va, nearest, predictor.label_space)
        )
        if va is not None:
          people.setdefault(person, _Trajectory()).add(
            frame, va, nearest, frame.blendshapes.get(person)
          )
        faces[person] = (box, va, nearest)
      if not frame.faces:
        rows.append(_row(frame, None, None, None, None, predictor.label_space))
      image = frame.bgr
      if annotate:
        annotator = annotator or _Annotator(
          output / "annotated.mp4",
          frame.bgr.shape,
          predictor.preprocess.fps,
          predictor.label_space,
        )
        image = annotator.write(frame, faces)
      if report:
        player = player or html_report.PlayerWriter(
          output / html_report.PLAYER, image.shape, predictor.preprocess.fps
        )
        player.write(image)
  finally:
    for writer in (annotator, player):
      if writer is not None:
        writer.close()
  return rows, people


def _without_short_tracks(predictor, rows, people, num_frames: int):
  """(rows, people, dropped ids) without the tracks shorter than
  `tracking.min_track_s` (false detections, passers-by); a frame left without
  a face keeps a row saying so."""
  if not predictor.follows_people:
    return rows, people, []
  # A clip shorter than that (a still) keeps every face.
  shortest = min(
    math.ceil(predictor.tracking.min_track_s * predictor.preprocess.fps),
    num_frames,
  )
  lengths = collections.Counter(
    r[_PERSON] for r in rows if r[_PERSON] is not None
  )
  dropped = sorted(p for p, n in lengths.items() if n < shortest)
  if not dropped:
    return rows, people, []
  kept = []
  for _, group in itertools.groupby(rows, key=lambda r: r[0]):
    group = list(group)
    mine = [r for r in group if r[_PERSON] not in dropped]
    no_face = (*group[0][:2], None, False, *[None] * (len(FRAME_COLUMNS) - 4))
    kept.extend(mine or [no_face])
  return kept, {p: t for p, t in people.items() if p not in dropped}, dropped


def _plots(predictor, path, output, summary, num_frames, people) -> None:
  """trajectory.png and timeline.png: one panel, or row, per person."""
  panels, rows = [], []
  for entry in summary["people"]:
    va, nearest, frame_index, _, _ = people[entry["person"]].arrays()
    name = (
      f"{path.name}: "
      if len(people) == 1
      else f"{path.name}, person {entry['person']}: "
    )
    step = max(1, len(va) // 2000)  # A readable plot of a long video.
    panels.append(
      plots.Trajectory(
        va[::step],
        nearest[::step],
        f"{name}{entry['expression']} ({entry['expression_pn_group']})",
      )
    )
    every_frame = np.full((num_frames, 2), np.nan)
    every_frame[frame_index] = va
    apex = entry["apex"]
    rows.append(
      plots.Timeline(
        every_frame,
        [(s["start_s"], s["end_s"], s["emotion"]) for s in entry["segments"]],
        f"{name}{entry['expression']}; most frequent "
        f"{entry['dominant_emotion']} ({entry['dominant_share']:.0%} of face "
        f"frames), majority {entry['emotion']}",
        apex=(apex["time_s"], apex["valence"], apex["arousal"]),
      )
    )
  plots.trajectory(panels, predictor.label_space, output / "trajectory.png")
  plots.timeline(
    rows,
    predictor.preprocess.fps,
    predictor.label_space,
    output / "timeline.png",
  )


def _summary(predictor, path, stats, people, dropped) -> dict:
  """summary.json: the whole video's fields are its main person's (the one
  with the most frames), then every person's."""
  by_person = {
    p: person_summary(
      predictor.label_space,
      predictor.prototypes,
      predictor.preprocess.fps,
      people[p].arrays(),
      stats["frames"],
    )
    for p in sorted(people)
  }
  main = max(by_person, key=lambda p: (by_person[p]["face_frames"], -p))
  headline = {k: v for k, v in by_person[main].items() if k != "segments"}
  summary = {
    "video": str(path),
    "frames": stats["frames"],
    "fps": predictor.preprocess.fps,
    "person": main,
    **headline,
    "decision": "most frequent per-frame emotion (decisions.frame_emotion) over "
    "all frames with a face",
    "decisions": _decisions(predictor),
    "model_output": inference.output_description(
      predictor.model.meta,
      predictor.window_length,
      predictor.window_policy,
      predictor.engine.flip_average,
    ),
    "frames_with_several_faces_detected": int(stats["multiple_faces"]),
    # The checkpoint's, but for faces_cropped, which describes this input.
    "preprocessing": dataclasses.asdict(predictor.preprocess),
    "checkpoint": str(predictor.model.path),
  }
  if predictor.follows_people:
    summary["tracking"] = {
      **dataclasses.asdict(predictor.tracking),
      "people_found": len(people) + len(dropped),
      "short_tracks_dropped": dropped,
      "descriptors_computed": int(stats["descriptors"]),
    }
  summary.update(_notes(path, stats, predictor.follows_people))
  # Last: one entry per segment, thousands in a long video.
  summary["people"] = [{"person": p, **by_person[p]} for p in by_person]
  summary["segments"] = by_person[main]["segments"]
  return summary


def person_summary(
  label_space: emotions.LabelSpace,
  prototypes: np.ndarray,
  fps: float,
  arrays: tuple[np.ndarray, ...],
  num_frames: int,
) -> dict:
  """One person's (or one evaluated video's) decisions and means: `arrays` are
  (va, frame emotions, frame index, time_s, facial activity or None) of the
  frames with an output, `prototypes` the model's decision prototypes,
  `num_frames` the video's length."""
  va, nearest, frame_index, time_s, activity = arrays
  names, groups = label_space.emotions, label_space.groups
  vote = metrics.video_vote(nearest)
  counts = np.bincount(nearest, minlength=len(names))
  neutral = label_space.neutral_index
  dominant, share = metrics.dominant_emotion(nearest, neutral)
  smoothing, min_segment = _decision_frames(fps)
  smoothed = metrics.smooth(va, smoothing, frame_index)
  expression, intensity_share = metrics.intensity_vote(
    nearest,
    smoothed,
    label_space.neutral_point(),
    neutral,
    None
    if activity is None
    else metrics.smooth(activity[:, None], smoothing, frame_index)[:, 0],
  )
  apex = metrics.apex_frame(
    va, label_space.neutral_point(), smoothing, frame_index
  )
  return {
    "expression": names[expression],
    "expression_pn_group": groups[expression],
    "expression_intensity_share": intensity_share,
    "emotion": names[vote],
    "pn_group": groups[vote],
    "votes": {e: int(c) for e, c in zip(names, counts) if c},
    "dominant_emotion": names[dominant],
    "dominant_share": share,
    "dominant_pn_group": groups[dominant],
    # The smoothed frame furthest from neutral, with its smoothed values.
    "apex": {
      "frame": int(frame_index[apex]),
      "time_s": round(float(time_s[apex]), 4),
      "emotion": names[
        int(metrics.nearest_emotion(smoothed[apex], prototypes))
      ],
      "valence": float(smoothed[apex][0]),
      "arousal": float(smoothed[apex][1]),
    },
    "mean_valence": float(va[:, 0].mean()),
    "mean_arousal": float(va[:, 1].mean()),
    "face_frames": len(va),
    "face_share": len(va) / num_frames,
    "first_s": round(float(time_s[0]), 4),
    "last_s": round(float(time_s[-1]) + 1 / fps, 4),
    "segments": _segments(
      names, fps, nearest, min_segment, frame_index, time_s
    ),
  }


def _decision_frames(fps: float) -> tuple[int, int]:
  """(trajectory smoothing, shortest segment) in frames at `fps`."""
  return (
    metrics.window_frames(metrics.TRAJECTORY_SMOOTHING_S, fps),
    metrics.window_frames(metrics.MIN_SEGMENT_S, fps),
  )


def _decisions(predictor) -> dict:
  """summary.json's decisions: how dominant_emotion, apex and segments are made."""
  smoothing, min_segment = _decision_frames(predictor.preprocess.fps)
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
  intensity = (
    "its facial activity, smoothed: its strongest action unit read from "
    "MediaPipe's blendshapes, as the share of the way from the person's resting "
    f"face (each blendshape's {blendshape_emotions.REST_QUANTILE:.0%} quantile "
    "over their frames) to the unit's maximum"
    if predictor.reads_mesh
    else f"the distance of its smoothed (valence, arousal) from {centre}"
  )
  return {
    "frame_emotion": metrics.frame_emotion_rule(predictor.classifier),
    "expression": "the headline: the vote of the apex phase. A frame's intensity is "
    f"{intensity}; the frames at half the "
    "clip's peak intensity or more vote for their emotions, each with its intensity"
    + (
      ""
      if neutral is None
      else f", {names[neutral]} left out unless it is all there is"
    )
    + "; expression_intensity_share is the winner's share of the vote. A neutral "
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


def _notes(path, stats, follows_people: bool) -> dict:
  """summary.json's entries on what went wrong, in order: several faces (when
  only the largest is followed), non-finite outputs, a truncated file,
  pre-cropped frames not aligned."""
  notes = {}
  if stats["multiple_faces"] and not follows_people:
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


# plots.PERSON_COLOURS as OpenCV's BGR.
_PERSON_BGR = tuple(
  tuple(int(c[k : k + 2], 16) for k in (5, 3, 1)) for c in plots.PERSON_COLOURS
)


class _Annotator:
  """Writes frames with each face's box, person and current emotion, and a
  valence-arousal inset with each person's recent trail."""

  def __init__(self, path, shape, fps: float, label_space: emotions.LabelSpace):
    self.height, self.width = shape[:2]
    self.label_space = label_space
    self.writer = cv2.VideoWriter(
      str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (self.width, self.height)
    )
    if not self.writer.isOpened():
      raise OSError(f"cannot open a video writer for {path}")
    self.trails: dict[int, collections.deque] = {}

  def write(self, frame, faces: dict) -> np.ndarray:
    """Writes and returns the annotated frame; `faces`: {person: (box,
    (valence, arousal) or None, emotion index or None)}."""
    image = frame.bgr.copy()
    side = max(60, min(self.height, self.width) // 4)
    x0, y0 = self.width - side - 8, 8
    cv2.rectangle(image, (x0, y0), (x0 + side, y0 + side), (255, 255, 255), -1)
    for start, end in (
      ((x0 + side // 2, y0), (x0 + side // 2, y0 + side)),
      ((x0, y0 + side // 2), (x0 + side, y0 + side // 2)),
    ):
      cv2.line(image, start, end, (200, 200, 200), 1)
    to_px = lambda v, a: (
      int(x0 + (v + 1) / 2 * side),
      int(y0 + (1 - a) / 2 * side),
    )
    for v, a in self.label_space.prototypes:
      cv2.drawMarker(
        image, to_px(v, a), (120, 120, 120), cv2.MARKER_TILTED_CROSS, 6, 1
      )
    for person in list(self.trails):
      if person not in faces or faces[person][1] is None:
        del self.trails[person]  # A trail breaks where its face is lost.
    if not faces:
      _text(image, "no face", (10, 28), (0, 0, 255))
    for line, (person, (box, va, nearest)) in enumerate(sorted(faces.items())):
      colour = _PERSON_BGR[person % len(_PERSON_BGR)]
      box = [int(round(v)) for v in box]
      cv2.rectangle(image, tuple(box[:2]), tuple(box[2:]), colour, 2)
      label = f"#{person}" if len(faces) > 1 or person else ""
      if va is None:
        text = f"{label} no output".strip()
      else:
        trail = self.trails.setdefault(person, collections.deque(maxlen=50))
        trail.append(to_px(*va))
        for p, q in zip(list(trail)[:-1], list(trail)[1:]):
          cv2.line(image, p, q, colour, 1)
        cv2.circle(image, trail[-1], 4, colour, -1)
        text = (
          f"{label} {self.label_space.emotions[nearest]}  "
          f"v={va[0]:+.2f} a={va[1]:+.2f}"
        ).strip()
      _text(image, text, (10, 28 + 26 * line), colour)
      if label:
        _text(image, label, (box[0], max(16, box[1] - 6)), colour)
    self.writer.write(image)
    return image

  def close(self):
    self.writer.release()


def _text(image, text: str, origin, colour) -> None:
  cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
