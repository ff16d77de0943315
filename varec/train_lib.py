"""The trainer: the paper's transfer learning as stages (§4.5), run end to end.

- `cnn`: the CNN of Fig. 3 on single labelled frames, CCC loss through its
  2-unit head;
- `rnn`: the GRU on the frozen CNN's 300-d features, computed once per frame
  and cached, so this stage takes seconds;
- `joint` (optional): CNN+GRU fine-tuned end to end on windows.

`train_and_evaluate` reads as its steps, as flax's imagenet example does:
check the config, set the run up (`_setup`: the data, the variables as
initialised or resumed, into a `Run`), train each stage left (`StageRunner`:
its schedule (`steps.stage_schedule`), epochs, validation and checkpoints),
then record the verdict.
The numerical core lives in `varec.steps`, the model in `varec.model_lib`,
logs and timings in `varec.run_logs`. Only train.py, the benchmarks and tests
import this module.
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
import orbax.checkpoint as ocp
import tqdm

from varec import checkpoints
from varec import config_checks
from varec import emotions
from varec import inference
from varec.data import input_pipeline
from varec import learning_check
from varec import decisions
from varec import metrics
from varec import model_lib
from varec import run_logs
from varec import steps
from varec import workdir as workdir_lib

# -- A stage's data and its validation -----------------------------------------


def stage_data(
  name: str, config, variables: dict, windows: dict, teacher=None
) -> dict:
  """{"inputs", "labels", "video_id", "emotion"} for one split, shaped for the
  stage.

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
  name: str, config, variables: dict, data: dict, rule: decisions.DecisionRule
) -> dict[str, float]:
  """Frame-level loss/CCC/RMSE and video-level accuracy (decided by `rule`)
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
  true, voted = decisions.video_decisions(
    pred,
    data["video_id"],
    data["emotion"],
    rule,
  )
  result["video_accuracy"] = metrics.accuracy(true, voted)
  result["ccc"] = (result["ccc_valence"] + result["ccc_arousal"]) / 2
  return result


# -- The run: what its stages share, and where it stands -----------------------


@dataclasses.dataclass
class Progress:
  """Where a run stands: the step, the epoch its current stage resumes at,
  finished stages."""

  step: int = 0
  epoch: int = 0
  completed_stages: tuple[str, ...] = ()
  # The stage the latest checkpoint was saved in.
  resumed_stage: str | None = None


@dataclasses.dataclass
class Run:
  """One run of `train_and_evaluate`, set up by `_setup`."""

  # As given, with the preprocessing of the data it trains on
  # (`input_pipeline.with_build_preprocessing`).
  config: ml_collections.ConfigDict
  workdir: workdir_lib.Workdir
  # `checkpoints.LATEST` (for resuming) and `checkpoints.BEST` (for eval.py).
  managers: dict[str, ocp.CheckpointManager]
  mesh: jax.sharding.Mesh  # The devices each batch is shared over.
  # Each split's windows: {"frames", "labels", "video_id", "emotion"}.
  windows: dict[str, dict[str, np.ndarray]]
  speakers: dict[str, tuple[str, ...]]  # Each split's speaker ids.
  label_space: emotions.LabelSpace
  # The emotions the training windows show, the ones validation decides among.
  trained_emotions: tuple[str, ...]
  # The CNN+RNN's, as host arrays: what the stages trained so far.
  variables: dict
  # Learning without forgetting's teacher: the CNN's variables as loaded,
  # before any stage (or a resumed run) changed them; None without distillation.
  teacher: dict | None
  dropout_rng: jax.Array  # Folded with each stage's index.
  augment_rng: jax.Array  # Folded with each stage's index, then each epoch.
  progress: Progress = dataclasses.field(default_factory=Progress)
  # The training summary (`run_logs.write_summary`): stages, data, verdict.
  summary: dict = dataclasses.field(default_factory=dict)

  @property
  def prototypes(self) -> np.ndarray:
    """Every emotion's (valence, arousal), for the loss's prototype term."""
    return self.label_space.prototype_array()

  @property
  def decision_rule(self) -> decisions.DecisionRule:
    """How validation decides a video: the paper's vote among the trained
    emotions."""
    return decisions.DecisionRule.of(
      self.label_space,
      self.config.data.fps,
      self.label_space.decision_prototypes(self.trained_emotions),
    )

  def meta(
    self, stage: str, epoch: int, completed: tuple[str, ...]
  ) -> checkpoints.CheckpointMeta:
    """A checkpoint's meta at the current step: stage `stage` resumes at
    `epoch`."""
    return checkpoints.CheckpointMeta(
      stage=stage,
      epoch=epoch,
      step=self.progress.step,
      completed_stages=tuple(completed),
      config=json.loads(self.config.to_json()),
      speakers={k: tuple(v) for k, v in self.speakers.items()},
      trained_emotions=tuple(self.trained_emotions),
      **checkpoints.label_space_fields(self.label_space),
    )


def _trained_emotions(train: dict, label_space: emotions.LabelSpace) -> tuple:
  """The emotions the training windows show; at least two."""
  trained = tuple(label_space.emotions[i] for i in np.unique(train["emotion"]))
  if len(trained) < 2:
    # CCC (eq. 9) has no variance to match, and no decision anything to tell
    # apart.
    raise ValueError(
      f"every training video shows {', '.join(trained)}: valence-arousal "
      "training needs at least two emotions (check the labels, e.g. labels.csv)"
    )
  return trained


def _initial_variables(config, rng: jax.Array, window_length: int) -> dict:
  """The CNN+RNN's variables at initialisation, the CNN's from
  `config.init_from`."""
  variables = model_lib.init_variables(config, rng, window_length)
  if config.init_from:
    variables = model_lib.load_cnn(config.init_from, variables, config)
  return variables


def _setup(config, workdir, builder, mesh: jax.sharding.Mesh) -> Run:
  """The run of `config` in `workdir`: its data (`builder`'s, else the built
  `config.data`), its variables (resumed from the latest checkpoint there, if
  any) and its training summary so far."""
  workdir = workdir_lib.Workdir(workdir)
  workdir.root.mkdir(parents=True, exist_ok=True)
  builder = builder or input_pipeline.ensure_built(config.data)
  config = input_pipeline.with_build_preprocessing(config, builder)
  windows, speakers = input_pipeline.load_windows(config, builder)
  label_space = input_pipeline.label_space(builder)
  logging.info("Speakers: %s", {k: len(v) for k, v in speakers.items()})
  trained = _trained_emotions(windows["train"], label_space)
  if mesh.size > 1:
    logging.info(
      "Data parallel over %d devices (%d processes)",
      mesh.size,
      jax.process_count(),
    )
  rng = jax.random.PRNGKey(config.seed)
  init_rng, dropout_rng = jax.random.split(rng)
  variables = _initial_variables(
    config, init_rng, windows["train"]["frames"].shape[1]
  )
  if config.restart and workdir.checkpoints.exists():
    _discard_run(workdir)
  run = Run(
    config=config,
    workdir=workdir,
    managers=checkpoints.managers(workdir),
    mesh=mesh,
    windows=windows,
    speakers=speakers,
    label_space=label_space,
    trained_emotions=trained,
    variables=variables,
    teacher=model_lib.cnn_variables(variables)
    if config.loss.distill_weight
    else None,
    dropout_rng=dropout_rng,
    augment_rng=jax.random.fold_in(rng, 1),
  )
  _resume(run)
  run.summary = {
    # The stages' schedules and checks so far (a resumed run's earlier ones
    # included).
    "stages": run_logs.read_summary(workdir).get("stages", {})
    if run.progress.step
    else {},
    "data": learning_check.data_record(windows, speakers, label_space, trained),
  }
  return run


def _discard_run(workdir: workdir_lib.Workdir) -> None:
  """`config.restart`: removes the checkpoints and logs of the run in
  `workdir`."""
  logging.warning("restart: discarding the run in %s", workdir)
  for path in workdir.run_records():
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _resume(run: Run) -> None:
  """Sets `run`'s variables and progress to the latest checkpoint's, if it
  has one."""
  try:
    newest = checkpoints.restore_newest(
      run.managers[checkpoints.LATEST], run.variables
    )
  except checkpoints.CheckpointError as e:
    raise checkpoints.CheckpointError(
      f"cannot resume: {e}; to discard {run.workdir.checkpoints} and train "
      "from the start: --config.restart=True"
    ) from e
  if newest is None:
    return
  _, meta, run.variables = newest
  config_checks.check_resumable(
    meta, run.config, run.speakers, run.label_space, run.workdir
  )
  logging.info(
    "Resuming from step %d (stage %s, epoch %d)",
    meta.step,
    meta.stage,
    meta.epoch,
  )
  run.progress = Progress(
    meta.step, meta.epoch, meta.completed_stages, meta.stage
  )


# -- One stage
# ------------------------------------------------------------------


class StageRunner:
  """Trains one stage of a run from where the run stands.

  Built as the stage starts: its data for every split, its `steps.StageSchedule`
  (recorded in the run's summary) and its train state (resuming the latest
  checkpoint's optimiser when the run stopped inside this stage). `train`
  runs the epochs left, each validated, logged and checkpointed.
  """

  def __init__(self, run: Run, name: str, logger: run_logs.MetricLogger):
    self.run, self.name, self.logger = run, name, logger
    self.index = list(run.config.stages).index(name)
    self.clock = run_logs.StageClock()
    # Only the training frames carry the teacher's outputs: validation scores
    # valence and arousal alone.
    self.data = {
      split: stage_data(
        name,
        run.config,
        run.variables,
        windows,
        run.teacher if split == "train" else None,
      )
      for split, windows in run.windows.items()
    }
    self.num_train = len(self.data["train"]["inputs"])
    self.schedule = steps.stage_schedule(
      name, run.config, self.num_train, run.mesh
    )
    run.summary["stages"][name] = {"schedule": self.schedule.record()}
    self.stage, self.state, self.start_epoch = self._start()
    self.clock.prepared(self.schedule.steps_per_epoch, self.schedule.batch_size)
    self.bar = tqdm.tqdm(
      total=self.schedule.steps,
      initial=self.start_epoch * self.schedule.steps_per_epoch,
      desc=f"stage {name}",
      unit="step",
      dynamic_ncols=True,
    )
    augment = run.config.augment
    self.gather = steps.jitted_gather(
      run.mesh,
      # rnn trains on features, which are not augmented.
      ml_collections.FrozenConfigDict(augment)
      if augment.enabled and name != "rnn"
      else None,
    )
    # The training set stays on the devices for the whole stage.
    train = self.data["train"]
    self.train_set = steps.replicate(
      (train["inputs"], train["labels"]), run.mesh
    )

  def _start(self) -> tuple[steps.Stage, steps.TrainState, int]:
    """(stage, replicated state, first epoch)."""
    run, schedule = self.run, self.schedule
    stage, state = steps.stage_state(
      self.name,
      run.config,
      run.variables,
      num_steps=schedule.steps,
      warmup_steps=schedule.warmup_steps,
      rng=jax.random.fold_in(run.dropout_rng, self.index),
      prototypes=run.prototypes,
    )
    progress = run.progress
    start_epoch = progress.epoch if progress.resumed_stage == self.name else 0
    if start_epoch > 0:
      _, opt_state = checkpoints.restore(
        run.managers[checkpoints.LATEST],
        progress.step,
        run.variables,
        state.opt_state,
      )
      state = state.replace(
        opt_state=opt_state, step=start_epoch * schedule.steps_per_epoch
      )
    return stage, steps.replicate(state, run.mesh), start_epoch

  def train(self) -> dict[str, float]:
    """Runs the stage's epochs left; the last validation metrics ({} for
    none)."""
    val = {}
    try:  # A full disk or a diverging run closes the bar before its one line.
      for epoch in range(self.start_epoch, self.schedule.epochs):
        val = self._epoch(epoch)
    finally:
      self.bar.close()
    run_logs.write_timings(self.run.workdir, self.name, self.clock.finish())
    return val

  def _epoch(self, epoch: int) -> dict[str, float]:
    """Trains, validates, logs and checkpoints epoch `epoch`; its validation."""
    run, clock = self.run, self.clock
    clock.start_epoch()
    batch_metrics = self._train_batches(*self._epoch_order(epoch))
    run.progress.step += self.schedule.steps_per_epoch
    train_metrics = {k: float(np.mean(v)) for k, v in batch_metrics.items()}
    clock.end_epoch()
    _check_finite(self.name, batch_metrics, run.progress.step, epoch)
    run.variables = self._trained_variables()
    with clock.timed("validation_s"):
      val = evaluate(
        self.name,
        run.config,
        run.variables,
        self.data["validation"],
        run.decision_rule,
      )
    self.bar.set_postfix(
      loss=f"{train_metrics['loss']:.3f}",
      val_ccc=f"{val['ccc']:.3f}",
      val_acc=f"{val['video_accuracy']:.2f}",
    )
    for split, values in (("train", train_metrics), ("validation", val)):
      self.logger.write(self.name, epoch + 1, run.progress.step, split, values)
    with clock.timed("checkpoint_s"):
      self._save(epoch, val)
    return val

  def _epoch_order(self, epoch: int) -> tuple[jax.Array, jax.Array]:
    """(batches of training-set indices on the devices, one augmentation key
    per batch) of epoch `epoch`, from the seed: the same on every process."""
    batch_size = self.schedule.batch_size
    steps_per_epoch = self.schedule.steps_per_epoch
    order = np.random.default_rng(
      [self.run.config.seed, self.index, epoch]
    ).permutation(self.num_train)
    batches = np.sort(
      order[: steps_per_epoch * batch_size].reshape(
        steps_per_epoch, batch_size
      ),
      axis=1,
    )
    keys = jax.random.split(
      jax.random.fold_in(
        jax.random.fold_in(self.run.augment_rng, self.index), epoch
      ),
      steps_per_epoch,
    )
    return steps.replicate(batches, self.run.mesh), keys

  def _train_batches(self, batches: jax.Array, keys: jax.Array) -> dict:
    """One step per batch of `batches`; each step's metrics, on the host."""
    batch_metrics = []
    for i in range(len(keys)):
      self.state, m = steps.jitted_train_step()(
        self.state, self.gather(*self.train_set, batches[i], keys[i])
      )
      self.clock.first_step(m)
      batch_metrics.append(m)
      self.bar.update()
    return steps.to_host(
      jax.tree_util.tree_map(lambda *m: jnp.stack(m), *batch_metrics)
    )

  def _trained_variables(self) -> dict:
    """The run's variables with what the stage trained, as host arrays."""
    variables, path, state = self.run.variables, self.stage.path, self.state
    batch_stats = variables["batch_stats"]
    if state.batch_stats:
      batch_stats = steps.with_subtree(batch_stats, path, state.batch_stats)
    return steps.to_host(
      {
        "params": steps.with_subtree(variables["params"], path, state.params),
        "batch_stats": batch_stats,
      }
    )

  def _save(self, epoch: int, val: dict[str, float]) -> None:
    """Checkpoints after epoch `epoch`: the latest, and the best (by
    validation CCC) in the last stage."""
    run, progress = self.run, self.run.progress
    finished = epoch + 1 == self.schedule.epochs
    completed = progress.completed_stages + ((self.name,) if finished else ())
    meta = run.meta(self.name, 0 if finished else epoch + 1, completed)
    saved = (run.variables, self.state.opt_state, meta)
    checkpoints.save(run.managers[checkpoints.LATEST], progress.step, *saved)
    if self.name == run.config.stages[-1]:
      checkpoints.save(
        run.managers[checkpoints.BEST],
        progress.step,
        *saved,
        metrics={checkpoints.BEST_METRIC: val["ccc"]},
      )


