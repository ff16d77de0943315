"""Synthetic ADFES-like face videos: the embedded default dataset.

Procedural colour faces drawn with OpenCV stand in for the licensed ADFES videos so
that the pipeline can be trained and evaluated without them: 22 actors (F01..F10,
M01..M12) of different appearance pose the 10 emotions of `varec.emotions`. Each
video starts neutral, rises smoothly to its apex well before the last 50 (labelled)
frames and holds it, with small head motion, blinks and sensor noise.

Faces are built from 3-D landmarks (units of the cheekbone half-width, origin
between the eyes, v pointing down, z towards the camera) that expressions move
like facial action units; head rotation projects them orthographically. Soft
shading (a lit head ellipsoid, eye sockets, nose and lip shadows) gives the
gradients that dlib's HOG face detector, trained on real faces, responds to.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import multiprocessing
import pathlib
import re
from collections.abc import Iterable

import cv2
import numpy as np

from varec.emotions import EMOTIONS, TABLE2

# ---------------------------------------------------------------------------
# Appearance palettes (BGR, 0-255).

_SKIN_TONES = np.array(
    [  # Fair to dark, sampled by a tone in [0, 1].
        (196, 212, 242), (170, 195, 232), (142, 174, 216), (118, 154, 200), (96, 130, 178),
        (72, 102, 148), (52, 74, 112)
    ],
    np.float32)
_HAIR_COLOURS = ((22, 22, 26), (28, 36, 52), (40, 58, 88), (32, 52, 110), (50, 80, 128),
                 (78, 118, 160), (118, 166, 206), (146, 148, 152), (36, 62, 140))
_IRIS_COLOURS = ((28, 48, 86), (22, 30, 48), (150, 118, 78), (88, 126, 90), (50, 96, 118),
                 (132, 134, 126))
_CLOTHING_COLOURS = ((40, 40, 40), (120, 60, 30), (200, 200, 200), (40, 90, 40), (60, 50, 140),
                     (150, 120, 90), (90, 90, 110), (30, 30, 90), (170, 140, 60), (110, 150, 170))
_BACKGROUND_COLOURS = ((200, 200, 200), (150, 150, 150), (90, 90, 90), (170, 130, 100),
                       (120, 150, 120), (150, 180, 200), (210, 215, 220), (60, 60, 70),
                       (130, 110, 90), (120, 130, 160), (90, 110, 100), (180, 170, 160))
_FEMALE_HAIR_STYLES = ("long", "bob", "bun", "curly", "fringe", "medium")
_MALE_HAIR_STYLES = ("short", "crop", "medium", "curly", "receding")
_BACKGROUND_TEXTURES = ("plain", "mottled", "stripes", "tiles", "bokeh")

# Apex action-unit intensities per emotion (FACS-inspired); head angles in degrees.
# Unilateral "sneer" raises the speaker's contempt_side lip corner only.
_EXPRESSIONS: dict[str, dict[str, float]] = {
    "anger":
        dict(brow_down=1.0,
             brow_together=1.0,
             lid_up=0.45,
             lid_tight=0.7,
             press=1.0,
             chin_up=0.5,
             pitch=3.0),
    "contempt":
        dict(sneer=1.0, press=0.35, lids_low=0.25, yaw=6.0, roll=3.0, pitch=-3.0),
    "disgust":
        dict(nose_wrinkle=1.0,
             upper_lip_up=1.0,
             brow_down=0.5,
             brow_together=0.4,
             lid_tight=0.6,
             cheek_up=0.3,
             frown=0.35,
             chin_up=0.3,
             pitch=-2.0,
             yaw=-4.0),
    "embarrassment":
        dict(gaze_down=1.0, lids_low=0.5, smile=0.3, press=0.6, pitch=16.0, yaw=8.0, roll=-3.0),
    "fear":
        dict(brow_inner_up=1.0,
             brow_outer_up=0.6,
             brow_together=0.8,
             lid_up=1.0,
             stretch=1.0,
             lips_part=0.6,
             pitch=-3.0),
    "joy":
        dict(smile=1.0, cheek_up=1.0, lips_part=1.0, pitch=-2.0),
    "neutral": {},
    "pride":
        dict(smile=0.45, cheek_up=0.25, lids_low=0.3, chin_up=0.3, pitch=-16.0),
    "sadness":
        dict(brow_inner_up=1.1,
             brow_together=0.5,
             frown=1.0,
             chin_up=0.6,
             lids_low=0.4,
             gaze_down=0.3,
             pitch=8.0),
    "surprise":
        dict(brow_inner_up=1.0, brow_outer_up=1.0, lid_up=1.0, jaw_drop=1.0, pitch=-4.0),
}
_POSE_KEYS = ("pitch", "yaw", "roll")

_SHIFT = 4  # Sub-pixel bits for cv2 drawing.
_AA = cv2.LINE_AA
# Head rotation pivots (neck joint behind the face), in face units.
_PITCH_PIVOT = (0.6, -1.0)  # (v, z)
_YAW_PIVOT_Z = -1.0


@dataclasses.dataclass(frozen=True)
class Speaker:
  """Appearance and style of one synthetic actor (lengths in face half-widths)."""

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
  expressivity: tuple[float, ...]  # Apex intensity per emotion, EMOTIONS order.
  contempt_side: int  # +1 raises the image-right lip corner, -1 the left.
  texture_seed: int  # Hair strands and background texture.

  @property
  def sex(self) -> str:
    return self.speaker_id[0]


def _speaker_key(speaker_id: str) -> tuple[int, int]:
  """(0 female / 1 male, 1-based number) of an "F01"-style id."""
  match = re.fullmatch(r"([FM])(\d+)", speaker_id)
  if not match:
    raise ValueError(f"speaker id {speaker_id!r} is not like 'F01' or 'M12'")
  return (0 if match[1] == "F" else 1), int(match[2])


def _speaker_ids(num_speakers: int) -> list[str]:
  # ADFES ratio (10 of 22 female), so 22 gives exactly F01..F10, M01..M12.
  num_female = (10 * num_speakers + 11) // 22
  return ([f"F{i:02d}" for i in range(1, num_female + 1)] +
          [f"M{i:02d}" for i in range(1, num_speakers - num_female + 1)])


def _stratified(seed: int, attribute: int, sex: int, number: int) -> float:
  """Latin-hypercube value in [0, 1): speakers of one sex fill distinct strata.

    Within each block of 12 speakers every attribute takes 12 different strata in a
    random order, so no two speakers share all their looks, and an actor's looks do
    not depend on how many speakers are made.
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
  sex, number = _speaker_key(speaker_id)
  rng = np.random.default_rng([seed, 104729, sex, number])
  female = sex == 0
  # Every call draws the next attribute's stratum; the calls are unconditional so
  # that attribute k means the same thing for every speaker.
  strata = iter(range(100))

  def strat() -> float:
    return _stratified(seed, next(strata), sex, number)

  def pick(options):
    return options[int(strat() * len(options))]

  def span(lo: float, hi: float) -> float:
    return lo + (hi - lo) * strat()

  skin = np.clip(_lerp_palette(_SKIN_TONES, strat()) * rng.uniform(0.96, 1.04, 3), 30, 250)
  hair = np.clip(np.array(pick(_HAIR_COLOURS), np.float32) * rng.uniform(0.9, 1.1), 10, 235)
  style = pick(_FEMALE_HAIR_STYLES if female else _MALE_HAIR_STYLES)
  volume = span(0.04, 0.3)
  # Backgrounds keep some contrast with the skin, as in a studio recording.
  background = np.array(pick(_BACKGROUND_COLOURS), np.float32)
  if abs(_luma(background) - _luma(skin)) < 45:
    background = np.clip(background + (70 if _luma(skin) < 128 else -70), 20, 235)
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
      expressivity=tuple(float(expressivity * rng.uniform(0.9, 1.1)) for _ in EMOTIONS),
      contempt_side=int(rng.choice((-1, 1))),
      texture_seed=int(rng.integers(2**31)),
  )


