"""Training steps of the paper's transfer learning (§4.5), as pure functions.

A stage (`cnn`, `rnn`, `joint`) is the module it trains as one forward function;
`stage_schedule` sets how long it trains, `stage_state` builds its train state
(optimizer, frozen blocks, loss); `train_step` is pure and jit-compiled; batches
are gathered and augmented on the devices (`jitted_gather`); `data_mesh`,
`replicate` and `to_host` spread a step over every device. Evaluation, during
training as after it, runs through the one inference engine
(`varec.inference.Engine`).
"""

from __future__ import annotations

import dataclasses
import functools
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

from varec import augmentation
from varec import losses
from varec import metrics
from varec import model_lib
from varec import models

STAGES = ("probe", "cnn", "rnn", "joint")
# Stages that train the CNN on single frames through its own head: `probe`
# with every block frozen (a linear probe of a pretrained CNN's features, then
# fine-tuned by `cnn`: LP-FT, Kumar et al., 2022), `cnn` with
# `model.frozen_blocks` frozen.
FRAME_STAGES = ("probe", "cnn")

DEFAULT_LEARNING_RATES = {"adam": 1e-3, "sgd": 0.01}
# What the learning rate does after its warmup (`config.lr_schedule`).
LR_SCHEDULES = ("constant", "cosine")


class TrainState(train_state.TrainState):
  """Params, optimiser state and BatchNorm statistics of the module being
  trained."""

  batch_stats: Any = None
  rng: jax.Array = None  # Dropout key; folded with the step for each batch.
  # (pred, labels).
  loss_fn: Callable = struct.field(pytree_node=False, default=losses.ccc_loss)


def frozen_labels(params: dict, cnn, path: tuple[str, ...]) -> dict:
  """ "frozen" for the parameters of `cnn`'s first `cnn.frozen_blocks` blocks,
  else "train".

  `path` says where the CNN's parameters sit in `params` (() when `params` are
  its own).
  """

  def label(keys):
    inside = keys[: len(path)] == path and len(keys) > len(path)
    block = models.block_index(cnn, keys[len(path)]) if inside else None
    return (
      "frozen" if block is not None and block < cnn.frozen_blocks else "train"
    )

  flat = flax.traverse_util.flatten_dict(params)
  return flax.traverse_util.unflatten_dict({k: label(k) for k in flat})


# -- The module each stage trains, as one forward function
# -----------------------


@dataclasses.dataclass(frozen=True)
class Stage:
  """What a stage trains: `forward(params, batch_stats, inputs, train, rng)
  -> (va, batch_stats)`."""

  name: str
  forward: Callable
  # Where the stage's params and batch stats sit inside the CNN+RNN variables.
  path: tuple[str, ...]
  # Where the CNN's params sit inside the stage's own (None: the stage has no
  # CNN).
  cnn_path: tuple[str, ...] | None = None
  # The CNN the stage trains, whose frozen blocks it leaves as they are.
  cnn: Any = None


def distils(name: str, config: ml_collections.ConfigDict) -> bool:
  """Whether stage `name` adds learning without forgetting's term (a frame
  stage, `config.loss.distill_weight` set): its outputs are then (valence,
  arousal) followed by the CNN's class logits, its labels the same with the
  pretrained CNN's recorded logits."""
  return name in FRAME_STAGES and config.loss.distill_weight > 0


def make_stage(name: str, config: ml_collections.ConfigDict) -> Stage:
  module, path, cnn_path = {
    "probe": (model_lib.build_cnn(config, all_frozen=True), ("cnn",), ()),
    "cnn": (model_lib.build_cnn(config), ("cnn",), ()),
    "rnn": (
      models.GRUStack(tuple(config.model.rnn_hidden_sizes)),
      ("rnn",),
      None,
    ),
    "joint": (model_lib.build_model(config), (), ("cnn",)),
  }[name]
  distil = distils(name, config)

  def forward(params, batch_stats, inputs, train, rng):
    variables = {"params": params}
    kwargs = {} if name == "rnn" else {"train": train}
    if batch_stats:
      variables["batch_stats"] = batch_stats
    mutable = ["batch_stats"] if train and batch_stats else []
    mutable += ["intermediates"] if distil else []
    out, updates = module.apply(
      variables, inputs, rngs={"dropout": rng}, mutable=mutable, **kwargs
    )
    batch_stats = updates.get("batch_stats", batch_stats)
    out = out[1] if name in FRAME_STAGES else out
    if distil:
      logits = updates["intermediates"]["emotion_logits"][0]
      out = jnp.concatenate([out, logits], axis=-1)
    return out, batch_stats

  cnn = (
    module if name in FRAME_STAGES else module.cnn if name == "joint" else None
  )
  return Stage(name, forward, path, cnn_path, cnn)