def _check_finite(
  name: str, batch_metrics: dict, step: int, epoch: int
) -> None:
  """Raises FloatingPointError naming the first step of the epoch whose loss
  is not finite."""
  losses = batch_metrics["loss"]
  if np.isfinite(losses).all():
    return
  first = int(np.flatnonzero(~np.isfinite(losses))[0])
  raise FloatingPointError(
    f"training diverged: the {name} stage's loss is {float(losses[first])} at "
    f"step {step - len(losses) + first + 1} (epoch {epoch + 1}, batch "
    f"{first + 1} of {len(losses)}); nothing of this epoch was saved, the "
    f"latest checkpoint is the last finite one. Lower {name}.learning_rate, "
    "raise warmup_epochs, or check data.image_size (the CNN needs room for "
    "its poolings)"
  )


# -- The run, end to end
# --------------------------------------------------------


def _finish_stage(run: Run, name: str) -> None:
  """Marks stage `name` finished and checks its validation into the run's
  summary (`learning_check.record_stage`), which is written out."""
  run.progress.completed_stages += (name,)
  run.progress.epoch = 0
  records = run_logs.read_metrics(run.workdir)
  last = name == run.config.stages[-1]
  learning_check.record_stage(run.summary, name, records, last)
  run_logs.write_summary(run.workdir, run.summary)


