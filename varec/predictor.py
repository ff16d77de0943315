"""Any video in, a valence-arousal trajectory out, in constant memory.

Owns the stage faces -> valence/arousal per frame: `Predictor.predictions`
yields each frame's typed result (`varec.predictions.FramePrediction`) and
knows nothing about files; `Predictor.settings` says how they were made.

The video is read frame by frame and preprocessed exactly as for training,
through the dataset builders' own streaming path (`preprocess.clip.stream_video`
and `preprocess.faces.face_boxes`, no flip), and its face crops go through the
one inference engine (`varec.inference.Stream`). Only its `DecodePolicy` differs
by default (`preprocess.decode.PREDICT_POLICY`): a failed detection is not
papered over, and a truncated file is predicted, its summary.json saying so. The
default window policy is `causal`: each frame's (valence, arousal) is the last
output of the GRU over the 10-frame window that ends at it, so every prediction
is in the setting the GRU was trained in (10 frames from a zero state), nothing
waits for the video to end, and memory holds one batch of frames whatever the
video's length. At the start of a stretch of frames with a face, the window is
padded by repeating its first frame. `tiled` gives evaluation's windows instead,
each stretch answered when it ends. A checkpoint whose GRU was never trained (a
pretrained CNN, zero-shot, or a CNN-only run) gives each frame its CNN's own
output. Frames without a face get no prediction. The files written from these
predictions are `varec.video_report`'s (decisions -> files), fed the stream and
the settings, never the predictor (`predict_video` hands them over).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterator

import cv2
import numpy as np
import pandas as pd

from varec import config_checks
from varec import decisions
from varec import face_mesh
from varec import inference
from varec import mesh_reader
from varec import predictions as predictions_lib
from varec import tracking as tracking_lib
from varec import video_report
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop as crop_lib
from varec.preprocess import decode
from varec.preprocess import faces as faces_lib


class Predictor:
  """A trained CNN+RNN applied to video files frame by frame; see the module
  docstring.

  `predictions` is the per-frame stream; `predict_video` hands it, with
  `settings`, to `varec.video_report`.
  """

  def __init__(
    self,
    model: inference.TrainedModel,
    batch_size: int = 128,
    faces_cropped: bool | None = None,
    window_policy: str = "causal",
    decode_policy: decode.DecodePolicy = decode.PREDICT_POLICY,
    flip_average: bool | None = None,
    tracking: tracking_lib.TrackingConfig = tracking_lib.ALL_PEOPLE,
    min_face: float | None = mesh_reader.MIN_FACE_PX,
  ):
    """`faces_cropped`: the input frames are face crops; None = as the model's
    training data. `window_policy`: one of `inference.WINDOW_POLICIES`.
    `decode_policy`: failed detections and truncated files; by default no face
    is invented and a truncated file is predicted (summary.json says so).
    `flip_average`: each frame's CNN output averaged with its mirror image's;
    None = the checkpoint's `config.flip_average`. `tracking`: which faces are
    followed, as which person (`varec.tracking`); `max_people=1` follows the
    largest face of each frame, as the paper's videos (one actor) and evaluation
    do. `min_face`: the narrowest face found, in pixels: face-mesh checkpoints
    read the frame in squares for it (`face_mesh.FaceLandmarker.detect`); dlib
    and Haar ones add, to the faces of their recorded detection, those found at
    the scale that makes it their smallest face
    (`preprocess.faces.detect_faces`); None: the checkpoint's recorded detection
    alone (face mesh: MediaPipe's one look).

    Raises:
      ValueError: a window policy or tracking setting that cannot be used.
    """
    _check_settings(window_policy, decode_policy, tracking, min_face)
    self.tracking = tracking
    self.model = model
    self.decode_policy = decode_policy
    self.batch_size = batch_size
    self.window_policy = window_policy
    self.data = model.config.data
    self.preprocess = _preprocessing(model, faces_cropped)
    self.engine = inference.Engine.from_model(model, batch_size, flip_average)
    self.window_length = self.engine.window_length
    if not self.engine.uses_gru:
      logging.warning(
        "%s: %s",
        model.path,
        inference.output_description(model.meta, self.window_length),
      )
    # A face-mesh model reads each face's landmarks, found and followed by
    # MediaPipe's networks (`mesh_reader.MeshReader`), not a gray crop.
    self.reads_mesh = model.config.model.cnn == "face_mesh"
    self.min_face = min_face
    self.label_space = model.label_space
    self.prototypes = model.decision_prototypes
    # A zero-shot classifier decides each frame by its own class.
    self.classifier = not self.engine.uses_gru and bool(
      model.config.model.class_prototypes
    )

  @classmethod
  def from_checkpoint(cls, path, **kwargs) -> "Predictor":
    return cls(inference.TrainedModel.load(path), **kwargs)

  # -- Streaming stages
  # ------------------------------------------------------------

  @property
  def follows_people(self) -> bool:
    """Whether faces are tracked as people (`varec.tracking`) rather than the
    largest one followed."""
    return self.tracking.max_people != 1 and not self.preprocess.faces_cropped

  @property
  def settings(self) -> predictions_lib.PredictionSettings:
    """What this predictor's outputs need to know about how it predicts."""
    return predictions_lib.PredictionSettings(
      fps=self.preprocess.fps,
      label_space=self.label_space,
      prototypes=self.prototypes,
      classifier=self.classifier,
      reads_mesh=self.reads_mesh,
      follows_people=self.follows_people,
      tracking=self.tracking,
      model_output=inference.output_description(
        self.model.meta,
        self.window_length,
        self.window_policy,
        self.engine.flip_average,
      ),
      preprocessing=self.preprocess,
      checkpoint=str(self.model.path),
    )

  def _with_faces(
    self, frames, stats, keep_bgr: bool
  ) -> Iterator[decode.Frame]:
    """Sets each frame's `faces` ({person: box}): detection every k-th frame and
    the last, boxes interpolated in between; the largest face as person 0
    under the decode policy (`preprocess.faces.face_boxes`), or every face
    tracked (`tracking.tracked_frames`); for a face-mesh model, the faces
    MediaPipe's networks follow (`_with_meshes`)."""
    if self.reads_mesh:
      yield from self._with_meshes(frames, stats)
      return
    if self.follows_people:
      tracker = tracking_lib.Tracker(self.tracking, self.preprocess.fps)
      yield from tracking_lib.tracked_frames(
        faces_lib.detections(frames, self.preprocess, stats, self.min_face),
        tracker,
        keep_bgr,
      )
      stats["descriptors"] += tracker.descriptors_computed
      return
    for frame in faces_lib.face_boxes(
      frames,
      self.preprocess,
      self.decode_policy.on_failed_detection,
      stats,
      min_face=self.min_face,
    ):
      frame.faces = {} if frame.box is None else {0: frame.box}
      yield frame

  def _with_meshes(self, frames, stats) -> Iterator[decode.Frame]:
    """Sets each frame's `faces` and `meshes` (landmarks) as MediaPipe's
    VIDEO mode follows faces: detection every k-th frame (the checkpoint's
    `detect_every`), each face's ROI from its landmarks in between."""
    reader = mesh_reader.MeshReader(
      face_mesh.cached(self.data.face_detector),
      self.data.detect_every,
      self.min_face,
      self.tracking.max_people or mesh_reader.MAX_FACES,
      stills=self.preprocess.faces_cropped,
    )
    for frame in frames:
      found = reader.read(cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB))
      frame.faces = {p: box for p, (box, _) in found.items()}
      frame.meshes = {p: points for p, (_, points) in found.items()}
      largest = max(frame.faces.values(), key=_area, default=None)
      frame.box, frame.detected = largest, largest is not None
      frame.attempted = True
      yield frame
    stats["detections"] += reader.detections

  def _predict(
    self, frames: Iterator[decode.Frame], stats
  ) -> Iterator[tuple[decode.Frame, dict[int, np.ndarray]]]:
    """(frame, {person: (valence, arousal, ...)}), in order, batch by batch;
    each person has their own stream of windows, so no window mixes people."""
    streams: dict[int, inference.Stream] = {}
    # Frames not yielded yet, in order.
    pending: collections.deque = collections.deque()
    outputs = {}  # (frame index, person) -> output.
    batch: list[decode.Frame] = []

    def keep(person: int, answered: tuple[np.ndarray, np.ndarray]) -> None:
      outputs.update(((i, person), v) for i, v in zip(*answered))

    def flush(end: bool):
      faces = [(f, p, box) for f in batch for p, box in f.faces.items()]
      if faces:
        crops = self._model_input(faces, stats)
        features, answers = self._features_and_answers(crops)
        self._keep_blendshapes(faces, features)
        for person in dict.fromkeys(p for _, p, _ in faces):
          mine = [k for k, (_, p, _) in enumerate(faces) if p == person]
          indices = [faces[k][0].index for k in mine]
          if answers is not None:
            keep(person, (indices, answers[mine]))
            continue
          stream = streams.setdefault(
            person, inference.Stream(self.engine, self.window_policy)
          )
          keep(
            person,
            stream.push(
              crops[mine],
              indices,
              None if features is None else features[mine],
            ),
          )
      for f in batch:
        # Cropped: a tiled stretch waiting for its end holds only the rest.
        f.gray = None
      # A frame without a person ends their stretch.
      for person, stream in streams.items():
        if end or (batch and person not in batch[-1].faces):
          keep(person, stream.finish())
      pending.extend(batch)
      batch.clear()
      while pending and all(
        (pending[0].index, p) in outputs for p in pending[0].faces
      ):
        frame = pending.popleft()
        yield frame, {p: outputs.pop((frame.index, p)) for p in frame.faces}

    for frame in frames:
      batch.append(frame)
      if len(batch) == self.batch_size:
        yield from flush(end=False)
    yield from flush(end=True)

  def _keep_blendshapes(self, faces: list, features) -> None:
    """A face-mesh model's blendshapes on each (frame, person, box): what the
    face does, beside what the model reads of it, for the headline's apex
    phase (`decisions.decide`)."""
    if self.reads_mesh:
      for (f, p, _), scores in zip(faces, features):
        f.blendshapes[p] = scores[: len(face_mesh.BLENDSHAPES)]

  def _model_input(self, faces: list, stats) -> np.ndarray:
    """What the model reads of each (frame, person, box): the landmarks of a
    face-mesh model (with `data.mesh_crops`, and the face's crop in their
    box), else the face crop cut and prepared as in training."""
    crops = (
      np.stack([self._crop(f, box, stats) for f, _, box in faces])[..., None]
      if not self.reads_mesh or self.data.mesh_crops
      else None
    )
    if not self.reads_mesh:
      return crop_lib.model_input(crops, self.engine.input_config)
    points = np.stack(
      [mesh_reader.model_input(f.meshes[p]) for f, p, _ in faces]
    )
    return crop_lib.model_input(points, self.engine.input_config, crops)

  def _features_and_answers(self, inputs: np.ndarray):
    """(features or None, outputs or None) of a batch's faces, from one pass
    of the CNN: a face-mesh model's features (their first columns are
    MediaPipe's blendshapes) for the headline; and, without a GRU, each
    face's answer, all people's faces in one call rather than one padded
    call per person."""
    engine = self.engine
    if not self.reads_mesh:
      if engine.uses_gru:
        return None, None
      return None, engine.frame_outputs(inputs, fixed_shape=True)
    if engine.uses_gru:
      return engine.features(inputs, fixed_shape=True), None
    return engine.features_and_outputs(inputs, fixed_shape=True)

  def _crop(self, frame: decode.Frame, box: np.ndarray, stats) -> np.ndarray:
    """The crop of the face in `box` of a frame, cut as the training data's
    were."""
    crop, aligned = crop_lib.framed_crop(frame.gray, box, self.preprocess)
    stats["alignment_fallbacks"] += self.preprocess.align_faces and not aligned
    return crop

  # -- Public API
  # ------------------------------------------------------------------

  def predictions(
    self,
    path,
    keep_images: bool = False,
    stats: collections.Counter | None = None,
  ) -> Iterator[predictions_lib.FramePrediction]:
    """Predicts every frame of a video file, an image or a folder of frame
    images (at the checkpoint's frame rate), as training reads them.

    Args:
      path: the video file, image or folder of frame images.
      keep_images: give each frame its BGR image (`FramePrediction.image`).
      stats: counters the stream fills as it goes: frames, detections,
        non-finite outputs, source frames announced and decoded...

    Yields:
      Each frame's `predictions.FramePrediction`, in order; a frame without
      a face has none.

    Raises:
      preprocess.decode.VideoError: an unreadable file or no frame.
    """
    stats = stats if stats is not None else collections.Counter()
    frames = clip.stream_frames(
      path,
      self.preprocess.fps,
      on_truncation=self.decode_policy.on_truncation,
      stats=stats,
      # Face descriptors and face meshes are computed on colour frames.
      keep_bgr=keep_images or self.follows_people or self.reads_mesh,
      gray=self.preprocess.gray,
    )
    with_faces = self._with_faces(frames, stats, keep_images)
    for frame, outputs in self._predict(with_faces, stats):
      stats["frames"] += 1
      yield predictions_lib.FramePrediction(
        index=frame.index,
        source_index=frame.source_index,
        time_s=frame.time_s,
        image=frame.bgr if keep_images else None,
        faces=tuple(
          self._face(frame, person, box, outputs[person], stats)
          for person, box in frame.faces.items()
        ),
      )

  def _face(
    self, frame: decode.Frame, person: int, box, output: np.ndarray, stats
  ) -> predictions_lib.FacePrediction:
    """`person`'s face on `frame`, from the model's output (valence, arousal,
    then a zero-shot classifier's class probabilities)."""
    landmarks = frame.meshes.get(person)
    blendshapes = frame.blendshapes.get(person)
    if not np.isfinite(output).all():
      # No emotion from a NaN: the face gets none.
      stats["non_finite_outputs"] += 1
      return predictions_lib.FacePrediction(
        person, box, None, None, None, landmarks, blendshapes
      )
    return predictions_lib.FacePrediction(
      person,
      box,
      output[:2],
      int(decisions.frame_emotions(output, self.prototypes)),
      output[2:] if len(output) > 2 else None,
      landmarks,
      blendshapes,
    )

  def predict_video(
    self, path, output=None, annotate: bool = False
  ) -> pd.DataFrame:
    """Predicts every frame of `path`; with `output`, writes frames.csv,
    summary.json, trajectory.png, timeline.png (and annotated.mp4 if
    `annotate`) there (`video_report.write`, fed `predictions` and
    `settings`).

    Args:
      path: the video file, image or folder of frame images.
      output: the folder to write, or None to write nothing.
      annotate: write annotated.mp4 too.

    Returns:
      The per-frame table (the columns of frames.csv).

    Raises:
      preprocess.decode.VideoError: unreadable file, no frame, or no face in any
      frame.
    """
    stats = collections.Counter()
    frames = self.predictions(path, keep_images=annotate, stats=stats)
    return video_report.write(
      frames, self.settings, stats, path, output, annotate
    )[0]


