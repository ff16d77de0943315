"""Training: the paper's transfer learning as stages (§4.5).

- `cnn`: the CNN of Fig. 3 on single labelled frames, CCC loss through its
  2-unit head;
- `rnn`: the GRU on the frozen CNN's 300-d features, computed once per frame
  and cached, so this stage takes seconds;
- `joint` (optional): CNN+GRU fine-tuned end to end on windows.

`train_step` and `eval_step` are pure and jit-compiled; data loading,
logging and checkpoints stay in `train_and_evaluate`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging as pylogging
import pathlib
import shutil
import time
from typing import Any, Callable

from absl import logging
from flax import struct
from flax.training import train_state
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from varec import augmentation
from varec import checkpoints
from varec import emotions
from varec import losses
from varec import metrics
from varec import models
from varec import preprocessing
from varec.data import input_pipeline

STAGES = ("cnn", "rnn", "joint")
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "sgd": 0.01}


class TrainState(train_state.TrainState):
  """Params, optimiser state and BatchNorm statistics of the module being trained."""
  batch_stats: Any = None
  rng: jax.Array = None  # Dropout key; folded with the step for each batch.
  loss_fn: Callable = struct.field(pytree_node=False, default=losses.ccc_loss)  # (pred, labels).


CNNS = ("fig3", "mini_xception")
COMPUTE_DTYPES = ("float32", "bfloat16")


def build_model(config: ml_collections.ConfigDict) -> models.CNNRNN:
  return models.CNNRNN(cnn=build_cnn(config), hidden_sizes=tuple(config.model.rnn_hidden_sizes))


def build_cnn(config: ml_collections.ConfigDict) -> models.FrameCNN | models.MiniXception:
  """The CNN of the CNN+RNN on its own, for single frames.

  Checkpoints from before `model.cnn` existed read as the Fig. 3 CNN, unfrozen.
  """
  m = config.model
  kind, frozen = m.get("cnn", "fig3"), m.get("frozen_blocks", 0)
  if kind == "mini_xception":
    return models.MiniXception(
        num_features=m.num_features, dropout_rate=m.dropout_rate, frozen_blocks=frozen,
        class_prototypes=tuple(tuple(p) for p in m.get("class_prototypes", ())))
  if kind != "fig3":
    raise ValueError(f"model.cnn must be one of {', '.join(CNNS)}, got {kind!r}")
  return models.FrameCNN(filters=tuple(m.filters), kernel_size=m.kernel_size,
                         num_features=m.num_features, dropout_rate=m.dropout_rate,
                         frozen_blocks=frozen,
                         dtype=jnp.dtype(config.get("compute_dtype", "float32")))


def min_image_size(config: ml_collections.ConfigDict) -> int:
  """The smallest input side the CNN can take (a feature map of at least one pixel)."""
  if config.model.get("cnn", "fig3") == "mini_xception":
    return 5  # Two 3x3 VALID convolutions; the strided layers pad.
  k = config.model.kernel_size - 1
  # SAME conv, pool /2, VALID conv (-k), pool /2, VALID conv (-k) >= 1.
  return 2 * (2 * (1 + k) + k)


def frozen_labels(params: dict, cnn, path: tuple[str, ...]) -> dict:
  """"frozen" for the parameters of `cnn`'s first `cnn.frozen_blocks` blocks, else "train".

  `path` says where the CNN's parameters sit in `params` (() when `params` are its own).
  """
  def label(keys):
    inside = keys[:len(path)] == path and len(keys) > len(path)
    block = models.block_index(cnn, keys[len(path)]) if inside else None
    return "frozen" if block is not None and block < cnn.frozen_blocks else "train"

  flat = flax.traverse_util.flatten_dict(params)
  return flax.traverse_util.unflatten_dict({k: label(k) for k in flat})


def init_variables(config: ml_collections.ConfigDict, rng: jax.Array, window_length: int) -> dict:
  """CNN+RNN variables: {"params": {"cnn", "rnn"}, "batch_stats": {"cnn"}}."""
  size = config.data.image_size
  dummy = jnp.zeros((1, window_length, size, size, 1), jnp.uint8)
  variables = build_model(config).init({"params": rng}, dummy, train=False)
  return jax.tree_util.tree_map(np.asarray, dict(variables))


# -- The module each stage trains, as one forward function -----------------------


@dataclasses.dataclass(frozen=True)
class Stage:
  """What a stage trains: `forward(params, batch_stats, inputs, train, rng) -> (va, batch_stats)`."""
  name: str
  forward: Callable
  # Where the stage's params and batch stats sit inside the CNN+RNN variables.
  path: tuple[str, ...]
  # Where the CNN's params sit inside the stage's own (None: the stage has no CNN).
  cnn_path: tuple[str, ...] | None = None


def make_stage(name: str, config: ml_collections.ConfigDict) -> Stage:
  module, path, cnn_path = {"cnn": (build_cnn(config), ("cnn",), ()),
                            "rnn": (models.GRUStack(tuple(config.model.rnn_hidden_sizes)),
                                    ("rnn",), None),
                            "joint": (build_model(config), (), ("cnn",))}[name]

  def forward(params, batch_stats, inputs, train, rng):
    variables = {"params": params}
    kwargs = {} if name == "rnn" else {"train": train}
    if batch_stats:
      variables["batch_stats"] = batch_stats
    if train and batch_stats:
      out, updates = module.apply(variables, inputs, rngs={"dropout": rng},
                                  mutable=["batch_stats"], **kwargs)
      batch_stats = updates["batch_stats"]
    else:
      out = module.apply(variables, inputs, rngs={"dropout": rng}, **kwargs)
    return (out[1] if name == "cnn" else out), batch_stats

  return Stage(name, forward, path, cnn_path)


def with_frozen_blocks(tx, stage: Stage, config: ml_collections.ConfigDict, params: dict):
  """`tx` that leaves the first `config.model.frozen_blocks` CNN blocks unchanged."""
  cnn = build_cnn(config)
  if stage.cnn_path is None or not cnn.frozen_blocks:
    return tx
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               frozen_labels(params, cnn, stage.cnn_path))


def _subtree(tree: dict, path: tuple[str, ...]):
  for key in path:
    tree = tree.get(key, {}) if tree else {}
  return tree


def _with_subtree(tree: dict, path: tuple[str, ...], value) -> dict:
  if not path:
    return value
  return {**tree, path[0]: _with_subtree(tree.get(path[0], {}), path[1:], value)}


def make_optimizer(config: ml_collections.ConfigDict, stage_config, steps: int,
                   warmup_steps: int = 0):
  """Adam or SGD on the stage's learning-rate schedule, after a linear warmup from 0."""
  if config.optimizer not in DEFAULT_LEARNING_RATES:
    raise ValueError(f"unknown optimizer {config.optimizer!r}; use adam or sgd")
  if config.lr_schedule not in ("constant", "cosine"):
    raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; use constant or cosine")
  lr = stage_config.learning_rate or DEFAULT_LEARNING_RATES[config.optimizer]
  warmup_steps = min(warmup_steps, steps)
  decay_steps = max(1, steps - warmup_steps)
  after_warmup = (optax.constant_schedule(lr) if config.lr_schedule == "constant"
                  else optax.cosine_decay_schedule(lr, decay_steps))
  schedule = after_warmup if not warmup_steps else optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup_steps), after_warmup], [warmup_steps])
  if config.optimizer == "adam":
    return optax.adam(schedule)
  decay = config.get("sgd_decay", 0.0)
  # Keras 2's `decay`: the rate at step t is divided by 1 + decay * t.
  decayed = lambda step: schedule(step) / (1 + decay * step)
  return optax.sgd(decayed if decay else schedule, momentum=config.momentum)


