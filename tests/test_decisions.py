"""How a video's emotion is decided: each rule on hand-worked examples, and
training-time validation, eval.py and predict.py deciding alike."""

import numpy as np
import pytest

from varec import decisions
from varec import emotions
from varec import evaluation
from varec import video_summary

E = emotions.TABLE2.index
PROTOS = emotions.TABLE2.prototype_array()


def test_nearest_emotion_at_and_between_prototypes():
  np.testing.assert_array_equal(
    decisions.nearest_emotion(PROTOS, PROTOS), np.arange(len(PROTOS))
  )
  # Slightly off joy (0.95, 0.12) is still joy; the origin is neutral.
  assert decisions.nearest_emotion(np.array([0.8, 0.2]), PROTOS) == E("joy")
  assert decisions.nearest_emotion(np.array([0.05, -0.05]), PROTOS) == E(
    "neutral"
  )
  # Just either side of the midpoint between neutral (0, 0) and joy (0.95,
  # 0.12).
  mid = (np.array([0.0, 0.0]) + np.array([0.95, 0.12])) / 2
  direction = np.array([0.95, 0.12]) / np.linalg.norm([0.95, 0.12])
  assert decisions.nearest_emotion(mid + 1e-3 * direction, PROTOS) == E("joy")
  assert decisions.nearest_emotion(mid - 1e-3 * direction, PROTOS) == E(
    "neutral"
  )
  # Batched input keeps its leading shape.
  assert decisions.nearest_emotion(np.zeros((3, 4, 2)), PROTOS).shape == (3, 4)


def test_video_vote_majority_and_tie_break():
  assert decisions.video_vote(
    np.array([E("joy")] * 3 + [E("neutral")] * 2)
  ) == E("joy")
  # 2 neutral, 2 fear: fear is seen last, so fear wins.
  assert decisions.video_vote(
    np.array([E("neutral"), E("fear"), E("neutral"), E("fear")])
  ) == E("fear")
  # Reversed order: neutral is seen last.
  assert decisions.video_vote(
    np.array([E("fear"), E("neutral"), E("fear"), E("neutral")])
  ) == E("neutral")
  with pytest.raises(ValueError):
    decisions.video_vote(np.array([], int))


def test_window_frames_are_odd_and_follow_the_frame_rate():
  assert decisions.window_frames(decisions.TRAJECTORY_SMOOTHING_S, 25) == 5
  # 12.5 frames, rounded up to odd.
  assert decisions.window_frames(decisions.MIN_SEGMENT_S, 25) == 13
  assert decisions.window_frames(0.2, 30) == 7
  assert decisions.window_frames(0.0, 25) == 1


def test_smooth_is_centred_and_stops_at_ends_and_gaps():
  va = np.random.default_rng(0).normal(size=(40, 2))
  np.testing.assert_allclose(decisions.smooth(va, 1), va, atol=1e-12)
  ramp = np.stack([np.arange(10.0), -np.arange(10.0)], axis=1)
  smoothed = decisions.smooth(ramp, 5)
  # Centred: no lag on a ramp.
  np.testing.assert_allclose(smoothed[2:-2], ramp[2:-2])
  # Frames 0-2, then 0-3.
  np.testing.assert_allclose(smoothed[:2, 0], [1.0, 1.5])
  # Frames 0-4 and 10-14: no average mixes the two stretches.
  gapped = decisions.smooth(
    np.r_[np.zeros(5), np.ones(5)][:, None].repeat(2, 1),
    5,
    frame_index=np.r_[0:5, 10:15],
  )
  np.testing.assert_array_equal(gapped[:, 0], np.r_[np.zeros(5), np.ones(5)])
  assert not np.isnan(decisions.smooth(va[:2], 5)).any()
  with pytest.raises(ValueError, match="odd"):
    decisions.smooth(va, 4)