def make_speakers(num_speakers: int = 22, seed: int = 0) -> list[Speaker]:
  """Returns `num_speakers` actors, ids F01.. then M01.. (10 F + 12 M for 22)."""
  if num_speakers < 1:
    raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
  return [_make_speaker(i, seed) for i in _speaker_ids(num_speakers)]


# ---------------------------------------------------------------------------
# Geometry helpers.


def _catmull_rom_closed(points, samples: int) -> np.ndarray:
  """Smooth closed curve through `points` (N, 2), `samples` points per segment."""
  p = np.asarray(points, np.float64)
  p0, p1, p2, p3 = np.roll(p, 1, 0), p, np.roll(p, -1, 0), np.roll(p, -2, 0)
  t = np.linspace(0, 1, samples, endpoint=False)[None, :, None]
  p0, p1, p2, p3 = (q[:, None, :] for q in (p0, p1, p2, p3))
  curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 +
                 (3 * p1 - p0 - 3 * p2 + p3) * t**3)
  return curve.reshape(-1, 2)


@functools.cache
def _bezier_basis(n: int) -> np.ndarray:
  t = np.linspace(0, 1, n)[:, None]
  return np.concatenate([(1 - t)**2, 2 * t * (1 - t), t**2], 1)


def _bezier(p0, p1, p2, n: int = 12) -> np.ndarray:
  """Quadratic curve of n points from p0 to p2 passing through p1 at its middle."""
  ctrl = np.array([p0, p1, p2], np.float64)
  ctrl[1] = 2 * ctrl[1] - 0.5 * (ctrl[0] + ctrl[2])
  return _bezier_basis(n) @ ctrl


@functools.cache
def _unit_circle(n: int) -> np.ndarray:
  a = np.linspace(0, 2 * np.pi, n, endpoint=False)
  return np.stack([np.cos(a), np.sin(a)], 1)


def _ellipse(cu, cv, ru, rv, n: int = 16) -> np.ndarray:
  return _unit_circle(n) * (ru, rv) + (cu, cv)


def _surface_z(u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Depth of the head ellipsoid's front surface (0 at the face centre)."""
  r2 = (u / 1.15)**2 + ((v - 0.1) / 2.0)**2
  return -1.0 + np.sqrt(np.maximum(0.04, 1.0 - r2))


def _smoothstep(x):
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3 - 2 * x)


# ---------------------------------------------------------------------------
# Rendering.


@dataclasses.dataclass
class _Pose:
  tx: float = 0.0  # Face units.
  ty: float = 0.0
  pitch: float = 0.0  # Degrees; positive = head down.
  yaw: float = 0.0
  roll: float = 0.0


class _Canvas:
  """Collects shapes in face units so that one projection serves a whole frame."""

  def __init__(self):
    self.points, self.depths, self.ops = [], [], []

  def _add(self, op, uv, dz, *args):
    uv = np.asarray(uv, np.float64)
    self.points.append(uv)
    self.depths.append(np.full(len(uv), dz))
    self.ops.append((op, len(uv), args))

  def fill(self, uv, colour, dz=0.0, to_mask=True):
    """Opaque polygon: albedo colour (and head coverage unless to_mask=False)."""
    self._add("fill", uv, dz, tuple(map(float, colour)), to_mask)

  def line(self, uv, colour, width, dz=0.0):
    """Polyline in albedo, width in face units."""
    self._add("line", uv, dz, tuple(map(float, colour)), width)

  def soft(self, uv, value, dz=0.0):
    """Polygon in the shade layer (blurred later): >0 darkens, <0 brightens."""
    self._add("soft", uv, dz, float(value))


