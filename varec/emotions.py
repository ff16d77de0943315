"""Emotion vocabularies: Table 2 of the paper (prototypes, and the PN groups of
§4.4) and user-supplied ones read from a prototypes CSV.

Every other module takes emotion names, prototypes and groups from a
`LabelSpace`: `TABLE2` for the paper's datasets, the dataset's own for
`video_folder` builds with a `prototypes_csv`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib

import numpy as np
import pandas as pd

# Table 2 (Yin et al., 2022), in the order used for class indices everywhere.
PROTOTYPES: dict[str, tuple[float, float]] = {
  "anger": (-0.40, 0.80),
  "contempt": (-0.57, 0.66),
  "disgust": (-0.68, 0.50),
  "embarrassment": (-0.31, -0.60),
  "fear": (-0.11, 0.79),
  "joy": (0.95, 0.12),
  "neutral": (0.00, 0.00),
  "pride": (0.31, 0.55),
  "sadness": (-0.50, -0.86),
  "surprise": (0.38, 0.92),
}

EMOTIONS: tuple[str, ...] = tuple(PROTOTYPES)

# §4.4: groups for PN accuracy (eq. 10). Neutral is its own group.
NEGATIVE = ("disgust", "contempt", "sadness", "anger", "embarrassment", "fear")
POSITIVE = ("pride", "surprise", "joy")
GROUPS: dict[str, str] = {
  **{e: "negative" for e in NEGATIVE},
  **{e: "positive" for e in POSITIVE},
  "neutral": "neutral",
}

# Spellings met in dataset file names and label files, mapped to Table 2 names.
# They apply to any vocabulary that holds the Table 2 name.
ALIASES: dict[str, str] = {
  "angry": "anger",
  "contemptuous": "contempt",
  "disgusted": "disgust",
  "embarrass": "embarrassment",
  "embarrassed": "embarrassment",
  "fearful": "fear",
  "scared": "fear",
  "afraid": "fear",
  "happy": "joy",
  "happiness": "joy",
  "proud": "pride",
  "sad": "sadness",
  "surprised": "surprise",
}

CSV_COLUMNS = ("emotion", "valence", "arousal", "group")


@dataclasses.dataclass(frozen=True)
class LabelSpace:
  """An ordered emotion vocabulary; an emotion's position is its class index.

  Names and groups are case-insensitive and kept in lower case. Row numbers in
  errors count emotions from 1 (in a CSV: data rows, the header not counted).
  """

  emotions: tuple[str, ...]
  prototypes: tuple[tuple[float, float], ...]  # (valence, arousal) per emotion.
  groups: tuple[str, ...]  # PN-accuracy group (eq. 10) per emotion.

  def __post_init__(self):
    if not len(self.emotions) == len(self.prototypes) == len(self.groups):
      raise ValueError(
        f"{len(self.emotions)} emotions, {len(self.prototypes)} prototypes and "
        f"{len(self.groups)} groups: one of each per emotion"
      )
    if len(self.emotions) < 2:
      raise ValueError(
        f"{len(self.emotions)} emotion(s); at least 2 are needed to tell apart"
      )
    # Normalised here, so that every constructor gives the same space for the
    # same vocabulary.
    names = tuple(str(e).strip().lower() for e in self.emotions)
    groups = tuple(str(g).strip().lower() for g in self.groups)
    prototypes = tuple((float(v), float(a)) for v, a in self.prototypes)
    for row, (name, (v, a), group) in enumerate(
      zip(names, prototypes, groups), start=1
    ):
      if not name:
        problem = "empty emotion name"
      elif name in names[: row - 1]:
        problem = f"emotion {name!r} appears twice (names are case-insensitive)"
      elif not (math.isfinite(v) and math.isfinite(a)):
        problem = (
          f"valence and arousal of {name!r} must be finite, got {v} and {a}"
        )
      elif not (-1 <= v <= 1 and -1 <= a <= 1):
        # The CCC loss and every plot take the circumplex's [-1, 1] scale.
        problem = (
          f"valence and arousal of {name!r} must lie in [-1, 1], got "
          f"{v} and {a}"
        )
      elif (v, a) in prototypes[: row - 1]:
        twin = names[prototypes.index((v, a))]
        problem = (
          f"{name!r} has the prototype ({v}, {a}) of {twin!r}: the "
          "nearest-prototype decision could never tell them apart"
        )
      elif not group:
        problem = f"emotion {name!r} has an empty group"
      else:
        continue
      raise ValueError(f"row {row}: {problem}")
    object.__setattr__(self, "emotions", names)
    object.__setattr__(self, "groups", groups)
    object.__setattr__(self, "prototypes", prototypes)

  @classmethod
  def from_csv(cls, path) -> LabelSpace:
    """Reads a CSV with the columns emotion, valence, arousal, group (one row
    per emotion).

    Raises:
      ValueError: naming the file, the row and the problem.
    """
    path = pathlib.Path(path)
    try:
      # utf-8-sig: spreadsheet programs often write a byte-order mark.
      table = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
        encoding="utf-8-sig",
      )
    except pd.errors.EmptyDataError:
      raise ValueError(
        f"{path}: empty file; expected the header {','.join(CSV_COLUMNS)} "
        "and one row per emotion"
      ) from None
    table.columns = [c.strip().lower() for c in table.columns]
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
      raise ValueError(
        f"{path}: missing column(s) {', '.join(missing)}; expected the header "
        f"{','.join(CSV_COLUMNS)}"
      )
    prototypes = []
    for row, (v, a) in enumerate(
      zip(table["valence"], table["arousal"]), start=1
    ):
      try:
        prototypes.append((float(v), float(a)))
      except ValueError:
        raise ValueError(
          f"{path}: row {row}: valence and arousal must be numbers, got "
          f"{v!r} and {a!r}"
        ) from None
    try:
      return cls(
        tuple(table["emotion"]), tuple(prototypes), tuple(table["group"])
      )
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from None

  @classmethod
  def from_meta(cls, meta: dict) -> LabelSpace:
    """The space `to_meta` wrote.

    Checkpoints from before user vocabularies have no groups: Table 2's are
    taken when their emotions are Table 2's.
    """
    names = meta["emotions"]
    groups = meta.get("groups")
    if groups is None:
      if tuple(names) != EMOTIONS:
        raise ValueError(
          f"emotions {names} come without PN groups; only Table 2's emotions "
          "have default groups"
        )
      groups = GROUPS
    return cls(
      tuple(names),
      tuple(tuple(meta["prototypes"][e]) for e in names),
      tuple(groups[e] for e in names),
    )

  def to_meta(self) -> dict:
    """JSON-ready {"emotions": [...], "prototypes": {name: [v, a]}, "groups":
    {name: group}}."""
    return {
      "emotions": list(self.emotions),
      "prototypes": {
        e: list(p) for e, p in zip(self.emotions, self.prototypes)
      },
      "groups": dict(zip(self.emotions, self.groups)),
    }

  def digest(self) -> str:
    """8 hex digits that change with any name, prototype, group or the order."""
    return hashlib.sha1(
      json.dumps(self.to_meta(), sort_keys=True).encode()
    ).hexdigest()[:8]

  def canonical(self, name: str) -> str:
    """The space's name for `name` (case-insensitive; `ALIASES` of its Table 2
    names allowed).

    Raises:
      ValueError: `name` names no emotion of the space.
    """
    key = name.strip().lower()
    if key not in self.emotions:
      key = ALIASES.get(key, key)
    if key not in self.emotions:
      aliases = sorted(a for a, e in ALIASES.items() if e in self.emotions)
      raise ValueError(
        f"unknown emotion {name!r}; expected one of {', '.join(self.emotions)}"
        + (f" or an alias ({', '.join(aliases)})" if aliases else "")
      )
    return key

  def index(self, name: str) -> int:
    """Class index of an emotion (any spelling `canonical` takes)."""
    return self.emotions.index(self.canonical(name))

  @property
  def neutral_index(self) -> int | None:
    """Class index of the neutral emotion: the one named "neutral", else the
    only one in the group "neutral"; None when there is no such emotion (a
    vocabulary may have none)."""
    if "neutral" in self.emotions:
      return self.emotions.index("neutral")
    in_group = [i for i, g in enumerate(self.groups) if g == "neutral"]
    return in_group[0] if len(in_group) == 1 else None

  def prototype_array(self) -> np.ndarray:
    """(num emotions, 2) float32 (valence, arousal), rows in class-index
    order."""
    return np.asarray(self.prototypes, dtype=np.float32)

  def decision_prototypes(self, trained=None) -> np.ndarray:
    """`prototype_array` for nearest-prototype decisions: only the emotions in
    `trained` (names; None = all) and neutral can be decided, the others'
    rows are at infinity.

    A model decides among the classes it was taught, as a classifier's output
    layer covers its training classes: one trained on six emotions never
    saw contempt or pride, and a regression output pulled towards the middle
    of the plane must not land in their cells. Neutral stays, taught or not:
    it is the plane's origin, no expression, where real video mostly sits.
    """
    prototypes = self.prototype_array()
    if trained is None:
      return prototypes
    keep = {self.index(name) for name in trained} | {self.neutral_index}
    for i in range(len(prototypes)):
      if i not in keep:
        prototypes[i] = np.inf
    return prototypes

  def neutral_point(self) -> np.ndarray:
    """Where an expression's intensity is measured from: the neutral
    prototype, or (0, 0) for a vocabulary without one."""
    neutral = self.neutral_index
    return np.zeros(2) if neutral is None else self.prototype_array()[neutral]


def table2_subset(names) -> LabelSpace:
  """Table 2's emotions `names`, in that order, with their prototypes and
  groups."""
  names = tuple(names)
  return LabelSpace(
    names, tuple(PROTOTYPES[e] for e in names), tuple(GROUPS[e] for e in names)
  )


TABLE2 = table2_subset(EMOTIONS)