def make_loss(config: ml_collections.ConfigDict, prototypes: np.ndarray) -> Callable:
  """The training objective: eq. 9, plus `config.loss.prototype_weight` x the prototype
  cross-entropy when that weight is set (beyond the paper; 0 by default).

  The logged "loss" stays eq. 9, comparable across runs with and without the term.
  """
  weight = config.loss.prototype_weight
  if not weight:
    return losses.ccc_loss
  prototypes = np.asarray(prototypes, np.float32)
  temperature = config.loss.prototype_temperature

  def loss(pred, labels):
    return losses.ccc_loss(pred, labels) + weight * losses.prototype_cross_entropy(
        pred, labels, prototypes, temperature)

  return loss


def create_train_state(stage: Stage, variables: dict, tx, rng,
                       loss_fn: Callable = losses.ccc_loss) -> TrainState:
  return TrainState.create(
      apply_fn=stage.forward, params=_subtree(variables["params"], stage.path), tx=tx,
      batch_stats=_subtree(variables.get("batch_stats", {}), stage.path) or {}, rng=rng,
      loss_fn=loss_fn)


# -- Pure steps ---------------------------------------------------------------------


def va_metrics(pred, labels, mask=None) -> dict[str, jax.Array]:
  """Loss (eq. 9), CCC and RMSE of valence and arousal over all frames."""
  axes = tuple(range(pred.ndim - 1))
  w = None if mask is None else mask[..., None]
  ccc = losses.ccc(pred, labels, w, axis=axes)
  rmse = losses.rmse(pred, labels, mask)
  return {"loss": losses.ccc_loss(pred, labels, mask), "ccc_valence": ccc[0],
          "ccc_arousal": ccc[1], "rmse_valence": rmse[0], "rmse_arousal": rmse[1]}