def with_frozen_blocks(
  tx, stage: Stage, config: ml_collections.ConfigDict, params: dict
):
  """`tx` that leaves the frozen blocks of the stage's CNN unchanged."""
  cnn = stage.cnn
  if stage.cnn_path is None or not cnn.frozen_blocks:
    return tx
  return optax.multi_transform(
    {"train": tx, "frozen": optax.set_to_zero()},
    frozen_labels(params, cnn, stage.cnn_path),
  )


def subtree(tree: dict, path: tuple[str, ...]):
  for key in path:
    tree = tree.get(key, {}) if tree else {}
  return tree


def with_subtree(tree: dict, path: tuple[str, ...], value) -> dict:
  if not path:
    return value
  return {**tree, path[0]: with_subtree(tree.get(path[0], {}), path[1:], value)}


def make_optimizer(
  config: ml_collections.ConfigDict,
  stage_config,
  steps: int,
  warmup_steps: int = 0,
):
  """Adam or SGD on the stage's learning-rate schedule, after a linear warmup
  from 0."""
  if config.optimizer not in DEFAULT_LEARNING_RATES:
    raise ValueError(f"unknown optimizer {config.optimizer!r}; use adam or sgd")
  if config.lr_schedule not in LR_SCHEDULES:
    raise ValueError(
      f"unknown lr_schedule {config.lr_schedule!r}; use constant or cosine"
    )
  lr = stage_config.learning_rate or DEFAULT_LEARNING_RATES[config.optimizer]
  warmup_steps = min(warmup_steps, steps)
  decay_steps = max(1, steps - warmup_steps)
  after_warmup = (
    optax.constant_schedule(lr)
    if config.lr_schedule == "constant"
    else optax.cosine_decay_schedule(lr, decay_steps)
  )
  schedule = (
    after_warmup
    if not warmup_steps
    else optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup_steps), after_warmup],
      [warmup_steps],
    )
  )
  if config.optimizer == "adam":
    return optax.adam(schedule)
  decay = config.sgd_decay
  # Keras 2's `decay`: the rate at step t is divided by 1 + decay * t.
  decayed = lambda step: schedule(step) / (1 + decay * step)
  return optax.sgd(decayed if decay else schedule, momentum=config.momentum)


def make_loss(
  config: ml_collections.ConfigDict, prototypes: np.ndarray | None
) -> Callable:
  """The training objective: eq. 9, plus `config.loss.prototype_weight` x the
  prototype cross-entropy when that weight is set (beyond the paper; 0 by
  default), plus, where outputs and labels carry class logits (`distils`),
  `config.loss.distill_weight` x learning without forgetting's term.

  Without `prototypes` there is no prototype term; with neither term, eq. 9
  itself. The logged "loss" stays eq. 9, comparable across runs with and
  without the terms.
  """
  weights = config.loss
  prototype_weight = 0.0 if prototypes is None else weights.prototype_weight
  distill_weight = weights.distill_weight
  prototype_temperature = weights.prototype_temperature
  distill_temperature = weights.distill_temperature
  if not prototype_weight and not distill_weight:
    return losses.ccc_loss
  prototypes = np.asarray(prototypes, np.float32)

  def loss(pred, labels):
    va, va_labels = pred[..., :2], labels[..., :2]
    value = losses.ccc_loss(va, va_labels)
    if prototype_weight:
      value += prototype_weight * losses.prototype_cross_entropy(
        va, va_labels, prototypes, prototype_temperature
      )
    if pred.shape[-1] > 2:
      value += distill_weight * losses.distillation_loss(
        pred[..., 2:], labels[..., 2:], distill_temperature
      )
    return value

  return loss