class _Renderer:
  """Draws frames of one speaker at one frame size; static layers are cached."""

  def __init__(self, speaker: Speaker, size: tuple[int, int]):
    self.spk = speaker
    self.width, self.height = size
    s = speaker
    self.a = s.face_height * self.height / (s.forehead + 1.66 * s.face_length)
    a = self.a
    top_of_hair = s.forehead + 0.62 + s.hair_volume
    # Eye line low enough to keep the hair in frame, high enough to show shoulders.
    lo = (top_of_hair + 0.05) * a / self.height + 0.02
    hi = 1.0 - (1.66 * s.face_length + 1.3) * a / self.height
    self.cx = s.x_position * self.width
    self.cy = (lo + max(hi - lo, 0.0) * s.y_position) * self.height
    self.neck_w = 0.6 + 0.08 * (s.sex == "M")
    self._build_shapes()
    self._build_background()
    self._build_roi_and_light()

  # -- static shapes (face units, neutral) ---------------------------------

  def _build_shapes(self):
    s = self.spk
    fw, L = s.face_width, s.face_length
    top = -(s.forehead + 0.6)
    half = [(0.0, top), (0.6 * fw, top + 0.14), (0.9 * fw, -0.95), (1.0 * fw, -0.35),
            (1.0 * fw, 0.15), (0.95 * fw, 0.6), (s.jaw_width, 1.15 * L),
            (0.5 * (s.jaw_width + s.chin_width) + 0.05, 1.5 * L), (s.chin_width, 1.63 * L),
            (0.0, 1.67 * L)]
    right = np.array(half)
    self.outline = _catmull_rom_closed(np.concatenate([right, right[-2:0:-1] * [-1, 1]]), 6)
    # Beard area: the jaw part of the outline (contiguous: right jaw, chin, left
    # jaw) closed above the upper lip.
    jaw = self.outline[self.outline[:, 1] > 0.55]
    upper = np.array([(-0.42, 0.66), (-0.2, 0.73), (0.0, 0.75), (0.2, 0.73), (0.42, 0.66)])
    self.beard = np.concatenate([jaw * [0.97, 1.0], upper])

    # Hair: a front cap (silhouette over the skull down to the hairline) and,
    # for long styles, a back layer drawn before the face.
    rng = np.random.default_rng(s.texture_seed)
    vol, style = s.hair_volume, s.hair_style
    side_end = {
        "short": -0.2,
        "crop": -0.25,
        "receding": -0.15,
        "medium": 0.2,
        "curly": 0.35,
        "bun": -0.1,
        "long": 0.3,
        "bob": 0.3,
        "fringe": 0.3
    }[style]
    ang = np.linspace(np.pi, 2 * np.pi, 25)
    rx, ry = 1.06 * fw + vol, -top + vol
    sil = np.stack([rx * np.cos(ang), ry * np.sin(ang) * 0.98], 1)
    if style == "curly":
      sil *= (1 + 0.05 * np.sin(ang * 14 + rng.uniform(0, 6)))[:, None]
    sil = np.concatenate([[(-rx, side_end)], sil, [(rx, side_end)]])
    fh = s.forehead
    temple = 0.2 if style == "receding" else 0.0
    hairline = np.array([(0.99 * fw, side_end + 0.05), (0.97 * fw, -0.55),
                         (0.78 * fw, -0.93 * fh - temple), (0.35, -fh - 0.03 - 0.5 * temple),
                         (0.0, -fh)])
    if style == "fringe":
      hairline = np.array([(0.99 * fw, side_end + 0.05), (0.96 * fw, -0.62), (0.6, -0.86),
                           (0.2, -0.88), (0.0, -0.87)])
    hairline = np.concatenate([hairline, hairline[-2::-1] * [-1, 1]])
    self.hair_cap = np.concatenate([sil, hairline])
    back = {
        "long": [(rx + 0.2, 0.5), (rx + 0.3, 1.6), (rx + 0.35, 2.6), (0.7, 2.85), (-0.7, 2.85),
                 (-rx - 0.35, 2.6), (-rx - 0.3, 1.6), (-rx - 0.2, 0.5)],
        "bob": [(rx + 0.08, 0.4), (rx + 0.02, 1.15), (0.8, 1.45), (-0.8, 1.45), (-rx - 0.02, 1.15),
                (-rx - 0.08, 0.4)],
        "curly": [(rx + 0.15, 0.4), (rx + 0.1, 1.0), (0.7, 1.35), (-0.7, 1.35), (-rx - 0.1, 1.0),
                  (-rx - 0.15, 0.4)],
        "fringe": [(rx + 0.15, 0.5), (rx + 0.2, 1.5), (0.8, 2.0), (-0.8, 2.0), (-rx - 0.2, 1.5),
                   (-rx - 0.15, 0.5)],
    }.get(style)
    self.hair_back = None
    if back is not None:
      crown = sil[1:-1:4] * 1.04
      self.hair_back = _catmull_rom_closed(np.concatenate([crown, back]), 4)
    self.bun = _ellipse(0.0, top - vol - 0.22, 0.38, 0.32, 20) if style == "bun" else None
    self.show_ears = style not in ("long", "bob", "fringe", "curly")
    # Strands: arcs concentric with the skull, cut to the part inside the cap.
    cap_px = np.round(self.hair_cap * 1000).astype(np.float32)
    self.strands = []
    for _ in range(24):
      k = rng.uniform(0.7, 0.97)
      start = rng.uniform(np.pi, 2 * np.pi - 0.6)
      t = np.linspace(start, start + rng.uniform(0.4, 0.9), 12)
      arc = np.stack([rx * k * np.cos(t), ry * k * np.sin(t)], 1)
      inside = np.array(
          [cv2.pointPolygonTest(cap_px, (float(x), float(y)), True) > 25 for x, y in arc * 1000])
      if inside.sum() >= 4:
        first = int(np.argmax(inside))
        run = np.argmin(np.append(inside[first:], False))
        self.strands.append((arc[first:first + run], rng.uniform(0.7, 1.3)))

  def _build_background(self):
    s = self.spk
    h, w = self.height, self.width
    rng = np.random.default_rng(s.texture_seed + 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = xx / w - 0.5, yy / h - 0.5
    c1 = np.array(s.background, np.float32)
    c2 = np.array(s.background2, np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    g = _smoothstep(0.5 + np.cos(ang) * xn + np.sin(ang) * yn)
    bg = c1 + (c2 - c1) * g[..., None]
    tex = s.background_texture
    if tex == "mottled":
      small = rng.normal(0, 1, (5, 6)).astype(np.float32)
      bg += 14 * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    elif tex == "stripes":
      period = rng.uniform(0.06, 0.16) * w
      phase = rng.uniform(0, 2 * np.pi)
      folds = np.sin(2 * np.pi * xx / period + phase + 1.5 * np.sin(xx / (2.3 * period)))
      bg *= (1 + 0.07 * folds)[..., None]
    elif tex == "tiles":
      period = rng.uniform(0.12, 0.22) * h
      grout = np.minimum(np.abs(((xx / period) % 1) - 0.5), np.abs(((yy / period) % 1) - 0.5))
      bg *= (1 - 0.12 * (grout > 0.46))[..., None]
    elif tex == "bokeh":
      spots = np.zeros((h, w), np.float32)
      for _ in range(10):
        cv2.circle(spots, (int(rng.uniform(0, w)), int(rng.uniform(0, h))),
                   int(rng.uniform(0.03, 0.08) * h), float(rng.uniform(0.3, 1)), -1)
      spots = cv2.GaussianBlur(spots, (0, 0), 0.01 * h + 1)
      bg += 40 * spots[..., None]
    # The same key light brightens one side of the backdrop.
    lx = np.sin(np.radians(s.light_azimuth))
    bg *= (0.93 + 0.24 * lx * xn - 0.1 * (xn**2 + yn**2))[..., None]
    # Shoulders and neckline, static in the frame (the head moves above them).
    a = self.a
    v_top = 1.66 * s.face_length + 0.75
    dip = 0.45 if s.neckline == "v" else 0.2
    shoulders = np.array([(-0.95, v_top), (-0.45, v_top + dip * 0.7), (0.0, v_top + dip),
                          (0.45, v_top + dip * 0.7), (0.95, v_top), (1.8, v_top + 0.25),
                          (2.6, v_top + 0.6), (3.3, v_top + 1.3), (3.8, v_top + 5),
                          (-3.8, v_top + 5), (-3.3, v_top + 1.3), (-2.6, v_top + 0.6),
                          (-1.8, v_top + 0.25)])
    self.shoulders_px = np.stack([self.cx + a * shoulders[:, 0], self.cy + a * shoulders[:, 1]], 1)
    cloth = np.zeros((h, w), np.uint8)
    cv2.fillPoly(cloth, [_fixed(self.shoulders_px)], 255, _AA, _SHIFT)
    cloth_f = cloth.astype(np.float32)[..., None] / 255
    shading = 0.75 + 0.35 * _smoothstep(0.5 + lx * (xx - self.cx) / (4 * a))
    folds = 1 + 0.05 * np.sin((xx - self.cx) / (0.35 * a) + 0.6 * yy / a)
    cloth_col = np.array(s.clothing, np.float32) * (shading * folds)[..., None]
    bg = bg * (1 - cloth_f) + cloth_col * cloth_f
    bg = cv2.GaussianBlur(bg, (0, 0), 0.7)
    self.background = np.clip(bg, 0, 255).astype(np.uint8)

  def _build_roi_and_light(self):
    a, s = self.a, self.spk
    pts = [self.project(self.hair_cap, _Pose()), self.project(self.outline, _Pose())]
    if self.hair_back is not None:
      pts.append(self.project(self.hair_back, _Pose()))
    if self.bun is not None:
      pts.append(self.project(self.bun, _Pose()))
    pts = np.concatenate(pts)
    margin = 0.6 * a  # Room for head motion, pitch and the jaw drop.
    x0 = int(max(0, pts[:, 0].min() - margin))
    x1 = int(min(self.width, pts[:, 0].max() + margin))
    y0 = int(max(0, pts[:, 1].min() - margin))
    y1 = self.height
    self.roi = (x0, y0, x1, y1)
    # Light map over the ROI plus a margin, sliced per frame to follow the head.
    m = int(np.ceil(margin))
    self.light_margin = m
    yy, xx = np.mgrid[y0 - m:y1 + m, x0 - m:x1 + m].astype(np.float32)
    dx = (xx - self.cx) / a
    dy = (yy - self.cy) / a - 0.1
    X, Y = dx / 1.18, dy / 1.85
    r2 = np.minimum(X**2 + Y**2, 0.97)
    head_n = np.stack([X, 0.7 * Y, np.sqrt(1 - r2)], -1)
    Xn = np.clip(dx / (self.neck_w + 0.1), -0.97, 0.97)
    neck_n = np.stack([Xn, np.zeros_like(Xn), np.sqrt(1 - Xn**2)], -1)
    wneck = _smoothstep((dy - 1.9) / 0.4)[..., None]
    n = head_n * (1 - wneck) + neck_n * wneck
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    az, el = np.radians(s.light_azimuth), np.radians(s.light_elevation)
    light = np.array([np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)])
    diffuse = np.maximum(n @ light.astype(np.float32), 0)
    self.light = (s.ambient + 1.15 * s.light_intensity * (1 - s.ambient) * diffuse).astype(
        np.float32)
    t = s.light_tint
    self.tint = np.array([1 - 0.07 * t, 1.0, 1 + 0.07 * t], np.float32)

  # -- projection ------------------------------------------------------------

  def project(self, uv: np.ndarray, pose: _Pose, dz=0.0) -> np.ndarray:
    """Face-unit points (N, 2) plus depth offsets -> pixel coordinates (N, 2)."""
    u, v = uv[:, 0], uv[:, 1]
    z = _surface_z(u, v) + dz
    yaw, pitch, roll = np.radians([pose.yaw, pose.pitch, pose.roll])
    cy_, sy_ = np.cos(yaw), np.sin(yaw)
    x1 = u * cy_ + (z - _YAW_PIVOT_Z) * sy_
    z1 = -u * sy_ + (z - _YAW_PIVOT_Z) * cy_ + _YAW_PIVOT_Z
    vp, zp = _PITCH_PIVOT
    y1 = vp + (v - vp) * np.cos(pitch) + (z1 - zp) * np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    x2 = x1 * cr - y1 * sr + pose.tx
    y2 = x1 * sr + y1 * cr + pose.ty
    return np.stack([self.cx + self.a * x2, self.cy + self.a * y2], 1)

  # -- one frame -----------------------------------------------------------

  def _face(self, c: _Canvas, g, blink: float) -> None:
    """Adds hair, face and features for action-unit intensities g(name) to `c`."""
    s = self.spk
    skin = np.array(s.skin)
    hair = np.array(s.hair)
    darker = lambda k: skin * (1 - k)  # noqa: E731
    nl, nw, es = s.nose_length, s.nose_width, s.eye_size
    cheek_up = g("cheek_up")

    # Back hair and ears, then the face skin with the jaw following the mouth.
    if self.hair_back is not None:
      c.fill(self.hair_back, hair * 0.85, dz=-0.3)
    if self.bun is not None:
      c.fill(self.bun, hair, dz=-0.5)
    if self.show_ears:
      for side in (-1, 1):
        c.fill(_ellipse(side * s.face_width, 0.28, 0.15, 0.32), darker(0.05), dz=-0.3)
        c.soft(_ellipse(side * 1.03 * s.face_width, 0.28, 0.07, 0.2, 12), 0.25, -0.3)
    jaw_off = 0.42 * g("jaw_drop")
    outline = self.outline.copy()
    below = _smoothstep((outline[:, 1] - 0.85) / 0.75)
    outline[:, 1] += jaw_off * below
    outline[:, 0] *= 1 - 0.05 * g("jaw_drop") * below + 0.03 * g("smile") * np.exp(-(
        (outline[:, 1] - 0.6) / 0.35)**2)
    c.fill(outline, skin)
    c.soft(outline, 0.0)  # Clears the neck shadow where the face is.
    if s.stubble > 0:
      beard = self.beard.copy()
      beard[:, 1] += jaw_off * _smoothstep((beard[:, 1] - 0.85) / 0.75)
      c.soft(beard, 0.16 * s.stubble)

    # Soft shading: eye sockets, cheekbones, nose, chin.
    lx = np.sin(np.radians(s.light_azimuth))
    socket = 0.12 + 0.28 * np.sin(np.radians(s.light_elevation))
    nose_up = 0.04 * g("nose_wrinkle") + 0.02 * g("upper_lip_up")
    for side in (-1, 1):
      c.soft(_ellipse(side * s.eye_spacing, -0.13 + s.brow_height, 0.3, 0.2), socket)
      c.soft(_ellipse(side * 0.2, -0.04, 0.08, 0.12, 10), socket * 0.9)
      c.soft(_ellipse(side * 0.8, 0.72, 0.14, 0.3, 12), 0.1)
      c.soft(_ellipse(side * 0.5, 0.42 - 0.12 * cheek_up, 0.22, 0.13, 12),
             -(0.05 + 0.12 * cheek_up))
      side_shadow = 0.08 + (0.3 * abs(lx) if side * lx < 0 else 0.0)
      c.soft([(side * 0.07, -0.02), (side * 0.13, -0.02), (side * 0.24 * nw, 0.58 * nl),
              (side * 0.12, 0.6 * nl)],
             side_shadow,
             dz=0.15)
    c.soft(_ellipse(0.0, 0.72 * nl - nose_up, 0.2 * nw, 0.06, 12), 0.3, dz=0.15)
    c.soft(_ellipse(0.05 * lx, 0.45 * nl, 0.06, 0.16, 10), -0.12, dz=0.3)

    # Wrinkles and folds, their strength driven by the action units.
    brow_lift = 0.23 * g("brow_inner_up") + 0.2 * g("brow_outer_up")
    wr = min(1.0, max(g("brow_inner_up"), g("brow_outer_up")))
    if wr > 0.05:
      ext = 0.25 + 0.3 * g("brow_outer_up")
      for k in range(3):
        vk = -0.7 - 0.13 * k + s.brow_height - 0.3 * brow_lift
        c.line(_bezier((-ext, vk + 0.03), (0, vk), (ext, vk + 0.03), 10), darker(0.22 * wr), 0.022)
    wg = min(1.0, 0.8 * g("brow_together") + 0.4 * g("brow_down"))
    if wg > 0.05:
      for side in (-1, 1):
        c.line([(side * 0.05, -0.3), (side * 0.06, -0.12)], darker(0.3 * wg), 0.022)
    wn = g("nose_wrinkle")
    if wn > 0.05:
      for k in range(3):
        vk = 0.07 * k
        c.line(_bezier((-0.13, vk + 0.02), (0, vk), (0.13, vk + 0.02), 8),
               darker(0.3 * wn),
               0.022,
               dz=0.1)
      for side in (-1, 1):
        c.line([(side * 0.13, 0.1), (side * 0.22, 0.25)], darker(0.3 * wn), 0.022, dz=0.1)

    # Lip corners: pulled up (smile), down (frown), out (stretch), in (press);
    # contempt's sneer raises one corner only.
    mw = 0.36 * s.mouth_width
    corners = []
    for side in (-1, 1):
      sneer = g("sneer") if side == s.contempt_side else 0.0
      du = (0.085 * g("smile") + 0.09 * g("stretch") - 0.035 * g("press") - 0.06 * g("jaw_drop") +
            0.05 * sneer - 0.01 * g("frown") + 0.02 * g("upper_lip_up"))
      dv = (-0.17 * g("smile") + 0.13 * g("frown") - 0.16 * sneer + 0.03 * g("stretch") -
            0.05 * g("upper_lip_up") + 0.1 * g("jaw_drop"))
      corners.append((side * (mw + du), 1.0 + dv, sneer))
    fold = 0.1 + 0.5 * g("smile") + 0.5 * g("upper_lip_up") + 0.3 * wn + 0.25 * cheek_up
    for side, (cu, cv_, sneer) in zip((-1, 1), corners):
      f = min(1.0, fold + 0.4 * sneer)
      c.line(
          _bezier((side * (0.2 + 0.04 * nw), 0.56 * nl), (side * 0.38, 0.82),
                  (cu + side * 0.07, cv_ + 0.06), 10), darker(0.28 * f), 0.02)
      if sneer > 0.05:
        c.line(
            _bezier((cu + side * 0.03, cv_ - 0.06), (cu + side * 0.06, cv_),
                    (cu + side * 0.04, cv_ + 0.06), 6), darker(0.35 * sneer), 0.025)
    if cheek_up > 0.05:
      for side in (-1, 1):
        ox = side * (s.eye_spacing + 0.25 * es)
        for k in (-1, 0, 1):
          c.line([(ox, 0.02 * k), (ox + side * 0.09, 0.05 * k)], darker(0.15 * cheek_up), 0.012)

    # Eyes: sclera, iris and pupil, then the lids (skin) hide what lies outside.
    for side in (-1, 1):
      ex = side * s.eye_spacing
      ew = 0.21 * es
      h_up = 0.1 * es * (1 + 0.85 * g("lid_up") - 0.3 * g("lid_tight") - 0.45 * g("lids_low") -
                         0.4 * g("gaze_down") - 0.25 * cheek_up)
      h_lo = 0.065 * es * (1 + 0.3 * g("lid_up") - 0.55 * g("lid_tight") - 0.6 * cheek_up)
      crease = max(h_up, 0.0) + 0.07
      h_up = h_up * (1 - blink) - h_lo * blink  # Closed: upper lid meets the lower.
      inner, outer = (ex - side * ew, 0.01), (ex + side * ew, -0.02)
      top = _bezier(inner, (ex - side * 0.02, -h_up), outer, 12)
      bottom = _bezier(outer, (ex + side * 0.02, h_lo), inner, 12)
      c.fill(np.concatenate([top, bottom]), (218, 226, 232), dz=-0.05)
      iris_v = -0.005 + 0.06 * g("gaze_down")
      r = 0.1 * es
      c.fill(_ellipse(ex, iris_v, r, r, 20), s.iris, dz=-0.05)
      c.fill(_ellipse(ex, iris_v, 0.45 * r, 0.45 * r, 12), (15, 15, 18), dz=-0.05)
      c.fill(_ellipse(ex + 0.03, iris_v - 0.03, 0.15 * r, 0.15 * r, 8), (235, 240, 245), dz=-0.05)
      c.fill(np.concatenate([top, top[::-1] + [0, -0.28]]), skin, dz=-0.05)
      c.fill(np.concatenate([bottom, bottom[::-1] + [0, 0.14]]), skin, dz=-0.05)
      c.line(top, (25, 25, 30), 0.035, dz=-0.05)
      c.line(bottom, darker(0.3), 0.015, dz=-0.05)
      c.line(_bezier((ex - side * 0.15, -0.02), (ex, -crease), (ex + side * 0.2, -0.04), 10),
             darker(0.25 * (1 - blink)),
             0.018,
             dz=-0.05)
      if cheek_up > 0.05:  # Raised cheeks bulge under the lower lid.
        c.line(
            _bezier((ex - side * 0.12, h_lo + 0.06), (ex, h_lo + 0.1),
                    (ex + side * 0.15, h_lo + 0.05), 8), darker(0.2 * cheek_up), 0.015)

    # Brows: inner, peak and outer points moved by the brow action units.
    brow_col = np.minimum(hair, skin * 0.45) * 0.6 + skin * 0.18
    thick = s.brow_thickness * np.linspace(0.085, 0.035, 12)[:, None] * [0, 0.5]
    for side in (-1, 1):
      inner = (0.17 - 0.06 * g("brow_together"), -0.30 - 0.23 * g("brow_inner_up") +
               0.15 * g("brow_down") + 0.03 * g("brow_together"))
      peak = (0.5, -0.40 - s.brow_arch - 0.10 * g("brow_inner_up") - 0.2 * g("brow_outer_up") +
              0.09 * g("brow_down"))
      outer = (0.86,
               -0.33 - 0.02 * g("brow_inner_up") - 0.2 * g("brow_outer_up") + 0.03 * g("brow_down"))
      centre = _bezier(inner, peak, outer, 12) * (side, 1) + (0, s.brow_height)
      c.fill(np.concatenate([centre - thick, (centre + thick)[::-1]]), brow_col)

    # Nose: nostrils and alar creases.
    for side in (-1, 1):
      c.fill(_ellipse(side * 0.09 * nw, 0.66 * nl - nose_up, 0.055 * nw, 0.026, 10),
             darker(0.6),
             dz=0.3)
      c.line(_bezier((side * 0.16 * nw, 0.52 * nl - nose_up), (side * 0.24 * nw, 0.62 * nl),
                     (side * 0.15 * nw, 0.69 * nl - nose_up), 8),
             darker(0.3),
             0.02,
             dz=0.25)

    # Mouth: inner and outer lip contours between the two corners.
    (ulx, uly, _), (urx, ury, _) = corners
    t = np.linspace(-1, 1, 17)
    base_u = ulx + (urx - ulx) * (t + 1) / 2
    base_v = uly + (ury - uly) * (t + 1) / 2
    mid = 0.5 * (uly + ury)
    seam = 1.0 - 0.03 * g("chin_up")
    parts = g("lips_part")
    up_c = seam - 0.04 * parts - 0.04 * g("jaw_drop")
    lo_c = seam + 0.09 * parts + jaw_off + 0.03 * g("stretch")
    bell = 1 - t**2
    inner_up = base_v + (up_c - mid) * bell - 0.08 * g("upper_lip_up") * (1 - t**4)
    inner_lo = np.maximum(base_v + (lo_c - mid) * bell**(0.9 - 0.4 * g("jaw_drop")), inner_up)
    thin = max(1 - 0.65 * g("press") - 0.3 * g("stretch") - 0.2 * g("smile"), 0.25)
    bow = 1 + 0.25 * np.exp(-((np.abs(t) - 0.25) / 0.15)**2) - 0.2 * np.exp(-(t / 0.08)**2)
    outer_up = inner_up - 0.075 * s.lip_thickness * thin * bell**0.4 * bow
    outer_lo = inner_lo + 0.1 * s.lip_thickness * thin * bell**0.5
    up_i = np.stack([base_u, inner_up], 1)
    lo_i = np.stack([base_u, inner_lo], 1)
    lips = np.array(s.lips)
    if np.max(inner_lo - inner_up) > 0.01:
      c.fill(np.concatenate([up_i, lo_i[::-1]]), (40, 36, 80), dz=0.05)
      teeth = np.stack([base_u * 0.92, np.minimum(inner_up + 0.09, inner_lo)], 1)
      c.fill(np.concatenate([up_i * [0.92, 1], teeth[::-1]]), (205, 215, 222), dz=0.05)
    c.fill(np.concatenate([np.stack([base_u, outer_up], 1), up_i[::-1]]), lips * 0.88, dz=0.08)
    c.fill(np.concatenate([lo_i, np.stack([base_u, outer_lo], 1)[::-1]]), lips, dz=0.08)
    c.line(up_i, lips * 0.5, 0.022, dz=0.08)
    lo_bottom = float(outer_lo[8])
    c.soft(_ellipse(0.0, lo_bottom + 0.07, 0.2, 0.05, 12), 0.15 + 0.2 * g("chin_up"))
    c.soft(_ellipse(0.0, 1.42 * s.face_length + jaw_off, 0.2, 0.12, 12), -0.08)
    c.soft(_ellipse(0.0, lo_bottom - 0.03, 0.14, 0.025, 10), -0.1, 0.08)
    for cu, cv_, _ in corners:
      c.soft(_ellipse(cu, cv_, 0.04, 0.04, 8), 0.2, 0.05)

    # Front hair over the forehead, with strands for texture and a sheen.
    c.fill(self.hair_cap, hair, dz=-0.05)
    for strand, k in self.strands:
      c.line(strand, np.clip(hair * k, 0, 255), 0.012, dz=-0.05)
    c.soft(self.hair_cap, 0.0, -0.05)
    c.soft(_ellipse(0.25 * lx, -s.forehead - 0.35, 0.45, 0.15, 12), -0.15, -0.05)

  def draw(self, au: dict[str, float], pose: _Pose, blink: float) -> np.ndarray:
    """One frame (H, W, 3) uint8 for action units `au`, head `pose` and eyelid closure."""
    s, a = self.spk, self.a
    x0, y0, x1, y1 = self.roi
    origin = np.array([x0, y0], np.float64)
    h, w = y1 - y0, x1 - x0
    albedo = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    shade = np.zeros((h, w), np.float32)

    # The neck follows the head's translation only partly and does not rotate.
    nw = self.neck_w
    neck = np.array([(-nw, 0.8), (nw, 0.8), (nw * 1.08, 4.5), (-nw * 1.08, 4.5)])
    neck_px = _fixed(self.project(neck, _Pose(0.5 * pose.tx, 0.5 * pose.ty), -0.9), origin)
    cv2.fillPoly(albedo, [neck_px], s.skin, _AA, _SHIFT)
    cv2.fillPoly(mask, [neck_px], 255, _AA, _SHIFT)
    cv2.fillPoly(shade, [neck_px], 0.2, cv2.LINE_8, _SHIFT)

    c = _Canvas()
    self._face(c, lambda k: au.get(k, 0.0), blink)
    lengths = [n for _, n, _ in c.ops]
    px = _fixed(self.project(np.concatenate(c.points), pose, np.concatenate(c.depths)), origin)
    for (op, _, args), p in zip(c.ops, np.split(px, np.cumsum(lengths)[:-1])):
      if op == "fill":
        cv2.fillPoly(albedo, [p], args[0], _AA, _SHIFT)
        if args[1]:
          cv2.fillPoly(mask, [p], 255, _AA, _SHIFT)
      elif op == "line":
        cv2.polylines(albedo, [p], False, args[0], max(1, round(args[1] * a)), _AA, _SHIFT)
      else:
        cv2.fillPoly(shade, [p], args[0], cv2.LINE_8, _SHIFT)
    # Clothes cover the neck: erase it from the head mask where the shirt is.
    cv2.fillPoly(mask, [_fixed(self.shoulders_px, origin)], 0, _AA, _SHIFT)

    # Light (the map follows the face centre), shade and composite.
    m = self.light_margin
    centre = self.project(np.array([[0.0, 0.1]]), pose)[0]
    ox, oy = np.clip(np.round(centre - (self.cx, self.cy + 0.1 * a)), -m, m).astype(int)
    light = self.light[m - oy:m - oy + h, m - ox:m - ox + w]
    shade = cv2.GaussianBlur(shade, (0, 0), 0.07 * a)
    lit = (light * (1 - shade))[..., None] * self.tint
    alpha = mask.astype(np.float32)[..., None] * (1 / 255)
    frame = self.background.copy()
    bg = frame[y0:y1, x0:x1].astype(np.float32)
    out = bg + (albedo * lit - bg) * alpha
    out = cv2.GaussianBlur(out, (0, 0), 0.45 + 0.004 * a)
    frame[y0:y1, x0:x1] = np.clip(out, 0, 255)
    return frame


def _fixed(px: np.ndarray, origin=(0.0, 0.0)) -> np.ndarray:
  """Pixel coordinates -> int32 fixed point for cv2 drawing with _SHIFT."""
  return np.round((px - origin) * (1 << _SHIFT)).astype(np.int32)


# ---------------------------------------------------------------------------
# Video dynamics.


def _wobble(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
  """Smooth random motion: three slow sinusoids (0.05-0.6 Hz)."""
  out = np.zeros_like(t)
  for _ in range(3):
    out += amplitude / 3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.6) * t +
                                  rng.uniform(0, 2 * np.pi))
  return out