def test_apex_ignores_a_single_outlier_frame():
  rng = np.random.default_rng(0)
  va = rng.normal(0, 0.03, (100, 2))
  # Joy held for 13 frames (0.52 s at 25 fps).
  va[60:73] += PROTOS[E("joy")] * 0.7
  va[20] = [-0.9, 0.9]  # One wild frame, further out than the joy.
  origin = PROTOS[E("neutral")]
  assert np.linalg.norm(va - origin, axis=1).argmax() == 20
  assert 60 <= decisions.apex_frame(va, origin, 5) < 73
  # Positions, not frame numbers: the caller maps them.
  assert (
    60
    <= decisions.apex_frame(va, origin, 5, frame_index=np.arange(100) + 7)
    < 73
  )


def test_dominant_emotion_excludes_neutral_reports_its_share_of_all_frames():
  neutral, joy, fear = E("neutral"), E("joy"), E("fear")
  frames = np.array([neutral] * 6 + [joy] * 3 + [fear])
  assert decisions.video_vote(frames) == neutral
  assert decisions.dominant_emotion(frames, neutral) == (
    joy,
    pytest.approx(0.3),
  )
  # Only neutral: neutral, all frames.
  assert decisions.dominant_emotion(np.array([neutral] * 4), neutral) == (
    neutral,
    1.0,
  )
  # No neutral in the vocabulary: the majority.
  assert decisions.dominant_emotion(frames, None) == (
    neutral,
    pytest.approx(0.6),
  )


def test_segments_merge_short_runs():
  n, j, s = E("neutral"), E("joy"), E("surprise")
  # A 3-frame blip inside neutral disappears.
  assert decisions.segments([n] * 30 + [j] * 3 + [n] * 30, 13) == [(0, 62, n)]
  # 14 frames of joy/surprise flicker are one segment of their vote, not eaten
  # by neutral.
  flicker = [j, j, s] * 4 + [j, s]
  assert decisions.segments([n] * 30 + flicker + [n] * 30, 13) == [
    (0, 29, n),
    (30, 43, j),
    (44, 73, n),
  ]
  # A short mixed stretch between two emotions is split at its middle.
  assert decisions.segments([n] * 20 + [j, s, n, s] + [j] * 20, 13) == [
    (0, 21, n),
    (22, 43, j),
  ]
  # A stretch shorter than min_length is one segment.
  assert decisions.segments([j, s, j], 13) == [(0, 2, j)]


def test_segments_split_at_frames_without_a_face():
  # Positions 0-19 are frames 0-19; positions 20-39 are frames 30-49.
  assert decisions.segments([1] * 40, 13, frame_index=np.r_[0:20, 30:50]) == [
    (0, 19, 1),
    (20, 39, 1),
  ]


@pytest.mark.parametrize("seed", range(5))
def test_segments_cover_every_frame_once_and_last_min_length(seed):
  rng = np.random.default_rng(seed)
  # Runs of 1 to 30 frames of 3 emotions, and gaps without a face.
  labels = np.repeat(rng.integers(0, 3, 60), rng.integers(1, 30, 60))
  frame_index = np.cumsum(np.where(rng.random(len(labels)) < 0.01, 20, 1))
  result = decisions.segments(labels, 13, frame_index)
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
  frame_emotions = decisions.nearest_emotion(va, prototypes)
  assert space.emotions[decisions.video_vote(frame_emotions)] != "joy"
  assert (
    space.emotions[decisions.dominant_emotion(frame_emotions, None)[0]] != "joy"
  )
  winner, share = decisions.intensity_vote(
    frame_emotions, va, np.zeros(2), None
  )
  assert space.emotions[winner] == "joy"
  assert share > 0.9


