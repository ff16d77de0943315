"""One training epoch of the paper's config (configs/rnn10.py), timed on a GPU.

    python benchmarks/gpu_epoch.py [--output=$OUT/gpu_epoch.json] [--steps=N]

CUDA JAX: pip install -r requirements.txt -r requirements-cuda.txt

Random data sized like ADFES with flip augmentation: a train split of 32
speakers x 10 emotions x 50 labelled frames = 16,000 96x96 frames, i.e. 1,600
windows of 10. Times, compilation apart from the steady state:

- cnn stage: one epoch of 125 steps of 128 frames;
- feature extraction of the 16,000 frames (inference, 512-frame chunks);
- rnn stage: one epoch of 12 steps of 128 windows of 10 feature vectors.

Each step gathers its batch from host memory in shuffled order and copies it
over (`train_lib.train_and_evaluate` now keeps the training set on the device
and gathers there: `benchmarks/gpu_train.py` times that). Prints one JSON
line and writes it to `--output`.

Self-contained, so that it runs on a bare GPU image with the repo copied over:
it needs jax, flax, optax, numpy, absl and varec's `models` and `losses`, not
`train_lib` (whose data imports need ml_collections and TensorFlow Datasets),
and neither the dataset nor a download. Its train step is `train_lib`'s.

Without a GPU it times `--steps` steps (default 3) of each stage and as many
128-frame batches of extraction, and extrapolates the epoch (see "note").
"""

import json
import pathlib
import sys
import time
from typing import Any

from absl import app
from absl import flags
import flax
from flax.training import train_state
import jax
import numpy as np

import compile_clock  # Beside this script.
import optax

# Runs from a bare checkout too (no `pip install -e .`), e.g. on a GPU machine.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from varec import losses  # pylint: disable=g-import-not-at-top
from varec import models  # pylint: disable=g-import-not-at-top

_OUTPUT = flags.DEFINE_string("output",
                              str(pathlib.Path(__file__).parent / "results" / "gpu_epoch.json"),
                              "JSON file to write.")
_STEPS = flags.DEFINE_integer(
    "steps", None, "Steps to time per stage (epoch extrapolated); default: a whole epoch on a "
    "GPU, 3 on a CPU.")

# configs/rnn10.py (base.py's defaults).
IMAGE_SIZE = 96
FILTERS = (64, 128, 256)
NUM_FEATURES = 300
HIDDEN_SIZES = (10,)
BATCH_SIZE = 128  # Frames (cnn stage) or windows (rnn stage).
LEARNING_RATE = 1e-3  # Adam's default in train_lib.
EXTRACT_CHUNK = 512  # train_lib.extract_features: eval_batch_size frames.
WINDOW = 10
TRAIN_FRAMES = 32 * 10 * 50  # Speakers x emotions x labelled frames per video.
CPU_STEPS = 3
# As train_lib.jitted_train_step: XLA:CPU's YNNPACK convolutions train this CNN slowly.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


class TrainState(train_state.TrainState):
  """As `train_lib.TrainState`."""
  batch_stats: Any = None
  rng: jax.Array = None


def train_step(state: TrainState, batch: dict):
  """`train_lib.train_step`: one optimiser step on the CCC loss, with the batch's metrics."""
  rng = jax.random.fold_in(state.rng, state.step)

  def loss_fn(params):
    pred, batch_stats = state.apply_fn(params, state.batch_stats, batch["inputs"], rng)
    return losses.ccc_loss(pred, batch["labels"]), (pred, batch_stats)

  (loss, (pred, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  metrics = {
      "loss": loss,
      "rmse": losses.rmse(pred, batch["labels"]),
      "ccc": losses.ccc(pred, batch["labels"], axis=tuple(range(pred.ndim - 1)))
  }
  return state.apply_gradients(grads=grads, batch_stats=batch_stats), metrics


def _cnn_state(cnn: models.FrameCNN, rng) -> TrainState:
  variables = cnn.init(rng, np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8), train=False)

  def forward(params, batch_stats, inputs, rng):
    (_, va), updates = cnn.apply({
        "params": params,
        "batch_stats": batch_stats
    },
                                 inputs,
                                 train=True,
                                 rngs={"dropout": rng},
                                 mutable=["batch_stats"])
    return va, updates["batch_stats"]

  return TrainState.create(apply_fn=forward,
                           params=variables["params"],
                           tx=optax.adam(LEARNING_RATE),
                           batch_stats=variables["batch_stats"],
                           rng=rng)


def _rnn_state(rnn: models.GRUStack, rng) -> TrainState:
  variables = rnn.init(rng, np.zeros((1, WINDOW, NUM_FEATURES), np.float32))

  def forward(params, batch_stats, inputs, rng):
    del rng
    return rnn.apply({"params": params}, inputs), batch_stats

  return TrainState.create(apply_fn=forward,
                           params=variables["params"],
                           tx=optax.adam(LEARNING_RATE),
                           batch_stats={},
                           rng=rng)


def _time_stage(state: TrainState, inputs: np.ndarray, labels: np.ndarray, steps) -> dict:
  """Compiles with one step, then times `steps` (None: all) steps of one shuffled epoch."""
  options = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
  step_fn = jax.jit(train_step, donate_argnums=0, compiler_options=options)
  order = np.random.default_rng(0).permutation(len(inputs))
  steps_per_epoch = len(inputs) // BATCH_SIZE

  def batch(i):
    idx = np.sort(order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE])
    return {"inputs": inputs[idx], "labels": labels[idx]}

  start = time.perf_counter()
  with compile_clock.CompileClock() as clock:
    state, _ = jax.block_until_ready(step_fn(state, batch(0)))
  first_step_s = time.perf_counter() - start
  steps = steps_per_epoch if steps is None else min(steps, steps_per_epoch)
  start = time.perf_counter()
  metrics = []
  for i in range(steps):
    state, m = step_fn(state, batch(i))
    metrics.append(m)
  # The epoch's mean metrics on the host, as train_and_evaluate logs them.
  loss = float(np.mean(jax.device_get([m["loss"] for m in metrics])))
  step_s = (time.perf_counter() - start) / steps
  return {
      "batch_size": BATCH_SIZE,
      "steps_per_epoch": steps_per_epoch,
      "steps_timed": steps,
      "compile_s": clock.seconds,
      "first_step_s": first_step_s,
      "step_ms": 1e3 * step_s,
      "items_per_s": BATCH_SIZE / step_s,
      "epoch_s": step_s * steps_per_epoch,
      "loss": loss
  }


