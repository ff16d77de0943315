"""The synthetic actors: palettes, `Speaker` and `make_speakers`.

An actor's looks (skin, hair, eyes, face proportions, lighting, framing,
backdrop, clothing, how strongly they pose) are drawn once from the speaker id
and the dataset seed; everything the renderer draws of a person comes from here.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from varec import emotions

# Appearance palettes (BGR, 0-255).
_SKIN_TONES = np.array(
  [  # Fair to dark, sampled by a tone in [0, 1].
    (196, 212, 242),
    (170, 195, 232),
    (142, 174, 216),
    (118, 154, 200),
    (96, 130, 178),
    (72, 102, 148),
    (52, 74, 112),
  ],
  np.float32,
)
_HAIR_COLOURS = (
  (22, 22, 26),
  (28, 36, 52),
  (40, 58, 88),
  (32, 52, 110),
  (50, 80, 128),
  (78, 118, 160),
  (118, 166, 206),
  (146, 148, 152),
  (36, 62, 140),
)
_IRIS_COLOURS = (
  (28, 48, 86),
  (22, 30, 48),
  (150, 118, 78),
  (88, 126, 90),
  (50, 96, 118),
  (132, 134, 126),
)
_CLOTHING_COLOURS = (
  (40, 40, 40),
  (120, 60, 30),
  (200, 200, 200),
  (40, 90, 40),
  (60, 50, 140),
  (150, 120, 90),
  (90, 90, 110),
  (30, 30, 90),
  (170, 140, 60),
  (110, 150, 170),
)
_BACKGROUND_COLOURS = (
  (200, 200, 200),
  (150, 150, 150),
  (90, 90, 90),
  (170, 130, 100),
  (120, 150, 120),
  (150, 180, 200),
  (210, 215, 220),
  (60, 60, 70),
  (130, 110, 90),
  (120, 130, 160),
  (90, 110, 100),
  (180, 170, 160),
)
_FEMALE_HAIR_STYLES = ("long", "bob", "bun", "curly", "fringe", "medium")
_MALE_HAIR_STYLES = ("short", "crop", "medium", "curly", "receding")
_BACKGROUND_TEXTURES = ("plain", "mottled", "stripes", "tiles", "bokeh")


@dataclasses.dataclass(frozen=True)
class Speaker:
  """Appearance and style of one synthetic actor (lengths in face
  half-widths)."""

  speaker_id: str  # "F01", ..., "M12"
  skin: tuple[float, float, float]  # BGR albedo.
  lips: tuple[float, float, float]
  hair: tuple[float, float, float]
  hair_style: str  # One of _FEMALE_HAIR_STYLES / _MALE_HAIR_STYLES.
  hair_volume: float  # Hair thickness above the skull.
  iris: tuple[float, float, float]
  clothing: tuple[float, float, float]
  neckline: str  # "round" or "v".
  face_width: float  # Cheek width factor.
  jaw_width: float  # Half-width at the jaw angle.
  chin_width: float
  face_length: float  # Lower-face length factor.
  forehead: float  # Hairline height above the eye line.
  eye_size: float
  eye_spacing: float  # Half the interpupillary distance.
  brow_height: float  # Offset (negative = higher).
  brow_thickness: float
  brow_arch: float
  nose_length: float
  nose_width: float
  mouth_width: float
  lip_thickness: float
  stubble: float  # 0 = none.
  light_azimuth: float  # Degrees, positive = light from image right.
  light_elevation: float  # Degrees above the camera axis.
  light_intensity: float
  ambient: float
  light_tint: float  # -1 cool ... +1 warm.
  face_height: float  # Hairline to chin, fraction of frame height.
  x_position: float  # Face centre, fraction of frame width.
  y_position: float  # Eye line within its feasible range, 0 = highest.
  background: tuple[float, float, float]
  background2: tuple[float, float, float]
  background_texture: str  # One of _BACKGROUND_TEXTURES.
  # Apex intensity per emotion, emotions.EMOTIONS order.
  expressivity: tuple[float, ...]
  contempt_side: int  # +1 raises the image-right lip corner, -1 the left.
  texture_seed: int  # Hair strands and background texture.

  @property
  def sex(self) -> str:
    return self.speaker_id[0]


def speaker_key(speaker_id: str) -> tuple[int, int]:
  """(0 female / 1 male, 1-based number) of an "F01"-style id."""
  match = re.fullmatch(r"([FM])(\d+)", speaker_id)
  if not match:
    raise ValueError(f"speaker id {speaker_id!r} is not like 'F01' or 'M12'")
  return (0 if match[1] == "F" else 1), int(match[2])


def _speaker_ids(num_speakers: int) -> list[str]:
  # ADFES ratio (10 of 22 female), so 22 gives exactly F01..F10, M01..M12.
  num_female = (10 * num_speakers + 11) // 22
  return [f"F{i:02d}" for i in range(1, num_female + 1)] + [
    f"M{i:02d}" for i in range(1, num_speakers - num_female + 1)
  ]


def _stratified(seed: int, attribute: int, sex: int, number: int) -> float:
  """Latin-hypercube value in [0, 1): speakers of one sex fill distinct strata.

  Within each block of 12 speakers every attribute takes 12 different strata in
  a random order, so no two speakers share all their looks, and an actor's looks
  do not depend on how many speakers are made.
  """
  block, pos = divmod(number - 1, 12)
  rng = np.random.default_rng([seed, 7919, attribute, sex, block])
  perm = rng.permutation(12)
  jitter = rng.random(12)
  return float((perm[pos] + jitter[pos]) / 12.0)


def _lerp_palette(palette: np.ndarray, t: float) -> np.ndarray:
  x = t * (len(palette) - 1)
  i = min(int(x), len(palette) - 2)
  return palette[i] + (palette[i + 1] - palette[i]) * (x - i)


def _luma(bgr) -> float:
  b, g, r = bgr
  return 0.114 * b + 0.587 * g + 0.299 * r


def _make_speaker(speaker_id: str, seed: int) -> Speaker:
  sex, number = speaker_key(speaker_id)
  rng = np.random.default_rng([seed, 104729, sex, number])
  female = sex == 0
  # Every call draws the next attribute's stratum; the calls are unconditional
  # so that attribute k means the same thing for every speaker. The draws
  # (strata and rng) happen in the order written here, so reordering the lines
  # changes the actors.
  strata = iter(range(100))

  def strat() -> float:
    return _stratified(seed, next(strata), sex, number)

  def pick(options):
    return options[int(strat() * len(options))]

  def span(lo: float, hi: float) -> float:
    return lo + (hi - lo) * strat()

  skin = np.clip(
    _lerp_palette(_SKIN_TONES, strat()) * rng.uniform(0.96, 1.04, 3), 30, 250
  )
  hair = np.clip(
    np.array(pick(_HAIR_COLOURS), np.float32) * rng.uniform(0.9, 1.1), 10, 235
  )
  style = pick(_FEMALE_HAIR_STYLES if female else _MALE_HAIR_STYLES)
  volume = span(0.04, 0.3)
  # Backgrounds keep some contrast with the skin, as in a studio recording.
  background = np.array(pick(_BACKGROUND_COLOURS), np.float32)
  if abs(_luma(background) - _luma(skin)) < 45:
    background = np.clip(
      background + (70 if _luma(skin) < 128 else -70), 20, 235
    )
  background2 = np.clip(background * rng.uniform(0.75, 1.2, 3), 10, 245)
  expressivity = span(0.9, 1.1)
  stubble = max(0.0, span(-0.6, 1.0))
  return Speaker(
    speaker_id=speaker_id,
    skin=tuple(float(c) for c in skin),
    lips=tuple(float(c) for c in skin * (0.74, 0.66, 0.92 if female else 0.86)),
    hair=tuple(float(c) for c in hair),
    hair_style=style,
    hair_volume=0.03 if style in ("crop", "receding") else volume,
    iris=pick(_IRIS_COLOURS),
    clothing=pick(_CLOTHING_COLOURS),
    neckline=pick(("round", "v")),
    face_width=span(0.93, 1.05) - (0.02 if female else 0.0),
    jaw_width=span(0.72, 0.8) if female else span(0.8, 0.9),
    chin_width=span(0.22, 0.32) if female else span(0.28, 0.4),
    face_length=span(0.94, 1.07),
    forehead=span(0.95, 1.2),
    eye_size=span(0.9, 1.12) + (0.04 if female else 0.0),
    eye_spacing=span(0.43, 0.48),
    brow_height=span(-0.04, 0.04),
    brow_thickness=span(0.7, 1.0) if female else span(0.95, 1.3),
    brow_arch=span(0.0, 0.06) + (0.03 if female else 0.0),
    nose_length=span(0.94, 1.06),
    nose_width=span(0.88, 1.12),
    mouth_width=span(0.9, 1.1),
    lip_thickness=span(0.95, 1.3) if female else span(0.75, 1.05),
    stubble=0.0 if female else stubble,
    light_azimuth=span(-50.0, 50.0),
    light_elevation=span(10.0, 45.0),
    light_intensity=span(0.8, 1.15),
    ambient=span(0.35, 0.55),
    light_tint=span(-1.0, 1.0),
    face_height=span(0.46, 0.57),
    x_position=span(0.4, 0.6),
    y_position=strat(),
    background=tuple(float(c) for c in background),
    background2=tuple(float(c) for c in background2),
    background_texture=pick(_BACKGROUND_TEXTURES),
    expressivity=tuple(
      float(expressivity * rng.uniform(0.9, 1.1)) for _ in emotions.EMOTIONS
    ),
    contempt_side=int(rng.choice((-1, 1))),
    texture_seed=int(rng.integers(2**31)),
  )


def make_speakers(num_speakers: int = 22, seed: int = 0) -> list[Speaker]:
  """Returns `num_speakers` actors, ids F01.. then M01.. (10 F + 12 M for
  22)."""
  if num_speakers < 1:
    raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
  return [_make_speaker(i, seed) for i in _speaker_ids(num_speakers)]