def render_video(speaker: Speaker,
                 emotion: str,
                 seed: int = 0,
                 *,
                 fps: float = 25.0,
                 size: tuple[int, int] = (360, 288),
                 num_frames: int | None = None) -> np.ndarray:
  """Renders one posed-emotion video of `speaker`.

    Args:
      speaker: the actor, from `make_speakers`.
      emotion: an emotion name (aliases allowed).
      seed: with the speaker id and emotion, seeds all randomness of the video.
      fps: frame rate; the drawn duration is 5.6-6.5 s.
      size: (width, height) in pixels.
      num_frames: overrides the drawn duration; the onset and rise are compressed
        in proportion, so short clips still reach the apex.

    Returns:
      (T, height, width, 3) uint8 BGR frames.
    """
  e_idx = TABLE2.index(emotion)
  emotion = EMOTIONS[e_idx]
  width, height = size
  if width < 32 or height < 32:
    raise ValueError(f"frame size {size} is too small")
  sex, number = _speaker_key(speaker.speaker_id)
  rng = np.random.default_rng([seed, sex, number, e_idx])
  drawn = int(rng.integers(int(5.6 * fps), int(6.5 * fps) + 1))
  n = drawn if num_frames is None else int(num_frames)
  if n < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}")

  # Expression time course: neutral, smooth rise, then a held apex.
  scale = n / drawn
  onset = rng.uniform(1.0, 1.5) * fps * scale
  rise = rng.uniform(0.8, 1.6) * fps * scale
  frames_idx = np.arange(n, dtype=np.float64)
  secs = frames_idx / fps
  ramp = _smoothstep((frames_idx - onset) / rise)
  ramp = ramp * (1 - 0.03 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * secs)))
  apex = {
      k: v * speaker.expressivity[e_idx] * (rng.uniform(0.9, 1.1) if k not in _POSE_KEYS else 1.0)
      for k, v in _EXPRESSIONS[emotion].items()
  }
  if emotion == "joy":  # Actors differ in how much teeth a smile shows.
    apex["lips_part"] *= rng.uniform(0.7, 1.4)

  # Blinks every 1.5-4.5 s, about 5 frames each.
  blink = np.zeros(n)
  tb = rng.uniform(0.3, 2.5)
  while tb * fps < n + 3:
    blink = np.maximum(blink, np.exp(-(((frames_idx - tb * fps) / (0.05 * fps))**2)))
    tb += rng.uniform(1.5, 4.5)

  jitter = {
      "tx": _wobble(rng, secs, 0.02),
      "ty": _wobble(rng, secs, 0.02),
      "pitch": _wobble(rng, secs, 1.0),
      "yaw": _wobble(rng, secs, 1.5),
      "roll": _wobble(rng, secs, 0.8)
  }
  renderer = _Renderer(speaker, (width, height))
  noise_sigma = rng.uniform(1.5, 3.5)
  pad = 16
  noise = rng.normal(0, noise_sigma, (height + pad, width + pad, 3))
  noise_pos = np.clip(noise, 0, 255).astype(np.uint8)
  noise_neg = np.clip(-noise, 0, 255).astype(np.uint8)
  offsets = rng.integers(0, pad, (n, 2))

  video = np.empty((n, height, width, 3), np.uint8)
  for i in range(n):
    r = ramp[i]
    au = {k: v * r for k, v in apex.items() if k not in _POSE_KEYS}
    pose = _Pose(tx=jitter["tx"][i],
                 ty=jitter["ty"][i],
                 **{k: jitter[k][i] + apex.get(k, 0.0) * r for k in _POSE_KEYS})
    frame = renderer.draw(au, pose, float(blink[i]))
    oy, ox = offsets[i]
    sl = (slice(oy, oy + height), slice(ox, ox + width))
    cv2.add(frame, noise_pos[sl], dst=frame)
    cv2.subtract(frame, noise_neg[sl], dst=frame)
    video[i] = frame
  return video


