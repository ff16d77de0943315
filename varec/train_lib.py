"""The trainer: the paper's transfer learning as stages (§4.5), run end to end.

- `cnn`: the CNN of Fig. 3 on single labelled frames, CCC loss through its
  2-unit head;
- `rnn`: the GRU on the frozen CNN's 300-d features, computed once per frame
  and cached, so this stage takes seconds;
- `joint` (optional): CNN+GRU fine-tuned end to end on windows.

`train_and_evaluate` reads as its steps: load the data, initialise or resume,
then per stage build its state (`steps.stage_state`), run its epochs, validate
and checkpoint. The numerical core lives in `varec.steps`, the model in
`varec.model_lib`, logs and timings in `varec.run_logs`. Only train.py, the
benchmarks and tests import this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from varec import checkpoints
from varec import config_checks
from varec import config_schema
from varec import emotions
from varec import inference
from varec.data import input_pipeline
from varec import learning_check
from varec import metrics
from varec import model_lib
from varec import preprocessing
from varec import run_logs
from varec import steps
from varec import workdir as workdir_lib


def stage_data(
  name: str, config, variables: dict, windows: dict, teacher=None
) -> dict:
  """{"inputs", "labels", "video_id", "emotion"} for one split, shaped for the stage.

  probe, cnn: single frames; rnn: cached CNN features per window; joint:
  windows. With `teacher` (the pretrained CNN's variables) a distilling frame
  stage's labels carry, after (valence, arousal), the teacher's class logits
  on each frame, recorded once before fine-tuning as in Li & Hoiem (2016).
  """
  frames, labels = windows["frames"], windows["labels"]
  t = frames.shape[1]
  if name in steps.FRAME_STAGES:
    inputs = frames.reshape((-1,) + frames.shape[2:])
    labels = labels.reshape(-1, 2)
    if teacher is not None and steps.distils(name, config):
      logits_fn = model_lib.class_logits_fn(model_lib.build_cnn(config))
      logits = model_lib.apply_in_batches(
        logits_fn, teacher, inputs, config.eval_batch_size
      )
      labels = np.concatenate([labels, logits.astype(np.float32)], axis=-1)
    return {
      "inputs": inputs,
      "labels": labels,
      "video_id": np.repeat(windows["video_id"], t),
      "emotion": np.repeat(windows["emotion"], t),
    }
  inputs = (
    inference.Engine(config, variables, uses_gru=False).window_features(frames)
    if name == "rnn"
    else frames
  )
  return {
    "inputs": inputs,
    "labels": labels,
    "video_id": windows["video_id"],
    "emotion": windows["emotion"],
  }


def evaluate(
  name: str, config, variables: dict, data: dict, prototypes: np.ndarray
) -> dict[str, float]:
  """Frame-level loss/CCC/RMSE and video-level accuracy (nearest of `prototypes`)
  on one split of stage `name`'s data, through the inference engine that
  eval.py and predict.py use: the CNN's head on frames (cnn), the GRU on
  feature windows (rnn), or both on windows of frames (joint)."""
  frames = name in steps.FRAME_STAGES
  engine = inference.Engine(config, variables, uses_gru=not frames)
  inputs = data["inputs"]
  if frames:
    pred = engine.frame_outputs(inputs)
  elif name == "rnn":
    pred = engine.window_outputs(inputs)
  else:
    pred = engine.predict_windows(inputs)
  result = {
    k: float(v)
    for k, v in metrics.va_metrics(
      jnp.asarray(pred), jnp.asarray(data["labels"])
    ).items()
  }
  true, voted = metrics.video_decisions(
    pred, data["video_id"], data["emotion"], prototypes
  )
  result["video_accuracy"] = metrics.accuracy(true, voted)
  result["ccc"] = (result["ccc_valence"] + result["ccc_arousal"]) / 2
  return result


def _meta(
  config,
  run: dict,
  stage: str,
  epoch: int,
  step: int,
  done_stages,
) -> dict:
  return {
    "stage": stage,
    "epoch": epoch,
    "step": step,
    "completed_stages": list(done_stages),
    "config": json.loads(config.to_json()),
    "speakers": {k: list(v) for k, v in run["speakers"].items()},
    # The emotions it can decide (`LabelSpace.decision_prototypes`).
    "trained_emotions": list(run["trained_emotions"]),
    **run["label_space"].to_meta(),
  }


def with_build_preprocessing(
  config: ml_collections.ConfigDict, builder
) -> ml_collections.ConfigDict:
  """`config` with the data fields of the preprocessing `builder`'s data went through.

  They are what the checkpoints carry to eval.py and predict.py, so they must
  describe the data trained on even when a caller hands over its own builder.
  """
  fields = preprocessing.data_fields(builder.builder_config.preprocess)
  differ = {k: v for k, v in fields.items() if config.data[k] != v}
  if not differ:
    return config
  logging.info("Recording the build's preprocessing in the config: %s", differ)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.update(differ)
  return config


@dataclasses.dataclass
class _Progress:
  """Where a run stands: the step, the epoch its current stage resumes at, finished stages."""

  step: int = 0
  epoch: int = 0
  completed_stages: tuple[str, ...] = ()
  # The stage the latest checkpoint was saved in.
  resumed_stage: str | None = None


def _discard_run(workdir: workdir_lib.Workdir) -> None:
  """`config.restart`: removes the checkpoints and logs of the run in `workdir`."""
  logging.warning("restart: discarding the run in %s", workdir)
  for path in workdir.run_records():
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _check_resumable(
  meta: dict, config, speakers, label_space, workdir
) -> None:
  """Raises ValueError unless the run in `workdir` (its latest `meta`) is this config's."""
  differ = config_checks.config_differences(meta["config"], config)
  if differ:
    finished = set(config.stages) <= set(meta["completed_stages"])
    raise ValueError(
      f"{workdir} holds {'a finished' if finished else 'an unfinished'} run of another "
      "config ("
      + ", ".join(
        f"{k}: {a!r} there, {b!r} now" for k, (a, b) in list(differ.items())[:8]
      )
      + f"{', ...' if len(differ) > 8 else ''}): train into a new --workdir, or pass "
      "--config.restart=True to discard that run and start over"
    )
  if meta["speakers"] != {k: list(v) for k, v in speakers.items()}:
    raise ValueError(
      f"{workdir} holds a run with another speaker split (another seed or "
      "dataset); use a new --workdir"
    )
  if emotions.LabelSpace.from_meta(meta) != label_space:
    raise ValueError(
      f"{workdir} holds a run with other emotions (another prototypes CSV); "
      "use a new --workdir"
    )
  before = preprocessing.config_from_data(
    config_schema.upgrade(meta["config"]).data
  )
  if before != preprocessing.config_from_data(config.data):
    raise ValueError(
      f"{workdir} holds a run with other preprocessing ({before}); use a new "
      "--workdir"
    )


def _init_or_resume(
  config, workdir, managers, variables, speakers, label_space
):
  """(variables, progress): those of the latest checkpoint in `workdir`, else `variables`."""
  try:
    newest = checkpoints.restore_newest(managers[checkpoints.LATEST], variables)
  except checkpoints.CheckpointError as e:
    raise checkpoints.CheckpointError(
      f"cannot resume: {e}; to discard {workdir.checkpoints} and train from "
      "the start: --config.restart=True"
    ) from e
  if newest is None:
    return variables, _Progress()
  meta = newest[1]
  _check_resumable(meta, config, speakers, label_space, workdir)
  logging.info(
    "Resuming from step %d (stage %s, epoch %d)",
    meta["step"],
    meta["stage"],
    meta["epoch"],
  )
  return newest[2], _Progress(
    meta["step"], meta["epoch"], tuple(meta["completed_stages"]), meta["stage"]
  )


def _batch_size(name: str, stage_config, num_train: int, mesh) -> int:
  """The stage's batch size; a split smaller than one batch: the largest whole number of
  batches per device."""
  if stage_config.batch_size % mesh.size:
    raise config_checks.ConfigError(
      f"config: {name}.batch_size ({stage_config.batch_size}) must be a multiple of the "
      f"{mesh.size} devices training shares each batch over"
    )
  batch_size = min(stage_config.batch_size, num_train - num_train % mesh.size)
  if batch_size < 1:
    raise ValueError(
      f"the {name} stage has {num_train} training examples, fewer than the "
      f"{mesh.size} devices"
    )
  return batch_size


def _check_finite(
  name: str, batch_metrics: dict, step: int, epoch: int
) -> None:
  """Raises FloatingPointError naming the first step of the epoch whose loss is not finite."""
  losses = batch_metrics["loss"]
  if np.isfinite(losses).all():
    return
  first = int(np.flatnonzero(~np.isfinite(losses))[0])
  raise FloatingPointError(
    f"training diverged: the {name} stage's loss is {float(losses[first])} at step "
    f"{step - len(losses) + first + 1} (epoch {epoch + 1}, batch {first + 1} of "
    f"{len(losses)}); nothing of this epoch was saved, the latest checkpoint is the last "
    f"finite one. Lower {name}.learning_rate, raise warmup_epochs, or check data.image_size "
    "(the CNN needs room for its poolings)"
  )


def _run_epoch(state, gather, train_set, batches, keys, clock, progress):
  """One pass over `batches` (indices into the training set already on the devices)."""
  batch_metrics = []
  for i in range(len(keys)):
    state, m = steps.jitted_train_step()(
      state, gather(*train_set, batches[i], keys[i])
    )
    clock.first_step(m)
    batch_metrics.append(m)
    progress.update()
  batch_metrics = steps.to_host(
    jax.tree_util.tree_map(lambda *m: jnp.stack(m), *batch_metrics)
  )
  return state, batch_metrics


def _with_stage_variables(variables: dict, stage: steps.Stage, state) -> dict:
  """`variables` with what the stage trained, as host arrays."""
  batch_stats = variables["batch_stats"]
  if state.batch_stats:
    batch_stats = steps.with_subtree(batch_stats, stage.path, state.batch_stats)
  return steps.to_host(
    {
      "params": steps.with_subtree(
        variables["params"], stage.path, state.params
      ),
      "batch_stats": batch_stats,
    }
  )


@dataclasses.dataclass(frozen=True)
class StageSchedule:
  """How long a stage trains: `epochs` of `steps_per_epoch` batches of `batch_size`."""

  batch_size: int
  steps_per_epoch: int
  num_epochs: int  # The config's.
  min_steps: int  # The config's.
  # What it trains: num_epochs, or more where they give fewer than min_steps steps.
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


def stage_schedule(name: str, config, num_train: int, mesh) -> StageSchedule:
  """Stage `name`'s schedule on `num_train` training examples.

  `min_steps` sets a floor: where `num_epochs` epochs give fewer steps (a
  small set), the stage trains ceil(min_steps / steps per epoch) epochs, and
  the warmup keeps its share of the stage (`warmup_epochs` of `num_epochs`),
  so that the stage runs the schedule it has on a set large enough.
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


def _stage_start(
  name: str,
  config,
  variables: dict,
  schedule: StageSchedule,
  run: dict,
  progress: _Progress,
):
  """(stage, replicated state, first epoch) of stage `name`.

  The state resumes the optimiser of the latest checkpoint when the run
  stopped inside this stage.
  """
  stage_index = list(config.stages).index(name)
  stage, state = steps.stage_state(
    name,
    config,
    variables,
    num_steps=schedule.steps,
    warmup_steps=schedule.warmup_steps,
    rng=jax.random.fold_in(run["dropout_rng"], stage_index),
    prototypes=run["prototypes"],
  )
  start_epoch = progress.epoch if progress.resumed_stage == name else 0
  if start_epoch > 0:
    _, opt_state = checkpoints.restore(
      run["managers"][checkpoints.LATEST],
      progress.step,
      variables,
      state.opt_state,
    )
    state = state.replace(
      opt_state=opt_state, step=start_epoch * schedule.steps_per_epoch
    )
  return stage, steps.replicate(state, run["mesh"]), start_epoch


def _epoch_order(
  config,
  stage_index: int,
  epoch: int,
  num_train: int,
  batch_size: int,
  run: dict,
):
  """(batches of training-set indices on the devices, one augmentation key
  per batch) of an epoch, from the seed: the same on every process."""
  steps_per_epoch = num_train // batch_size
  order = np.random.default_rng([config.seed, stage_index, epoch]).permutation(
    num_train
  )
  batches = np.sort(
    order[: steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size),
    axis=1,
  )
  keys = jax.random.split(
    jax.random.fold_in(
      jax.random.fold_in(run["augment_rng"], stage_index), epoch
    ),
    steps_per_epoch,
  )
  return steps.replicate(batches, run["mesh"]), keys


def _save(
  config,
  run: dict,
  name: str,
  epoch: int,
  progress: _Progress,
  variables: dict,
  state,
  val: dict,
  epochs: int,
) -> None:
  """Checkpoints after epoch `epoch` of `epochs`: the latest, and the best (by
  validation CCC) in the last stage."""
  finished = epoch + 1 == epochs
  done = progress.completed_stages + ((name,) if finished else ())
  meta = _meta(
    config,
    run,
    name,
    0 if finished else epoch + 1,
    progress.step,
    done,
  )
  managers = run["managers"]
  checkpoints.save(
    managers[checkpoints.LATEST],
    progress.step,
    variables,
    state.opt_state,
    meta,
  )
  if name == config.stages[-1]:
    checkpoints.save(
      managers[checkpoints.BEST],
      progress.step,
      variables,
      state.opt_state,
      meta,
      metrics={checkpoints.BEST_METRIC: val["ccc"]},
    )


def _progress_bar(
  name: str, steps_per_epoch: int, epochs: int, start_epoch: int
):
  return tqdm.tqdm(
    total=steps_per_epoch * epochs,
    initial=start_epoch * steps_per_epoch,
    desc=f"stage {name}",
    unit="step",
    dynamic_ncols=True,
  )


def _stage_splits(name: str, config, variables: dict, windows: dict, run):
  """Every split's `stage_data` for stage `name`; only the training frames carry the
  teacher's outputs: validation scores valence and arousal alone."""
  return {
    split: stage_data(
      name,
      config,
      variables,
      windows[split],
      run["teacher"] if split == "train" else None,
    )
    for split in windows
  }


def _train_stage(
  stage_index: int,
  config,
  windows: dict,
  variables: dict,
  run: dict,
  progress: _Progress,
  logger: run_logs.MetricLogger,
) -> tuple[dict, dict]:
  """Trains stage `config.stages[stage_index]` from `progress`; (variables, last validation)."""
  name = config.stages[stage_index]
  clock = run_logs.StageClock()
  data = _stage_splits(name, config, variables, windows, run)
  num_train = len(data["train"]["inputs"])
  schedule = stage_schedule(name, config, num_train, run["mesh"])
  run["summary"]["stages"][name] = {"schedule": schedule.record()}
  stage, state, start_epoch = _stage_start(
    name, config, variables, schedule, run, progress
  )
  steps_per_epoch = schedule.steps_per_epoch
  clock.prepared(steps_per_epoch, schedule.batch_size)
  bar = _progress_bar(name, steps_per_epoch, schedule.epochs, start_epoch)
  augment = config.augment.enabled and name != "rnn"  # rnn sees features.
  gather = steps.jitted_gather(
    run["mesh"],
    ml_collections.FrozenConfigDict(config.augment) if augment else None,
  )
  # The training set stays on the devices for the whole stage.
  train_set = steps.replicate(
    (data["train"]["inputs"], data["train"]["labels"]), run["mesh"]
  )
  val = {}
  try:  # A full disk or a diverging run closes the bar before its one line.
    for epoch in range(start_epoch, schedule.epochs):
      clock.start_epoch()
      batches, keys = _epoch_order(
        config, stage_index, epoch, num_train, schedule.batch_size, run
      )
      state, batch_metrics = _run_epoch(
        state, gather, train_set, batches, keys, clock, bar
      )
      progress.step += steps_per_epoch
      train_metrics = {k: float(np.mean(v)) for k, v in batch_metrics.items()}
      clock.end_epoch()
      _check_finite(name, batch_metrics, progress.step, epoch)
      variables = _with_stage_variables(variables, stage, state)
      with clock.timed("validation_s"):
        val = evaluate(
          name,
          config,
          variables,
          data["validation"],
          run["decision_prototypes"],
        )
      bar.set_postfix(
        loss=f"{train_metrics['loss']:.3f}",
        val_ccc=f"{val['ccc']:.3f}",
        val_acc=f"{val['video_accuracy']:.2f}",
      )
      logger.write(name, epoch + 1, progress.step, "train", train_metrics)
      logger.write(name, epoch + 1, progress.step, "validation", val)
      with clock.timed("checkpoint_s"):
        _save(
          config,
          run,
          name,
          epoch,
          progress,
          variables,
          state,
          val,
          schedule.epochs,
        )
  finally:
    bar.close()
  run_logs.write_timings(run["workdir"], name, clock.finish())
  return variables, val


def _trained_emotions(train: dict, label_space: emotions.LabelSpace) -> tuple:
  """The emotions the training windows show; at least two."""
  trained = tuple(label_space.emotions[i] for i in np.unique(train["emotion"]))
  if len(trained) < 2:
    # CCC (eq. 9) has no variance to match, and no decision anything to tell apart.
    raise ValueError(
      f"every training video shows {', '.join(trained)}: valence-arousal "
      "training needs at least two emotions (check the labels, e.g. labels.csv)"
    )
  return trained


def _train_stages(config, windows, variables, run, progress, logger) -> dict:
  """Trains the stages `progress` has not finished; the last validation metrics.

  After each stage its validation is checked into the run's summary
  (`learning_check.record_stage`).
  """
  final = {}
  for stage_index, name in enumerate(config.stages):
    if name in progress.completed_stages:
      continue
    variables, val = _train_stage(
      stage_index, config, windows, variables, run, progress, logger
    )
    final = val or final
    progress.completed_stages += (name,)
    progress.epoch = 0
    records = run_logs.read_metrics(run["workdir"])
    last = name == config.stages[-1]
    learning_check.record_stage(run["summary"], name, records, last)
    run_logs.write_summary(run["workdir"], run["summary"])
  return final


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir, builder=None
) -> dict:
  """Trains every stage of `config`, resuming from `workdir` if it holds a checkpoint.

  `builder` overrides the TFDS builder named by `config.data` (tests use tiny ones).
  Returns the final validation metrics. Whether the model learnt anything
  (`learning_check`) is in the workdir's training summary
  (`run_logs.read_summary`), which train.py reads.
  """
  config_checks.check_config(config)
  if config.init_from:  # Before the data, which may take minutes to build.
    model_lib.check_init_from(config.init_from)
  workdir = workdir_lib.Workdir(workdir)
  workdir.root.mkdir(parents=True, exist_ok=True)
  builder = builder or input_pipeline.ensure_built(config.data)
  config = with_build_preprocessing(config, builder)
  windows, speakers = input_pipeline.load_windows(config, builder)
  label_space = input_pipeline.label_space(builder)
  logging.info("Speakers: %s", {k: len(v) for k, v in speakers.items()})
  trained = _trained_emotions(windows["train"], label_space)
  mesh = steps.data_mesh()
  if mesh.size > 1:
    logging.info(
      "Data parallel over %d devices (%d processes)",
      mesh.size,
      jax.process_count(),
    )

  rng = jax.random.PRNGKey(config.seed)
  init_rng, dropout_rng = jax.random.split(rng)
  variables = model_lib.init_variables(
    config, init_rng, windows["train"]["frames"].shape[1]
  )
  if config.init_from:
    variables = model_lib.load_cnn(config.init_from, variables, config)
  # Learning without forgetting's teacher: the CNN as loaded, before any
  # stage (or a resumed run) changes it.
  teacher = (
    model_lib.cnn_variables(variables) if config.loss.distill_weight else None
  )
  if config.restart and workdir.checkpoints.exists():
    _discard_run(workdir)
  managers = checkpoints.managers(workdir)
  variables, progress = _init_or_resume(
    config, workdir, managers, variables, speakers, label_space
  )
  run = {
    "workdir": workdir,
    "managers": managers,
    "mesh": mesh,
    "speakers": speakers,
    "label_space": label_space,
    "prototypes": label_space.prototype_array(),
    "trained_emotions": trained,
    "decision_prototypes": label_space.decision_prototypes(trained),
    "dropout_rng": dropout_rng,
    "teacher": teacher,
    "augment_rng": jax.random.fold_in(rng, 1),
  }
  return _train_and_check(config, windows, variables, run, progress)


def _train_and_check(config, windows, variables, run, progress) -> dict:
  """Trains the stages left, logging them, then writes the training summary
  with the verdict on the last stage (`learning_check.record_verdict`); the
  final validation."""
  workdir = run["workdir"]
  # The stages' schedules and checks so far (a resumed run's earlier ones included).
  run["summary"] = {
    "stages": run_logs.read_summary(workdir).get("stages", {})
    if progress.step
    else {},
    "data": learning_check.data_record(
      windows, run["speakers"], run["label_space"], run["trained_emotions"]
    ),
  }
  logger = run_logs.MetricLogger(workdir, progress.step)
  try:
    final = _train_stages(config, windows, variables, run, progress, logger)
  except BaseException:
    # Closing fails too on a full disk; the error that stopped the run is the one to report.
    with contextlib.suppress(OSError):
      logger.close()
    raise
  logger.close()
  if final:
    logging.info("Final validation: %s", final)
  records = run_logs.read_metrics(workdir)
  learning_check.record_verdict(run["summary"], config, workdir, records)
  run_logs.write_summary(workdir, run["summary"])
  return final
