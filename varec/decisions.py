"""How a video's emotion is decided from its frames (§3.2), in one place for
training-time validation, eval.py and predict.py: each frame's emotion, the
paper's majority vote, the headline of real clips (the vote of the apex
phase, weighted by intensity), the dominant emotion, the apex and the
segments.

`decide` takes one face's frames (`FaceFrames`) and a `DecisionRule` (the
emotions a frame may take, neutral, the frame rate) and returns every
decision as one `Decision`; the callers choose which frames it sees (a
training video's windows, an evaluated video's labelled frames, a person's
frames with a face). Pure numpy functions on class indices into a label
space's emotions (`varec.emotions.LabelSpace`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from varec import emotions as emotions_lib

# Smoothing for decisions on real videos, in seconds so that it means the same
# at any frame rate; `window_frames` converts. Facial expressions last 0.5 to 4
# s (Ekman, 2003); shorter ones are micro-expressions (Yan et al., 2013). 5
# frames at 25 fps: a one-frame spike shrinks 5-fold, while an expression held
# for the shortest 0.5 s still has frames whose whole window lies on it, so its
# apex keeps its height.
TRAJECTORY_SMOOTHING_S = 0.2
# Emotion runs shorter than the shortest expression are taken for flicker.
MIN_SEGMENT_S = 0.5


def frame_emotions(outputs: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
  """Each frame's emotion from a model's outputs (..., 2[+C]).

  A zero-shot classifier's outputs carry its class probabilities after
  (valence, arousal): its own class (the argmax) decides, as in the source
  package, not the prototype nearest to their probability-weighted mean.
  Otherwise the nearest prototype (§3.2).
  """
  outputs = np.asarray(outputs)
  if outputs.shape[-1] > 2:
    return outputs[..., 2:].argmax(axis=-1)
  return nearest_emotion(outputs, prototypes)


def frame_emotion_rule(classifier: bool) -> str:
  """How `frame_emotions` decides, for the outputs' readers."""
  if classifier:
    return "the zero-shot classifier's own class (its most probable)"
  return "the prototype nearest to the frame's (valence, arousal)"