def _record_verdict(run: Run) -> None:
  """Writes the training summary with the verdict on the last stage
  (`learning_check.record_verdict`)."""
  records = run_logs.read_metrics(run.workdir)
  learning_check.record_verdict(run.summary, run.config, run.workdir, records)
  run_logs.write_summary(run.workdir, run.summary)


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir, builder=None
) -> dict:
  """Trains every stage of `config`, resuming from `workdir` if it holds a
  checkpoint.

  Args:
    config: the run's config (configs/base.py); checked before any work.
    workdir: where its checkpoints and logs go (`workdir.Workdir`).
    builder: overrides the TFDS builder named by `config.data` (tests use tiny
      ones).

  Returns:
    The final validation metrics ({} when every stage was finished already).
    Whether the model learnt anything (`learning_check`) is in the workdir's
    training summary (`run_logs.read_summary`), which train.py reads.
  """
  mesh = steps.data_mesh()
  config_checks.check_config(config, num_devices=mesh.size)
  if config.init_from:  # Before the data, which may take minutes to build.
    model_lib.check_init_from(config.init_from)
  run = _setup(config, workdir, builder, mesh)
  logger = run_logs.MetricLogger(run.workdir, run.progress.step)
  final = {}
  try:
    for name in run.config.stages:
      if name not in run.progress.completed_stages:
        final = StageRunner(run, name, logger).train() or final
        _finish_stage(run, name)
  except BaseException:
    # Closing fails too on a full disk; the error that stopped the run is the
    # one to report.
    with contextlib.suppress(OSError):
      logger.close()
    raise
  logger.close()
  if final:
    logging.info("Final validation: %s", final)
  _record_verdict(run)
  return final