def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
  """One optimiser step on a batch {"inputs", "labels"}; returns metrics of the batch."""
  rng = jax.random.fold_in(state.rng, state.step)

  def loss_fn(params):
    pred, batch_stats = state.apply_fn(params, state.batch_stats, batch["inputs"], True, rng)
    return state.loss_fn(pred, batch["labels"]), (pred, batch_stats)

  (_, (pred, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, va_metrics(pred, batch["labels"])


def eval_step(state: TrainState, inputs: jax.Array) -> jax.Array:
  """Predictions (valence, arousal) in inference mode."""
  pred, _ = state.apply_fn(state.params, state.batch_stats, inputs, False, state.rng)
  return pred


def _backend_compiler_options():
  return {"xla_cpu_experimental_ynn_fusion_type": ""} if jax.default_backend() == "cpu" else None


@functools.cache
def jitted_train_step():
  """`train_step` compiled for the current backend.

  On CPU, jaxlib 0.10 hands convolutions to YNNPACK, whose kernels (the
  gradients especially) run ~3x slower than XLA's own for this CNN: turned
  off for training (see benchmarks/results/training.md).
  """
  return jax.jit(train_step, donate_argnums=0, compiler_options=_backend_compiler_options())


@functools.cache
def jitted_gather(mesh: jax.sharding.Mesh, augment: ml_collections.FrozenConfigDict | None):
  """`fn(inputs, labels, index, key) -> batch`: the batch `index` picks from the training
  set, compiled.

  `inputs` and `labels` are the whole training set, already on the devices:
  the batch is gathered there, its frames augmented there with
  `augmentation.augment` (unless `augment` is None), and it comes out split
  over `mesh`, so the host sends each step only its indices and a key. A
  call of its own, not part of the train step: inside it, XLA:CPU would fuse
  the augmentation into each of its consumers and compute it several times.
  """
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))

  def gather(inputs, labels, index, key):
    batch = {"inputs": inputs[index], "labels": labels[index]}
    if augment is not None:
      batch["inputs"] = augmentation.augment(batch["inputs"], key, augment)
    return batch

  return jax.jit(gather, out_shardings=batch_sharding)


_eval_step = jax.jit(eval_step)


def predict(step_fn, state, inputs: np.ndarray, batch_size: int) -> np.ndarray:
  """Runs `step_fn(state, batch)` over `inputs` in fixed-size batches (the last one padded)."""
  outputs = []
  for start in range(0, len(inputs), batch_size):
    chunk = inputs[start:start + batch_size]
    pad = batch_size - len(chunk)
    if pad and len(inputs) > batch_size:  # One shape for every call: compile once.
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
    outputs.append(np.asarray(step_fn(state, chunk))[:batch_size - pad])
  return np.concatenate(outputs)


# -- Data parallelism --------------------------------------------------------------


def data_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh, axis "data", over every device of every process (or `devices`)."""
  return jax.sharding.Mesh(np.asarray(devices if devices is not None else jax.devices()),
                           ("data",))


def replicate(tree, mesh: jax.sharding.Mesh):
  """`tree` (parameters, optimiser state, the training set) copied to every device of the mesh."""
  return jax.device_put(tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def to_host(tree):
  """numpy copies of a (replicated) tree, also of arrays spread over several processes."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_data(0))
    return np.asarray(x)

  return jax.tree_util.tree_map(get, tree)


# -- Data per stage --------------------------------------------------------------


def cnn_variables(variables: dict) -> dict:
  """The CNN's own variables inside the CNN+RNN's."""
  return {"params": variables["params"]["cnn"], "batch_stats": variables["batch_stats"]["cnn"]}


@functools.cache
def feature_fn(cnn: models.FrameCNN):
  """`fn(cnn_variables, frames) -> features` in inference mode, compiled once per architecture."""
  return jax.jit(lambda variables, x: cnn.apply(variables, x, train=False)[0])


@functools.cache
def frame_va_fn(cnn: models.FrameCNN):
  """`fn(cnn_variables, frames) -> valence-arousal` of the CNN's own head, in inference mode."""
  return jax.jit(lambda variables, x: cnn.apply(variables, x, train=False)[1])