def nearest_emotion(va: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
  """Index of the prototype nearest (Euclidean) to each (valence, arousal).

  `va` is (..., 2), `prototypes` (num_classes, 2); exact ties go to the lower
  index, and a prototype at infinity is never chosen
  (`LabelSpace.decision_prototypes`).
  """
  distances = np.linalg.norm(
    np.asarray(va)[..., None, :] - np.asarray(prototypes), axis=-1
  )
  return np.argmin(distances, axis=-1)


def video_vote(frame_emotions: np.ndarray) -> int:
  """The most frequent emotion among a video's frames (§3.2).

  Tie-break: among the emotions with the most votes, the one seen last in the
  video wins, because ADFES expressions rise from neutral to their apex at
  the end.
  """
  frame_emotions = np.asarray(frame_emotions)
  if frame_emotions.size == 0:
    raise ValueError("a video needs at least one frame to vote")
  counts = np.bincount(frame_emotions)
  tied = np.flatnonzero(counts == counts.max())
  last_seen = {e: np.flatnonzero(frame_emotions == e)[-1] for e in tied}
  return int(max(tied, key=last_seen.__getitem__))


def window_frames(seconds: float, fps: float) -> int:
  """`seconds` at `fps` in whole frames, plus one if even, so that a window
  has a centre frame."""
  frames = round(seconds * fps)
  return frames + 1 - frames % 2


def _runs(values) -> tuple[np.ndarray, np.ndarray]:
  """(starts, stops) of the runs of equal consecutive values; stops are
  exclusive."""
  values = np.asarray(values)
  change = np.flatnonzero(values[1:] != values[:-1]) + 1
  return np.r_[0, change], np.r_[change, len(values)]


def _stretches(length: int, frame_index) -> tuple[np.ndarray, np.ndarray]:
  """(starts, stops) of the stretches of consecutive frame numbers; one
  without `frame_index`."""
  if frame_index is None:
    return np.array([0]), np.array([length])
  # Constant within a stretch.
  return _runs(np.asarray(frame_index) - np.arange(length))


def smooth(va: np.ndarray, window: int, frame_index=None) -> np.ndarray:
  """Centred moving average over `window` (odd) frames of a (T, 2) trajectory.

  `frame_index` gives the frames' numbers: an average never reaches across a gap
  (frames without a face). Near the ends of a stretch the window keeps the
  frames that exist, so no value is left unsmoothed. `window` 1 returns `va`.
  """
  if window < 1 or window % 2 == 0:
    raise ValueError(
      f"window must be a positive odd number of frames, got {window}"
    )
  va = np.asarray(va, np.float64)
  starts, stops = _stretches(len(va), frame_index)
  t = np.arange(len(va))
  low = np.maximum(t - window // 2, np.repeat(starts, stops - starts))
  high = np.minimum(t + window // 2 + 1, np.repeat(stops, stops - starts))
  total = np.concatenate([np.zeros((1, va.shape[1])), np.cumsum(va, axis=0)])
  return (total[high] - total[low]) / (high - low)[:, None]


def apex_frame(va: np.ndarray, origin, window: int, frame_index=None) -> int:
  """Position of the frame furthest (Euclidean) from `origin` on the trajectory
  `smooth`ed over `window` frames, so that a single noisy frame cannot be the
  apex.

  `origin` is the neutral prototype, or (0, 0) for a vocabulary without one;
  ties go to the first frame.
  """
  return _furthest(smooth(va, window, frame_index), origin)


def _furthest(smoothed: np.ndarray, origin) -> int:
  """Position of the point of `smoothed` furthest from `origin`, the first
  of a tie."""
  distances = np.linalg.norm(smoothed - np.asarray(origin), axis=-1)
  return int(np.argmax(distances))


# How a video's frames decide its emotion: `video_vote` (the paper's majority)
# or `intensity_vote` (the vote of the apex phase, weighted by distance from
# neutral).
DECISIONS = ("vote", "intensity")


def intensity_vote(
  frame_emotions: np.ndarray,
  va: np.ndarray,
  origin,
  exclude: int | None,
  intensity: np.ndarray | None = None,
) -> tuple[int, float]:
  """(emotion, its share of the votes): the vote of the clip's apex phase.

  A frame's intensity is the distance of its (valence, arousal) from `origin`
  (the neutral prototype, or (0, 0) for a vocabulary without one), unless
  `intensity` gives it otherwise (a face-mesh model's facial activity,
  `blendshape_emotions.facial_activity`: measured on the face, not read off
  the model's own output, which for a face it was never shown at rest may be
  far from neutral). The frames
  at half the clip's peak intensity or more (the full width at half maximum of
  the expression) vote for their emotions, each with its intensity; `exclude`
  (neutral) is left out unless no other emotion has a voter. Ties as in
  `video_vote` (the lower index).

  For clips that start neutral and rise to an expression (posed datasets such
  as ADFES and CK+, and most real recordings): a neutral onset or offset, far
  below the peak, has no vote however long it lasts, also where a model never
  shown a neutral face calls it some emotion. A clip without an expression
  has a low peak, and its frames near it decide.
  """
  emotions = np.asarray(frame_emotions)
  if intensity is None:
    intensity = np.linalg.norm(
      np.asarray(va, np.float64)[..., :2] - np.asarray(origin), axis=-1
    )
  intensity = np.asarray(intensity, np.float64)
  voters = intensity >= 0.5 * intensity.max()
  if exclude is not None and (emotions[voters] != exclude).any():
    voters &= emotions != exclude
  # A face that never moves (all intensities 0): one vote per frame.
  weights = intensity if intensity.max() > 0 else np.ones_like(intensity)
  totals = np.bincount(
    emotions[voters],
    weights=weights[voters],
    minlength=int(emotions.max()) + 1,
  )
  winner = int(np.argmax(totals))
  total = totals.sum()
  return winner, float(totals[winner] / total) if total > 0 else 1.0


def dominant_emotion(
  frame_emotions: np.ndarray, exclude: int | None
) -> tuple[int, float]:
  """(emotion, share of all frames): the most frequent emotion other than
  `exclude`.

  Real clips are mostly neutral around a short expression, so their
  `video_vote` is neutral; excluding neutral names the expression. Ties as in
  `video_vote`. When every frame is `exclude`, or `exclude` is None (a
  vocabulary without neutral), this is the `video_vote` of all frames.
  """
  frame_emotions = np.asarray(frame_emotions)
  kept = (
    frame_emotions
    if exclude is None
    else frame_emotions[frame_emotions != exclude]
  )
  winner = video_vote(kept if kept.size else frame_emotions)
  return winner, float(np.mean(frame_emotions == winner))


def segments(
  frame_emotions: np.ndarray, min_length: int, frame_index=None
) -> list[tuple[int, int, int]]:
  """(first, last, emotion) per segment, positions into `frame_emotions`,
  covering each once.

  Flicker is smoothed first: runs of `min_length` frames or more stand; a
  stretch of shorter runs between them becomes one segment of its
  `video_vote` if it lasts `min_length` frames or more, else it is split at its
  middle between the runs either side. So a segment is shorter than
  `min_length` only where its stretch of frames is. Segments never span a gap
  in `frame_index` (frames without a face have no emotion); consecutive
  segments differ in emotion except across such a gap.
  """
  frame_emotions = np.asarray(frame_emotions)
  result = []
  for start, stop in zip(*_stretches(len(frame_emotions), frame_index)):
    labels = _without_flicker(frame_emotions[start:stop], min_length)
    result += [
      (int(start + first), int(start + end - 1), int(labels[first]))
      for first, end in zip(*_runs(labels))
    ]
  return result


def _without_flicker(labels: np.ndarray, min_length: int) -> np.ndarray:
  """`labels` with the runs shorter than `min_length` relabelled as
  `segments` describes."""
  starts, stops = _runs(labels)
  stable = stops - starts >= min_length
  smoothed = labels.copy()
  # Runs of runs: stable ones, or stretches of short ones.
  for first, end in zip(*_runs(stable)):
    if stable[first]:
      continue
    start, stop = starts[first], stops[end - 1]
    if stop - start >= min_length or stop - start == len(labels):
      smoothed[start:stop] = video_vote(labels[start:stop])
    else:  # Between stable runs, or beside one at either end of `labels`.
      left = labels[start - 1] if start else labels[stop]
      right = labels[stop] if stop < len(labels) else left
      middle = (start + stop) // 2
      smoothed[start:middle], smoothed[middle:stop] = left, right
  return smoothed


@dataclasses.dataclass(frozen=True)
class DecisionRule:
  """What deciding a video's frames needs besides the frames."""

  # (E, 2): the emotions' prototypes a frame can take (a model's own are
  # `LabelSpace.decision_prototypes`: untaught emotions at infinity).
  prototypes: np.ndarray
  # The neutral emotion's index, None for a vocabulary without one.
  neutral: int | None
  # Where intensity is measured from: the neutral prototype, or (0, 0).
  origin: np.ndarray
  # The frames' rate: smoothing and segments are set in seconds.
  fps: float
  # Which decision names the video: "vote" (the paper's) or "intensity".
  video_rule: str = "vote"

  def __post_init__(self):
    if self.video_rule not in DECISIONS:
      raise ValueError(
        f"decision must be one of {', '.join(DECISIONS)}, "
        f"got {self.video_rule!r}"
      )

  @classmethod
  def of(
    cls,
    label_space: emotions_lib.LabelSpace,
    fps: float,
    prototypes: np.ndarray | None = None,
    video_rule: str = "vote",
  ) -> DecisionRule:
    """The rule for `label_space` at `fps`.

    Args:
      label_space: the emotions, their prototypes and neutral.
      fps: the frame rate of the frames to decide.
      prototypes: the model's decision prototypes (default: every emotion's).
      video_rule: one of `DECISIONS`.

    Returns:
      The rule.
    """
    return cls(
      label_space.prototype_array() if prototypes is None else prototypes,
      label_space.neutral_index,
      label_space.neutral_point(),
      fps,
      video_rule,
    )

  @property
  def smoothing(self) -> int:
    """The trajectory's smoothing window in frames."""
    return window_frames(TRAJECTORY_SMOOTHING_S, self.fps)

  @property
  def min_segment(self) -> int:
    """The shortest segment in frames."""
    return window_frames(MIN_SEGMENT_S, self.fps)


@dataclasses.dataclass(frozen=True)
class FaceFrames:
  """One face's frames with an output, in order: what every decision reads."""

  va: np.ndarray  # (T, 2) valence and arousal.
  emotions: np.ndarray  # (T,) each frame's emotion (`frame_emotions`).
  # The frames' numbers: a gap is frames without the face. None: consecutive.
  frame_index: np.ndarray | None = None
  # (T,) a face-mesh model's facial activity, the headline's intensity.
  activity: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
  """Every decision on one face's frames; positions index into its frames."""

  vote: int  # The paper's majority vote (`video_vote`).
  votes: np.ndarray  # (E,) frames per emotion.
  expression: int  # The headline: the apex phase's vote (`intensity_vote`).
  expression_share: float  # Its share of the apex phase's vote.
  dominant: int  # The most frequent emotion other than neutral.
  dominant_share: float  # Its share of all frames.
  apex: int  # The frame furthest from neutral, smoothed (`apex_frame`).
  apex_va: np.ndarray  # (2,) the smoothed valence and arousal there.
  apex_emotion: int  # The emotion nearest to `apex_va`.
  segments: list  # (first, last, emotion) per segment (`segments`).
  emotion: int  # The video's emotion by the rule's `video_rule`.


def decide(frames: FaceFrames, rule: DecisionRule) -> Decision:
  """Every decision on one face's frames.

  Args:
    frames: the face's frames with an output (at least one).
    rule: the emotions, neutral and frame rate.

  Returns:
    The decisions.
  """
  va, nearest = np.asarray(frames.va), np.asarray(frames.emotions)
  index, smoothing = frames.frame_index, rule.smoothing
  vote = video_vote(nearest)
  dominant, dominant_share = dominant_emotion(nearest, rule.neutral)
  smoothed = smooth(va, smoothing, index)
  activity = frames.activity
  if activity is not None:
    activity = smooth(np.asarray(activity)[:, None], smoothing, index)[:, 0]
  expression, share = intensity_vote(
    nearest, smoothed, rule.origin, rule.neutral, activity
  )
  # `apex_frame` on the trajectory already smoothed.
  apex = _furthest(smoothed, rule.origin)
  return Decision(
    vote=vote,
    votes=np.bincount(nearest, minlength=len(rule.prototypes)),
    expression=expression,
    expression_share=share,
    dominant=dominant,
    dominant_share=dominant_share,
    apex=apex,
    apex_va=smoothed[apex],
    apex_emotion=int(nearest_emotion(smoothed[apex], rule.prototypes)),
    segments=segments(nearest, rule.min_segment, index),
    emotion=vote if rule.video_rule == "vote" else expression,
  )


def video_decisions(
  pred: np.ndarray,
  video_ids: np.ndarray,
  true_emotions: np.ndarray,
  rule: DecisionRule,
) -> tuple[np.ndarray, np.ndarray]:
  """(true, decided) emotion per video of training-time examples.

  Args:
    pred: (N, ..., 2[+C]) the examples' outputs (frames or windows).
    video_ids: (N,) each example's video.
    true_emotions: (N,) each example's video's emotion.
    rule: how a video is decided; it sees all its examples' frames.

  Returns:
    (true, decided) arrays, one entry per video in `np.unique` order.
  """
  pred = np.asarray(pred)
  pred = pred.reshape(len(video_ids), -1, pred.shape[-1])
  true, decided = [], []
  for video in np.unique(video_ids):
    rows = video_ids == video
    outputs = pred[rows].reshape(-1, pred.shape[-1])
    frames = FaceFrames(
      outputs[:, :2], frame_emotions(outputs, rule.prototypes)
    )
    decided.append(decide(frames, rule).emotion)
    true.append(int(true_emotions[rows][0]))
  return np.array(true), np.array(decided)
