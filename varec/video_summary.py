"""summary.json as typed values: one video's decisions, per person and whole.

Owns the step decisions -> summary: `summarize_person` runs
`decisions.decide` on one person's trajectory (`Trajectory`) and names its
results (`PersonSummary`); `summarize_video` adds what the run was
(`predictions.PredictionSettings`) and what went wrong on the way
(`StreamCounts`) as a `VideoSummary`, whose `to_json` is summary.json's
content, key for key. Nothing here reads or writes files.
"""

from __future__ import annotations

import collections
import dataclasses
import logging

import numpy as np

from varec import blendshape_emotions
from varec import decisions
from varec import emotions
from varec import predictions
from varec import tracking as tracking_lib
from varec.preprocess import config as preprocess_config


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectory:
  """One person's frames with an output, in order."""

  va: np.ndarray  # (T, 2) valence and arousal.
  emotions: np.ndarray  # (T,) each frame's emotion index.
  frame_index: np.ndarray  # (T,) the frames' numbers.
  time_s: np.ndarray  # (T,) the frames' times.
  # (T,) a face-mesh model's facial activity, the headline's intensity.
  activity: np.ndarray | None = None

  def face_frames(self) -> decisions.FaceFrames:
    return decisions.FaceFrames(
      self.va, self.emotions, self.frame_index, self.activity
    )


