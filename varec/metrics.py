"""Decisions and metrics of §3.2, §4.4 and §5: from per-frame valence-arousal
to a video's emotion, and the scores of Table 3; and decisions that fit real,
mostly neutral videos (dominant emotion, apex, segments).

Pure numpy functions on class indices into a label space's emotions
(`varec.emotions.LabelSpace`): its prototypes, number of classes and groups
are passed in, never assumed.
"""

from __future__ import annotations

import jax
import numpy as np

from varec import losses

# Smoothing for decisions on real videos (`varec.predictor`), in seconds so that it means
# the same at any frame rate; `window_frames` converts. Facial expressions last 0.5 to 4 s
# (Ekman, 2003); shorter ones are micro-expressions (Yan et al., 2013).
# 5 frames at 25 fps: a one-frame spike shrinks 5-fold, while an expression held for the
# shortest 0.5 s still has frames whose whole window lies on it, so its apex keeps its height.
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
  """`seconds` at `fps` in whole frames, plus one if even, so that a window has a centre frame."""
  frames = round(seconds * fps)
  return frames + 1 - frames % 2


def _runs(values) -> tuple[np.ndarray, np.ndarray]:
  """(starts, stops) of the runs of equal consecutive values; stops are exclusive."""
  values = np.asarray(values)
  change = np.flatnonzero(values[1:] != values[:-1]) + 1
  return np.r_[0, change], np.r_[change, len(values)]


def _stretches(length: int, frame_index) -> tuple[np.ndarray, np.ndarray]:
  """(starts, stops) of the stretches of consecutive frame numbers; one without `frame_index`."""
  if frame_index is None:
    return np.array([0]), np.array([length])
  # Constant within a stretch.
  return _runs(np.asarray(frame_index) - np.arange(length))


def smooth(va: np.ndarray, window: int, frame_index=None) -> np.ndarray:
  """Centred moving average over `window` (odd) frames of a (T, 2) trajectory.

  `frame_index` gives the frames' numbers: an average never reaches across a
  gap (frames without a face). Near the ends of a stretch the window keeps
  the frames that exist, so no value is left unsmoothed. `window` 1 returns `va`.
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
  """Position of the frame furthest (Euclidean) from `origin` on the trajectory `smooth`ed
  over `window` frames, so that a single noisy frame cannot be the apex.

  `origin` is the neutral prototype, or (0, 0) for a vocabulary without one;
  ties go to the first frame.
  """
  distances = np.linalg.norm(
    smooth(va, window, frame_index) - np.asarray(origin), axis=-1
  )
  return int(np.argmax(distances))


# How a video's frames decide its emotion: `video_vote` (the paper's majority) or
# `intensity_vote` (the vote of the apex phase, weighted by distance from neutral).
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
  """(emotion, share of all frames): the most frequent emotion other than `exclude`.

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
  """(first, last, emotion) per segment, positions into `frame_emotions`, covering each once.

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
  """`labels` with the runs shorter than `min_length` relabelled as `segments` describes."""
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


def confusion_matrix(
  true: np.ndarray, pred: np.ndarray, num_classes: int
) -> np.ndarray:
  """(num_classes, num_classes) counts; rows are true emotions, columns predicted."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (np.asarray(true), np.asarray(pred)), 1)
  return matrix


def accuracy(true: np.ndarray, pred: np.ndarray) -> float:
  return float(np.mean(np.asarray(true) == np.asarray(pred)))


def per_class_precision_recall(true, pred, num_classes: int):
  """(precision, recall) arrays per class; 0 where a class is never predicted / present."""
  matrix = confusion_matrix(true, pred, num_classes)
  hits = np.diag(matrix).astype(np.float64)
  predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
  precision = np.divide(
    hits, predicted, out=np.zeros_like(hits), where=predicted > 0
  )
  recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
  return precision, recall


def macro_precision_recall(true, pred, num_classes: int):
  """Unweighted means over the classes that occur in `true` or `pred`.

  Same convention as scikit-learn's `average="macro"` with `zero_division=0`.
  """
  precision, recall = per_class_precision_recall(true, pred, num_classes)
  present = np.union1d(np.asarray(true), np.asarray(pred))
  return float(precision[present].mean()), float(recall[present].mean())


def pn_accuracy(true, pred, groups) -> float:
  """Eq. 10: share of videos whose predicted group equals their true group.

  `groups[i]` is class i's group (Table 2: negative, neutral, positive).
  """
  groups = np.asarray(groups)
  return float(np.mean(groups[np.asarray(true)] == groups[np.asarray(pred)]))


# -- Training-time validation --------------------------------------------------


def va_metrics(pred, labels, mask=None) -> dict[str, jax.Array]:
  """Loss (eq. 9), CCC and RMSE of valence and arousal over all frames."""
  axes = tuple(range(pred.ndim - 1))
  w = None if mask is None else mask[..., None]
  ccc = losses.ccc(pred, labels, w, axis=axes)
  rmse = losses.rmse(pred, labels, mask)
  return {
    "loss": losses.ccc_loss(pred, labels, mask),
    "ccc_valence": ccc[0],
    "ccc_arousal": ccc[1],
    "rmse_valence": rmse[0],
    "rmse_arousal": rmse[1],
  }


def video_decisions(
  pred: np.ndarray,
  video_ids: np.ndarray,
  true_emotions: np.ndarray,
  prototypes: np.ndarray,
):
  """(true, predicted) emotion per video: nearest prototype per frame, majority vote."""
  frame_emotions = nearest_emotion(
    pred.reshape(len(video_ids), -1, 2), prototypes
  )
  return vote_per_video(frame_emotions, video_ids, true_emotions)


def vote_per_video(
  frame_emotions: np.ndarray, video_ids: np.ndarray, true_emotions: np.ndarray
):
  """(true, voted) emotion per video from per-frame emotions of its examples, in order."""
  true, voted = [], []
  for video in np.unique(video_ids):
    rows = video_ids == video
    voted.append(video_vote(frame_emotions[rows].ravel()))
    true.append(int(true_emotions[rows][0]))
  return np.array(true), np.array(voted)
