"""Label spaces: Table 2, aliases, and user vocabularies from a prototypes
CSV."""

import json
import pathlib
import re

import numpy as np
import pytest

from varec import emotions

TABLE2 = emotions.TABLE2
OWN_CSV = (
  "emotion,valence,arousal,group\n"
  "Gloomy,-0.6,-0.5,low\n"
  "excited,0.7,0.8,high\n"
  "calm,0.5,-0.6,low\n"
)


def _csv(tmp_path, text, name="prototypes.csv"):
  path = tmp_path / name
  path.write_text(text)
  return path


def test_table2_follows_the_paper():
  assert TABLE2.emotions == emotions.EMOTIONS
  np.testing.assert_array_equal(
    TABLE2.prototype_array()[TABLE2.index("anger")], np.float32([-0.4, 0.8])
  )
  by_group = {
    g: {e for e, eg in zip(TABLE2.emotions, TABLE2.groups) if eg == g}
    for g in set(TABLE2.groups)
  }
  assert by_group == {
    "positive": {"pride", "surprise", "joy"},
    "neutral": {"neutral"},
    "negative": {
      "disgust",
      "contempt",
      "sadness",
      "anger",
      "embarrassment",
      "fear",
    },
  }


def test_names_and_aliases_are_case_insensitive():
  assert TABLE2.canonical("Happy") == "joy"
  assert TABLE2.canonical(" Embarrass ") == "embarrassment"
  assert TABLE2.index("NEUTRAL") == emotions.EMOTIONS.index("neutral")
  with pytest.raises(
    ValueError,
    match="unknown emotion 'boredom'; expected one of anger, .*happy",
  ):
    TABLE2.canonical("boredom")


def test_aliases_apply_only_where_their_emotion_is_in_the_space():
  with_joy = emotions.LabelSpace(
    ("calm", "joy"), ((0.5, -0.6), (0.9, 0.1)), ("low", "high")
  )
  assert with_joy.canonical("happy") == "joy"
  # A space's own name wins over an alias of the same spelling.
  own_happy = emotions.LabelSpace(
    ("happy", "joy"), ((0.6, 0.3), (0.9, 0.1)), ("pos", "pos")
  )
  assert own_happy.canonical("Happy") == "happy"
  no_joy = emotions.LabelSpace(
    ("calm", "tense"), ((0.5, -0.6), (-0.3, 0.7)), ("low", "high")
  )
  with pytest.raises(ValueError) as error:
    no_joy.canonical("happy")
  assert (
    str(error.value) == "unknown emotion 'happy'; expected one of calm, tense"
  )


def test_csv_keeps_the_row_order_and_lowercases(tmp_path):
  space = emotions.LabelSpace.from_csv(_csv(tmp_path, OWN_CSV))
  assert space.emotions == ("gloomy", "excited", "calm")
  assert space.groups == ("low", "high", "low")
  assert [space.index(e) for e in ("calm", "Gloomy", "EXCITED")] == [2, 0, 1]
  np.testing.assert_array_equal(
    space.prototype_array(), np.float32([[-0.6, -0.5], [0.7, 0.8], [0.5, -0.6]])
  )


def test_csv_tolerates_spreadsheet_exports(tmp_path):
  path = tmp_path / "exported.csv"
  path.write_bytes(
    (
      "\ufeffEmotion, Valence, Arousal, Group, note\n"
      "calm, 0.5, -0.6, Low, quiet\n"
      "\n"
      "tense, -0.3, 0.7, High, \n"
    ).encode()
  )
  space = emotions.LabelSpace.from_csv(path)
  assert space == emotions.LabelSpace(
    ("calm", "tense"), ((0.5, -0.6), (-0.3, 0.7)), ("low", "high")
  )


def test_meta_round_trip_and_digest(tmp_path):
  space = emotions.LabelSpace.from_csv(_csv(tmp_path, OWN_CSV))
  again = emotions.LabelSpace.from_meta(json.loads(json.dumps(space.to_meta())))
  assert again == space and again.digest() == space.digest()
  assert emotions.LabelSpace.from_meta(TABLE2.to_meta()) == TABLE2
  reordered = emotions.LabelSpace(
    space.emotions[::-1], space.prototypes[::-1], space.groups[::-1]
  )
  moved = emotions.LabelSpace(
    space.emotions, ((0.0, 0.0),) + space.prototypes[1:], space.groups
  )
  regrouped = emotions.LabelSpace(
    space.emotions, space.prototypes, ("low", "high", "high")
  )
  assert (
    len({s.digest() for s in (space, reordered, moved, regrouped, TABLE2)}) == 5
  )