@dataclasses.dataclass(frozen=True)
class StreamCounts:
  """What the prediction stream counted (`Predictor.predictions`' stats)."""

  frames: int = 0
  multiple_faces: int = 0  # Detections that found several faces.
  descriptors: int = 0  # Face descriptors the tracker computed.
  non_finite_outputs: int = 0  # Faces whose output was NaN or inf.
  source_frames_announced: int = 0  # By the file's header (0: unknown).
  source_frames_decoded: int = 0
  alignment_fallbacks: int = 0  # Pre-cropped frames used unaligned.

  @classmethod
  def of(cls, stats: collections.Counter) -> StreamCounts:
    """The counts of a stream's `stats`, once it has ended."""
    return cls(**{f.name: int(stats[f.name]) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Apex:
  """The smoothed frame furthest from neutral, with its smoothed values."""

  frame: int
  time_s: float
  emotion: str
  valence: float
  arousal: float


@dataclasses.dataclass(frozen=True)
class Segment:
  """A run of one emotion (`decisions.segments`)."""

  start_frame: int
  end_frame: int
  start_s: float
  end_s: float  # When its last frame ends.
  emotion: str


@dataclasses.dataclass(frozen=True)
class PersonSummary:
  """One person's (or one evaluated video's) decisions and means."""

  person: int
  expression: str  # The headline: the apex phase's vote.
  expression_pn_group: str
  expression_intensity_share: float
  emotion: str  # The paper's majority vote.
  pn_group: str
  votes: dict[str, int]  # Frames per emotion, those with any.
  dominant_emotion: str
  dominant_share: float
  dominant_pn_group: str
  apex: Apex
  mean_valence: float
  mean_arousal: float
  face_frames: int
  face_share: float  # Of all the video's frames.
  first_s: float
  last_s: float  # When the last frame with an output ends.
  segments: tuple[Segment, ...]

  def to_json(self) -> dict:
    """summary.json's entry for this person (without `person`: `people`
    entries put it first themselves)."""
    fields = dataclasses.asdict(self)
    del fields["person"]
    fields["segments"] = [dataclasses.asdict(s) for s in self.segments]
    return fields


@dataclasses.dataclass(frozen=True)
class DecisionRules:
  """summary.json's `decisions`: how each decision is made, in words."""

  frame_emotion: str
  expression: str
  dominant_emotion: str
  apex: str
  segments: str


@dataclasses.dataclass(frozen=True)
class TrackingSummary:
  """summary.json's `tracking`, where faces are tracked as people."""

  config: tracking_lib.TrackingConfig
  people_found: int  # Tracks, short ones included.
  short_tracks_dropped: tuple[int, ...]
  descriptors_computed: int

  def to_json(self) -> dict:
    return {
      **dataclasses.asdict(self.config),
      "people_found": self.people_found,
      "short_tracks_dropped": list(self.short_tracks_dropped),
      "descriptors_computed": self.descriptors_computed,
    }


@dataclasses.dataclass(frozen=True)
class VideoSummary:
  """summary.json: the whole video's fields are its main person's (the one
  with the most frames), then every person's."""

  video: str
  frames: int
  fps: float
  person: int  # The main person.
  decisions: DecisionRules
  model_output: str
  frames_with_several_faces_detected: int
  preprocessing: preprocess_config.PreprocessConfig
  checkpoint: str
  tracking: TrackingSummary | None  # None: the largest face followed.
  several_faces_note: bool  # Several faces seen, the largest followed.
  counts: StreamCounts
  people: tuple[PersonSummary, ...]  # In person order.

  @property
  def main(self) -> PersonSummary:
    return next(p for p in self.people if p.person == self.person)

  def to_json(self) -> dict:
    """summary.json's content, in its order."""
    headline = self.main.to_json()
    segments = headline.pop("segments")
    summary = {
      "video": self.video,
      "frames": self.frames,
      "fps": self.fps,
      "person": self.person,
      **headline,
      "decision": "most frequent per-frame emotion (decisions.frame_emotion) "
      "over all frames with a face",
      "decisions": dataclasses.asdict(self.decisions),
      "model_output": self.model_output,
      "frames_with_several_faces_detected": (
        self.frames_with_several_faces_detected
      ),
      "preprocessing": dataclasses.asdict(self.preprocessing),
      "checkpoint": self.checkpoint,
    }
    if self.tracking is not None:
      summary["tracking"] = self.tracking.to_json()
    summary.update(_notes(self.counts, self.several_faces_note))
    # Last: one entry per segment, thousands in a long video.
    summary["people"] = [
      {"person": p.person, **p.to_json()} for p in self.people
    ]
    summary["segments"] = segments
    return summary


def trajectory(
  va: list[np.ndarray],
  frames_emotions: list[int],
  frame_index: list[int],
  time_s: list[float],
  blendshapes: list[np.ndarray | None],
) -> Trajectory:
  """A person's `Trajectory` from its frames' values, the facial activity
  from their blendshapes where every frame has them
  (`blendshape_emotions.facial_activity` from the person's resting face)."""
  activity = None
  if blendshapes and all(b is not None for b in blendshapes):
    scores = np.asarray(blendshapes)
    activity = blendshape_emotions.facial_activity(
      scores, blendshape_emotions.resting_face(scores)
    )
  return Trajectory(
    np.asarray(va),
    np.asarray(frames_emotions),
    np.asarray(frame_index),
    np.asarray(time_s),
    activity,
  )


def summarize_person(
  label_space: emotions.LabelSpace,
  prototypes: np.ndarray,
  fps: float,
  frames: Trajectory,
  num_frames: int,
  person: int = 0,
) -> PersonSummary:
  """One person's decisions (`decisions.decide`) and means.

  Args:
    label_space: the emotions the frames were decided among.
    prototypes: the model's decision prototypes.
    fps: the frames' rate.
    frames: the person's frames with an output (at least one).
    num_frames: the video's length.
    person: the person's id.

  Returns:
    The person's summary.
  """
  va, time_s, frame_index = frames.va, frames.time_s, frames.frame_index
  names, groups = label_space.emotions, label_space.groups
  rule = decisions.DecisionRule.of(label_space, fps, prototypes)
  decided = decisions.decide(frames.face_frames(), rule)
  apex = decided.apex
  return PersonSummary(
    person=person,
    expression=names[decided.expression],
    expression_pn_group=groups[decided.expression],
    expression_intensity_share=decided.expression_share,
    emotion=names[decided.vote],
    pn_group=groups[decided.vote],
    votes={e: int(c) for e, c in zip(names, decided.votes) if c},
    dominant_emotion=names[decided.dominant],
    dominant_share=decided.dominant_share,
    dominant_pn_group=groups[decided.dominant],
    apex=Apex(
      frame=int(frame_index[apex]),
      time_s=round(float(time_s[apex]), 4),
      emotion=names[decided.apex_emotion],
      valence=float(decided.apex_va[0]),
      arousal=float(decided.apex_va[1]),
    ),
    mean_valence=float(va[:, 0].mean()),
    mean_arousal=float(va[:, 1].mean()),
    face_frames=len(va),
    face_share=len(va) / num_frames,
    first_s=round(float(time_s[0]), 4),
    last_s=round(float(time_s[-1]) + 1 / fps, 4),
    segments=_segments(names, fps, decided.segments, frame_index, time_s),
  )


def person_summary(
  label_space: emotions.LabelSpace,
  prototypes: np.ndarray,
  fps: float,
  arrays: tuple[np.ndarray, ...],
  num_frames: int,
) -> dict:
  """`summarize_person` as summary.json writes it, of `arrays`: (va, frame
  emotions, frame index, time_s, facial activity or None) of the frames with
  an output."""
  return summarize_person(
    label_space, prototypes, fps, Trajectory(*arrays), num_frames
  ).to_json()


def summarize_video(
  video: str,
  settings: predictions.PredictionSettings,
  counts: StreamCounts,
  people: dict[int, Trajectory],
  dropped: tuple[int, ...],
) -> VideoSummary:
  """The `VideoSummary` of a video's people (at least one), those of its
  tracks too short to keep `dropped`; a truncated file is logged."""
  by_person = tuple(
    summarize_person(
      settings.label_space,
      settings.prototypes,
      settings.fps,
      people[p],
      counts.frames,
      p,
    )
    for p in sorted(people)
  )
  main = max(by_person, key=lambda p: (p.face_frames, -p.person))
  tracking = None
  if settings.follows_people:
    tracking = TrackingSummary(
      settings.tracking,
      len(people) + len(dropped),
      tuple(dropped),
      counts.descriptors,
    )
  _log_truncation(video, counts)
  return VideoSummary(
    video=video,
    frames=counts.frames,
    fps=settings.fps,
    person=main.person,
    decisions=decision_rules(settings),
    model_output=settings.model_output,
    frames_with_several_faces_detected=counts.multiple_faces,
    preprocessing=settings.preprocessing,
    checkpoint=settings.checkpoint,
    tracking=tracking,
    several_faces_note=bool(counts.multiple_faces)
    and not settings.follows_people,
    counts=counts,
    people=by_person,
  )


def decision_rules(settings: predictions.PredictionSettings) -> DecisionRules:
  """How dominant_emotion, apex and segments are made, in words."""
  space = settings.label_space
  rule = decisions.DecisionRule.of(space, settings.fps)
  names, neutral = space.emotions, space.neutral_index
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
    "MediaPipe's blendshapes, as the share of the way from the person's "
    f"resting face (each blendshape's {blendshape_emotions.REST_QUANTILE:.0%} "
    "quantile over their frames) to the unit's maximum"
    if settings.reads_mesh
    else f"the distance of its smoothed (valence, arousal) from {centre}"
  )
  return DecisionRules(
    frame_emotion=decisions.frame_emotion_rule(settings.classifier),
    expression="the headline: the vote of the apex phase. A frame's intensity "
    f"is {intensity}; the frames at half the "
    "clip's peak intensity or more vote for their emotions, each with its "
    "intensity"
    + (
      ""
      if neutral is None
      else f", {names[neutral]} left out unless it is all there is"
    )
    + "; expression_intensity_share is the winner's share of the vote. A "
    "neutral onset or offset has no vote however long it lasts",
    dominant_emotion=f"{dominant_rule}; dominant_share is its share of all "
    "frames with a face",
    apex=f"frame furthest from {centre} on the valence-arousal trajectory "
    f"smoothed by a centred {rule.smoothing}-frame "
    f"({decisions.TRAJECTORY_SMOOTHING_S} s) moving "
    "average; its emotion, valence and arousal are the smoothed ones",
    segments="per-frame emotion runs, flicker removed: runs shorter than "
    f"{rule.min_segment} frames ({decisions.MIN_SEGMENT_S} s) form one "
    "segment of their most frequent emotion where together at least that "
    "long, else join the runs beside them; segments cover the frames with a "
    "face, a frame without one ends a segment, and end_s is when its last "
    "frame ends",
  )


def _notes(counts: StreamCounts, several_faces: bool) -> dict:
  """summary.json's entries on what went wrong, in order: several faces (when
  only the largest is followed), non-finite outputs, a truncated file,
  pre-cropped frames not aligned."""
  notes = {}
  if several_faces:
    notes["note"] = (
      "several faces were detected in some frames; the largest face was "
      "followed"
    )
  if counts.non_finite_outputs:
    notes["frames_with_non_finite_output"] = counts.non_finite_outputs
    notes["note_non_finite"] = (
      "the model gave a non-finite output for some frames with a "
      "face; they have no valence, arousal or emotion"
    )
  if _truncated(counts):
    notes["source_frames_announced"] = counts.source_frames_announced
    notes["source_frames_decoded"] = counts.source_frames_decoded
    notes["note_truncated"] = _truncation_note(counts)
  if counts.alignment_fallbacks:
    notes["frames_used_unaligned"] = counts.alignment_fallbacks
    notes["note_alignment"] = (
      "no face was found to align in some pre-cropped frames; they "
      "were used whole"
    )
  return notes


def _truncated(counts: StreamCounts) -> bool:
  """The file decoded to fewer frames than its header announces."""
  announced = counts.source_frames_announced
  return announced > 0 and counts.source_frames_decoded < announced


def _truncation_note(counts: StreamCounts) -> str:
  return (
    f"the file decoded to {counts.source_frames_decoded} of the "
    f"{counts.source_frames_announced} frames its header announces "
    "(truncated or corrupt?); the results cover the decoded frames"
  )


def _log_truncation(video: str, counts: StreamCounts) -> None:
  if _truncated(counts):
    logging.warning("%s: %s", video, _truncation_note(counts))


def _segments(names, fps, found, frame_index, time_s) -> tuple[Segment, ...]:
  """`Segment`s from `decisions.segments`' (first, last, emotion)."""
  return tuple(
    Segment(
      start_frame=int(frame_index[first]),
      end_frame=int(frame_index[last]),
      start_s=round(float(time_s[first]), 4),
      end_s=round(float(time_s[last]) + 1 / fps, 4),
      emotion=names[emotion],
    )
    for first, last, emotion in found
  )
