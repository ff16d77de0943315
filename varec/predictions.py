"""The typed values predictions travel as, from the predictor to its outputs.

`varec.predictor` is their only producer (faces -> valence/arousal per frame:
`Predictor.predictions` yields a `FramePrediction` per frame, and
`Predictor.settings` is the run's `PredictionSettings`); `varec.video_report`
and the modules it composes consume them (decisions -> files). This module
imports neither, so neither side imports the other's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from varec import emotions
from varec import tracking as tracking_lib
from varec.preprocess import config as preprocess_config


@dataclasses.dataclass(frozen=True, eq=False)
class FacePrediction:
  """One person's face on one frame, and what the model made of it."""

  person: int  # The person's id (`varec.tracking`; one face followed: 0).
  box: np.ndarray  # (4,) float box (x0, y0, x1, y1) in source pixels.
  # (2,) valence and arousal in the model's dtype; None where the model's
  # output is not finite (NaN or inf): such a face has no emotion either.
  va: np.ndarray | None
  # The frame's emotion index (`decisions.frame_emotions`); None with `va`.
  emotion: int | None
  # (C,) a zero-shot classifier's class probabilities (the outputs after
  # valence and arousal); None for other checkpoints or without `va`.
  probabilities: np.ndarray | None = None
  # (478, 3) face-mesh landmarks in source pixels (face-mesh models only).
  landmarks: np.ndarray | None = None
  # (52,) MediaPipe blendshape scores of those landmarks (face-mesh models).
  blendshapes: np.ndarray | None = None

  @property
  def valence(self) -> float | None:
    return None if self.va is None else float(self.va[0])

  @property
  def arousal(self) -> float | None:
    return None if self.va is None else float(self.va[1])


@dataclasses.dataclass(frozen=True, eq=False)
class FramePrediction:
  """One processed frame (at the checkpoint's frame rate) and its faces."""

  index: int  # Position at the checkpoint's frame rate.
  # The decoded frame it is (a video's frame number, a folder's image
  # number); None where the frames were not decoded from a file.
  source_index: int | None
  time_s: float  # `index` / fps.
  # (H, W, 3) uint8 BGR frame, where asked for (`keep_images`), else None.
  image: np.ndarray | None
  # Every person followed on this frame, in the tracker's order; none for a
  # frame without a face.
  faces: tuple[FacePrediction, ...] = ()

  def face(self, person: int) -> FacePrediction | None:
    """`person`'s face on this frame, None where they have none."""
    return next((f for f in self.faces if f.person == person), None)


@dataclasses.dataclass(frozen=True, eq=False)
class PredictionSettings:
  """What a run's outputs need to know about how its predictions were made."""

  fps: float  # The frames' rate (the checkpoint's).
  label_space: emotions.LabelSpace  # The emotions the frames are decided among.
  # (E, 2) the model's decision prototypes (`LabelSpace.decision_prototypes`).
  prototypes: np.ndarray
  classifier: bool  # A zero-shot classifier decides each frame by its class.
  reads_mesh: bool  # A face-mesh model: the headline's intensity is facial.
  follows_people: bool  # Faces tracked as people, not the largest followed.
  tracking: tracking_lib.TrackingConfig
  model_output: str  # `inference.output_description` of this run.
  # The checkpoint's preprocessing, but for faces_cropped (this input's).
  preprocessing: preprocess_config.PreprocessConfig
  checkpoint: str  # The checkpoint's path.
