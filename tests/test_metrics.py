"""Decisions and Table 3 metrics, against scikit-learn and hand-worked examples."""

import numpy as np
import pytest
from sklearn import metrics as skm

from varec import emotions
from varec import metrics

E = emotions.TABLE2.index
PROTOS = emotions.TABLE2.prototype_array()


def test_nearest_emotion_at_and_between_prototypes():
  np.testing.assert_array_equal(
    metrics.nearest_emotion(PROTOS, PROTOS), np.arange(len(PROTOS))
  )
  # Slightly off joy (0.95, 0.12) is still joy; the origin is neutral.
  assert metrics.nearest_emotion(np.array([0.8, 0.2]), PROTOS) == E("joy")
  assert metrics.nearest_emotion(np.array([0.05, -0.05]), PROTOS) == E(
    "neutral"
  )
  # Just either side of the midpoint between neutral (0, 0) and joy (0.95, 0.12).
  mid = (np.array([0.0, 0.0]) + np.array([0.95, 0.12])) / 2
  direction = np.array([0.95, 0.12]) / np.linalg.norm([0.95, 0.12])
  assert metrics.nearest_emotion(mid + 1e-3 * direction, PROTOS) == E("joy")
  assert metrics.nearest_emotion(mid - 1e-3 * direction, PROTOS) == E("neutral")
  # Batched input keeps its leading shape.
  assert metrics.nearest_emotion(np.zeros((3, 4, 2)), PROTOS).shape == (3, 4)


def test_video_vote_majority_and_tie_break():
  assert metrics.video_vote(np.array([E("joy")] * 3 + [E("neutral")] * 2)) == E(
    "joy"
  )
  # 2 neutral, 2 fear: fear is seen last, so fear wins.
  assert metrics.video_vote(
    np.array([E("neutral"), E("fear"), E("neutral"), E("fear")])
  ) == E("fear")
  # Reversed order: neutral is seen last.
  assert metrics.video_vote(
    np.array([E("fear"), E("neutral"), E("fear"), E("neutral")])
  ) == E("neutral")
  with pytest.raises(ValueError):
    metrics.video_vote(np.array([], int))


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
  # anger->contempt (neg/neg ok), joy->surprise (pos/pos ok), neutral->fear (wrong),
  # sadness->joy (wrong), pride->pride (ok): 3 of 5.
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


def test_window_frames_are_odd_and_follow_the_frame_rate():
  assert metrics.window_frames(metrics.TRAJECTORY_SMOOTHING_S, 25) == 5
  # 12.5 frames, rounded up to odd.
  assert metrics.window_frames(metrics.MIN_SEGMENT_S, 25) == 13
  assert metrics.window_frames(0.2, 30) == 7
  assert metrics.window_frames(0.0, 25) == 1


def test_smooth_is_centred_and_stops_at_ends_and_gaps():
  va = np.random.default_rng(0).normal(size=(40, 2))
  np.testing.assert_allclose(metrics.smooth(va, 1), va, atol=1e-12)
  ramp = np.stack([np.arange(10.0), -np.arange(10.0)], axis=1)
  smoothed = metrics.smooth(ramp, 5)
  # Centred: no lag on a ramp.
  np.testing.assert_allclose(smoothed[2:-2], ramp[2:-2])
  # Frames 0-2, then 0-3.
  np.testing.assert_allclose(smoothed[:2, 0], [1.0, 1.5])
  # Frames 0-4 and 10-14: no average mixes the two stretches.
  gapped = metrics.smooth(
    np.r_[np.zeros(5), np.ones(5)][:, None].repeat(2, 1),
    5,
    frame_index=np.r_[0:5, 10:15],
  )
  np.testing.assert_array_equal(gapped[:, 0], np.r_[np.zeros(5), np.ones(5)])
  assert not np.isnan(metrics.smooth(va[:2], 5)).any()
  with pytest.raises(ValueError, match="odd"):
    metrics.smooth(va, 4)


