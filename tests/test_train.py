"""The trainer (train_lib): training end to end, checkpoints, resuming,
determinism."""

import json

import jax
import numpy as np
import pytest

from varec import checkpoints
from varec import config_checks
from varec import emotions
from varec import losses as losses_lib
from varec import model_lib
from varec import steps
from varec import train_lib

from tests.helpers import tiny_config


def _flat(tree):
  return jax.tree_util.tree_leaves(tree)


@pytest.fixture(scope="module")
def trained(trained_workdir):
  return trained_workdir


def test_training_writes_metrics_and_checkpoints(trained):
  workdir, final = trained
  assert np.isfinite(final["loss"]) and 0 <= final["video_accuracy"] <= 1
  lines = [
    json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()
  ]
  assert [(l["stage"], l["epoch"], l["split"]) for l in lines] == [
    (s, e, split)
    for s in ("cnn", "rnn")
    for e in (1, 2)
    for split in ("train", "validation")
  ]
  assert {
    "loss",
    "ccc_valence",
    "ccc_arousal",
    "rmse_valence",
    "rmse_arousal",
  } <= set(lines[0])
  assert list((workdir / "tensorboard").iterdir())
  manager, step = checkpoints.resolve(workdir / "checkpoints" / "latest")
  meta = checkpoints.restore_meta(manager, step)
  assert meta.completed_stages == ("cnn", "rnn") and meta.step == step
  # The best checkpoint (what eval.py takes from a workdir) is one of the rnn
  # epochs.
  best_manager, best_step = checkpoints.resolve(workdir)
  assert best_manager.directory.name == "best" and best_step in (step - 2, step)
  assert meta.config["model"]["filters"] == [4, 8, 8]
  assert set(meta.speakers) == {"train", "validation", "test"}
  # The dataset's, groups included.
  assert meta.label_space() == emotions.TABLE2
  # What the tiny build's training speakers show (no neutral clip among them).
  assert meta.trained_emotions and set(meta.trained_emotions) <= set(
    emotions.EMOTIONS
  )
  timings = json.loads((workdir / "timings.json").read_text())
  assert set(timings) == {"cnn", "rnn"}
  for stage in timings.values():
    assert stage["epochs"] == len(stage["epoch_train_s"]) == 2
    assert (
      0 < stage["steady_epoch_s"] < stage["total_s"]
      and 0 < stage["first_step_s"]
    )
    assert stage["compile_s"] == pytest.approx(
      stage["first_step_s"] - stage["steady_epoch_s"] / stage["steps_per_epoch"]
    )
    assert stage["steps_per_s"] == pytest.approx(
      stage["steps_per_epoch"] / stage["steady_epoch_s"]
    )


def test_same_seed_same_parameters(trained, tiny_builder, tmp_path):
  workdir, _ = trained
  train_lib.train_and_evaluate(tiny_config(), tmp_path, builder=tiny_builder)
  a, _ = checkpoints.restore(*checkpoints.resolve(workdir))
  b, _ = checkpoints.restore(*checkpoints.resolve(tmp_path))
  for x, y in zip(_flat(a), _flat(b)):
    np.testing.assert_array_equal(x, y)


