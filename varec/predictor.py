"""Any video in, a valence-arousal trajectory out, in constant memory.

The video is read frame by frame and preprocessed exactly as for training,
through the dataset builders' own streaming path (`preprocessing.stream_video`
and `preprocessing.face_boxes`, no flip), and its face crops go through the one
inference engine (`varec.inference.Stream`). Only its `DecodePolicy` differs
by default (`preprocessing.PREDICT_POLICY`): a failed detection is not papered
over, and a truncated file is predicted, its summary.json saying so. The default window policy is
`causal`: each frame's (valence, arousal) is the last output of the GRU over
the 10-frame window that ends at it, so every prediction is in the setting the
GRU was trained in (10 frames from a zero state), nothing waits for the video
to end, and memory holds one batch of frames whatever the video's length. At
the start of a stretch of frames with a face, the window is padded by
repeating its first frame. `tiled` gives evaluation's windows instead, each
stretch answered when it ends. A checkpoint whose GRU was never trained (a
pretrained CNN, zero-shot, or a CNN-only run) gives each frame its CNN's own
output. Frames without a face get no prediction. The files written from these
predictions are `varec.video_report`'s.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd

from varec import config_checks
from varec import inference
from varec import preprocessing
from varec import video_report


class Predictor:
  """A trained CNN+RNN applied to video files frame by frame; see the module docstring.

  `predict_video` writes its outputs with `varec.video_report`.
  """

  def __init__(
    self,
    model: inference.TrainedModel,
    batch_size: int = 128,
    faces_cropped: bool | None = None,
    window_policy: str = "causal",
    decode_policy: preprocessing.DecodePolicy = preprocessing.PREDICT_POLICY,
    flip_average: bool = False,
  ):
    """`faces_cropped`: the input frames are face crops; None = as the model's training data.
    `window_policy`: one of `inference.WINDOW_POLICIES`.
    `decode_policy`: failed detections and truncated files; by default no face
    is invented and a truncated file is predicted (summary.json says so).
    `flip_average`: each frame's CNN output averaged with its mirror image's."""
    inference.check_policy(window_policy)
    self.model = model
    self.decode_policy = decode_policy
    self.batch_size = batch_size
    self.window_policy = window_policy
    self.data = model.config.data
    # Every preprocessing setting is the checkpoint's: crops are cut as the dataset
    # builders stored the training data, then go through the same `model_input`.
    self.preprocess = preprocessing.config_from_data(
      self.data, pad_short_clips=False
    )
    if faces_cropped is not None:
      self.preprocess = dataclasses.replace(
        self.preprocess, faces_cropped=faces_cropped
      )
    this_input = self.data.copy_and_resolve_references()
    this_input.faces_cropped = self.preprocess.faces_cropped
    if config_checks.context_dependent(this_input):
      logging.warning("%s: %s", model.path, config_checks.CONTEXT_EQUALISATION)
    self.engine = inference.Engine.from_model(model, batch_size, flip_average)
    self.window_length = self.engine.window_length
    if not self.engine.uses_gru:
      logging.warning(
        "%s: %s",
        model.path,
        inference.output_description(model.meta, self.window_length),
      )
    self.label_space = model.label_space
    self.prototypes = model.decision_prototypes
    # A zero-shot classifier decides each frame by its own class.
    self.classifier = not self.engine.uses_gru and bool(
      model.config.model.class_prototypes
    )

  @classmethod
  def from_checkpoint(cls, path, **kwargs) -> "Predictor":
    return cls(inference.TrainedModel.load(path), **kwargs)

  # -- Streaming stages ------------------------------------------------------------

  def _with_boxes(self, frames, stats) -> Iterator[preprocessing.Frame]:
    """Adds face boxes (`preprocessing.face_boxes`): detection every k-th frame
    and the last, boxes interpolated in between, under the decode policy."""
    return preprocessing.face_boxes(
      frames,
      self.preprocess,
      self.decode_policy.on_failed_detection,
      stats,
    )

  def _predict(
    self, frames: Iterator[preprocessing.Frame], stats
  ) -> Iterator[tuple[preprocessing.Frame, np.ndarray | None]]:
    """(frame, (valence, arousal) or None), in order, batch by batch."""
    stream = inference.Stream(self.engine, self.window_policy)
    # Frames not yielded yet, in order.
    pending: collections.deque = collections.deque()
    outputs = {}
    batch: list[preprocessing.Frame] = []

    def flush(end: bool):
      with_face = [f for f in batch if f.box is not None]
      if with_face:
        crops = preprocessing.model_input(
          np.stack([self._crop(f, stats) for f in with_face])[..., None],
          self.data,
        )
        outputs.update(zip(*stream.push(crops, [f.index for f in with_face])))
      for f in batch:
        f.gray = None  # Cropped: a tiled stretch waiting for its end holds only the rest.
      # A frame without a face ends a stretch.
      if end or (batch and batch[-1].box is None):
        outputs.update(zip(*stream.finish()))
      pending.extend(batch)
      batch.clear()
      while pending and (pending[0].box is None or pending[0].index in outputs):
        frame = pending.popleft()
        yield frame, outputs.pop(frame.index, None)

    for frame in frames:
      batch.append(frame)
      if len(batch) == self.batch_size:
        yield from flush(end=False)
    yield from flush(end=True)

  def _crop(self, frame: preprocessing.Frame, stats) -> np.ndarray:
    """The face crop of a frame, cut as the training data's were."""
    if not self.preprocess.faces_cropped:
      return preprocessing.face_crop(frame.gray, frame.box, self.preprocess)
    crop, aligned = preprocessing.precropped_face(frame.gray, self.preprocess)
    stats["alignment_fallbacks"] += self.preprocess.align_faces and not aligned
    return crop

  # -- Public API ------------------------------------------------------------------

  def iter_frames(
    self, path, keep_bgr: bool = False, stats: dict | None = None
  ):
    """Yields (frame, (valence, arousal) or None) for every frame of a video
    file, an image or a folder of frame images (at the checkpoint's frame
    rate), as training reads them."""
    stats = stats if stats is not None else collections.Counter()
    frames = preprocessing.stream_frames(
      path,
      self.preprocess.fps,
      on_truncation=self.decode_policy.on_truncation,
      stats=stats,
      keep_bgr=keep_bgr,
      gray=self.preprocess.gray,
    )
    yield from self._predict(self._with_boxes(frames, stats), stats)

  def predict_video(
    self, path, output=None, annotate: bool = False
  ) -> pd.DataFrame:
    """Predicts every frame of `path`; with `output`, writes frames.csv, summary.json,
    trajectory.png, timeline.png (and annotated.mp4 if `annotate`) there
    (`video_report.write`, which also returns the summary).

    Returns the per-frame table (the columns of frames.csv).

    Raises:
      preprocessing.VideoError: unreadable file, no frame, or no face in any frame.
    """
    return video_report.write(self, path, output, annotate)[0]