def test_apex_ignores_a_single_outlier_frame():
  rng = np.random.default_rng(0)
  va = rng.normal(0, 0.03, (100, 2))
  # Joy held for 13 frames (0.52 s at 25 fps).
  va[60:73] += PROTOS[E("joy")] * 0.7
  va[20] = [-0.9, 0.9]  # One wild frame, further out than the joy.
  origin = PROTOS[E("neutral")]
  assert np.linalg.norm(va - origin, axis=1).argmax() == 20
  assert 60 <= metrics.apex_frame(va, origin, 5) < 73
  # Positions, not frame numbers: the caller maps them.
  assert (
    60 <= metrics.apex_frame(va, origin, 5, frame_index=np.arange(100) + 7) < 73
  )


def test_dominant_emotion_excludes_neutral_and_reports_its_share_of_all_frames():
  neutral, joy, fear = E("neutral"), E("joy"), E("fear")
  frames = np.array([neutral] * 6 + [joy] * 3 + [fear])
  assert metrics.video_vote(frames) == neutral
  assert metrics.dominant_emotion(frames, neutral) == (joy, pytest.approx(0.3))
  # Only neutral: neutral, all frames.
  assert metrics.dominant_emotion(np.array([neutral] * 4), neutral) == (
    neutral,
    1.0,
  )
  # No neutral in the vocabulary: the majority.
  assert metrics.dominant_emotion(frames, None) == (neutral, pytest.approx(0.6))


def test_segments_merge_short_runs():
  n, j, s = E("neutral"), E("joy"), E("surprise")
  # A 3-frame blip inside neutral disappears.
  assert metrics.segments([n] * 30 + [j] * 3 + [n] * 30, 13) == [(0, 62, n)]
  # 14 frames of joy/surprise flicker are one segment of their vote, not eaten by neutral.
  flicker = [j, j, s] * 4 + [j, s]
  assert metrics.segments([n] * 30 + flicker + [n] * 30, 13) == [
    (0, 29, n),
    (30, 43, j),
    (44, 73, n),
  ]
  # A short mixed stretch between two emotions is split at its middle.
  assert metrics.segments([n] * 20 + [j, s, n, s] + [j] * 20, 13) == [
    (0, 21, n),
    (22, 43, j),
  ]
  # A stretch shorter than min_length is one segment.
  assert metrics.segments([j, s, j], 13) == [(0, 2, j)]


def test_segments_split_at_frames_without_a_face():
  # Positions 0-19 are frames 0-19; positions 20-39 are frames 30-49.
  assert metrics.segments([1] * 40, 13, frame_index=np.r_[0:20, 30:50]) == [
    (0, 19, 1),
    (20, 39, 1),
  ]


@pytest.mark.parametrize("seed", range(5))
def test_segments_cover_every_frame_once_and_last_min_length(seed):
  rng = np.random.default_rng(seed)
  # Runs of 1 to 30 frames of 3 emotions, and gaps without a face.
  labels = np.repeat(rng.integers(0, 3, 60), rng.integers(1, 30, 60))
  frame_index = np.cumsum(np.where(rng.random(len(labels)) < 0.01, 20, 1))
  result = metrics.segments(labels, 13, frame_index)
  starts = np.array([first for first, _, _ in result])
  ends = np.array([last for _, last, _ in result])
  np.testing.assert_array_equal(starts, np.r_[0, ends[:-1] + 1])
  assert ends[-1] == len(labels) - 1
  for (_, last, emotion), (next_first, _, next_emotion) in zip(
    result, result[1:]
  ):
    assert (
      emotion != next_emotion or frame_index[next_first] - frame_index[last] > 1
    )
  stretch_starts = np.r_[0, np.flatnonzero(np.diff(frame_index) > 1) + 1]
  stretch_of = np.searchsorted(
    stretch_starts, np.arange(len(labels)), side="right"
  )
  stretch_length = np.bincount(stretch_of)[stretch_of]
  for first, last, _ in result:
    assert stretch_of[first] == stretch_of[last]
    assert last - first + 1 >= min(13, stretch_length[first])