def test_intensity_vote_leaves_neutral_out_unless_it_is_all():
  prototypes = emotions.TABLE2.prototype_array()
  neutral, joy = emotions.TABLE2.neutral_index, emotions.TABLE2.index("joy")
  # A weak smile at its peak: near-neutral frames still within half of it.
  va = np.array([[0.2, 0.0], [0.25, 0.0], [0.3, 0.05]])
  frames = np.array([neutral, neutral, joy])
  winner, share = decisions.intensity_vote(
    frames, va, prototypes[neutral], neutral
  )
  assert winner == joy and share == pytest.approx(1.0)
  winner, share = decisions.intensity_vote(
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
  frames = decisions.nearest_emotion(va, prototypes)
  neutral = space.neutral_index
  by_va, _ = decisions.intensity_vote(frames, va, prototypes[neutral], neutral)
  assert space.emotions[by_va] == "anger"
  by_face, share = decisions.intensity_vote(
    frames, va, prototypes[neutral], neutral, intensity=activity
  )
  assert space.emotions[by_face] == "joy" and share == pytest.approx(1.0)
  # A face that never moves: every frame votes once.
  winner, _ = decisions.intensity_vote(
    frames, va, prototypes[neutral], neutral, intensity=np.zeros(len(va))
  )
  assert space.emotions[winner] == "anger"


def _clips(seed: int, num_videos: int, length: int) -> np.ndarray:
  """(videos, frames, 2): a neutral onset rising to a random emotion, noisy."""
  rng = np.random.default_rng(seed)
  targets = PROTOS[rng.integers(len(PROTOS), size=num_videos)]
  rise = np.clip(np.linspace(-0.2, 2.0, length), 0, 1)[None, :, None]
  noise = rng.normal(0, 0.08, (num_videos, length, 2))
  return rise * targets[:, None, :] + noise


@pytest.mark.parametrize("video_rule", decisions.DECISIONS)
def test_validation_eval_and_predict_decide_alike(video_rule):
  """The same per-frame outputs get the same emotion from training-time
  validation (windows of each video), eval.py (its labelled frames) and
  predict.py (a person's frames with a face)."""
  space, fps, window = emotions.TABLE2, 25.0, 10
  clips = _clips(0, num_videos=12, length=60)
  rule = decisions.DecisionRule.of(space, fps, video_rule=video_rule)
  windows = clips.reshape(-1, window, 2)  # Consecutive, as a video's frames.
  video_ids = np.repeat(np.arange(len(clips)), clips.shape[1] // window)
  _, by_validation = decisions.video_decisions(
    windows, video_ids, np.zeros(len(windows), int), rule
  )
  by_eval, by_predict = [], []
  for clip in clips:
    nearest, decided = evaluation.decide(clip, np.ones(len(clip), bool), rule)
    by_eval.append(decided.emotion)
    index = np.arange(len(clip))
    person = video_summary.person_summary(
      space, PROTOS, fps, (clip, nearest, index, index / fps, None), len(clip)
    )
    key = "emotion" if video_rule == "vote" else "expression"
    by_predict.append(space.index(person[key]))
  np.testing.assert_array_equal(by_validation, by_eval)
  assert by_eval == by_predict
  # Not one emotion for all: the clips rise to different ones.
  assert len(set(by_eval)) > 2


def test_decide_gathers_every_decision_of_one_face():
  space, fps = emotions.TABLE2, 25.0
  joy, neutral = E("joy"), E("neutral")
  va = np.concatenate(
    [np.tile(PROTOS[neutral], (60, 1)), np.tile(PROTOS[joy], (20, 1))]
  )
  nearest = decisions.nearest_emotion(va, PROTOS)
  decided = decisions.decide(
    decisions.FaceFrames(va, nearest), decisions.DecisionRule.of(space, fps)
  )
  assert decided.vote == neutral and decided.emotion == neutral
  assert decided.expression == joy and decided.dominant == joy
  assert decided.votes[neutral] == 60 and decided.votes[joy] == 20
  assert decided.apex >= 60 and decided.apex_emotion == joy
  assert decided.segments == [(0, 59, neutral), (60, 79, joy)]
  intensity = decisions.DecisionRule.of(space, fps, video_rule="intensity")
  assert (
    decisions.decide(decisions.FaceFrames(va, nearest), intensity).emotion
    == joy
  )


def test_an_unknown_video_rule_is_refused():
  with pytest.raises(ValueError, match="decision must be one of"):
    decisions.DecisionRule.of(emotions.TABLE2, 25.0, video_rule="apex")
