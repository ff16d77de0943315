"""Data parallelism: batches shared over 2 CPU devices (gathered and
augmented on them) train like one device."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent

# Runs in a fresh process: the device count is fixed when JAX starts.
SCRIPT = r"""
import jax
import ml_collections
import numpy as np
from tests.helpers import tiny_config
from varec import model_lib
from varec import steps

assert len(jax.devices()) == 2, jax.devices()
config = tiny_config()
config.cnn.learning_rate = 3e-3
rng = np.random.default_rng(0)
inputs = rng.integers(0, 256, (24, 32, 32, 1), np.uint8)
labels = rng.uniform(-1, 1, (24, 2)).astype(np.float32)
# One epoch: 3 steps of 8.
batches = np.sort(rng.permutation(24).reshape(3, 8), axis=1)
variables = model_lib.init_variables(config, jax.random.PRNGKey(0), 2)
params = {}
for devices in (jax.devices()[:1], jax.devices()):
  mesh = steps.data_mesh(devices)
  _, state = steps.stage_state(
      "cnn", config, variables, num_steps=10, rng=jax.random.PRNGKey(1))
  state = steps.replicate(state, mesh)
  gather = steps.jitted_gather(
      mesh, ml_collections.FrozenConfigDict(config.augment))
  on_devices = steps.replicate((inputs, labels), mesh)
  for i, index in enumerate(batches):
    batch = gather(*on_devices, index, jax.random.PRNGKey(i))
    assert len(batch["inputs"].sharding.device_set) == len(devices)
    assert batch["inputs"].addressable_shards[0].data.shape[0] == (
        8 // len(devices))
    state, metrics = steps.jitted_train_step()(state, batch)
    assert np.isfinite(metrics["loss"])
  assert len(
      state.params["Conv_0"]["kernel"].sharding.device_set) == len(devices)
  params[len(devices)] = steps.to_host(
      {"params": state.params, "stats": state.batch_stats})
moved = jax.tree_util.tree_leaves(jax.tree_util.tree_map(
    lambda a, b: np.abs(a - b).max(), params[1]["params"],
    steps.to_host(variables["params"]["cnn"])))
assert max(moved) > 1e-3, moved  # Training changed the parameters...
diffs = jax.tree_util.tree_leaves(jax.tree_util.tree_map(
    lambda a, b: np.abs(a - b).max(), params[1], params[2]))
# ... and the same way on 1 and on 2 devices.
assert max(diffs) < 1e-5, max(diffs)
print("max difference", max(diffs))
"""


def test_two_devices_train_like_one():
  env = {
    **os.environ,
    "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    "JAX_PLATFORMS": "cpu",
  }
  result = subprocess.run(
    [sys.executable, "-c", SCRIPT],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "max difference" in result.stdout