def test_intensity_vote_is_not_outvoted_by_a_long_neutral_onset():
  """3 s of a neutral face, 1 s of joy, 1 s neutral again (25 fps), from a model
  trained without a neutral class (six emotions): each near-neutral frame
  still goes to some emotion, mostly sadness here, but weakly."""
  names = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
  space = emotions.LabelSpace(
    names,
    tuple(emotions.PROTOTYPES[e] for e in names),
    tuple(emotions.GROUPS[e] for e in names),
  )
  prototypes = space.prototype_array()
  rng = np.random.default_rng(0)
  sadness, joy = (
    prototypes[space.index("sadness")],
    prototypes[space.index("joy")],
  )
  calm = 0.25 * sadness + rng.normal(0, 0.04, (100, 2))  # Onset and offset.
  smile = joy + rng.normal(0, 0.05, (25, 2))
  va = np.concatenate([calm[:75], smile, calm[75:]])
  frame_emotions = metrics.nearest_emotion(va, prototypes)
  assert space.emotions[metrics.video_vote(frame_emotions)] != "joy"
  assert (
    space.emotions[metrics.dominant_emotion(frame_emotions, None)[0]] != "joy"
  )
  winner, share = metrics.intensity_vote(frame_emotions, va, np.zeros(2), None)
  assert space.emotions[winner] == "joy"
  assert share > 0.9


def test_intensity_vote_leaves_neutral_out_unless_it_is_all():
  prototypes = emotions.TABLE2.prototype_array()
  neutral, joy = emotions.TABLE2.neutral_index, emotions.TABLE2.index("joy")
  # A weak smile at its peak: near-neutral frames still within half of it.
  va = np.array([[0.2, 0.0], [0.25, 0.0], [0.3, 0.05]])
  frames = np.array([neutral, neutral, joy])
  winner, share = metrics.intensity_vote(
    frames, va, prototypes[neutral], neutral
  )
  assert winner == joy and share == pytest.approx(1.0)
  winner, share = metrics.intensity_vote(
    frames[:2], va[:2], prototypes[neutral], neutral
  )
  assert winner == neutral and share == pytest.approx(1.0)


def test_intensity_vote_can_take_the_intensity_measured_on_the_face():
  """A model never shown a neutral face reads the 3 s neutral onset as a
  strong anger (far from neutral) and the smile after it as a moderate joy:
  by its own valence-arousal the onset is the apex phase; by the face's
  activity (how much it moves from rest) the smile is."""
  space = emotions.TABLE2
  prototypes = space.prototype_array()
  rng = np.random.default_rng(0)
  anger, joy = prototypes[space.index("anger")], prototypes[space.index("joy")]
  va = np.concatenate(
    [
      anger + rng.normal(0, 0.03, (75, 2)),
      0.6 * joy + rng.normal(0, 0.03, (25, 2)),
    ]
  )
  activity = np.concatenate(
    [rng.uniform(0, 0.05, 75), rng.uniform(0.5, 0.7, 25)]
  )
  frames = metrics.nearest_emotion(va, prototypes)
  neutral = space.neutral_index
  by_va, _ = metrics.intensity_vote(frames, va, prototypes[neutral], neutral)
  assert space.emotions[by_va] == "anger"
  by_face, share = metrics.intensity_vote(
    frames, va, prototypes[neutral], neutral, intensity=activity
  )
  assert space.emotions[by_face] == "joy" and share == pytest.approx(1.0)
  # A face that never moves: every frame votes once.
  winner, _ = metrics.intensity_vote(
    frames, va, prototypes[neutral], neutral, intensity=np.zeros(len(va))
  )
  assert space.emotions[winner] == "anger"