def test_meta_without_groups_is_table2_or_an_error():
  old = {k: v for k, v in TABLE2.to_meta().items() if k != "groups"}
  assert emotions.LabelSpace.from_meta(old) == TABLE2
  with pytest.raises(ValueError, match="without PN groups"):
    emotions.LabelSpace.from_meta(
      {
        "emotions": ["calm", "tense"],
        "prototypes": {"calm": [0.5, -0.6], "tense": [-0.3, 0.7]},
      }
    )


@pytest.mark.parametrize(
  "text, problem",
  [
    ("", "empty file; expected the header emotion,valence,arousal,group"),
    (
      "emotion,valence,arousal\ncalm,0.5,-0.6\n",
      "missing column(s) group; expected the header",
    ),
    ("emotion,valence,arousal,group\n", "0 emotion(s); at least 2"),
    (
      "emotion,valence,arousal,group\ncalm,0.5,-0.6,low\n",
      "1 emotion(s); at least 2",
    ),
    (
      "emotion,valence,arousal,group\ncalm,0.5,-0.6,low\nCalm ,0.2,0.1,low\n",
      "row 2: emotion 'calm' appears twice (names are case-insensitive)",
    ),
    (
      "emotion,valence,arousal,group\ncalm,0.5,-0.6,low\ntense,high,0.7,high\n",
      "row 2: valence and arousal must be numbers, got 'high' and '0.7'",
    ),
    (
      "emotion,valence,arousal,group\ncalm,,-0.6,low\ntense,-0.3,0.7,high\n",
      "row 1: valence and arousal must be numbers, got '' and '-0.6'",
    ),
    (
      "emotion,valence,arousal,group\ncalm,0.5,-0.6,low\ntense,-0.3,nan,high\n",
      "row 2: valence and arousal of 'tense' must be finite, got -0.3 and nan",
    ),
    (
      "emotion,valence,arousal,group\ncalm,inf,-0.6,low\ntense,-0.3,0.7,high\n",
      "row 1: valence and arousal of 'calm' must be finite",
    ),
    (
      "emotion,valence,arousal,group\ncalm,0.5,-0.6,low\ntense,-0.3,0.7, \n",
      "row 2: emotion 'tense' has an empty group",
    ),
    (
      "emotion,valence,arousal,group\ncalm,60,-0.6,low\ntense,-0.3,0.7,high\n",
      "row 1: valence and arousal of 'calm' must lie in [-1, 1], got "
      "60.0 and -0.6",
    ),
    (
      "emotion,valence,arousal,group\ncalm,0.5,-0.6,low\nquiet,0.5,-0.6,low\n",
      "row 2: 'quiet' has the prototype (0.5, -0.6) of 'calm': the "
      "nearest-prototype decision could never tell them apart",
    ),
    (
      "emotion,valence,arousal,group\ncalm,0.5,-0.6,low\n,-0.3,0.7,high\n",
      "row 2: empty emotion name",
    ),
  ],
)
def test_csv_errors_name_the_file_row_and_problem(tmp_path, text, problem):
  path = _csv(tmp_path, text)
  with pytest.raises(ValueError, match=re.escape(f"{path}: {problem}")):
    emotions.LabelSpace.from_csv(path)


def test_the_readme_example_csv():
  path = (
    pathlib.Path(__file__).parent.parent / "docs" / "prototypes_quadrants.csv"
  )
  space = emotions.LabelSpace.from_csv(path)
  assert space.emotions == ("excited", "relaxed", "stressed", "depressed")
  assert set(space.groups) == {"positive", "negative"}


def test_neutral_index_by_name_then_by_group(tmp_path):
  assert TABLE2.neutral_index == TABLE2.index("neutral")
  calm = emotions.LabelSpace(
    ("tense", "calm"), ((-0.3, 0.7), (0.5, -0.6)), ("high", "Neutral")
  )
  assert calm.neutral_index == 1
  two_calm = emotions.LabelSpace(
    ("tense", "calm", "idle"),
    ((-0.3, 0.7), (0.5, -0.6), (0, 0)),
    ("high", "neutral", "neutral"),
  )
  assert two_calm.neutral_index is None  # Which of the two is unclear.
  assert (
    emotions.LabelSpace.from_csv(_csv(tmp_path, OWN_CSV)).neutral_index is None
  )


def test_decision_prototypes_keep_the_trained_emotions_and_neutral():
  space = emotions.TABLE2
  np.testing.assert_array_equal(
    space.decision_prototypes(None), space.prototype_array()
  )
  kept = space.decision_prototypes(["joy", "Sad"])
  finite = {space.emotions[i] for i in np.flatnonzero(np.isfinite(kept[:, 0]))}
  assert finite == {"joy", "sadness", "neutral"}
  np.testing.assert_array_equal(
    kept[space.index("joy")], space.prototype_array()[space.index("joy")]
  )
