"""Table 3's metrics, against scikit-learn and hand-worked examples."""

import numpy as np
import pytest
from sklearn import metrics as skm

from varec import emotions
from varec import metrics

E = emotions.TABLE2.index


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_macro_scores_match_scikit_learn(seed):
  rng = np.random.default_rng(seed)
  true = rng.integers(0, 10, 60)
  pred = np.where(rng.random(60) < 0.5, true, rng.integers(0, 7, 60))
  assert metrics.accuracy(true, pred) == pytest.approx(
    skm.accuracy_score(true, pred)
  )
  precision, recall = metrics.macro_precision_recall(true, pred, 10)
  assert precision == pytest.approx(
    skm.precision_score(true, pred, average="macro", zero_division=0)
  )
  assert recall == pytest.approx(
    skm.recall_score(true, pred, average="macro", zero_division=0)
  )
  np.testing.assert_array_equal(
    metrics.confusion_matrix(true, pred, 10),
    skm.confusion_matrix(true, pred, labels=range(10)),
  )


def test_pn_accuracy_hand_worked():
  true = [E("anger"), E("joy"), E("neutral"), E("sadness"), E("pride")]
  pred = [E("contempt"), E("surprise"), E("fear"), E("joy"), E("pride")]
  # anger->contempt (neg/neg ok), joy->surprise (pos/pos ok), neutral->fear
  # (wrong), sadness->joy (wrong), pride->pride (ok): 3 of 5.
  assert metrics.pn_accuracy(
    true, pred, emotions.TABLE2.groups
  ) == pytest.approx(0.6)
  assert metrics.accuracy(true, pred) == pytest.approx(0.2)


def test_pn_accuracy_uses_the_given_groups():
  groups = ("calm", "aroused", "calm")  # Classes 0 and 2 share a group.
  # 0->2 and 2->0 stay in the group, 1->1 is right, 2->1 is not: 3 of 4.
  assert metrics.pn_accuracy(
    [0, 1, 2, 2], [2, 1, 0, 1], groups
  ) == pytest.approx(0.75)