def extract_features(config, variables: dict, frames: np.ndarray) -> np.ndarray:
  """300-d CNN features of windows (N, T, S, S, 1) -> (N, T, F), in inference mode."""
  fn = feature_fn(build_cnn(config))
  cnn_vars = cnn_variables(variables)
  n, t = frames.shape[:2]
  flat = frames.reshape((n * t,) + frames.shape[2:])
  # Chunks of eval_batch_size frames: memory bounded by the model, not the dataset.
  features = predict(fn, cnn_vars, flat, config.eval_batch_size)
  return features.reshape(n, t, -1)


def stage_data(name: str, config, variables: dict, windows: dict) -> dict:
  """{"inputs", "labels", "video_id", "emotion"} for one split, shaped for the stage.

  cnn: single frames; rnn: cached CNN features per window; joint: windows.
  """
  frames, labels = windows["frames"], windows["labels"]
  t = frames.shape[1]
  if name == "cnn":
    return {"inputs": frames.reshape((-1,) + frames.shape[2:]), "labels": labels.reshape(-1, 2),
            "video_id": np.repeat(windows["video_id"], t), "emotion": np.repeat(windows["emotion"], t)}
  inputs = extract_features(config, variables, frames) if name == "rnn" else frames
  return {"inputs": inputs, "labels": labels, "video_id": windows["video_id"],
          "emotion": windows["emotion"]}


def video_decisions(pred: np.ndarray, video_ids: np.ndarray, true_emotions: np.ndarray,
                    prototypes: np.ndarray):
  """(true, predicted) emotion per video: nearest prototype per frame, majority vote."""
  frame_emotions = metrics.nearest_emotion(pred.reshape(len(video_ids), -1, 2), prototypes)
  return vote_per_video(frame_emotions, video_ids, true_emotions)


def vote_per_video(frame_emotions: np.ndarray, video_ids: np.ndarray, true_emotions: np.ndarray):
  """(true, voted) emotion per video from per-frame emotions of its examples, in order."""
  true, voted = [], []
  for video in np.unique(video_ids):
    rows = video_ids == video
    voted.append(metrics.video_vote(frame_emotions[rows].ravel()))
    true.append(int(true_emotions[rows][0]))
  return np.array(true), np.array(voted)


