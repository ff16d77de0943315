"""Zero-shot emotion and valence-arousal from MediaPipe's 52 face blendshapes.

No training and no labels: blendshape scores are read as FACS action units
(Ekman & Friesen, 1978), the action units as the EMFACS prototypes of the basic
emotions (Friesen & Ekman, 1983), each emotion's intensity is how strongly its
prototype is present, and the intensities give class probabilities and a
(valence, arousal) point on Table 2's plane that moves continuously from the
neutral origin (no expression) to the emotion's prototype (its full-strength
expression). docs/blendshape_emotions.md has the tables, the rules and their
sources.

`read_blendshapes` checks its input and computes in NumPy (float64);
`zero_shot` is the same arithmetic on JAX arrays, for the jit-compiled model.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from varec import emotions
from varec.face_mesh import BLENDSHAPES  # The networks' output order.

_INDEX = {name: i for i, name in enumerate(BLENDSHAPES)}

# FACS action units (Ekman & Friesen, 1978) as ARKit blendshapes, following
# ARKit's own descriptions of each shape; a unit's value is the mean of its
# shapes (left and right, or for 23 lower and upper lip). ARKit has no lip
# tightener: 23 is read from the lips rolled in (FACS' 28, lip suck), whose
# narrowed lip red is what 23 shows. The docs' table gives the reasons.
AU_NAMES: dict[int, str] = {
  1: "inner brow raiser",
  2: "outer brow raiser",
  4: "brow lowerer",
  5: "upper lid raiser",
  6: "cheek raiser",
  7: "lid tightener",
  9: "nose wrinkler",
  10: "upper lip raiser",
  12: "lip corner puller",
  14: "dimpler",
  15: "lip corner depressor",
  16: "lower lip depressor",
  17: "chin raiser",
  20: "lip stretcher",
  23: "lip tightener",
  24: "lip pressor",
  26: "jaw drop",
}
AU_BLENDSHAPES: dict[int, tuple[str, ...]] = {
  1: ("browInnerUp",),
  2: ("browOuterUpLeft", "browOuterUpRight"),
  4: ("browDownLeft", "browDownRight"),
  5: ("eyeWideLeft", "eyeWideRight"),
  6: ("cheekSquintLeft", "cheekSquintRight"),
  7: ("eyeSquintLeft", "eyeSquintRight"),
  9: ("noseSneerLeft", "noseSneerRight"),
  10: ("mouthUpperUpLeft", "mouthUpperUpRight"),
  12: ("mouthSmileLeft", "mouthSmileRight"),
  14: ("mouthDimpleLeft", "mouthDimpleRight"),
  15: ("mouthFrownLeft", "mouthFrownRight"),
  16: ("mouthLowerDownLeft", "mouthLowerDownRight"),
  17: ("mouthShrugLower",),
  20: ("mouthStretchLeft", "mouthStretchRight"),
  23: ("mouthRollLower", "mouthRollUpper"),
  24: ("mouthPressLeft", "mouthPressRight"),
  26: ("jawOpen",),
}
ACTION_UNITS: tuple[int, ...] = tuple(AU_BLENDSHAPES)

# EMFACS prototypes (Friesen & Ekman, 1983), in the form FACS' investigator's
# guide (Ekman, Friesen & Hager, 2002, Table 10-1) and the usual summaries give
# them, with FACS notation for the units: "a/b" is either action (EMFACS lists
# both as variants of the emotion), "U12" the one-sided part of 12 (contempt's
# R12A+R14A is unilateral); a bare 12 is then the part on both sides. Intensity
# letters (5B, R12A) are left out: a unit is measured on the blendshape's scale.
EMFACS: dict[str, tuple[str, ...]] = {
  "anger": ("4", "5", "7", "23/24"),
  "contempt": ("U12", "U14"),
  "disgust": ("9/10", "15", "16"),
  "fear": ("1", "2", "4", "5", "20", "26"),
  "joy": ("6", "12"),
  "sadness": ("1", "4", "15"),
  "surprise": ("1", "2", "5", "26"),
}
# Blendshapes that MediaPipe's Blendshape V2 network does not produce: they
# stay at zero (eyeWide: within 0.07) on real faces whatever the face does
# (MediaPipe issues #4436 and #4450; at most 0.000, and 0.072 for eyeWide, over
# the 157 real faces of tests/data/face_mesh_reference.npz). An action unit
# read only through them (6 cheek raiser, 9 nose wrinkler, 5 upper lid
# raiser) is not measured, so the prototypes are read without it: absent
# evidence is not evidence of absence, and counting it as 0 would cap every
# emotion that has it (joy at half strength).
UNMEASURED = frozenset(
  {
    "cheekSquintLeft",
    "cheekSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "eyeWideLeft",
    "eyeWideRight",
    "cheekPuff",
  }
)


def _measured(unit: str) -> str | None:
  """`unit` without its actions that only unmeasured blendshapes show (None if
  nothing is left)."""
  actions = [
    a
    for a in unit.lstrip("U").split("/")
    if not set(AU_BLENDSHAPES[int(a)]) <= UNMEASURED
  ]
  if not actions:
    return None
  return ("U" if unit.startswith("U") else "") + "/".join(actions)


# The prototypes as read from MediaPipe's blendshapes: EMFACS' measured units.
READ: dict[str, tuple[str, ...]] = {
  emotion: tuple(m for m in map(_measured, units) if m)
  for emotion, units in EMFACS.items()
}
# The units the prototypes read, each once.
UNITS: tuple[str, ...] = tuple(
  dict.fromkeys(u for us in READ.values() for u in us)
)
# The classes of a reading: Table 2's emotions that EMFACS defines, and neutral,
# in Table 2's order. Embarrassment and pride have no EMFACS prototype.
EMOTIONS: tuple[str, ...] = tuple(
  e for e in emotions.EMOTIONS if e in EMFACS or e == "neutral"
)
NEUTRAL: int = EMOTIONS.index("neutral")
# Table 2's (valence, arousal) of each of `EMOTIONS`.
PROTOTYPES = np.array([emotions.PROTOTYPES[e] for e in EMOTIONS])
_EXPRESSED = tuple(e for e in EMOTIONS if e != "neutral")
# Row e marks the units of emotion e's prototype: its full-strength expression.
_TEMPLATES = np.array(
  [[float(u in READ[e]) for u in UNITS] for e in _EXPRESSED]
)
# Actions that some prototype reads one-sided: the others read their
# two-sided part, so that no movement counts for both.
_ONE_SIDED = {int(u[1:]) for u in UNITS if u.startswith("U")}
# Round-off allowance of the least-squares solves below (activations are in
# [0, 1]); a tolerance of arithmetic, not a threshold on faces.
_ROUND_OFF = 1e-9


@dataclasses.dataclass(frozen=True, eq=False)
class ZeroShotReading:
  """Per-frame zero-shot emotion of blendshape scores of shape (..., 52).

  `probabilities` and `intensities` are (..., K) over `emotions` (neutral's
  intensity is 1 - the strongest emotion's, its probability);
  `valence_arousal` is (..., 2) in [-1, 1]; `units` is (..., len(UNITS)),
  the unit activations the intensities were read from.
  """

  emotions: tuple[str, ...]
  probabilities: np.ndarray
  intensities: np.ndarray
  valence_arousal: np.ndarray
  units: np.ndarray

  @property
  def decision(self) -> np.ndarray:
    """Each frame's class index: its most probable emotion where that one is
    more probable than neutral, else neutral (ties, to round-off, included:
    a prototype at half strength reads neutral)."""
    neutral = self.emotions.index("neutral")
    others = self.probabilities.copy()
    others[..., neutral] = -np.inf
    best = others.argmax(axis=-1)
    best_p = np.take_along_axis(others, best[..., None], axis=-1)[..., 0]
    beats = best_p > self.probabilities[..., neutral] + _ROUND_OFF
    return np.where(beats, best, neutral)

  @property
  def labels(self) -> np.ndarray:
    """`decision` as emotion names."""
    return np.asarray(self.emotions)[self.decision]


def blendshape_scores(named: Mapping[str, float]) -> np.ndarray:
  """MediaPipe's blendshapes by name (e.g. {category_name: score}) as an array.

  Args:
    named: a score for each of the 52 `BLENDSHAPES` names, no other names.

  Returns:
    (52,) float64 in `BLENDSHAPES` order.

  Raises:
    ValueError: naming the missing or unknown blendshapes.
  """
  missing = [b for b in BLENDSHAPES if b not in named]
  unknown = sorted(set(named) - set(BLENDSHAPES))
  if missing or unknown:
    raise ValueError(
      f"expected MediaPipe's {len(BLENDSHAPES)} blendshapes by name; "
      f"missing: {', '.join(missing) or 'none'}; "
      f"unknown: {', '.join(unknown) or 'none'}"
    )
  return np.array([float(named[b]) for b in BLENDSHAPES])


def _checked(what: str, scores) -> np.ndarray:
  """`scores` as float64 (..., 52) in [0, 1], else a ValueError saying why."""
  try:
    array = np.asarray(scores, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(
      f"{what}: expected numbers (MediaPipe blendshape scores), got "
      f"{type(scores).__name__}"
    ) from None
  if array.ndim == 0 or array.shape[-1] != len(BLENDSHAPES):
    raise ValueError(
      f"{what}: expected shape (..., {len(BLENDSHAPES)}), MediaPipe's "
      f"blendshape scores in BLENDSHAPES order, got shape {array.shape}"
    )
  outside = ~((array >= 0) & (array <= 1))  # NaN is outside too.
  if outside.any():
    where = tuple(int(i) for i in np.argwhere(outside)[0])
    raise ValueError(
      f"{what}: blendshape scores must lie in [0, 1]; {outside.sum()} do not, "
      f"the first {BLENDSHAPES[where[-1]]} = {array[where]} at frame "
      f"{where[:-1]}"
    )
  return array


def _from_rest(scores: np.ndarray, rest: np.ndarray) -> np.ndarray:
  """Each score as the fraction of the way from the resting face's score to
  the blendshape's maximum, 1 (0 at or below rest)."""
  try:
    np.broadcast_shapes(scores.shape, rest.shape)
  except ValueError:
    raise ValueError(
      f"neutral: shape {rest.shape} does not broadcast to the scores' "
      f"{scores.shape}"
    ) from None
  room = 1 - rest
  moved = (scores - rest) / np.where(room > 0, room, 1)
  return np.where(room > 0, np.clip(moved, 0, 1), 0.0)


def action_units(scores) -> np.ndarray:
  """FACS action units read from blendshapes: each the mean of its shapes.

  Args:
    scores: (..., 52) MediaPipe blendshape scores in [0, 1].

  Returns:
    (..., len(ACTION_UNITS)) float64 in [0, 1], columns in `ACTION_UNITS`
    order (see `AU_BLENDSHAPES`).
  """
  scores = _checked("scores", scores)
  return _action_units(scores)


# The action units a blendshape measures (`UNMEASURED` left out): what a face's
# activity is read from.
MEASURED_UNITS: tuple[int, ...] = tuple(
  au for au in ACTION_UNITS if not set(AU_BLENDSHAPES[au]) <= UNMEASURED
)
# A person's resting face: this quantile of each blendshape over their frames.
REST_QUANTILE = 0.1


def resting_face(scores) -> np.ndarray:
  """(52,) a person's resting blendshapes, from (T, 52) scores of their
  frames: each blendshape's `REST_QUANTILE` quantile, so that a face at rest
  for a tenth of the time or more gives its neutral, whatever it shows the
  rest of the time (a clip that never rests gives its least-moved frames)."""
  return np.quantile(_checked("scores", scores), REST_QUANTILE, axis=0)


def facial_activity(scores, rest=None) -> np.ndarray:
  """(...,) how far each face has moved from rest: its strongest measured
  action unit (`MEASURED_UNITS`), each read as the fraction of the way from
  the resting face to its maximum (FACS scores an action's intensity as the
  change from the person's neutral face). 0 at rest, 1 at a unit's maximum;
  gaze and blinks are no action units, so they do not count.

  Args:
    scores: (..., 52) blendshape scores in [0, 1].
    rest: the same person's resting scores, broadcastable (`resting_face`);
      None = all zeros, the blendshapes' own neutral.
  """
  scores = _checked("scores", scores)
  if rest is not None:
    scores = _from_rest(scores, _checked("neutral", rest))
  units = _action_units(scores)
  columns = [ACTION_UNITS.index(au) for au in MEASURED_UNITS]
  return units[..., columns].max(axis=-1)


def _xp(array):
  """The array module of `array`: jax.numpy for JAX arrays (and tracers
  inside jit), NumPy otherwise, so one implementation serves both."""
  return jnp if isinstance(array, jax.Array) else np


def _action_units(scores):
  return _xp(scores).stack(
    [
      scores[..., [_INDEX[b] for b in AU_BLENDSHAPES[au]]].mean(axis=-1)
      for au in ACTION_UNITS
    ],
    axis=-1,
  )


def _sides(scores, au: int):
  left, right = AU_BLENDSHAPES[au]
  return scores[..., _INDEX[left]], scores[..., _INDEX[right]]


def _units(scores):
  """(..., len(UNITS)) activations of the units the prototypes read."""
  xp = _xp(scores)
  action = _action_units(scores)
  au = {unit: action[..., i] for i, unit in enumerate(ACTION_UNITS)}
  columns = []
  for unit in UNITS:
    if unit.startswith("U"):
      # The side doesn't matter: either corner's excess over the other.
      left, right = _sides(scores, int(unit[1:]))
      columns.append(xp.abs(left - right))
    elif "/" in unit:
      # Either action is the emotion's variant: the stronger one counts.
      first, second = (au[int(a)] for a in unit.split("/"))
      columns.append(xp.maximum(first, second))
    elif int(unit) in _ONE_SIDED:
      # The part both sides share; min + |left - right| is the stronger side.
      columns.append(xp.minimum(*_sides(scores, int(unit))))
    else:
      columns.append(au[int(unit)])
  return xp.stack(columns, axis=-1)


def _support_solvers() -> np.ndarray:
  """(2**E, E, U): for each subset S of the emotions, the matrix that gives
  the least-squares weights of S's templates (zero rows outside S)."""
  solvers = []
  for chosen in itertools.product((False, True), repeat=len(_TEMPLATES)):
    solver = np.zeros_like(_TEMPLATES)
    rows = np.flatnonzero(chosen)
    if rows.size:
      solver[rows] = np.linalg.pinv(_TEMPLATES[rows].T)
    solvers.append(solver)
  return np.stack(solvers)


_SOLVERS = _support_solvers()


def _intensities(units):
  """(..., E) emotion intensities in [0, 1] of (..., U) unit activations: the
  non-negative least-squares weights of the prototypes' templates.

  The problem (Lawson & Hanson, 1974) has one solution, the templates being
  independent, and it is the least-squares fit on its own support; so among
  the fits on each of the 2**7 supports, it is the one with no negative
  weight and the least residual. Trying them all solves every frame at once,
  with array operations that also compile inside the model (`varec.models`).
  """
  xp = _xp(units)
  weights = xp.einsum("seu,...u->...se", _SOLVERS, units)
  # A least-squares fit on its support leaves |a|^2 - w.(T a) (normal
  # equations), so no fitted face needs forming.
  residual = xp.sum(units**2, axis=-1)[..., None] - xp.einsum(
    "...se,...e->...s", weights, units @ _TEMPLATES.T
  )
  # Round-off of the solves, not a threshold on faces (float32 in JAX).
  tolerance = _ROUND_OFF if units.dtype == np.float64 else 1e-5
  feasible = xp.all(weights >= -tolerance, axis=-1)
  best = xp.argmin(xp.where(feasible, residual, xp.inf), axis=-1)
  chosen = xp.take_along_axis(weights, best[..., None, None], axis=-2)
  return xp.clip(chosen[..., 0, :], 0, 1)


def _reading(scores):
  """(probabilities, intensities, valence-arousal, units) of checked scores."""
  xp = _xp(scores)
  units = _units(scores)
  expressed = _intensities(units)
  strongest = expressed.max(axis=-1, keepdims=True)
  total = expressed.sum(axis=-1, keepdims=True)
  share = expressed / xp.where(total > 0, total, 1)
  neutral = 1 - strongest
  probabilities = xp.concatenate(
    [
      strongest * share[..., :NEUTRAL],
      neutral,
      strongest * share[..., NEUTRAL:],
    ],
    axis=-1,
  )
  intensities = xp.concatenate(
    [expressed[..., :NEUTRAL], neutral, expressed[..., NEUTRAL:]], axis=-1
  )
  return probabilities, intensities, probabilities @ PROTOTYPES, units


def zero_shot(scores) -> tuple:
  """`read_blendshapes`' (valence-arousal (..., 2), probabilities (..., K)) as
  array operations, for use inside jit (unchecked: scores in [0, 1])."""
  probabilities, _, valence_arousal, _ = _reading(scores)
  return valence_arousal, probabilities


def read_blendshapes(scores, neutral=None) -> ZeroShotReading:
  """Zero-shot emotion and valence-arousal of each frame's blendshapes.

  Intensity of an emotion: the weight of its EMFACS prototype in the
  non-negative least-squares blend of prototypes that best fits the face's
  unit activations; a prototype fitted alone weighs the mean of its units'
  activations, so one unit of n gives 1/n and all units at s give s, and where
  prototypes share units (surprise's lie inside fear's) the shared ones count
  once. Probabilities: neutral gets 1 - the strongest intensity, the emotions
  share the rest in proportion to their intensities. Valence-arousal: the
  probability-weighted mean of the classes' Table 2 prototypes (neutral at the
  origin), so no expression reads (0, 0), a full-strength prototype reads its
  Table 2 point, and s times it reads s times that point.

  Args:
    scores: (..., 52) MediaPipe blendshape scores in [0, 1], in `BLENDSHAPES`
      order (e.g. from `blendshape_scores`).
    neutral: optional scores of the same person's resting face, broadcastable
      to `scores`: FACS scores actions as changes from the neutral face, so
      each score is then read as the fraction of the way from rest to 1.

  Returns:
    A `ZeroShotReading` over `EMOTIONS`.

  Raises:
    ValueError: `scores` or `neutral` of the wrong shape, not numbers, or
      outside [0, 1].
  """
  scores = _checked("scores", scores)
  if neutral is not None:
    scores = _from_rest(scores, _checked("neutral", neutral))
  probabilities, intensities, valence_arousal, units = _reading(scores)
  return ZeroShotReading(
    emotions=EMOTIONS,
    probabilities=probabilities,
    intensities=intensities,
    valence_arousal=valence_arousal,
    units=units,
  )
