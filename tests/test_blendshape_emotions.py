"""Zero-shot emotion and valence-arousal from MediaPipe blendshapes."""

import numpy as np
import pytest
import scipy.optimize

from varec import blendshape_emotions as be
from varec import emotions

# Each EMFACS prototype at full strength, written out as the blendshapes to set
# to 1 (independently of the module's tables, so that a slip in them shows).
FACES = {
  "anger": (  # 4+5+7+23/24, with 24 (lips pressed).
    "browDownLeft",
    "browDownRight",
    "eyeWideLeft",
    "eyeWideRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "mouthPressLeft",
    "mouthPressRight",
  ),
  "contempt": ("mouthSmileLeft", "mouthDimpleLeft"),  # U12+U14.
  "disgust": (  # 9/10+15+16, with 10 (upper lip raised).
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
  ),
  "fear": (  # 1+2+4+5+20+26.
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "browDownLeft",
    "browDownRight",
    "eyeWideLeft",
    "eyeWideRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "jawOpen",
  ),
  "joy": (  # 6+12.
    "cheekSquintLeft",
    "cheekSquintRight",
    "mouthSmileLeft",
    "mouthSmileRight",
  ),
  "sadness": (  # 1+4+15.
    "browInnerUp",
    "browDownLeft",
    "browDownRight",
    "mouthFrownLeft",
    "mouthFrownRight",
  ),
  "surprise": (  # 1+2+5+26.
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawOpen",
  ),
}
# The other action of the EMFACS variants: anger with 23 (disgust's 9, the
# nose wrinkler, shows only in blendshapes MediaPipe does not produce).
VARIANTS = {
  "anger": {
    "mouthPressLeft": "mouthRollLower",
    "mouthPressRight": "mouthRollUpper",
  },
}
EXPRESSED = sorted(FACES)


def _face(names, strength=1.0):
  scores = np.zeros(len(be.BLENDSHAPES))
  for name in names:
    scores[be.BLENDSHAPES.index(name)] = strength
  return scores


def _mirrored(scores):
  """The same face with the subject's left and right swapped."""
  swapped = []
  for name in be.BLENDSHAPES:
    if name.endswith("Left"):
      name = name[: -len("Left")] + "Right"
    elif name.endswith("Right"):
      name = name[: -len("Right")] + "Left"
    swapped.append(be.BLENDSHAPES.index(name))
  return np.asarray(scores)[..., swapped]


def _index(name):
  return be.EMOTIONS.index(name)


def test_the_tables_agree():
  assert len(be.BLENDSHAPES) == len(set(be.BLENDSHAPES)) == 52
  assert set(be.AU_NAMES) == set(be.AU_BLENDSHAPES)
  used = {b for shapes in be.AU_BLENDSHAPES.values() for b in shapes}
  assert used <= set(be.BLENDSHAPES)
  assert set(be.UNITS) == {u for r in be.READ.values() for u in r}
  # Every unit read is seen through some blendshape MediaPipe produces.
  for unit in be.UNITS:
    for action in unit.lstrip("U").split("/"):
      assert set(be.AU_BLENDSHAPES[int(action)]) - be.UNMEASURED
  # Only the unmeasured actions (5, 6, 9) are left out of EMFACS' prototypes.
  left_out = {
    a for e in be.EMFACS for u in be.EMFACS[e] for a in u.lstrip("U").split("/")
  } - {a for u in be.UNITS for a in u.lstrip("U").split("/")}
  assert left_out == {"5", "6", "9"}
  assert be.EMOTIONS == (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "joy",
    "neutral",
    "sadness",
    "surprise",
  )
  assert not {"embarrassment", "pride"} & set(be.EMOTIONS)


def test_no_expression_is_neutral_at_the_origin():
  reading = be.read_blendshapes(np.zeros(52))
  np.testing.assert_array_equal(reading.valence_arousal, [0, 0])
  np.testing.assert_array_equal(
    reading.probabilities, np.eye(len(be.EMOTIONS))[_index("neutral")]
  )
  assert reading.labels == "neutral"


