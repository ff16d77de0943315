"""A trained CNN+RNN from a checkpoint, and the one engine that applies it.

`Engine`: preprocessed frames in (model-input crops, (T, S, S, 1) uint8),
per-frame (valence, arousal) out. Each frame's CNN features are computed once
(`model_lib.feature_fn`), then the GRU (`models.GRUStack` with
`params["rnn"]`) runs on 10-frame windows of features, from a zero state as in
training. Which windows is the window policy (`WINDOW_POLICIES`):

- `tiled` (the paper's, eval.py's default): windows tiled back from the end of
  a stretch of frames (`covering_window_starts`), as in training, so labelled
  frames see exactly their training windows; every step of a window is kept.
- `causal` (streaming, predict.py's default): the window ending at each frame,
  whose last step is kept; at the start of a stretch the window is padded by
  repeating the stretch's first frame. Nothing waits for the stretch to end.

A checkpoint without a trained GRU (`trained_gru`) gives each frame its CNN's
own head instead, whatever the policy; a zero-shot classifier's head adds its
class probabilities after valence and arousal, which decide each frame
(`decisions.frame_emotions`). Valence and arousal are clipped to the paper's
plane, [-1, 1] (`bounded`); `flip_average` (the config's unless the caller
says) averages each frame's CNN output with its mirror image's. `Stream`
feeds the engine batch by batch (predict.py); `VideoPredictor` feeds it whole
videos (evaluation); training validates through it, and extracts the GRU's
training features with it (`varec.train_lib`).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import pathlib

from absl import logging
import jax
import ml_collections
import numpy as np

from varec import checkpoints
from varec import config_checks
from varec import config_schema
from varec import emotions
from varec import model_lib
from varec import models
from varec import workdir as workdir_lib
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import faces


@dataclasses.dataclass
class TrainedModel:
  """Everything a checkpoint carries."""

  config: ml_collections.ConfigDict
  variables: dict
  meta: checkpoints.CheckpointMeta
  path: pathlib.Path
  # The emotions of the dataset it was trained on.
  label_space: emotions.LabelSpace

  @property
  def decision_prototypes(self) -> np.ndarray:
    """The prototypes its frames are decided by: the emotions it was trained
    on, and neutral (all of them for checkpoints that do not record them)."""
    return self.label_space.decision_prototypes(self.meta.trained_emotions)

  @classmethod
  def load(cls, path) -> "TrainedModel":
    """Loads a workdir's best checkpoint, or the checkpoint `path` names.

    Raises:
      checkpoints.CheckpointError: `path` holds no complete varec checkpoint.
    """
    manager, step_dir, meta, variables = _restore(path)
    try:
      label_space = meta.label_space()
    except (ValueError, TypeError, KeyError) as e:
      raise checkpoints.CheckpointError(
        f"{step_dir}: unusable emotions in its meta: {type(e).__name__}: {e}"
      ) from None
    wrong = (
      config_schema.type_problems(meta.config)
      if isinstance(meta.config, dict)
      else ["config is not a group of fields"]
    )
    if wrong:
      raise checkpoints.CheckpointError(
        f"{step_dir}: its meta's config cannot be used: " + "; ".join(wrong)
      )
    config = config_schema.upgrade(meta.config)
    workdir = workdir_lib.Workdir.of_checkpoint(step_dir)
    if workdir and config.data.face_detector != faces.DLIB_HOG:
      # A checkpoint carries its cascade file; relative names are inside its
      # folder.
      config.data.face_detector = str(workdir.root / config.data.face_detector)
    # A config edited by hand, or from a tool that did not check it.
    problems = config_checks.data_problems(config.data)
    problems += config_checks.face_detector_problems(config.data.face_detector)
    if problems:
      raise checkpoints.CheckpointError(
        f"{step_dir}: its config cannot be used: " + "; ".join(problems)
      )
    _warn_if_unfinished(manager, step_dir, meta, config)
    return cls(
      config=config,
      variables=variables,
      meta=meta,
      path=step_dir,
      label_space=label_space,
    )


def _restore(path):
  """(manager, step folder, meta, variables) of the checkpoint `path` names.

  A damaged step falls back to the one before it (train.py keeps two latest
  ones), unless the step was named explicitly.
  """
  manager, step = checkpoints.resolve(path)
  step_dir = pathlib.Path(manager.directory) / str(step)
  missing = [
    item for item in ("variables", "meta") if not (step_dir / item).is_dir()
  ]
  if missing:
    raise checkpoints.CheckpointError(
      f"{step_dir} is not a varec checkpoint: it lacks the item(s) "
      f"{', '.join(missing)} that train.py writes"
    )
  older = (
    []
    if pathlib.Path(path).name.isdigit()
    else sorted((s for s in manager.all_steps() if s < step), reverse=True)
  )
  step, meta, variables = checkpoints.restore_newest(
    manager, steps=[step] + older
  )
  step_dir = pathlib.Path(manager.directory) / str(step)
  if meta is None or meta.config is None or meta.speakers is None:
    raise checkpoints.CheckpointError(
      f"{step_dir} is not a trained varec checkpoint (its meta item lacks "
      "config and speakers; a checkpoint from varec.import_keras only "
      "initialises training)"
    )
  return manager, step_dir, meta, variables


def _warn_if_unfinished(
  manager, step_dir, meta: checkpoints.CheckpointMeta, config
) -> None:
  """Warns when the run the checkpoint comes from has stages left to train.

  Where the run stands is in its latest checkpoint: a best one is saved
  mid-stage.
  """
  progress = meta
  workdir = workdir_lib.Workdir.of_checkpoint(step_dir)
  if (
    workdir is not None
    and pathlib.Path(manager.directory).name == checkpoints.BEST
    and workdir.checkpoint_dir(checkpoints.LATEST).is_dir()
  ):
    latest = checkpoints.managers(workdir)[checkpoints.LATEST]
    progress = checkpoints.restore_meta(latest) or meta
  unfinished = [s for s in config.stages if s not in progress.completed_stages]
  if unfinished:
    logging.warning(
      "%s is a checkpoint of an unfinished run (the run is at stage %s, "
      "epoch %s, step %s; not finished: %s); rerun train.py with the same "
      "--workdir to finish it",
      step_dir,
      progress.stage,
      progress.epoch,
      progress.step,
      ", ".join(unfinished),
    )


def trained_gru(meta: checkpoints.CheckpointMeta) -> bool:
  """Whether a checkpoint's GRU was trained: its run got to the rnn or joint
  stage.

  Otherwise (a CNN-only run, one stopped in its cnn stage, an imported
  pretrained CNN) predictions come from the CNN's own per-frame head.
  """
  return meta.stage in ("rnn", "joint")


def output_description(
  meta: checkpoints.CheckpointMeta,
  window_length: int,
  policy: str = "tiled",
  flip_average: bool = False,
) -> str:
  reading = (
    ", each frame's CNN output averaged with its mirror image's"
    if flip_average
    else ""
  )
  if trained_gru(meta):
    windows = {
      "tiled": "tiled back from the end of each stretch of frames with a face",
      "causal": "each ending at its frame",
    }[policy]
    return (
      f"GRU over {window_length}-frame windows of CNN features ({policy}: "
      f"{windows}){reading}"
    )
  return (
    f"the CNN's own per-frame head: no GRU was trained (checkpoint stage "
    f"{meta.stage!r}){reading}"
  )


def covering_window_starts(num_frames: int, length: int) -> np.ndarray:
  """Starts of windows that give every frame one prediction.

  Windows are tiled back from the end of the video, as in training (so the
  labelled frames see exactly the training windows); if the first frames are
  left over, one more window starts at frame 0 and overlaps the next.
  """
  if num_frames < length:
    raise ValueError(
      f"a video of {num_frames} frames is shorter than one window ({length})"
    )
  starts = list(range(num_frames - length, -1, -length))[::-1]
  if starts[0] > 0:
    starts.insert(0, 0)
  return np.asarray(starts)


WINDOW_POLICIES = ("tiled", "causal")


def bounded(outputs: np.ndarray) -> np.ndarray:
  """`outputs` with valence and arousal clipped to [-1, 1], the plane of the
  paper's prototypes (Table 2), which the CCC-trained head (a linear layer)
  may overshoot (a real smile reached valence +1.5). Clipping leaves every
  output inside the plane as it is, so old checkpoints keep their numbers
  there, and a NaN stays NaN (reported, never given an emotion)."""
  outputs = np.array(outputs)
  outputs[..., :2] = np.clip(outputs[..., :2], -1.0, 1.0)
  return outputs


@functools.cache
def gru_fn(hidden_sizes: tuple[int, ...]):
  """`fn(rnn_variables, feature_windows) -> (N, T, 2)`, every step, compiled
  once per size."""
  gru = models.GRUStack(hidden_sizes)
  return jax.jit(gru.apply)


class Engine:
  """Per-frame (valence, arousal) of preprocessed frames; see the module
  docstring.

  Built from a config and CNN+RNN variables: a checkpoint's (`from_model`),
  or those of a run in training, whose validation goes through it too
  (`uses_gru`: whether outputs come from the GRU or the CNN's own head).
  `batch_size` is the frames per CNN call (default the config's
  eval_batch_size); the GRU takes batch_size // window_length windows a call,
  the shapes evaluation always used.
  """

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    variables: dict,
    uses_gru: bool,
    batch_size: int | None = None,
    flip_average: bool | None = None,
  ):
    self.window_length = config.data.window_length
    # Test-time augmentation: each frame's CNN output averaged with its mirror
    # image's (faces are near-symmetric; the paper's training adds mirrors).
    self.flip_average = (
      config.flip_average if flip_average is None else flip_average
    )
    self.batch_size = batch_size or config.eval_batch_size
    self.uses_gru = uses_gru
    # What the model reads of stored crops (`crop.model_input`, `mirror_input`).
    self.input_config = preprocess_config.input_config(config.data)
    cnn = model_lib.build_cnn(config)
    self._cnn_variables = model_lib.cnn_variables(variables)
    self._features = model_lib.feature_fn(cnn)
    self._frame_va = model_lib.frame_va_fn(cnn)
    self._outputs_and_features = model_lib.outputs_and_features_fn(cnn)
    # Valence, arousal and a zero-shot classifier's class probabilities.
    self._num_outputs = 2 + len(getattr(cnn, "class_prototypes", ()))
    self._rnn_variables = {"params": variables["params"]["rnn"]}
    self._gru = gru_fn(tuple(config.model.rnn_hidden_sizes))

  @classmethod
  def from_model(
    cls,
    model: TrainedModel,
    batch_size: int | None = None,
    flip_average: bool | None = None,
  ):
    """The engine of a checkpoint."""
    return cls(
      model.config,
      model.variables,
      trained_gru(model.meta),
      batch_size,
      flip_average,
    )

  def _cnn(self, fn, frames: np.ndarray, fixed_shape: bool) -> np.ndarray:
    """`fn` of the CNN over `frames` in batches (with `flip_average`, the
    mean of the frames' and their mirror images',
    `preprocess.crop.mirror_input`)."""
    out = model_lib.apply_in_batches(
      fn, self._cnn_variables, frames, self.batch_size, fixed_shape
    )
    if not self.flip_average:
      return out
    mirrored = model_lib.apply_in_batches(
      fn,
      self._cnn_variables,
      crop.mirror_input(frames, self.input_config),
      self.batch_size,
      fixed_shape,
    )
    return (out + mirrored) / 2

  def features(
    self, frames: np.ndarray, fixed_shape: bool = False
  ) -> np.ndarray:
    """(T, S, S, 1) frames -> (T, F) CNN features."""
    return self._cnn(self._features, frames, fixed_shape)

  def window_features(self, windows: np.ndarray) -> np.ndarray:
    """(N, T, S, S, 1) windows of frames -> (N, T, F) CNN features."""
    flat = windows.reshape((-1,) + windows.shape[2:])
    return self.features(flat).reshape(windows.shape[:2] + (-1,))

  def frame_outputs(
    self, frames: np.ndarray, fixed_shape: bool = False
  ) -> np.ndarray:
    """(T, S, S, 1) frames -> (T, 2[+C]) from the CNN's own head, frame by
    frame (a zero-shot classifier's class probabilities after its valence and
    arousal)."""
    return bounded(self._cnn(self._frame_va, frames, fixed_shape))

  def features_and_outputs(
    self, frames: np.ndarray, fixed_shape: bool = False
  ) -> tuple[np.ndarray, np.ndarray]:
    """(T, ...) frames -> ((T, F) CNN features, `frame_outputs`) in one pass
    of the CNN: what predict.py shows of a face-mesh model's faces (its
    features' first columns are MediaPipe's blendshapes) beside its outputs."""
    both = self._cnn(self._outputs_and_features, frames, fixed_shape)
    n = self._num_outputs
    return both[:, n:], bounded(both[:, :n])

  def window_outputs(
    self, windows: np.ndarray, fixed_shape: bool = False
  ) -> np.ndarray:
    """(N, T, F) windows of features -> (N, T, 2), every step of the GRU."""
    per_call = max(1, self.batch_size // windows.shape[1])
    return bounded(
      model_lib.apply_in_batches(
        self._gru, self._rnn_variables, windows, per_call, fixed_shape
      )
    )

  def predict_windows(self, windows: np.ndarray) -> np.ndarray:
    """(N, T, S, S, 1) frames -> (N, T, 2), each window on its own."""
    flat = windows.reshape((-1,) + windows.shape[2:])
    if not self.uses_gru:
      return self.frame_outputs(flat).reshape(windows.shape[:2] + (-1,))
    return self.window_outputs(self.window_features(windows))

  def tiled(self, stretches: list[np.ndarray]) -> list[np.ndarray]:
    """(T_i, F) features of each stretch -> (T_i, 2), all windows batched
    together.

    A stretch shorter than one window is padded at its start by repeating its
    first frame. Where the first window overlaps the next, the later one's
    output is kept.
    """
    padded = [
      np.concatenate([np.repeat(s[:1], self.window_length - len(s), axis=0), s])
      if len(s) < self.window_length
      else s
      for s in stretches
    ]
    starts = [
      covering_window_starts(len(s), self.window_length) for s in padded
    ]
    windows = np.stack(
      [
        s[i : i + self.window_length]
        for s, ss in zip(padded, starts)
        for i in ss
      ]
    )
    pred = iter(self.window_outputs(windows))
    outputs = []
    for stretch, padded_stretch, ss in zip(stretches, padded, starts):
      out = np.zeros((len(padded_stretch), 2), np.float32)
      for i in ss:
        out[i : i + self.window_length] = next(pred)
      outputs.append(out[len(padded_stretch) - len(stretch) :])
    return outputs

  def predict_videos(
    self, videos: list[np.ndarray], policy: str = "tiled"
  ) -> list[np.ndarray]:
    """(T_i, S, S, 1) frames of each video -> (T_i, 2) per video."""
    check_policy(policy)
    lengths = np.cumsum([len(v) for v in videos])[:-1]
    if not self.uses_gru:
      return np.split(self.frame_outputs(np.concatenate(videos)), lengths)
    if policy == "tiled":
      return self.tiled(
        np.split(self.features(np.concatenate(videos)), lengths)
      )
    outputs = []
    for video in videos:
      stream = Stream(self, policy)
      pushed = [
        stream.push(video[i : i + self.batch_size])
        for i in range(0, len(video), self.batch_size)
      ]
      outputs.append(
        np.concatenate([va for _, va in pushed + [stream.finish()]])
      )
    return outputs


def check_policy(policy: str) -> None:
  if policy not in WINDOW_POLICIES:
    raise ValueError(
      f"window policy must be one of {', '.join(WINDOW_POLICIES)}, "
      f"got {policy!r}"
    )


class Stream:
  """An engine fed batch by batch, frames in order; consecutive frame indices
  form a stretch.

  `causal` answers every frame as it is pushed and holds only the last
  window's features; `tiled` answers a stretch when it ends (a gap in the
  indices, or `finish`), holding its features until then. The CNN's batches are
  always padded to the full size, so a stream compiles once; the GRU's are too
  under `causal`, but under `tiled` a stretch's windows run as evaluation runs
  a video's (unpadded below one batch: the GRU's last bits depend on the batch
  size), so that both give the same numbers.
  """

  def __init__(self, engine: Engine, policy: str = "causal"):
    check_policy(policy)
    self.engine, self.policy = engine, policy
    # The open stretch's frames; causal needs only its last window's.
    keep = engine.window_length if policy == "causal" else None
    self._indices: collections.deque = collections.deque(maxlen=keep)
    self._features: collections.deque = collections.deque(maxlen=keep)
    self._next = 0  # The frame index that continues the stretch.

  def push(
    self, frames: np.ndarray, indices=None, features=None
  ) -> tuple[np.ndarray, np.ndarray]:
    """Frames (n, S, S, 1), default the ones after the last pushed ->
    (indices, (m, 2)) of the frames answered now. `features`: the frames' CNN
    features where the caller has them already (`Engine.features`), for a
    model with a GRU."""
    indices = (
      np.arange(self._next, self._next + len(frames))
      if indices is None
      else indices
    )
    if not len(frames):
      return _joined([])
    if not self.engine.uses_gru:
      self._next = indices[-1] + 1
      return np.asarray(indices), self.engine.frame_outputs(
        frames, fixed_shape=True
      )
    done, windows = [], []
    if features is None:
      features = self.engine.features(frames, fixed_shape=True)
    for index, feature in zip(indices, features):
      if self._indices and index != self._next:
        done.append(self.finish())  # A gap starts a new stretch.
      self._indices.append(index)
      self._features.append(feature)
      self._next = index + 1
      if self.policy == "causal":
        windows.append(self._causal_window())
    if windows:
      last = self.engine.window_outputs(np.stack(windows), fixed_shape=True)[
        :, -1
      ]
      done.append((np.asarray(indices), last))
    return _joined(done)

  def _causal_window(self) -> np.ndarray:
    stretch = list(self._features)
    return np.stack(
      [stretch[0]] * (self.engine.window_length - len(stretch)) + stretch
    )

  def finish(self) -> tuple[np.ndarray, np.ndarray]:
    """Ends the open stretch -> (indices, (m, 2)) of its frames not answered
    yet."""
    if self.policy == "causal" or not self._indices:
      out = _joined([])
    else:
      out = (
        np.asarray(self._indices),
        self.engine.tiled([np.stack(self._features)])[0],
      )
    self._indices.clear()
    self._features.clear()
    return out


def _joined(
  parts: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
  if not parts:
    return np.zeros(0, int), np.zeros((0, 2), np.float32)
  return np.concatenate([i for i, _ in parts]), np.concatenate(
    [v for _, v in parts]
  )


class VideoPredictor:
  """(valence, arousal) for every frame of preprocessed videos (evaluation's
  engine user)."""

  def __init__(
    self,
    model: TrainedModel,
    policy: str = "tiled",
    flip_average: bool | None = None,
  ):
    check_policy(policy)
    self.model, self.policy = model, policy
    self.engine = Engine.from_model(model, flip_average=flip_average)
    self.window_length = self.engine.window_length
    self.uses_gru = self.engine.uses_gru

  def predict_windows(self, windows: np.ndarray) -> np.ndarray:
    """(N, T, S, S, 1) uint8 windows -> (N, T, 2)."""
    return self.engine.predict_windows(windows)

  def predict_videos(self, videos: list[np.ndarray]) -> list[np.ndarray]:
    """(T_i, S, S, 1) frames of each video -> (T_i, 2) per video."""
    return self.engine.predict_videos(videos, self.policy)