def evaluate(state: TrainState, data: dict, batch_size: int,
             prototypes: np.ndarray) -> dict[str, float]:
  """Frame-level loss/CCC/RMSE and video-level accuracy (nearest of `prototypes`) on one split."""
  inputs = data["inputs"]
  # `batch_size` counts frames: a batch of windows of frames holds batch_size frames.
  per_batch = max(1, batch_size // inputs.shape[1]) if inputs.ndim == 5 else batch_size
  pred = predict(_eval_step, state, inputs, per_batch)
  result = {k: float(v) for k, v in va_metrics(jnp.asarray(pred), jnp.asarray(data["labels"])).items()}
  true, voted = video_decisions(pred, data["video_id"], data["emotion"], prototypes)
  result["video_accuracy"] = metrics.accuracy(true, voted)
  result["ccc"] = (result["ccc_valence"] + result["ccc_arousal"]) / 2
  return result


# -- Logging ---------------------------------------------------------------------


class _LibraryInfoFilter(pylogging.Filter):
  """Drops INFO lines of Orbax and TFDS (thousands per run); their warnings stay."""

  def filter(self, record):
    return record.levelno >= pylogging.WARNING or not any(
        f"/{lib}/" in record.pathname for lib in ("orbax", "tensorflow_datasets"))


def quiet_library_logs() -> None:
  """Keeps the console readable: varec's own INFO lines, libraries' warnings only."""
  logging.get_absl_handler().addFilter(_LibraryInfoFilter())


class MetricLogger:
  """Per-epoch metrics to TensorBoard, a JSON-lines file and the console."""

  def __init__(self, workdir: pathlib.Path, resume_step: int):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self.path = workdir / "metrics.jsonl"
    if self.path.exists():  # Drop epochs logged after the checkpoint we resume from.
      lines = [l for l in self.path.read_text().splitlines() if l and json.loads(l)["step"] <= resume_step]
      self.path.write_text("".join(l + "\n" for l in lines))
    self.writer = SummaryWriter(str(workdir / "tensorboard"))

  def write(self, stage: str, epoch: int, step: int, split: str, values: dict) -> None:
    for key, value in values.items():
      self.writer.add_scalar(f"{stage}/{split}/{key}", value, step)
    with open(self.path, "a") as f:
      f.write(json.dumps({"stage": stage, "epoch": epoch, "step": step, "split": split,
                          **{k: round(float(v), 6) for k, v in values.items()}}) + "\n")

  def close(self):
    self.writer.close()


# -- The training loop -------------------------------------------------------------


def write_timings(workdir: pathlib.Path, stage: str, clock: dict) -> None:
  """Adds a stage's wall times (this process's share of it) to <workdir>/timings.json.

  `steady_epoch_s` is the median training epoch after the first, which
  carries the compilation (`compile_s`: the first step's excess over a steady
  step); validation and checkpoints are counted apart.
  """
  epochs = clock["epoch_train_s"]
  steady = float(np.median(epochs[1:] if len(epochs) > 1 else epochs)) if epochs else None
  path = workdir / "timings.json"
  timings = json.loads(path.read_text()) if path.exists() else {}
  timings[stage] = {**clock, "epochs": len(epochs), "steady_epoch_s": steady,
                    # Tracing and compilation: the first step's excess over a steady one.
                    "compile_s": clock["first_step_s"] - steady / clock["steps_per_epoch"]
                                 if steady else None,
                    "steps_per_s": clock["steps_per_epoch"] / steady if steady else None,
                    "devices": [str(d) for d in jax.devices()]}
  if jax.process_index() == 0:
    path.write_text(json.dumps(timings, indent=1))


def _meta(config, speakers, label_space: emotions.LabelSpace, stage: str, epoch: int, step: int,
          done_stages) -> dict:
  return {"stage": stage, "epoch": epoch, "step": step, "completed_stages": list(done_stages),
          "config": json.loads(config.to_json()), "speakers": {k: list(v) for k, v in speakers.items()},
          **label_space.to_meta()}


class ConfigError(ValueError):
  """A config that cannot train a sensible model; the message names the field(s)."""


def data_problems(data: ml_collections.ConfigDict) -> list[str]:
  """What is wrong with the data fields of a config (for builds, training and eval)."""
  problems = []
  ratios = tuple(data.split_ratios)
  if len(ratios) != 3 or min(ratios) <= 0:
    problems.append(f"data.split_ratios must be 3 positive numbers (train, validation, test), "
                    f"got {ratios}")
  for field in ("num_labelled_frames", "window_length", "image_size", "crop_size", "detect_every"):
    if data.get(field, 1) < 1:
      problems.append(f"data.{field} must be at least 1, got {data[field]}")
  if data.image_size > data.get("crop_size", data.image_size):
    problems.append(f"data.image_size ({data.image_size}) cannot exceed data.crop_size "
                    f"({data.crop_size}), the side of the stored crops")
  if not data.get("fps", 25.0) > 0:
    problems.append(f"data.fps must be positive, got {data.fps}")
  if data.get("face_margin", 0.0) < 0:
    problems.append(f"data.face_margin must be 0 or more, got {data.face_margin}")
  if data.get("detect_max_side", 320) < 80:
    problems.append(f"data.detect_max_side must be at least 80 (dlib's detector window), got "
                    f"{data.detect_max_side}")
  return problems


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the field of a config that cannot train a sensible model."""
  problems = []
  stages = list(config.stages)
  if not stages or set(stages) - set(STAGES) or stages != sorted(stages, key=STAGES.index) or (
      len(set(stages)) != len(stages)):
    problems.append(f"stages must be one or more of {', '.join(STAGES)}, each once, in this "
                    f"order; got {tuple(stages)}")
  for name in config.stages:
    if name in STAGES:
      stage = config[name]
      if stage.num_epochs < 1 or stage.batch_size < 1:
        problems.append(f"{name}.num_epochs and {name}.batch_size must be at least 1, got "
                        f"{stage.num_epochs} and {stage.batch_size}")
      if stage.learning_rate is not None and not stage.learning_rate > 0:
        problems.append(f"{name}.learning_rate must be positive (or None for the optimiser's "
                        f"default), got {stage.learning_rate}")
  if "cnn" not in config.stages and not config.init_from:
    problems.append("without the cnn stage or init_from the CNN would stay at its random "
                    "initialisation: add 'cnn' to stages or set init_from")
  hidden = tuple(config.model.rnn_hidden_sizes)
  if not hidden or min(hidden) < 1:
    problems.append(f"model.rnn_hidden_sizes must be one or more positive sizes, got {hidden}")
  problems += data_problems(config.data)
  if config.eval_batch_size < 1:
    problems.append(f"eval_batch_size must be at least 1, got {config.eval_batch_size}")
  kind = config.model.get("cnn", "fig3")
  compute_dtype = config.get("compute_dtype", "float32")
  if compute_dtype not in COMPUTE_DTYPES:
    problems.append(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got "
                    f"{compute_dtype!r}")
  elif compute_dtype != "float32" and kind != "fig3":
    problems.append(f"compute_dtype {compute_dtype} is implemented for the fig3 CNN only; "
                    f"use compute_dtype=float32 with model.cnn={kind}")
  if kind not in CNNS:
    problems.append(f"model.cnn must be one of {', '.join(CNNS)}, got {kind!r}")
  else:
    if config.data.image_size < min_image_size(config):
      problems.append(f"data.image_size must be at least {min_image_size(config)} for the "
                      f"{kind} CNN, got {config.data.image_size}")
    num_blocks = len(build_cnn(config).BLOCKS)
    frozen = config.model.get("frozen_blocks", 0)
    if not 0 <= frozen <= num_blocks:
      problems.append(f"model.frozen_blocks must be between 0 and {num_blocks} for the {kind} "
                      f"CNN, got {frozen}")
    elif frozen and not config.init_from:
      problems.append("model.frozen_blocks keeps CNN blocks as loaded: set init_from to a "
                      "pretrained CNN, or frozen_blocks=0")
  if config.model.get("class_prototypes", ()) and set(config.stages) & {"cnn", "joint"}:
    problems.append("model.class_prototypes makes the CNN a zero-shot classifier, which is not "
                    "trained: set model.class_prototypes=() to fine-tune")
  if problems:
    raise ConfigError("config: " + "; ".join(problems))


# Fields that do not change what a run trains, so a run may resume with other values.
RESUMABLE_FIELDS = ("num_runs", "eval_batch_size", "data.data_dir", "restart")


def config_differences(before: dict, config: ml_collections.ConfigDict) -> dict[str, tuple]:
  """{field: (value in `before`, value in `config`)} of the fields that change a run.

  Fields that only one of them has (a checkpoint from before a field existed)
  are not compared.
  """
  old = flax.traverse_util.flatten_dict(before, sep=".")
  new = flax.traverse_util.flatten_dict(json.loads(config.to_json()), sep=".")
  return {k: (old[k], new[k]) for k in sorted(old.keys() & new.keys())
          if old[k] != new[k] and k not in RESUMABLE_FIELDS}


def load_cnn(path, variables: dict, config: ml_collections.ConfigDict) -> dict:
  """`variables` with the CNN's params and BatchNorm statistics from checkpoint `path`.

  Raises:
    ValueError: the checkpoint's CNN is not the one `config.model` builds.
  """
  manager, step = checkpoints.resolve(path)
  source, _ = checkpoints.restore(manager, step)
  meta = checkpoints.restore_meta(manager, step) or {}
  source_model = meta.get("config", {}).get("model", {})
  source_kind, kind = source_model.get("cnn", "fig3"), config.model.get("cnn", "fig3")
  shape = lambda tree: jax.tree_util.tree_map(np.shape, tree)
  if source_kind != kind or shape(source["params"]["cnn"]) != shape(variables["params"]["cnn"]):
    raise ValueError(f"init_from: {manager.directory} holds a {source_kind} CNN of other shapes "
                     f"than config.model builds ({kind}); use the model settings it was made with "
                     f"({ {k: v for k, v in source_model.items() if k != 'class_prototypes'} })")
  source_size = meta.get("config", {}).get("data", {}).get("image_size")
  if source_size and source_size != config.data.image_size:
    logging.warning("init_from: its CNN was trained on %dx%d faces, this run feeds it %dx%d",
                    source_size, source_size, config.data.image_size, config.data.image_size)
  logging.info("CNN initialised from %s (step %d)", manager.directory, step)
  return {"params": {**variables["params"], "cnn": source["params"]["cnn"]},
          "batch_stats": {**variables["batch_stats"], "cnn": source["batch_stats"]["cnn"]}}


def with_build_preprocessing(config: ml_collections.ConfigDict, builder) -> ml_collections.ConfigDict:
  """`config` with the data fields of the preprocessing `builder`'s data went through.

  They are what the checkpoints carry to eval.py and predict.py, so they must
  describe the data trained on even when a caller hands over its own builder.
  """
  fields = preprocessing.data_fields(builder.builder_config.preprocess)
  differ = {k: v for k, v in fields.items() if config.data.get(k) != v}
  if not differ:
    return config
  logging.info("Recording the build's preprocessing in the config: %s", differ)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.update(differ)
  return config


def train_and_evaluate(config: ml_collections.ConfigDict, workdir, builder=None) -> dict:
  """Trains every stage of `config`, resuming from `workdir` if it holds a checkpoint.

  `builder` overrides the TFDS builder named by `config.data` (tests use tiny ones).
  Returns the final validation metrics.
  """
  check_config(config)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  builder = builder or input_pipeline.ensure_built(config.data)
  config = with_build_preprocessing(config, builder)
  windows, speakers = input_pipeline.load_windows(config, builder)
  label_space = input_pipeline.label_space(builder)
  prototypes = label_space.prototype_array()
  logging.info("Speakers: %s", {k: len(v) for k, v in speakers.items()})
  window_length = windows["train"]["frames"].shape[1]
  managers = checkpoints.managers(workdir)
  stages = list(config.stages)
  mesh = data_mesh()
  if mesh.size > 1:
    logging.info("Data parallel over %d devices (%d processes)", mesh.size, jax.process_count())

  rng = jax.random.PRNGKey(config.seed)
  init_rng, dropout_rng = jax.random.split(rng)
  augment_rng = jax.random.fold_in(rng, 1)
  variables = init_variables(config, init_rng, window_length)
  if config.init_from:
    variables = load_cnn(config.init_from, variables, config)

  if config.get("restart") and (workdir / "checkpoints").exists():
    logging.warning("restart: discarding the run in %s", workdir)
    for name in ("checkpoints", "tensorboard", "metrics.jsonl", "timings.json"):
      path = workdir / name
      shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    managers = checkpoints.managers(workdir)
  newest = checkpoints.restore_newest(managers[checkpoints.LATEST], variables)
  resumed = None if newest is None else newest[1]
  step, start_epoch, done_stages = 0, 0, []
  if resumed is not None:
    differ = config_differences(resumed["config"], config)
    if differ:
      finished = set(config.stages) <= set(resumed["completed_stages"])
      raise ValueError(
          f"{workdir} holds {'a finished' if finished else 'an unfinished'} run of another "
          "config (" + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in
                                 list(differ.items())[:8]) +
          f"{', ...' if len(differ) > 8 else ''}): train into a new --workdir, or pass "
          "--config.restart=True to discard that run and start over")
    if resumed["speakers"] != {k: list(v) for k, v in speakers.items()}:
      raise ValueError(f"{workdir} holds a run with another speaker split (another seed or "
                       "dataset); use a new --workdir")
    if emotions.LabelSpace.from_meta(resumed) != label_space:
      raise ValueError(f"{workdir} holds a run with other emotions (another prototypes CSV); "
                       "use a new --workdir")
    before = preprocessing.config_from_data(ml_collections.ConfigDict(resumed["config"]["data"]))
    if before != preprocessing.config_from_data(config.data):
      raise ValueError(f"{workdir} holds a run with other preprocessing ({before}); use a new "
                       "--workdir")
    step, start_epoch, done_stages = resumed["step"], resumed["epoch"], resumed["completed_stages"]
    variables = newest[2]
    logging.info("Resuming from step %d (stage %s, epoch %d)", step, resumed["stage"], start_epoch)
  logger = MetricLogger(workdir, step)
  final = {}
  for stage_index, name in enumerate(stages):
    stage_config = config[name]
    if name in done_stages:
      continue
    stage_start = time.perf_counter()
    stage = make_stage(name, config)
    data = {split: stage_data(name, config, variables, windows[split]) for split in windows}
    num_train = len(data["train"]["inputs"])
    if stage_config.batch_size % mesh.size:
      raise ConfigError(f"config: {name}.batch_size ({stage_config.batch_size}) must be a "
                        f"multiple of the {mesh.size} devices training shares each batch over")
    # A split smaller than one batch: the largest whole number of batches per device.
    batch_size = min(stage_config.batch_size, num_train - num_train % mesh.size)
    if batch_size < 1:
      raise ValueError(f"the {name} stage has {num_train} training examples, fewer than the "
                       f"{mesh.size} devices")
    steps_per_epoch = num_train // batch_size
    tx = make_optimizer(config, stage_config, steps_per_epoch * stage_config.num_epochs,
                        round(steps_per_epoch * config.warmup_epochs))
    tx = with_frozen_blocks(tx, stage, config, _subtree(variables["params"], stage.path))
    state = create_train_state(stage, variables, tx, jax.random.fold_in(dropout_rng, stage_index),
                               make_loss(config, prototypes))
    if resumed is not None and resumed["stage"] == name and start_epoch > 0:
      _, opt_state = checkpoints.restore(managers[checkpoints.LATEST], step, variables, state.opt_state)
      state = state.replace(opt_state=opt_state, step=start_epoch * steps_per_epoch)
    else:
      start_epoch = 0
    state = replicate(state, mesh)
    clock = {"steps_per_epoch": steps_per_epoch, "batch_size": batch_size,
             "prepare_s": time.perf_counter() - stage_start, "epoch_train_s": [],
             "validation_s": 0.0, "checkpoint_s": 0.0}
    is_last = stage_index == len(stages) - 1
    progress = tqdm.tqdm(total=steps_per_epoch * stage_config.num_epochs,
                         initial=start_epoch * steps_per_epoch, desc=f"stage {name}", unit="step",
                         dynamic_ncols=True)
    gather = jitted_gather(mesh, ml_collections.FrozenConfigDict(config.augment) if (
        config.augment.enabled and name != "rnn") else None)  # The rnn stage sees features.
    # The training set stays on the devices for the whole stage.
    train_inputs, train_labels = replicate((data["train"]["inputs"], data["train"]["labels"]), mesh)
    for epoch in range(start_epoch, stage_config.num_epochs):
      epoch_start = time.perf_counter()
      order = np.random.default_rng([config.seed, stage_index, epoch]).permutation(num_train)
      batches = replicate(np.sort(order[:steps_per_epoch * batch_size].reshape(
          steps_per_epoch, batch_size), axis=1), mesh)
      keys = jax.random.split(jax.random.fold_in(jax.random.fold_in(augment_rng, stage_index),
                                                 epoch), steps_per_epoch)
      batch_metrics = []
      for i in range(steps_per_epoch):
        batch = gather(train_inputs, train_labels, batches[i], keys[i])
        state, m = jitted_train_step()(state, batch)
        if "first_step_s" not in clock:  # Compilation, mostly.
          jax.block_until_ready(m)
          clock["first_step_s"] = time.perf_counter() - epoch_start
        batch_metrics.append(m)
        progress.update()
      step += steps_per_epoch
      batch_metrics = to_host(jax.tree_util.tree_map(lambda *m: jnp.stack(m), *batch_metrics))
      train_metrics = {k: float(np.mean(v)) for k, v in batch_metrics.items()}
      clock["epoch_train_s"].append(time.perf_counter() - epoch_start)
      if not np.isfinite(train_metrics["loss"]):
        first = int(np.flatnonzero(~np.isfinite(batch_metrics["loss"]))[0])
        raise FloatingPointError(
            f"training diverged: the {name} stage's loss is {float(batch_metrics['loss'][first])}"
            f" at step {step - steps_per_epoch + first + 1} (epoch {epoch + 1}, batch "
            f"{first + 1} of {steps_per_epoch}); nothing of this epoch was saved, the latest "
            f"checkpoint is the last finite one. Lower {name}.learning_rate, raise "
            "warmup_epochs, or check data.image_size (the CNN needs room for its poolings)")
      validation_start = time.perf_counter()
      val = evaluate(state, data["validation"], config.eval_batch_size, prototypes)
      clock["validation_s"] += time.perf_counter() - validation_start
      progress.set_postfix(loss=f"{train_metrics['loss']:.3f}", val_ccc=f"{val['ccc']:.3f}",
                           val_acc=f"{val['video_accuracy']:.2f}")
      logger.write(name, epoch + 1, step, "train", train_metrics)
      logger.write(name, epoch + 1, step, "validation", val)
      variables = {"params": _with_subtree(variables["params"], stage.path, state.params),
                   "batch_stats": _with_subtree(variables["batch_stats"], stage.path,
                                                state.batch_stats) if state.batch_stats
                                  else variables["batch_stats"]}
      variables = to_host(variables)
      finished = epoch + 1 == stage_config.num_epochs
      meta = _meta(config, speakers, label_space, name, 0 if finished else epoch + 1, step,
                   done_stages + [name] if finished else done_stages)
      checkpoint_start = time.perf_counter()
      checkpoints.save(managers[checkpoints.LATEST], step, variables, state.opt_state, meta)
      if is_last:
        checkpoints.save(managers[checkpoints.BEST], step, variables, state.opt_state, meta,
                         metrics={checkpoints.BEST_METRIC: val["ccc"]})
      clock["checkpoint_s"] += time.perf_counter() - checkpoint_start
      final = val
    progress.close()
    clock["total_s"] = time.perf_counter() - stage_start
    write_timings(workdir, name, clock)
    done_stages = done_stages + [name]
    start_epoch = 0
  for manager in managers.values():
    manager.wait_until_finished()
  logger.close()
  if final:
    logging.info("Final validation: %s", final)
  return final
