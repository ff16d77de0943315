"""varec.video_report's consumers on their own: each person's apex face kept
as the frames stream past, and summary.json as a typed value."""

import json

import numpy as np
import pytest

from varec import apex_thumbnails
from varec import decisions
from varec import emotions
from varec import predictions
from varec import tracking
from varec import video_summary
from varec.preprocess import config as preprocess_config

_BOX = np.array([2.0, 3.0, 17.0, 18.0])


def _frames(people: dict, length: int):
  """FramePredictions of `people` ({person: (frame numbers, va)}); a face
  whose va is NaN has no output, as the predictor gives it."""
  for index in range(length):
    faces = []
    for person, (numbers, va) in people.items():
      at = np.flatnonzero(numbers == index)
      if at.size:
        value = va[at[0]]
        finite = np.isfinite(value).all()
        faces.append(
          predictions.FacePrediction(
            person, _BOX, value if finite else None, 0 if finite else None
          )
        )
    image = np.full((20, 20, 3), index % 256, np.uint8)
    yield predictions.FramePrediction(
      index, index, index / 25, image, tuple(faces)
    )


@pytest.mark.parametrize("fps", [5.0, 10.0, 25.0, 30.0])
def test_the_running_apex_is_decisions_apex_frame(fps):
  """Smoothing windows of 1, 3, 5 and 7 frames, stretches cut by gaps and by
  non-finite outputs, ties (values on a coarse grid): the face kept is on
  the frame `decisions.apex_frame` picks once the whole trajectory is known."""
  rule = decisions.DecisionRule.of(emotions.TABLE2, fps)
  rng = np.random.default_rng(int(fps))
  for _ in range(60):
    length = int(rng.integers(1, 80))
    people = {}
    for person in range(2):
      numbers = np.flatnonzero(rng.random(length) < rng.uniform(0.3, 1.0))
      va = rng.uniform(-1, 1, (len(numbers), 2)).astype(np.float32)
      if rng.random() < 0.5:
        va = np.round(va * 2) / 2  # Ties.
      va[rng.random(len(numbers)) < 0.1] = np.nan
      people[person] = (numbers, va)
    kept = apex_thumbnails.ApexThumbnails(rule)
    for frame in _frames(people, length):
      kept.add(frame)
    thumbnails = kept.thumbnails()
    for person, (numbers, va) in people.items():
      finite = np.isfinite(va).all(axis=1)
      if not finite.any():
        assert person not in thumbnails
        continue
      apex = decisions.apex_frame(
        va[finite], rule.origin, rule.smoothing, numbers[finite]
      )
      assert thumbnails[person].frame == numbers[finite][apex]
      # The face of that frame (each frame's pixels are its number).
      assert (thumbnails[person].image == numbers[finite][apex] % 256).all()


def _settings(follows_people: bool) -> predictions.PredictionSettings:
  space = emotions.TABLE2
  return predictions.PredictionSettings(
    fps=25.0,
    label_space=space,
    prototypes=space.decision_prototypes(),
    classifier=False,
    reads_mesh=False,
    follows_people=follows_people,
    tracking=tracking.ALL_PEOPLE,
    model_output="a test model",
    preprocessing=preprocess_config.PreprocessConfig(),
    checkpoint="/checkpoints/test",
  )


def _trajectory(seed: int, start: int, length: int) -> video_summary.Trajectory:
  rng = np.random.default_rng(seed)
  va = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
  index = np.arange(start, start + length)
  index[length // 2 :] += 3  # A gap.
  return video_summary.Trajectory(
    va,
    decisions.nearest_emotion(va, emotions.TABLE2.prototype_array()),
    index,
    index / 25.0,
  )


def test_the_summary_is_a_typed_value_that_serialises_to_summary_json():
  people = {0: _trajectory(0, 0, 40), 2: _trajectory(1, 10, 60)}
  counts = video_summary.StreamCounts(
    frames=80,
    multiple_faces=5,
    descriptors=7,
    non_finite_outputs=2,
    source_frames_announced=100,
    source_frames_decoded=80,
  )
  summary = video_summary.summarize_video(
    "clip.mp4", _settings(True), counts, people, (1,)
  )
  assert summary.person == 2 and summary.main.face_frames == 60
  written = json.loads(json.dumps(summary.to_json(), indent=2))
  assert written == summary.to_json()
  assert list(written) == [
    "video", "frames", "fps", "person", "expression", "expression_pn_group",
    "expression_intensity_share", "emotion", "pn_group", "votes",
    "dominant_emotion", "dominant_share", "dominant_pn_group", "apex",
    "mean_valence", "mean_arousal", "face_frames", "face_share", "first_s",
    "last_s", "decision", "decisions", "model_output",
    "frames_with_several_faces_detected", "preprocessing", "checkpoint",
    "tracking", "frames_with_non_finite_output", "note_non_finite",
    "source_frames_announced", "source_frames_decoded", "note_truncated",
    "people", "segments",
  ]  # fmt: skip
  main = summary.main
  assert written["expression"] == main.expression
  assert written["apex"] == {
    "frame": main.apex.frame,
    "time_s": main.apex.time_s,
    "emotion": main.apex.emotion,
    "valence": main.apex.valence,
    "arousal": main.apex.arousal,
  }
  assert written["segments"][0]["start_frame"] == main.segments[0].start_frame
  assert [p["person"] for p in written["people"]] == [0, 2]
  assert written["tracking"]["short_tracks_dropped"] == [1]
  assert written["tracking"]["people_found"] == 3
  # The callers that read one person as summary.json gives it.
  trajectory = people[0]
  assert video_summary.person_summary(
    emotions.TABLE2,
    emotions.TABLE2.decision_prototypes(),
    25.0,
    (
      trajectory.va,
      trajectory.emotions,
      trajectory.frame_index,
      trajectory.time_s,
      None,
    ),
    80,
    # fmt: skip
  ) == {k: v for k, v in written["people"][0].items() if k != "person"}


def test_one_face_followed_notes_several_faces_and_has_no_tracking():
  counts = video_summary.StreamCounts(frames=40, multiple_faces=3)
  summary = video_summary.summarize_video(
    "clip.mp4", _settings(False), counts, {0: _trajectory(0, 0, 40)}, ()
  )
  written = summary.to_json()
  assert "tracking" not in written and "largest face" in written["note"]
  assert "note_truncated" not in written