# ---------------------------------------------------------------------------
# Files.


def video_file_name(speaker_id: str, emotion: str, ext: str = ".mp4") -> str:
  """ADFES-style name, e.g. "F01-Anger-Face Forward.mp4"."""
  return f"{speaker_id}-{TABLE2.canonical(emotion).capitalize()}-Face Forward{ext}"


_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}


def write_video(path, frames: np.ndarray, fps: float = 25.0) -> None:
  """Writes (T, H, W, 3) uint8 BGR frames to .mp4 (mp4v) or .avi (MJPG).

    Raises:
      ValueError: on a bad frame array or an unsupported extension.
      OSError: if OpenCV cannot write the file or read it back.
    """
  path = pathlib.Path(path)
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
    raise ValueError(f"frames must be non-empty (T, H, W, 3) uint8, got "
                     f"{frames.shape} {frames.dtype}")
  fourcc = _FOURCC.get(path.suffix.lower())
  if fourcc is None:
    raise ValueError(f"{path}: unsupported extension; use one of {', '.join(_FOURCC)}")
  path.parent.mkdir(parents=True, exist_ok=True)
  height, width = frames.shape[1:3]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
  if not writer.isOpened():
    raise OSError(f"cannot open a {fourcc} video writer for {path}")
  try:
    for frame in frames:
      writer.write(np.ascontiguousarray(frame))
  finally:
    writer.release()
  cap = cv2.VideoCapture(str(path))
  readable = cap.isOpened()
  count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if readable else 0
  cap.release()
  if count != len(frames):
    raise OSError(f"{path} reads back with {count} frames, expected {len(frames)}")