def test_resume_after_interruption_continues_from_the_saved_step(
  trained, tiny_builder, tmp_path, monkeypatch
):
  workdir, _ = trained
  real_evaluate = train_lib.evaluate
  calls = []

  def evaluate_then_die(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:  # Killed during the first epoch of the rnn stage.
      raise KeyboardInterrupt
    return real_evaluate(*args, **kwargs)

  monkeypatch.setattr(train_lib, "evaluate", evaluate_then_die)
  with pytest.raises(KeyboardInterrupt):
    train_lib.train_and_evaluate(tiny_config(), tmp_path, builder=tiny_builder)
  monkeypatch.setattr(train_lib, "evaluate", real_evaluate)
  meta = checkpoints.restore_meta(
    checkpoints.managers(tmp_path)[checkpoints.LATEST]
  )
  assert meta.completed_stages == ("cnn",) and meta.stage == "cnn"
  saved_step = meta.step

  train_lib.train_and_evaluate(tiny_config(), tmp_path, builder=tiny_builder)
  lines = [
    json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
  ]
  steps = [l["step"] for l in lines if l["split"] == "train"]
  assert steps == sorted(set(steps)) and steps[1] == saved_step
  # The resumed run ends exactly where an uninterrupted one does.
  a, _ = checkpoints.restore(*checkpoints.resolve(workdir))
  b, _ = checkpoints.restore(*checkpoints.resolve(tmp_path))
  for x, y in zip(_flat(a), _flat(b)):
    np.testing.assert_array_equal(x, y)


def _cnn_modules_changed(before: dict, after: dict) -> dict[str, bool]:
  """{CNN module: whether any of its params or BatchNorm statistics differ}."""
  changed = {}
  for collection in ("params", "batch_stats"):
    for name, tree in before[collection]["cnn"].items():
      pairs = zip(_flat(tree), _flat(after[collection]["cnn"][name]))
      changed[name] = changed.get(name, False) or any(
        not np.array_equal(x, y) for x, y in pairs
      )
  return changed


def test_init_from_without_the_cnn_stage_keeps_the_cnn(
  trained, tiny_builder, tmp_path
):
  workdir, _ = trained
  config = tiny_config()
  config.init_from = str(workdir)
  config.stages = ("rnn",)
  train_lib.train_and_evaluate(config, tmp_path, builder=tiny_builder)
  source, _ = checkpoints.restore(*checkpoints.resolve(workdir))
  result, _ = checkpoints.restore(*checkpoints.resolve(tmp_path))
  assert not any(_cnn_modules_changed(source, result).values())
  lines = [
    json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
  ]
  assert {l["stage"] for l in lines} == {"rnn"}


def test_init_from_fine_tunes_the_cnn_except_frozen_blocks(
  trained, tiny_builder, tmp_path
):
  workdir, _ = trained
  config = tiny_config()
  config.init_from = str(workdir)
  # Fig. 3: input BatchNorm + first conv, second conv.
  config.model.frozen_blocks = 2
  config.cnn.learning_rate = 1e-4
  train_lib.train_and_evaluate(config, tmp_path, builder=tiny_builder)
  source, _ = checkpoints.restore(*checkpoints.resolve(workdir))
  result, _ = checkpoints.restore(*checkpoints.resolve(tmp_path))
  assert _cnn_modules_changed(source, result) == {
    "BatchNorm_0": False,
    "Conv_0": False,
    "Conv_1": False,
    "Conv_2": True,
    "features": True,
    "va": True,
  }
  assert _trained_epochs(tmp_path) == [
    "cnn",
    "cnn",
    "rnn",
    "rnn",
  ]


def test_init_from_another_cnn_is_refused(trained, tiny_builder, tmp_path):
  workdir, _ = trained
  config = tiny_config()
  config.init_from = str(workdir)
  config.model.filters = (8, 8, 8)
  with pytest.raises(
    ValueError, match="init_from: .* fig3 CNN of other shapes"
  ):
    train_lib.train_and_evaluate(config, tmp_path, builder=tiny_builder)


def test_joint_stage_fine_tunes_cnn_and_gru_together(
  trained, tiny_builder, tmp_path
):
  workdir, _ = trained
  config = tiny_config()
  config.stages = ("cnn", "rnn", "joint")
  final = train_lib.train_and_evaluate(config, tmp_path, builder=tiny_builder)
  assert np.isfinite(final["loss"])
  assert _trained_epochs(tmp_path) == [
    "cnn",
    "cnn",
    "rnn",
    "rnn",
    "joint",
  ]
  # The two-stage run and this one agree until the joint stage, which moves both
  # parts.
  before, _ = checkpoints.restore(
    *checkpoints.resolve(workdir / "checkpoints" / "latest")
  )
  after, _ = checkpoints.restore(
    *checkpoints.resolve(tmp_path / "checkpoints" / "latest")
  )
  for part in ("cnn", "rnn"):
    assert any(
      not np.array_equal(x, y)
      for x, y in zip(
        _flat(before["params"][part]), _flat(after["params"][part])
      )
    )


@pytest.mark.parametrize(
  "field,value,message",
  [
    ("cnn.learning_rate", -1e-3, "cnn.learning_rate must be positive"),
    (
      "rnn.num_epochs",
      -1,
      "rnn.num_epochs and rnn.batch_size must be at least 1",
    ),
    (
      "cnn.batch_size",
      0,
      "cnn.num_epochs and cnn.batch_size must be at least 1",
    ),
    ("model.rnn_hidden_sizes", (), "rnn_hidden_sizes must be one or more"),
    ("stages", ("rnn",), "CNN would stay at its random initialisation"),
    ("data.split_ratios", (0, 0, 0), "split_ratios must be 3 positive numbers"),
    (
      "data.num_labelled_frames",
      0,
      "data.num_labelled_frames must be at least 1",
    ),
    ("data.image_size", 128, "cannot exceed data.crop_size"),
    ("eval_batch_size", 0, "eval_batch_size must be at least 1"),
    (
      "data.image_size",
      16,
      "data.image_size must be at least 28 for the fig3 CNN",
    ),
    ("model.cnn", "resnet", "model.cnn must be one of fig3, mini_xception"),
    ("model.frozen_blocks", 4, "frozen_blocks must be between 0 and 3"),
    (
      "model.frozen_blocks",
      1,
      "frozen_blocks keeps CNN blocks as loaded: set init_from",
    ),
    (
      "model.class_prototypes",
      ((0.0, 0.0),),
      "zero-shot classifier, which is not trained",
    ),
    (
      "compute_dtype",
      "float16",
      "compute_dtype must be one of float32, bfloat16",
    ),
    (
      "loss.distill_weight",
      1.0,
      "distill_weight keeps what a pretrained classifier knows: set init_from",
    ),
    ("loss.distill_weight", -1.0, "distill_weight must be >= 0"),
    (
      "data.neutral_onset_frames",
      5,
      "neutral_onset_frames must be 0 or at least data.window_length",
    ),
    ("data.grayscale", "bt709", "grayscale must be one of mean_rgb, luma"),
    (
      "data.crop_interpolation",
      "cubic",
      "crop_interpolation must be one of area, linear",
    ),
    ("data.face_margin_px", -1, "face_margin_px must be 0 or more"),
    ("data.face_margin_px", 10, "set data.align_faces=False"),
    ("data.face_detector", "cascade.xml", "or the absolute path of an OpenCV"),
    (
      "data.face_detector",
      "/nonexistent.xml",
      "nonexistent.xml: not an OpenCV",
    ),
    ("optimizer", "rmsprop", "optimizer must be one of adam, sgd"),
    ("lr_schedule", "linear", "lr_schedule must be one of constant, cosine"),
    ("warmup_epochs", -1.0, "warmup_epochs must be a finite number"),
  ],
)
def test_configs_that_cannot_train_stop_before_anything_runs(
  field, value, message, tmp_path
):
  config = tiny_config()
  *parents, leaf = field.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value
  with pytest.raises(ValueError, match=message):
    train_lib.train_and_evaluate(config, tmp_path / "run", builder=object())
  assert not (tmp_path / "run").exists()
  config_checks.check_config(tiny_config())  # The tests' own config passes.


def test_a_diverging_run_stops_instead_of_saving_nan(tiny_builder, tmp_path):
  config = tiny_config()
  config.cnn.learning_rate, config.warmup_epochs, config.lr_schedule = (
    1e12,
    0.0,
    "constant",
  )
  with pytest.raises(FloatingPointError, match="training diverged"):
    train_lib.train_and_evaluate(config, tmp_path, builder=tiny_builder)
  assert not list((tmp_path / "checkpoints" / "best").glob("[0-9]*"))


def _trained_epochs(workdir) -> list[str]:
  """The stage of each training epoch logged in metrics.jsonl, in order."""
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [
    record["stage"]
    for record in map(json.loads, lines)
    if record["split"] == "train"
  ]


def _settled_batch_stats(config, variables: dict, frames) -> dict:
  """`variables` whose CNN BatchNorm averages are those of `frames`, as a
  pretrained network's are of its data (Keras momentum 0.99: 400 passes)."""
  cnn = model_lib.build_cnn(config)
  settle = jax.jit(
    lambda v, x: cnn.apply(
      v,
      x,
      train=True,
      mutable=["batch_stats"],
      rngs={"dropout": jax.random.PRNGKey(0)},
    )[1]
  )
  cnn_variables = model_lib.cnn_variables(variables)
  for _ in range(400):
    cnn_variables = {**cnn_variables, **settle(cnn_variables, frames)}
  batch_stats = jax.tree_util.tree_map(np.asarray, cnn_variables["batch_stats"])
  return {
    "params": variables["params"],
    "batch_stats": {**variables["batch_stats"], "cnn": batch_stats},
  }


def test_learning_without_forgetting_keeps_the_classifiers_outputs():
  """Fine-tuned on valence-arousal alone, a pretrained classifier's outputs
  drift; with loss.distill_weight they stay near those recorded before."""
  config = tiny_config()
  config.model.cnn = "mini_xception"
  config.cnn.learning_rate = 3e-3
  rng = np.random.default_rng(0)
  windows = {
    "frames": rng.integers(0, 256, (8, 4, 32, 32, 1), np.uint8),
    "labels": rng.uniform(-1, 1, (8, 4, 2)).astype(np.float32),
    "video_id": np.arange(8),
    "emotion": np.zeros(8, np.int64),
  }
  variables = _settled_batch_stats(
    config,
    model_lib.init_variables(config, jax.random.PRNGKey(0), 4),
    windows["frames"].reshape(32, 32, 32, 1),
  )
  teacher = model_lib.cnn_variables(variables)
  logits_fn = model_lib.class_logits_fn(model_lib.build_cnn(config))
  drift = {}
  for weight in (0.0, 1.0):
    config.loss.distill_weight = weight
    data = train_lib.stage_data("cnn", config, variables, windows, teacher)
    assert data["labels"].shape == (32, 9 if weight else 2)
    _, state = steps.stage_state(
      "cnn", config, variables, num_steps=60, rng=jax.random.PRNGKey(1)
    )
    batch = {"inputs": data["inputs"], "labels": data["labels"]}
    for _ in range(60):
      state, batch_metrics = steps.jitted_train_step()(state, batch)
    assert float(batch_metrics["loss"]) < 0.5  # Valence-arousal was learnt.
    tuned = {"params": state.params, "batch_stats": state.batch_stats}
    drift[weight] = float(
      losses_lib.distillation_loss(
        logits_fn(tuned, data["inputs"]),
        logits_fn(teacher, data["inputs"]),
        config.loss.distill_temperature,
      )
    )
  assert drift[1.0] < 0.5 * drift[0.0], drift


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_init_from_that_is_no_checkpoint_names_how_to_make_one(kind, tmp_path):
  config = tiny_config()
  config.init_from = str(tmp_path / "fer")
  if kind == "file":
    (tmp_path / "fer").write_text("weights")
  with pytest.raises(
    ValueError,
    match=(
      r"init_from: .*fer (does not exist|is a file); .*varec\.pretrained fer"
    ),
  ):
    # Refused before the data: this builder is never touched.
    train_lib.train_and_evaluate(config, tmp_path / "run", builder=object())
