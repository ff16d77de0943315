"""Decisions and Table 3 metrics, against scikit-learn and hand-worked examples."""

import numpy as np
import pytest
from sklearn import metrics as skm

from varec import emotions
from varec import metrics

E = emotions.TABLE2.index
PROTOS = emotions.TABLE2.prototype_array()


def test_nearest_emotion_at_and_between_prototypes():
  np.testing.assert_array_equal(metrics.nearest_emotion(PROTOS, PROTOS), np.arange(len(PROTOS)))
  # Slightly off joy (0.95, 0.12) is still joy; the origin is neutral.
  assert metrics.nearest_emotion(np.array([0.8, 0.2]), PROTOS) == E("joy")
  assert metrics.nearest_emotion(np.array([0.05, -0.05]), PROTOS) == E("neutral")
  # Just either side of the midpoint between neutral (0, 0) and joy (0.95, 0.12).
  mid = (np.array([0.0, 0.0]) + np.array([0.95, 0.12])) / 2
  direction = np.array([0.95, 0.12]) / np.linalg.norm([0.95, 0.12])
  assert metrics.nearest_emotion(mid + 1e-3 * direction, PROTOS) == E("joy")
  assert metrics.nearest_emotion(mid - 1e-3 * direction, PROTOS) == E("neutral")
  # Batched input keeps its leading shape.
  assert metrics.nearest_emotion(np.zeros((3, 4, 2)), PROTOS).shape == (3, 4)


def test_video_vote_majority_and_tie_break():
  assert metrics.video_vote(np.array([E("joy")] * 3 + [E("neutral")] * 2)) == E("joy")
  # 2 neutral, 2 fear: fear is seen last, so fear wins.
  assert metrics.video_vote(np.array([E("neutral"), E("fear"), E("neutral"), E("fear")])) == E("fear")
  # Reversed order: neutral is seen last.
  assert metrics.video_vote(np.array([E("fear"), E("neutral"), E("fear"), E("neutral")])) == E("neutral")
  with pytest.raises(ValueError):
    metrics.video_vote(np.array([], int))


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_and_macro_scores_match_scikit_learn(seed):
  rng = np.random.default_rng(seed)
  true = rng.integers(0, 10, 60)
  pred = np.where(rng.random(60) < 0.5, true, rng.integers(0, 7, 60))
  assert metrics.accuracy(true, pred) == pytest.approx(skm.accuracy_score(true, pred))
  precision, recall = metrics.macro_precision_recall(true, pred, 10)
  assert precision == pytest.approx(skm.precision_score(true, pred, average="macro", zero_division=0))
  assert recall == pytest.approx(skm.recall_score(true, pred, average="macro", zero_division=0))
  np.testing.assert_array_equal(metrics.confusion_matrix(true, pred, 10),
                                skm.confusion_matrix(true, pred, labels=range(10)))


def test_pn_accuracy_hand_worked():
  true = [E("anger"), E("joy"), E("neutral"), E("sadness"), E("pride")]
  pred = [E("contempt"), E("surprise"), E("fear"), E("joy"), E("pride")]
  # anger->contempt (neg/neg ok), joy->surprise (pos/pos ok), neutral->fear (wrong),
  # sadness->joy (wrong), pride->pride (ok): 3 of 5.
  assert metrics.pn_accuracy(true, pred, emotions.TABLE2.groups) == pytest.approx(0.6)
  assert metrics.accuracy(true, pred) == pytest.approx(0.2)



def test_pn_accuracy_uses_the_given_groups():
  groups = ("calm", "aroused", "calm")  # Classes 0 and 2 share a group.
  # 0->2 and 2->0 stay in the group, 1->1 is right, 2->1 is not: 3 of 4.
  assert metrics.pn_accuracy([0, 1, 2, 2], [2, 1, 0, 1], groups) == pytest.approx(0.75)