@pytest.mark.parametrize("emotion", EXPRESSED)
def test_a_full_prototype_reads_its_table2_point(emotion):
  reading = be.read_blendshapes(_face(FACES[emotion]))
  assert reading.labels == emotion
  assert reading.probabilities[_index(emotion)] == pytest.approx(1, abs=1e-9)
  assert reading.intensities[_index(emotion)] == pytest.approx(1, abs=1e-9)
  np.testing.assert_allclose(
    reading.valence_arousal, emotions.PROTOTYPES[emotion], atol=1e-6
  )


@pytest.mark.parametrize("emotion", sorted(VARIANTS))
def test_either_action_of_a_variant_counts(emotion):
  names = [VARIANTS[emotion].get(n, n) for n in FACES[emotion]]
  reading = be.read_blendshapes(_face(names))
  assert reading.labels == emotion
  np.testing.assert_allclose(
    reading.valence_arousal, emotions.PROTOTYPES[emotion], atol=1e-6
  )


def test_shared_units_are_not_counted_twice():
  # Surprise's units all lie inside fear's: the fear face is no surprise.
  fear = be.read_blendshapes(_face(FACES["fear"]))
  assert fear.intensities[_index("surprise")] == pytest.approx(0, abs=1e-9)
  surprise = be.read_blendshapes(_face(FACES["surprise"]))
  assert surprise.intensities[_index("fear")] == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("emotion", EXPRESSED)
def test_valence_arousal_moves_along_the_way_with_strength(emotion):
  prototype = np.asarray(emotions.PROTOTYPES[emotion])
  strengths = np.linspace(0, 1, 9)
  faces = np.stack([_face(FACES[emotion], s) for s in strengths])
  reading = be.read_blendshapes(faces)
  np.testing.assert_allclose(
    reading.valence_arousal, strengths[:, None] * prototype, atol=1e-9
  )
  distances = np.linalg.norm(reading.valence_arousal - prototype, axis=-1)
  assert np.all(np.diff(distances) < 0)
  half = reading.valence_arousal[4]
  assert np.all(np.abs(half) < np.abs(prototype))
  assert np.all(np.sign(half) == np.sign(prototype))
  # Neutral wins until the emotion is more probable than it (past half way).
  assert list(reading.labels) == ["neutral"] * 5 + [emotion] * 4


def test_one_unit_alone_gives_a_partial_score():
  # 16, one of disgust's 10+15+16 as read, and in no other prototype.
  lip = be.read_blendshapes(
    _face(["mouthLowerDownLeft", "mouthLowerDownRight"])
  )
  assert lip.intensities[_index("disgust")] == pytest.approx(1 / 3)
  assert lip.labels == "neutral"
  # 1 of surprise's 1+2+26 as read.
  jaw = be.read_blendshapes(_face(["jawOpen"]))
  assert jaw.intensities[_index("surprise")] == pytest.approx(1 / 3)


def test_blendshapes_mediapipe_does_not_produce_change_nothing():
  unmeasured = _face(sorted(be.UNMEASURED))
  assert be.read_blendshapes(unmeasured).labels == "neutral"
  rng = np.random.default_rng(7)
  faces = rng.uniform(0, 1, (50, 52)) ** 2
  with_them = np.maximum(faces, unmeasured)
  np.testing.assert_array_equal(
    be.read_blendshapes(faces).probabilities,
    be.read_blendshapes(with_them).probabilities,
  )
  # A smile alone is joy: MediaPipe never shows the cheek raiser (6).
  smile = be.read_blendshapes(_face(["mouthSmileLeft", "mouthSmileRight"]))
  assert smile.labels == "joy"


def test_contempt_is_one_sided_and_either_side():
  symmetric = be.read_blendshapes(
    _face(FACES["joy"] + ("mouthDimpleLeft", "mouthDimpleRight"))
  )
  assert symmetric.intensities[_index("contempt")] == 0
  left = be.read_blendshapes(_face(["mouthSmileLeft", "mouthDimpleLeft"]))
  right = be.read_blendshapes(_face(["mouthSmileRight", "mouthDimpleRight"]))
  for reading in (left, right):
    assert reading.labels == "contempt"
    np.testing.assert_allclose(
      reading.valence_arousal, emotions.PROTOTYPES["contempt"], atol=1e-6
    )