def _time_extraction(cnn: models.FrameCNN, variables: dict, frames: np.ndarray) -> dict:
  """CNN features of `frames` in chunks, the last one padded, as `train_lib.extract_features`."""
  chunk = min(EXTRACT_CHUNK, len(frames))
  fn = jax.jit(lambda v, x: cnn.apply(v, x, train=False)[0])
  start = time.perf_counter()
  with compile_clock.CompileClock() as clock:
    np.asarray(fn(variables, frames[:chunk]))
  first_chunk_s = time.perf_counter() - start
  start = time.perf_counter()
  for begin in range(0, len(frames), chunk):
    x = frames[begin:begin + chunk]
    pad = chunk - len(x)
    np.asarray(fn(variables, np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x))
  seconds = time.perf_counter() - start
  return {
      "frames": len(frames),
      "chunk": chunk,
      "compile_s": clock.seconds,
      "first_chunk_s": first_chunk_s,
      "items_per_s": len(frames) / seconds,
      "epoch_s": seconds * TRAIN_FRAMES / len(frames)
  }


def main(argv):
  del argv
  start = time.perf_counter()
  backend = jax.default_backend()
  steps = _STEPS.value or (CPU_STEPS if backend == "cpu" else None)
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (TRAIN_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 1), np.uint8)
  frame_labels = rng.uniform(-1, 1, (TRAIN_FRAMES, 2)).astype(np.float32)
  features = rng.standard_normal((TRAIN_FRAMES // WINDOW, WINDOW, NUM_FEATURES), np.float32)
  window_labels = frame_labels.reshape(-1, WINDOW, 2)

  cnn = models.FrameCNN(filters=FILTERS, num_features=NUM_FEATURES)
  cnn_state = _cnn_state(cnn, jax.random.PRNGKey(0))
  cnn_variables = {"params": cnn_state.params, "batch_stats": cnn_state.batch_stats}
  results = {
      "config": "configs/rnn10.py",
      "device": jax.devices()[0].device_kind,
      "backend": backend,
      "jax": jax.__version__,
      "flax": flax.__version__,
      "train_frames": TRAIN_FRAMES,
      "train_windows": TRAIN_FRAMES // WINDOW
  }
  results["extract"] = _time_extraction(cnn, cnn_variables,
                                        frames if steps is None else frames[:steps * BATCH_SIZE])
  results["cnn"] = _time_stage(cnn_state, frames, frame_labels, steps)
  results["rnn"] = _time_stage(_rnn_state(models.GRUStack(HIDDEN_SIZES), jax.random.PRNGKey(1)),
                               features, window_labels, steps)
  whole = all(r["steps_timed"] == r["steps_per_epoch"] for r in (results["cnn"], results["rnn"]))
  if whole and results["extract"]["frames"] == TRAIN_FRAMES:
    results["note"] = "whole epochs timed"
  else:
    results["note"] = (f"{'no GPU: ' if backend == 'cpu' else ''}{steps} steps per stage and "
                       f"{results['extract']['frames']} frames of extraction timed; epoch_s "
                       "extrapolated")
  stats = jax.devices()[0].memory_stats()
  if stats and "peak_bytes_in_use" in stats:
    results["peak_memory_gib"] = stats["peak_bytes_in_use"] / 2**30
  results["total_s"] = time.perf_counter() - start
  line = json.dumps(results)
  print(line)
  output = pathlib.Path(_OUTPUT.value)
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(line + "\n")


if __name__ == "__main__":
  app.run(main)
