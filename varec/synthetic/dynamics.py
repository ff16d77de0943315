"""What changes over a video: the expression's time course, head motion, blinks,
noise.

Each emotion is a set of apex action-unit intensities (FACS-inspired) and head
angles. A video starts neutral, rises smoothly to the apex well before the last
50 (labelled) frames and holds it, while the head wobbles slightly, the eyes
blink and sensor noise flickers. Every function here draws from the video's one
generator; `video.render_video` calls them in a fixed order, which the rendered
dataset depends on.
"""

from __future__ import annotations

import cv2
import numpy as np

from varec.synthetic import appearance
from varec.synthetic import geometry

# Apex action-unit intensities per emotion (FACS-inspired); head angles in
# degrees. Unilateral "sneer" raises the speaker's contempt_side lip corner
# only.
EXPRESSIONS: dict[str, dict[str, float]] = {
  "anger": dict(
    brow_down=1.0,
    brow_together=1.0,
    lid_up=0.45,
    lid_tight=0.7,
    press=1.0,
    chin_up=0.5,
    pitch=3.0,
  ),
  "contempt": dict(
    sneer=1.0, press=0.35, lids_low=0.25, yaw=6.0, roll=3.0, pitch=-3.0
  ),
  "disgust": dict(
    nose_wrinkle=1.0,
    upper_lip_up=1.0,
    brow_down=0.5,
    brow_together=0.4,
    lid_tight=0.6,
    cheek_up=0.3,
    frown=0.35,
    chin_up=0.3,
    pitch=-2.0,
    yaw=-4.0,
  ),
  "embarrassment": dict(
    gaze_down=1.0,
    lids_low=0.5,
    smile=0.3,
    press=0.6,
    pitch=16.0,
    yaw=8.0,
    roll=-3.0,
  ),
  "fear": dict(
    brow_inner_up=1.0,
    brow_outer_up=0.6,
    brow_together=0.8,
    lid_up=1.0,
    stretch=1.0,
    lips_part=0.6,
    pitch=-3.0,
  ),
  "joy": dict(smile=1.0, cheek_up=1.0, lips_part=1.0, pitch=-2.0),
  "neutral": {},
  "pride": dict(
    smile=0.45, cheek_up=0.25, lids_low=0.3, chin_up=0.3, pitch=-16.0
  ),
  "sadness": dict(
    brow_inner_up=1.1,
    brow_together=0.5,
    frown=1.0,
    chin_up=0.6,
    lids_low=0.4,
    gaze_down=0.3,
    pitch=8.0,
  ),
  "surprise": dict(
    brow_inner_up=1.0, brow_outer_up=1.0, lid_up=1.0, jaw_drop=1.0, pitch=-4.0
  ),
}
POSE_KEYS = ("pitch", "yaw", "roll")


def expression_ramp(
  rng: np.random.Generator, n: int, drawn: int, fps: float
) -> np.ndarray:
  """(n,) expression intensity per frame: neutral, a smooth rise, then a held
  apex.

  The onset and rise are drawn for a video of `drawn` frames and compressed to
  n.
  """
  scale = n / drawn
  onset = rng.uniform(1.0, 1.5) * fps * scale
  rise = rng.uniform(0.8, 1.6) * fps * scale
  frames_idx = np.arange(n, dtype=np.float64)
  secs = frames_idx / fps
  ramp = geometry.smoothstep((frames_idx - onset) / rise)
  # A slight flutter, so that the held apex is not a still.
  return ramp * (
    1 - 0.03 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * secs))
  )


def apex(
  rng: np.random.Generator,
  speaker: appearance.Speaker,
  e_idx: int,
  emotion: str,
) -> dict[str, float]:
  """The video's apex action units and head angles: the emotion's, scaled for
  the actor."""
  apex_au = {
    k: v
    * speaker.expressivity[e_idx]
    * (rng.uniform(0.9, 1.1) if k not in POSE_KEYS else 1.0)
    for k, v in EXPRESSIONS[emotion].items()
  }
  if emotion == "joy":  # Actors differ in how much teeth a smile shows.
    apex_au["lips_part"] *= rng.uniform(0.7, 1.4)
  return apex_au


def blinks(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
  """(n,) eyelid closure in [0, 1]: blinks every 1.5-4.5 s, about 5 frames
  each."""
  frames_idx = np.arange(n, dtype=np.float64)
  blink = np.zeros(n)
  tb = rng.uniform(0.3, 2.5)
  while tb * fps < n + 3:
    blink = np.maximum(
      blink, np.exp(-(((frames_idx - tb * fps) / (0.05 * fps)) ** 2))
    )
    tb += rng.uniform(1.5, 4.5)
  return blink


def _wobble(
  rng: np.random.Generator, t: np.ndarray, amplitude: float
) -> np.ndarray:
  """Smooth random motion: three slow sinusoids (0.05-0.6 Hz)."""
  out = np.zeros_like(t)
  for _ in range(3):
    out += (
      amplitude
      / 3
      * np.sin(
        2 * np.pi * rng.uniform(0.05, 0.6) * t + rng.uniform(0, 2 * np.pi)
      )
    )
  return out


def head_jitter(
  rng: np.random.Generator, n: int, fps: float
) -> dict[str, np.ndarray]:
  """(n,) small head motion per pose component: shifts in face units, angles
  in degrees."""
  secs = np.arange(n, dtype=np.float64) / fps
  return {
    "tx": _wobble(rng, secs, 0.02),
    "ty": _wobble(rng, secs, 0.02),
    "pitch": _wobble(rng, secs, 1.0),
    "yaw": _wobble(rng, secs, 1.5),
    "roll": _wobble(rng, secs, 0.8),
  }


class SensorNoise:
  """Gaussian sensor noise: one padded field, a random window of it per
  frame."""

  _PAD = 16

  def __init__(self, rng: np.random.Generator, size: tuple[int, int], n: int):
    width, height = size
    pad = self._PAD
    noise_sigma = rng.uniform(1.5, 3.5)
    noise = rng.normal(0, noise_sigma, (height + pad, width + pad, 3))
    # Split by sign so that uint8 saturating add and subtract apply it.
    self.positive = np.clip(noise, 0, 255).astype(np.uint8)
    self.negative = np.clip(-noise, 0, 255).astype(np.uint8)
    self.offsets = rng.integers(0, pad, (n, 2))
    self.size = size

  def add(self, frame: np.ndarray, i: int) -> None:
    """Adds frame i's noise to `frame` (H, W, 3) uint8 in place."""
    width, height = self.size
    oy, ox = self.offsets[i]
    sl = (slice(oy, oy + height), slice(ox, ox + width))
    cv2.add(frame, self.positive[sl], dst=frame)
    cv2.subtract(frame, self.negative[sl], dst=frame)