def test_mirrored_faces_read_the_same():
  rng = np.random.default_rng(0)
  faces = rng.uniform(0, 1, (200, 52)) ** 3
  faces[:50] = rng.uniform(0, 1, (50, 52)) < 0.2  # Some all-or-nothing faces.
  reading = be.read_blendshapes(faces)
  mirrored = be.read_blendshapes(_mirrored(faces))
  for field in ("probabilities", "intensities", "valence_arousal", "units"):
    np.testing.assert_allclose(
      getattr(mirrored, field), getattr(reading, field), atol=1e-12
    )


def test_outputs_stay_in_range_and_keep_the_batch_shape():
  rng = np.random.default_rng(1)
  faces = np.concatenate(
    [
      rng.uniform(0, 1, (500, 52)),
      rng.uniform(0, 1, (500, 52)) ** 4,
      (rng.uniform(0, 1, (500, 52)) < 0.3).astype(float),
      np.ones((1, 52)),
    ]
  )
  reading = be.read_blendshapes(faces)
  assert np.all(np.abs(reading.valence_arousal) <= 1)
  assert np.all((reading.probabilities >= 0) & (reading.probabilities <= 1))
  np.testing.assert_allclose(reading.probabilities.sum(-1), 1, atol=1e-12)
  assert np.all((reading.intensities >= 0) & (reading.intensities <= 1))
  batched = be.read_blendshapes(faces[:24].reshape(2, 3, 4, 52))
  assert batched.probabilities.shape == (2, 3, 4, len(be.EMOTIONS))
  assert batched.valence_arousal.shape == (2, 3, 4, 2)
  assert batched.labels.shape == (2, 3, 4)
  np.testing.assert_allclose(
    batched.valence_arousal.reshape(-1, 2), reading.valence_arousal[:24]
  )


def test_intensities_are_the_nonnegative_least_squares_blend():
  templates = np.array(
    [[u in be.READ[e] for u in be.UNITS] for e in sorted(be.READ)], float
  )
  rng = np.random.default_rng(2)
  faces = rng.uniform(0, 1, (100, 52)) ** 2
  reading = be.read_blendshapes(faces)
  expressed = [_index(e) for e in sorted(be.EMFACS)]
  for units, intensities in zip(reading.units, reading.intensities):
    weights, _ = scipy.optimize.nnls(templates.T, units)
    np.testing.assert_allclose(
      intensities[expressed], np.clip(weights, 0, 1), atol=1e-7
    )


def test_action_units_are_the_means_of_their_blendshapes():
  scores = np.zeros(52)
  scores[be.BLENDSHAPES.index("mouthSmileLeft")] = 0.8
  scores[be.BLENDSHAPES.index("mouthSmileRight")] = 0.4
  scores[be.BLENDSHAPES.index("jawOpen")] = 0.3
  units = dict(zip(be.ACTION_UNITS, be.action_units(scores)))
  assert units[12] == pytest.approx(0.6)
  assert units[26] == pytest.approx(0.3)
  assert units[4] == 0


def test_a_resting_face_is_subtracted():
  rng = np.random.default_rng(3)
  rest = rng.uniform(0, 0.3, 52)
  assert be.read_blendshapes(rest, neutral=rest).labels == "neutral"
  # The full prototype from this resting face: every unit at its maximum.
  fear = np.where(_face(FACES["fear"]) > 0, 1.0, rest)
  reading = be.read_blendshapes(fear, neutral=rest)
  assert reading.labels == "fear"
  np.testing.assert_allclose(
    reading.valence_arousal, emotions.PROTOTYPES["fear"], atol=1e-6
  )
  # Half the way from rest is half the expression.
  half = rest + 0.5 * (fear - rest)
  np.testing.assert_allclose(
    be.read_blendshapes(half, neutral=rest).valence_arousal,
    0.5 * np.asarray(emotions.PROTOTYPES["fear"]),
    atol=1e-9,
  )


