"""Any video in, a valence-arousal trajectory out, in constant memory.

The video is read frame by frame and preprocessed exactly as for training
(`varec.preprocessing`, no flip), and its face crops go through the one
inference engine (`varec.inference.Stream`). The default window policy is
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

import cv2
import numpy as np
import pandas as pd

from varec import inference
from varec import preprocessing
from varec import video_report


@dataclasses.dataclass
class _Frame:
  index: int
  time_s: float
  bgr: np.ndarray | None  # Kept only when annotating.
  gray: np.ndarray | None  # Dropped once the frame is cropped.
  box: np.ndarray | None = None  # Face box (x0, y0, x1, y1) in source pixels.


def stream_frames(
  path, target_fps: float, stats: dict | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
  """(index, time in s, BGR frame) at `target_fps`, decoded one at a time.

  Other rates are resampled like `preprocessing.resample_indices`: target
  frame k is the source frame nearest to time k / target_fps. `stats` gets
  the source frames the header announces and those decoded.
  """
  capture, source_fps = preprocessing.open_video(path)
  stats = stats if stats is not None else {}
  # Some containers only estimate this from the duration (0 or negative: unknown).
  stats["source_frames_announced"] = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
  try:
    resample = preprocessing.needs_resampling(source_fps, target_fps)
    if resample:
      logging.info(
        "%s: resampling from %.3f to %.3f fps", path, source_fps, target_fps
      )
    source_index, emitted = 0, 0
    while True:
      ok, frame = capture.read()
      if not ok:
        break
      if not resample:
        yield source_index, source_index / target_fps, frame
        emitted += 1
      # Emit this source frame for every target time it is nearest to.
      while (
        resample and round(emitted * source_fps / target_fps) == source_index
      ):
        yield emitted, emitted / target_fps, frame
        emitted += 1
      source_index += 1
  finally:
    capture.release()
    stats["source_frames_decoded"] = source_index
  if emitted == 0:
    raise preprocessing.VideoError(path, "no frame could be decoded")


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
  ):
    """`faces_cropped`: the input frames are face crops; None = as the model's training data.
    `window_policy`: one of `inference.WINDOW_POLICIES`."""
    inference.check_policy(window_policy)
    self.model = model
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
    self.engine = inference.Engine(model, batch_size)
    self.window_length = self.engine.window_length
    if not self.engine.uses_gru:
      logging.warning(
        "%s: %s",
        model.path,
        inference.output_description(model.meta, self.window_length),
      )
    self.label_space = model.label_space
    self.prototypes = model.label_space.prototype_array()

  @classmethod
  def from_checkpoint(cls, path, **kwargs) -> "Predictor":
    return cls(inference.TrainedModel.load(path), **kwargs)

  # -- Streaming stages ------------------------------------------------------------

  def _with_boxes(self, frames, stats) -> Iterator[_Frame]:
    """Adds face boxes: detection every k-th frame, boxes interpolated in between.

    A frame has a face only if it lies between two detections that both found
    one; a failed detection is not papered over here, unlike in training data.
    """
    if self.preprocess.faces_cropped:  # The whole frame is the face's crop.
      for frame in frames:
        frame.box = preprocessing.whole_frame_box(frame.gray)
        yield frame
      return
    every = self.preprocess.detect_every
    pending: list[_Frame] = []
    anchor: _Frame | None = None
    for frame in frames:
      pending.append(frame)
      if frame.index % every == 0:
        yield from self._resolve(anchor, pending, stats)
        anchor, pending = pending[-1], []
    if pending:  # The last frame is always tried, as in training.
      yield from self._resolve(anchor, pending, stats)

  def _resolve(
    self, anchor: _Frame | None, pending: list[_Frame], stats
  ) -> Iterator[_Frame]:
    """Detects on pending[-1] and gives the frames since `anchor` their boxes."""
    end = pending[-1]
    boxes = preprocessing.detect_faces(
      end.gray, self.preprocess.detect_max_side
    )
    stats["detections"] += 1
    stats["multiple_faces"] += len(boxes) > 1
    end.box = boxes[0] if len(boxes) else None
    for frame in pending[:-1]:
      if anchor is not None and anchor.box is not None and end.box is not None:
        w = (frame.index - anchor.index) / (end.index - anchor.index)
        frame.box = (1 - w) * anchor.box + w * end.box
      yield frame
    yield end

  def _predict(
    self, frames: Iterator[_Frame], stats
  ) -> Iterator[tuple[_Frame, np.ndarray | None]]:
    """(frame, (valence, arousal) or None), in order, batch by batch."""
    stream = inference.Stream(self.engine, self.window_policy)
    pending: collections.deque = (
      collections.deque()
    )  # Frames not yielded yet, in order.
    outputs = {}
    batch: list[_Frame] = []

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
      if end or (
        batch and batch[-1].box is None
      ):  # A frame without a face ends a stretch.
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

  def _crop(self, frame: _Frame, stats) -> np.ndarray:
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
    """Yields (frame, (valence, arousal) or None) for every frame of a video file."""
    stats = stats if stats is not None else collections.Counter()

    def decoded():
      for index, time_s, bgr in stream_frames(path, self.preprocess.fps, stats):
        gray = preprocessing.equalize_histogram(
          preprocessing.grayscale_mean_rgb(bgr)
        )
        yield _Frame(index, time_s, bgr if keep_bgr else None, gray)

    yield from self._predict(self._with_boxes(decoded(), stats), stats)

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
