"""The scores of §4.4 and §5 (Table 3): accuracy, macro precision and recall,
PN accuracy (eq. 10), confusion matrices, and frame-level CCC and RMSE.

Pure functions on class indices into a label space's emotions
(`varec.emotions.LabelSpace`): the number of classes and the groups are
passed in, never assumed. How a video's emotion is decided is
`varec.decisions`.
"""

from __future__ import annotations

import jax
import numpy as np

from varec import losses


def confusion_matrix(
  true: np.ndarray, pred: np.ndarray, num_classes: int
) -> np.ndarray:
  """(num_classes, num_classes) counts; rows are true emotions, columns
  predicted."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (np.asarray(true), np.asarray(pred)), 1)
  return matrix


def accuracy(true: np.ndarray, pred: np.ndarray) -> float:
  return float(np.mean(np.asarray(true) == np.asarray(pred)))


def per_class_precision_recall(true, pred, num_classes: int):
  """(precision, recall) arrays per class; 0 where a class is never predicted
  / present."""
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