def test_facial_activity_is_the_strongest_measured_unit_from_rest():
  rng = np.random.default_rng(4)
  rest = rng.uniform(0, 0.3, 52)
  frames = np.repeat(rest[None], 20, axis=0)
  # Gaze and blinks move the face's blendshapes, but no action unit.
  for name in (
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
  ):
    frames[5, be.BLENDSHAPES.index(name)] = 1.0
  # Unmeasured shapes (cheekSquint) do not count either.
  frames[6, be.BLENDSHAPES.index("cheekSquintLeft")] = 1.0
  # A smile, both corners halfway from rest to 1.
  smile = [be.BLENDSHAPES.index(f"mouthSmile{s}") for s in ("Left", "Right")]
  frames[10, smile] = rest[smile] + 0.5 * (1 - rest[smile])
  np.testing.assert_allclose(be.resting_face(frames), rest)
  activity = be.facial_activity(frames, be.resting_face(frames))
  assert activity.shape == (20,)
  np.testing.assert_allclose(np.delete(activity, 10), 0, atol=1e-12)
  assert activity[10] == pytest.approx(0.5)
  # Against the blendshapes' own zero: the resting face's strongest unit.
  units = be.action_units(rest)
  measured = [be.ACTION_UNITS.index(au) for au in be.MEASURED_UNITS]
  assert be.facial_activity(rest) == pytest.approx(units[measured].max())
  assert 5 not in be.MEASURED_UNITS and 6 not in be.MEASURED_UNITS


def test_scores_by_name():
  named = dict(zip(be.BLENDSHAPES, np.linspace(0, 1, 52)))
  np.testing.assert_array_equal(
    be.blendshape_scores(named), np.linspace(0, 1, 52)
  )
  del named["jawOpen"]
  named["tongueOut"] = 0.0
  with pytest.raises(ValueError, match="missing: jawOpen; unknown: tongueOut"):
    be.blendshape_scores(named)


def test_jax_arrays_are_accepted():
  import jax.numpy as jnp

  face = _face(FACES["joy"], 0.7)
  np.testing.assert_allclose(
    be.read_blendshapes(jnp.asarray(face)).valence_arousal,
    be.read_blendshapes(face).valence_arousal,
    atol=1e-6,
  )


@pytest.mark.parametrize(
  "scores, problem",
  [
    (np.zeros(51), r"expected shape \(\.\.\., 52\).*got shape \(51,\)"),
    (np.zeros((3, 52, 1)), r"got shape \(3, 52, 1\)"),
    (0.5, r"got shape \(\)"),
    ("happy", "expected numbers"),
    (
      np.where(np.arange(52) == 25, 1.5, 0.0),
      r"must lie in \[0, 1\]; 1 do not, the first jawOpen = 1\.5",
    ),
    (
      np.full((2, 52), -0.1),
      r"104 do not, the first _neutral = -0\.1 at frame \(0,\)",
    ),
    (np.full(52, np.nan), "must lie in"),
  ],
)
def test_bad_scores_raise(scores, problem):
  with pytest.raises(ValueError, match=f"^scores: .*{problem}"):
    be.read_blendshapes(scores)


def test_bad_neutral_raises():
  with pytest.raises(ValueError, match=r"neutral: shape \(2, 52\) does not"):
    be.read_blendshapes(np.zeros((3, 52)), neutral=np.zeros((2, 52)))
  with pytest.raises(ValueError, match=r"neutral: expected shape"):
    be.read_blendshapes(np.zeros(52), neutral=np.zeros(10))


def test_the_compiled_reading_is_the_numpy_reading():
  import jax  # pylint: disable=g-import-not-at-top

  faces = np.random.default_rng(5).uniform(0, 1, (64, 52)) ** 3
  reading = be.read_blendshapes(faces)
  va, probabilities = jax.jit(be.zero_shot)(jax.numpy.asarray(faces, "float32"))
  # float32 solves: a few 1e-5 from the float64 ones.
  np.testing.assert_allclose(va, reading.valence_arousal, atol=2e-4)
  np.testing.assert_allclose(probabilities, reading.probabilities, atol=2e-4)
