"""varec.steps: the stages' train states, optimizer, loss and train step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from varec import emotions
from varec import losses as losses_lib
from varec import model_lib
from varec import models
from varec import steps

from tests.helpers import tiny_config


@pytest.mark.parametrize(
  "stage_name,compute_dtype",
  [
    ("cnn", "float32"),
    ("rnn", "float32"),
    ("joint", "float32"),
    ("cnn", "bfloat16"),
  ],
)
def test_a_tiny_model_overfits_a_tiny_batch(stage_name, compute_dtype):
  config = tiny_config()
  config.compute_dtype = compute_dtype
  rng = np.random.default_rng(0)
  labels = np.array(
    [[-0.4, 0.8], [0.95, 0.12], [0.0, 0.0], [-0.5, -0.86]], np.float32
  )
  if stage_name == "cnn":
    inputs = rng.integers(0, 256, (8, 32, 32, 1), dtype=np.uint8)
    batch_labels = np.tile(labels, (2, 1))
  elif stage_name == "rnn":
    inputs = rng.normal(size=(8, 10, 16)).astype(np.float32)
    batch_labels = np.repeat(np.tile(labels, (2, 1))[:, None], 10, axis=1)
  else:
    inputs = rng.integers(0, 256, (8, 10, 32, 32, 1), dtype=np.uint8)
    batch_labels = np.repeat(np.tile(labels, (2, 1))[:, None], 10, axis=1)
  variables = model_lib.init_variables(config, jax.random.PRNGKey(0), 10)
  config.cnn.learning_rate = config.rnn.learning_rate = (
    config.joint.learning_rate
  ) = 3e-3
  _, state = steps.stage_state(
    stage_name, config, variables, num_steps=100, rng=jax.random.PRNGKey(1)
  )
  batch = {"inputs": inputs, "labels": batch_labels}
  losses = []
  for _ in range(60):
    state, m = steps.jitted_train_step()(state, batch)
    losses.append(float(m["loss"]))
  assert losses[0] > 0.7
  assert min(losses[-5:]) < 0.3, losses[::10]


def test_optimizer_settings():
  config = tiny_config()
  config.optimizer = "sgd"
  config.momentum, config.sgd_decay, config.cnn.learning_rate = 0.0, 0.5, 0.1
  config.lr_schedule, config.warmup_epochs = "constant", 0.0
  tx = steps.make_optimizer(config, config.cnn, 10)
  params = {"w": jnp.zeros(())}
  state = tx.init(params)
  sizes = []
  for _ in range(3):  # Keras' decay: the rate at step t is 0.1 / (1 + 0.5 t).
    updates, state = tx.update({"w": jnp.ones(())}, state)
    sizes.append(-float(updates["w"]))
  np.testing.assert_allclose(sizes, [0.1, 0.1 / 1.5, 0.1 / 2], rtol=1e-6)
  config.optimizer = "rmsprop"
  with pytest.raises(ValueError, match="unknown optimizer"):
    steps.make_optimizer(config, config.cnn, 10)


def test_frozen_labels_name_the_leading_blocks():
  config = tiny_config()
  config.model.frozen_blocks = 1
  params = model_lib.init_variables(config, jax.random.PRNGKey(0), 2)["params"]
  labels = steps.frozen_labels(params, model_lib.build_cnn(config), ("cnn",))
  assert labels["cnn"]["BatchNorm_0"] == {"scale": "frozen", "bias": "frozen"}
  assert labels["cnn"]["Conv_0"]["kernel"] == "frozen"
  assert labels["cnn"]["Conv_1"]["kernel"] == "train"
  assert set(jax.tree_util.tree_leaves(labels["rnn"])) == {"train"}


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_learning_rate_warms_up_then_follows_the_schedule(schedule):
  config = tiny_config()
  config.lr_schedule, config.cnn.learning_rate = schedule, 0.1
  params = {"w": jnp.zeros(())}
  tx = steps.make_optimizer(config, config.cnn, steps=30, warmup_steps=10)
  state, lrs = tx.init(params), []
  # With a constant gradient, each Adam step moves by the learning rate.
  for _ in range(30):
    updates, state = tx.update({"w": jnp.ones(())}, state, params)
    lrs.append(-float(updates["w"]))
  np.testing.assert_allclose(
    lrs[:11], np.linspace(0, 0.1, 11), rtol=1e-4, atol=1e-7
  )
  if schedule == "constant":
    np.testing.assert_allclose(lrs[10:], 0.1, rtol=1e-5)
  else:
    assert lrs[10] == pytest.approx(0.1, rel=1e-3) and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_training_loss_is_eq9_unless_the_prototype_term_is_on():
  config = tiny_config()
  config.loss.prototype_weight = 0.0
  prototypes = emotions.TABLE2.prototype_array()
  assert steps.make_loss(config, prototypes) is losses_lib.ccc_loss
  config.loss.prototype_weight = 0.5
  rng = np.random.default_rng(0)
  labels = prototypes[rng.integers(0, len(prototypes), 32)]
  pred = rng.uniform(-1, 1, (32, 2)).astype(np.float32)
  expected = losses_lib.ccc_loss(
    pred, labels
  ) + 0.5 * losses_lib.prototype_cross_entropy(
    pred, labels, prototypes, config.loss.prototype_temperature
  )
  np.testing.assert_allclose(
    steps.make_loss(config, prototypes)(pred, labels), expected, rtol=1e-6
  )


def test_train_step_minimises_the_states_loss():
  config = tiny_config()
  variables = model_lib.init_variables(config, jax.random.PRNGKey(0), 10)
  new_state = lambda: steps.stage_state(
    "rnn", config, variables, num_steps=10, rng=jax.random.PRNGKey(1)
  )[1]
  batch = {
    "inputs": np.random.default_rng(0)
    .normal(size=(4, 10, 16))
    .astype(np.float32),
    "labels": np.repeat(
      emotions.TABLE2.prototype_array()[:4, None], 10, axis=1
    ),
  }
  # No gradient: the parameters must not move.
  flat = lambda pred, labels: 0.0 * jnp.sum(pred)
  state = new_state().replace(loss_fn=flat)
  after, _ = steps.jitted_train_step()(state, batch)
  jax.tree_util.tree_map(
    np.testing.assert_array_equal, state.params, after.params
  )
  state = new_state()
  after, _ = steps.jitted_train_step()(state, batch)
  assert any(
    not np.array_equal(a, b)
    for a, b in zip(
      jax.tree_util.tree_leaves(state.params),
      jax.tree_util.tree_leaves(after.params),
    )
  )


def test_the_probe_stage_trains_only_the_head():
  """LP-FT's linear probe: every CNN block as it was, the feature layer and
  head trained."""
  config = tiny_config()
  config.probe.learning_rate = 3e-3
  variables = model_lib.init_variables(config, jax.random.PRNGKey(0), 2)
  _, state = steps.stage_state(
    "probe", config, variables, num_steps=10, rng=jax.random.PRNGKey(1)
  )
  rng = np.random.default_rng(0)
  batch = {
    "inputs": rng.integers(0, 256, (8, 32, 32, 1), np.uint8),
    "labels": rng.uniform(-1, 1, (8, 2)).astype(np.float32),
  }
  before = state.params
  for _ in range(3):
    state, _ = steps.jitted_train_step()(state, batch)
  cnn = model_lib.build_cnn(config)
  for name, value in before.items():
    moved = any(
      not np.array_equal(a, b)
      for a, b in zip(
        jax.tree_util.tree_leaves(value),
        jax.tree_util.tree_leaves(state.params[name]),
      )
    )
    in_block = models.block_index(cnn, name) is not None
    assert moved != in_block, name