def _check_settings(
  window_policy: str,
  decode_policy: decode.DecodePolicy,
  tracking: tracking_lib.TrackingConfig,
  min_face: float | None,
) -> None:
  """Raises ValueError, naming every problem, for settings that cannot be
  used."""
  inference.check_policy(window_policy)
  problems = tracking.problems()
  if min_face is not None and min_face <= 0:
    problems.append(f"min_face must be positive or None, got {min_face}")
  if tracking.max_people != 1 and decode_policy.on_failed_detection == "fill":
    problems.append(
      "filling failed detections follows one face: use max_people=1"
    )
  if problems:
    raise ValueError("; ".join(problems))


def _preprocessing(
  model: inference.TrainedModel, faces_cropped: bool | None
) -> preprocess_config.PreprocessConfig:
  """The checkpoint's preprocessing, but for `faces_cropped` (None: the
  checkpoint's too); warns where it depends on the frame's context."""
  # Every preprocessing setting is the checkpoint's: crops are cut as the
  # dataset builders stored the training data, then go through the same
  # `model_input`.
  config = preprocess_config.config_from_data(
    model.config.data, pad_short_clips=False
  )
  if faces_cropped is not None:
    config = dataclasses.replace(config, faces_cropped=faces_cropped)
  this_input = model.config.data.copy_and_resolve_references()
  this_input.faces_cropped = config.faces_cropped
  if config_checks.context_dependent(this_input):
    logging.warning("%s: %s", model.path, config_checks.CONTEXT_EQUALISATION)
  return config


def _area(box: np.ndarray) -> float:
  return float((box[2] - box[0]) * (box[3] - box[1]))