def create_train_state(
  stage: Stage, variables: dict, tx, rng, loss_fn: Callable = losses.ccc_loss
) -> TrainState:
  return TrainState.create(
    apply_fn=stage.forward,
    params=subtree(variables["params"], stage.path),
    tx=tx,
    batch_stats=subtree(variables.get("batch_stats", {}), stage.path) or {},
    rng=rng,
    loss_fn=loss_fn,
  )


def stage_state(
  name: str,
  config: ml_collections.ConfigDict,
  variables: dict,
  *,
  num_steps: int,
  rng: jax.Array,
  warmup_steps: int = 0,
  prototypes: np.ndarray | None = None,
) -> tuple[Stage, TrainState]:
  """The stage `name` and its train state at the start of training on
  `variables`.

  The optimizer runs its schedule over `num_steps` (after `warmup_steps`),
  leaves `config.model.frozen_blocks` CNN blocks as they are, and minimises
  `make_loss` with `prototypes` (no prototype term when None). What the trainer,
  the benchmarks and the tests all call.
  """
  stage = make_stage(name, config)
  tx = make_optimizer(config, config[name], num_steps, warmup_steps)
  tx = with_frozen_blocks(
    tx, stage, config, subtree(variables["params"], stage.path)
  )
  loss_fn = make_loss(config, prototypes)
  return stage, create_train_state(stage, variables, tx, rng, loss_fn)


# -- How long a stage trains
# --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StageSchedule:
  """How long a stage trains: `epochs` of `steps_per_epoch` batches of
  `batch_size`."""

  batch_size: int
  steps_per_epoch: int
  num_epochs: int  # The config's.
  min_steps: int  # The config's.
  # What it trains: num_epochs, or more where they give fewer than min_steps
  # steps.
  epochs: int
  warmup_steps: int

  @property
  def steps(self) -> int:
    return self.epochs * self.steps_per_epoch

  @property
  def lengthened(self) -> bool:
    return self.epochs > self.num_epochs

  def record(self) -> dict:
    """The training summary's record of it."""
    return {
      **dataclasses.asdict(self),
      "steps": self.steps,
      "lengthened": self.lengthened,
    }


