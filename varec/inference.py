"""A trained CNN+RNN from a checkpoint, applied to whole preprocessed videos."""

from __future__ import annotations

import dataclasses
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
from varec import preprocessing


@dataclasses.dataclass
class TrainedModel:
  """Everything a checkpoint carries."""
  config: ml_collections.ConfigDict
  variables: dict
  meta: dict
  path: pathlib.Path
  label_space: emotions.LabelSpace  # The emotions of the dataset it was trained on.

  @classmethod
  def load(cls, path) -> "TrainedModel":
    """Loads a workdir's best checkpoint, or the checkpoint `path` names.

    Raises:
      checkpoints.CheckpointError: `path` holds no complete varec checkpoint.
    """
    manager, step = checkpoints.resolve(path)
    step_dir = pathlib.Path(manager.directory) / str(step)
    missing = [item for item in ("variables", "meta") if not (step_dir / item).is_dir()]
    if missing:
      raise checkpoints.CheckpointError(
          f"{step_dir} is not a varec checkpoint: it lacks the item(s) {', '.join(missing)} "
          "that train.py writes")
    # A damaged step falls back to the one before it (train.py keeps two latest ones),
    # unless the step was named explicitly.
    older = [] if pathlib.Path(path).name.isdigit() else sorted(
        (s for s in manager.all_steps() if s < step), reverse=True)
    step, meta, variables = checkpoints.restore_newest(manager, steps=[step] + older)
    step_dir = pathlib.Path(manager.directory) / str(step)
    if not meta or "config" not in meta or "speakers" not in meta:
      raise checkpoints.CheckpointError(
          f"{step_dir} is not a trained varec checkpoint (its meta item lacks config and "
          "speakers; a checkpoint from varec.import_keras only initialises training)")
    try:
      label_space = emotions.LabelSpace.from_meta(meta)
    except ValueError as e:
      raise checkpoints.CheckpointError(f"{step_dir}: unusable emotions in its meta: {e}") from e
    config = config_schema.upgrade(meta["config"])
    problems = config_checks.data_problems(config.data)
    if problems:  # A config edited by hand, or from a tool that did not check it.
      raise checkpoints.CheckpointError(f"{step_dir}: its config cannot be used: "
                                        + "; ".join(problems))
    # Where the run itself stands is in its latest checkpoint (a best one is saved mid-stage).
    progress = meta
    latest_dir = pathlib.Path(manager.directory).parent / checkpoints.LATEST
    if pathlib.Path(manager.directory).name == checkpoints.BEST and latest_dir.is_dir():
      progress = checkpoints.restore_meta(
          checkpoints.managers(latest_dir.parent.parent)[checkpoints.LATEST]) or meta
    unfinished = [s for s in config.get("stages", ())
                  if s not in progress.get("completed_stages", [])]
    if unfinished:
      logging.warning("%s is a checkpoint of an unfinished run (the run is at stage %s, epoch %s, "
                      "step %s; not finished: %s); rerun train.py with the same --workdir to "
                      "finish it", step_dir, progress.get("stage"), progress.get("epoch"),
                      progress.get("step"), ", ".join(unfinished))
    return cls(config=config, variables=variables, meta=meta, path=step_dir,
               label_space=label_space)


def trained_gru(meta: dict) -> bool:
  """Whether a checkpoint's GRU was trained: its run got to the rnn or joint stage.

  Otherwise (a CNN-only run, one stopped in its cnn stage, an imported
  pretrained CNN) predictions come from the CNN's own per-frame head.
  """
  return meta.get("stage") in ("rnn", "joint")


def output_description(meta: dict, window_length: int) -> str:
  if trained_gru(meta):
    return f"GRU over {window_length}-frame windows of CNN features"
  return (f"the CNN's own per-frame head: no GRU was trained (checkpoint stage "
          f"{meta.get('stage')!r})")


def covering_window_starts(num_frames: int, length: int) -> np.ndarray:
  """Starts of windows that give every frame one prediction.

  Windows are tiled back from the end of the video, as in training (so the
  labelled frames see exactly the training windows); if the first frames are
  left over, one more window starts at frame 0 and overlaps the next.
  """
  if num_frames < length:
    raise ValueError(f"a video of {num_frames} frames is shorter than one window ({length})")
  starts = list(range(num_frames - length, -1, -length))[::-1]
  if starts[0] > 0:
    starts.insert(0, 0)
  return np.asarray(starts)


class VideoPredictor:
  """(valence, arousal) for every frame of preprocessed videos."""

  def __init__(self, model: TrainedModel):
    self.model = model
    self.window_length = preprocessing.config_from_data(model.config.data).window_length
    self.uses_gru = trained_gru(model.meta)
    if self.uses_gru:
      net = model_lib.build_model(model.config)
      self._variables = model.variables
      self._apply = jax.jit(lambda v, x: net.apply(v, x, train=False))
    else:
      self._variables = model_lib.cnn_variables(model.variables)
      self._apply = model_lib.frame_va_fn(model_lib.build_cnn(model.config))

  def predict_windows(self, windows: np.ndarray) -> np.ndarray:
    """(N, T, S, S, 1) uint8 windows -> (N, T, 2)."""
    batch = max(1, self.model.config.eval_batch_size // windows.shape[1])
    return model_lib.apply_in_batches(self._apply, self._variables, windows, batch)

  def predict_videos(self, videos: list[np.ndarray]) -> list[np.ndarray]:
    """(T_i, S, S, 1) frames of each video -> (T_i, 2) per video, all windows batched together.

    Where the first window overlaps the next, the later window's output is kept.
    """
    starts = [covering_window_starts(len(v), self.window_length) for v in videos]
    windows = np.stack([v[s:s + self.window_length] for v, ss in zip(videos, starts) for s in ss])
    pred = iter(self.predict_windows(windows))
    outputs = []
    for video, ss in zip(videos, starts):
      out = np.zeros((len(video), 2), np.float32)
      for s in ss:
        out[s:s + self.window_length] = next(pred)
      outputs.append(out)
    return outputs