def _render_and_write(job) -> pathlib.Path:
  speaker, emotion, path, seed, size, fps, num_frames = job
  write_video(path, render_video(speaker, emotion, seed, fps=fps, size=size, num_frames=num_frames),
              fps)
  return path


def generate_dataset(out_dir,
                     *,
                     num_speakers: int = 22,
                     emotions: Iterable[str] = EMOTIONS,
                     seed: int = 0,
                     size: tuple[int, int] = (360, 288),
                     fps: float = 25.0,
                     workers: int = 2,
                     num_frames: int | None = None) -> list[pathlib.Path]:
  """Renders and writes every (speaker, emotion) video into `out_dir`.

    Uses `workers` spawned processes (1 = in this process), so a calling script
    needs the usual `if __name__ == "__main__":` guard. `num_frames` makes short
    clips for tests. Existing files are overwritten.

    Returns:
      The sorted paths of the written videos.
    """
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  names = [TABLE2.canonical(e) for e in emotions]
  if len(set(names)) != len(names):
    raise ValueError(f"duplicate emotions in {names}")
  jobs = [(spk, e, out / video_file_name(spk.speaker_id, e), seed, tuple(size), fps, num_frames)
          for spk in make_speakers(num_speakers, seed)
          for e in names]
  if workers <= 1:
    paths = [_render_and_write(job) for job in jobs]
  else:
    # Spawn, not fork: the parent may hold JAX/thread state that fork would copy.
    # One OpenCV thread per worker, as the workers already fill the cores.
    with concurrent.futures.ProcessPoolExecutor(workers,
                                                mp_context=multiprocessing.get_context("spawn"),
                                                initializer=cv2.setNumThreads,
                                                initargs=(1,)) as pool:
      paths = list(pool.map(_render_and_write, jobs))
  return sorted(paths)
