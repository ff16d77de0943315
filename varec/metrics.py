"""Decisions and metrics of §3.2, §4.4 and §5: from per-frame valence-arousal
to a video's emotion, and the scores of Table 3.

Pure numpy functions on class indices into a label space's emotions
(`varec.emotions.LabelSpace`): its prototypes, number of classes and groups
are passed in, never assumed.
"""

from __future__ import annotations

import numpy as np


def nearest_emotion(va: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
  """Index of the prototype nearest (Euclidean) to each (valence, arousal).

  `va` is (..., 2), `prototypes` (num_classes, 2); exact ties go to the lower
  index.
  """
  distances = np.linalg.norm(np.asarray(va)[..., None, :] - np.asarray(prototypes), axis=-1)
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


def confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
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
  precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
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