def stage_schedule(
  name: str, config: ml_collections.ConfigDict, num_train: int, mesh
) -> StageSchedule:
  """Stage `name`'s schedule on `num_train` training examples.

  `min_steps` sets a floor: where `num_epochs` epochs give fewer steps (a
  small set), the stage trains ceil(min_steps / steps per epoch) epochs, and
  the warmup keeps its share of the stage (`warmup_epochs` of `num_epochs`),
  so that the stage runs the schedule it has on a set large enough.

  Args:
    name: one of `STAGES`.
    config: the run's config.
    num_train: the stage's training examples (frames or windows).
    mesh: the devices each batch is shared over (`data_mesh`).

  Returns:
    The schedule.
  """
  stage_config = config[name]
  batch_size = _batch_size(name, stage_config, num_train, mesh)
  steps_per_epoch = num_train // batch_size
  num_epochs, min_steps = stage_config.num_epochs, stage_config.min_steps
  epochs = max(num_epochs, -(-min_steps // steps_per_epoch))
  warmup_steps = round(
    steps_per_epoch * config.warmup_epochs
    if epochs == num_epochs
    else epochs * steps_per_epoch * config.warmup_epochs / num_epochs
  )
  schedule = StageSchedule(
    batch_size, steps_per_epoch, num_epochs, min_steps, epochs, warmup_steps
  )
  if schedule.lengthened:
    logging.warning(
      "Stage %s: %d training examples make %d steps an epoch (batch %d), so "
      "%s.num_epochs=%d would take %d steps, fewer than %s.min_steps=%d: "
      "training %d epochs (%d steps) instead, the learning rate's schedule "
      "(%s, %d warmup steps) spread over them. %s.min_steps=0 trains "
      "num_epochs as given.",
      name,
      num_train,
      steps_per_epoch,
      batch_size,
      name,
      num_epochs,
      num_epochs * steps_per_epoch,
      name,
      min_steps,
      epochs,
      schedule.steps,
      config.lr_schedule,
      warmup_steps,
      name,
    )
  return schedule


def _batch_size(name: str, stage_config, num_train: int, mesh) -> int:
  """The stage's batch size; a split smaller than one batch: the largest
  whole number of batches per device."""
  # `config_checks.check_config` refuses such a config before any data; this
  # guards callers that did not ask it (benchmarks, tests).
  if stage_config.batch_size % mesh.size:
    raise ValueError(
      f"{name}.batch_size ({stage_config.batch_size}) is not a multiple of the "
      f"{mesh.size} devices"
    )
  batch_size = min(stage_config.batch_size, num_train - num_train % mesh.size)
  if batch_size < 1:
    raise ValueError(
      f"the {name} stage has {num_train} training examples, fewer than the "
      f"{mesh.size} devices"
    )
  return batch_size


# -- Pure steps
# ---------------------------------------------------------------------


def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
  """One optimiser step on a batch {"inputs", "labels"}; returns metrics of
  the batch."""
  rng = jax.random.fold_in(state.rng, state.step)

  def loss_fn(params):
    pred, batch_stats = state.apply_fn(
      params, state.batch_stats, batch["inputs"], True, rng
    )
    return state.loss_fn(pred, batch["labels"]), (pred, batch_stats)

  (_, (pred, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
    state.params
  )
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  # (valence, arousal): the class logits of a distilling stage follow them.
  return state, metrics.va_metrics(pred[..., :2], batch["labels"][..., :2])


def _backend_compiler_options():
  return (
    {"xla_cpu_experimental_ynn_fusion_type": ""}
    if jax.default_backend() == "cpu"
    else None
  )


@functools.cache
def jitted_train_step():
  """`train_step` compiled for the current backend.

  On CPU, jaxlib 0.10 hands convolutions to YNNPACK, whose kernels (the
  gradients especially) run ~3x slower than XLA's own for this CNN: turned
  off for training (see benchmarks/results/training.md).
  """
  return jax.jit(
    train_step, donate_argnums=0, compiler_options=_backend_compiler_options()
  )


@functools.cache
def jitted_gather(
  mesh: jax.sharding.Mesh, augment: ml_collections.FrozenConfigDict | None
):
  """`fn(inputs, labels, index, key) -> batch`: the batch `index` picks from the
  training set, compiled.

  `inputs` and `labels` are the whole training set, already on the devices:
  the batch is gathered there, its frames augmented there with
  `augmentation.augment` (unless `augment` is None), and it comes out split
  over `mesh`, so the host sends each step only its indices and a key. A
  call of its own, not part of the train step: inside it, XLA:CPU would fuse
  the augmentation into each of its consumers and compute it several times.
  """
  batch_sharding = jax.sharding.NamedSharding(
    mesh, jax.sharding.PartitionSpec("data")
  )

  def gather(inputs, labels, index, key):
    batch = {"inputs": inputs[index], "labels": labels[index]}
    if augment is not None:
      batch["inputs"] = augmentation.augment(batch["inputs"], key, augment)
    return batch

  return jax.jit(gather, out_shardings=batch_sharding)


# -- Data parallelism
# --------------------------------------------------------------


def data_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh, axis "data", over every device of every process (or
  `devices`)."""
  return jax.sharding.Mesh(
    np.asarray(devices if devices is not None else jax.devices()), ("data",)
  )


def replicate(tree, mesh: jax.sharding.Mesh):
  """`tree` (parameters, optimiser state, the training set) copied to every
  device of the mesh."""
  return jax.device_put(
    tree, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  )


def to_host(tree):
  """numpy copies of a (replicated) tree, also of arrays spread over several
  processes."""

  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(x.addressable_data(0))
    return np.asarray(x)

  return jax.tree_util.tree_map(get, tree)
