"""Training and inference speed of each stage, on random data of the right
shapes.

    python benchmarks/training_benchmark.py [--configs=demo,rnn10,rnn10_10_5
    --steps=20]

Runs what train.py runs (`steps.stage_state`, `jitted_train_step()`,
`Engine.window_features`) at each
stage's batch size from the config, compiled first, then timed:

- cnn: train frames/s (128 frames a step);
- extract: `Engine.window_features` (inference) frames/s, its compile excluded;
- rnn: train windows/s (128 windows of 10 feature vectors);
- joint: CNN+GRU train windows/s (16 windows of 10 frames).

Writes benchmarks/results/training.{json,md}. For varec against PyTorch,
measured side by side in one process, see benchmarks/compare_pytorch.py.
"""

import importlib
import json
import os
import platform
import time
from typing import Any
from unittest import mock

from absl import app
from absl import flags
import flax
from flax import linen as nn
import jax
import numpy as np

import compile_clock  # Beside this script.

from varec import inference
from varec import model_lib
from varec import models
from varec import steps
from varec.preprocess import config as preprocess_config

import report  # benchmarks/report.py

_CONFIGS = flags.DEFINE_list(
  "configs",
  ["demo@16-32-64", "demo", "rnn10", "rnn10_10_5", "real_faces"],
  "Modules of configs/; name@a-b-c overrides the CNN filters (16-32-64: the "
  "size benchmarks/compare_pytorch.py compares with PyTorch).",
)
_STEPS = flags.DEFINE_integer(
  "steps", 20, "Timed steps per stage at 48x48 and of every rnn stage."
)
_PAPER_STEPS = flags.DEFINE_integer(
  "paper_steps",
  3,
  "Timed steps of the cnn and joint stages at 96x96 (a few seconds each).",
)
_ABLATION_CONFIGS = flags.DEFINE_list(
  "ablation_configs",
  ["demo"],
  "Configs whose cnn stage is also timed with YNNPACK convolutions on and with "
  "nn.max_pool.",
)
WINDOW = preprocess_config.PreprocessConfig().window_length
# Timed steps are split into rounds (calls, for extraction): a busy machine
# slows some rounds down, so the median round is reported, and the best one
# beside it.
ROUNDS = 5
EXTRACT_CALLS = 2
UNITS = {
  "cnn": "frames/s",
  "extract": "frames/s",
  "rnn": "windows/s",
  "joint": "windows/s",
}


def _random_batches(stage: str, config, rng: np.random.Generator) -> list[dict]:
  """Two batches shaped like `train_lib.stage_data`'s for `stage`."""
  b, s = config[stage].batch_size, config.data.image_size
  batches = []
  for _ in range(2):
    if stage == "cnn":
      inputs, labels = (
        rng.integers(0, 256, (b, s, s, 1), np.uint8),
        rng.uniform(-1, 1, (b, 2)),
      )
    elif stage == "rnn":
      inputs = rng.standard_normal(
        (b, WINDOW, config.model.num_features), np.float32
      )
      labels = rng.uniform(-1, 1, (b, WINDOW, 2))
    else:
      inputs = rng.integers(0, 256, (b, WINDOW, s, s, 1), np.uint8)
      labels = rng.uniform(-1, 1, (b, WINDOW, 2))
    batches.append({"inputs": inputs, "labels": labels.astype(np.float32)})
  return batches


def _with_teacher_logits(config, variables: dict, batches: list) -> list:
  """A distilling stage's batches (learning without forgetting): labels carry
  the teacher's class logits after (valence, arousal), as
  `train_lib.stage_data` records them; the initial CNN is the teacher here."""
  logits_fn = model_lib.class_logits_fn(model_lib.build_cnn(config))
  teacher = model_lib.cnn_variables(variables)
  return [
    {
      **batch,
      "labels": np.concatenate(
        [batch["labels"], np.asarray(logits_fn(teacher, batch["inputs"]))],
        axis=-1,
      ).astype(np.float32),
    }
    for batch in batches
  ]


def _time_training(
  config, stage_name: str, variables: dict, num_steps: int, step_fn=None
) -> dict:
  """Compiles (with one step), then times `num_steps` optimiser steps on two
  fixed batches."""
  _, state = steps.stage_state(
    stage_name,
    config,
    variables,
    num_steps=num_steps,
    rng=jax.random.PRNGKey(1),
  )
  step_fn = step_fn or steps.jitted_train_step()
  batches = _random_batches(stage_name, config, np.random.default_rng(0))
  if steps.distils(stage_name, config):
    batches = _with_teacher_logits(config, variables, batches)
  start = time.perf_counter()
  with compile_clock.CompileClock() as clock:
    state, metrics = jax.block_until_ready(step_fn(state, batches[0]))
  first = time.perf_counter() - start
  rounds = min(num_steps, ROUNDS)
  seconds = []
  for _ in range(rounds):
    start = time.perf_counter()
    for i in range(num_steps // rounds):
      state, metrics = step_fn(state, batches[i % 2])
    jax.block_until_ready((state, metrics))
    seconds.append((time.perf_counter() - start) / (num_steps // rounds))
  batch = config[stage_name].batch_size
  return {
    "batch_size": batch,
    "steps": rounds * (num_steps // rounds),
    "compile_s": clock.seconds,
    "first_step_s": first,
    "step_ms": 1e3 * float(np.median(seconds)),
    "per_s": batch / float(np.median(seconds)),
    "best_per_s": batch / min(seconds),
    "loss": float(metrics["loss"]),
  }


def _time_extraction(config, variables: dict, num_windows: int) -> dict:
  """`Engine.window_features` on random windows; the first call's compilation
  is timed apart."""
  s = config.data.image_size
  windows = np.random.default_rng(0).integers(
    0, 256, (num_windows, WINDOW, s, s, 1), np.uint8
  )
  calls, compile_s = [], []
  for _ in range(EXTRACT_CALLS):
    start = time.perf_counter()
    with compile_clock.CompileClock() as clock:
      inference.Engine(config, variables, uses_gru=False).window_features(
        windows
      )
    calls.append(time.perf_counter() - start)
    compile_s.append(clock.seconds)
  num_frames = num_windows * WINDOW
  per_s = [num_frames / (call - c) for call, c in zip(calls, compile_s)]
  return {
    "frames": num_frames,
    "batch_size": min(num_frames, config.eval_batch_size),
    "compile_s": float(np.median(compile_s)),
    "call_s": float(np.median(calls)),
    "per_s": float(np.median(per_s)),
    "best_per_s": max(per_s),
  }


class _BatchNormThenConv(nn.Module):
  """`models.NormalizedConv` written plainly: BatchNorm's output through a
  SAME convolution."""

  features: int
  kernel_size: tuple[int, int]
  dtype: Any = np.float32

  @nn.compact
  def __call__(self, x, norm):
    kernel = self.param(
      "kernel",
      models.keras_init,
      self.kernel_size + (x.shape[-1], self.features),
    )
    return jax.lax.conv_general_dilated(
      norm(x).astype(self.dtype),
      kernel.astype(self.dtype),
      (1, 1),
      "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def _ablations(config, variables: dict, num_steps: int, default: dict) -> dict:
  """The cnn stage without each of this repo's XLA:CPU speed-ups, one at a
  time."""
  ynn_on = _time_training(
    config,
    "cnn",
    variables,
    num_steps,
    jax.jit(steps.train_step, donate_argnums=0),
  )
  with mock.patch.object(
    models, "max_pool", lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  ):
    flax_pool = _time_training(config, "cnn", variables, num_steps)
  with mock.patch.object(models, "NormalizedConv", _BatchNormThenConv):
    plain_norm = _time_training(config, "cnn", variables, num_steps)
  runs = {
    "default": default,
    "ynnpack_convolutions_on": ynn_on,
    "flax_max_pool": flax_pool,
    "batch_norm_not_folded": plain_norm,
  }
  return {
    name: {
      "per_s": run["per_s"],
      "speedup_of_default": default["per_s"] / run["per_s"],
    }
    for name, run in runs.items()
  }


def _benchmark_config(name: str, cnn_results: dict) -> dict:
  """All stages of configs/<name>.py; the cnn stage and extraction are shared
  by equal CNNs."""
  module, _, filters = name.partition("@")
  config = importlib.import_module(f"configs.{module}").get_config()
  if filters:
    config.model.filters = tuple(int(f) for f in filters.split("-"))
  paper_size = config.data.image_size >= 96
  num_steps = _PAPER_STEPS.value if paper_size else _STEPS.value
  variables = model_lib.init_variables(config, jax.random.PRNGKey(0), WINDOW)
  m = config.model
  cnn_key = (
    m.cnn,
    m.frozen_blocks,
    config.data.image_size,
    tuple(m.filters),
    m.kernel_size,
    m.num_features,
    config.cnn.batch_size,
    config.eval_batch_size,
  )
  result = {
    "config": name,
    "cnn_kind": m.cnn,
    "frozen_blocks": m.frozen_blocks,
    "image_size": config.data.image_size,
    "filters": list(m.filters),
    "rnn_hidden_sizes": list(m.rnn_hidden_sizes),
  }
  if cnn_key in cnn_results:
    same_as, timings = cnn_results[cnn_key]
    result.update(timings, cnn_same_as=same_as)
  else:
    result["cnn"] = _time_training(config, "cnn", variables, num_steps)
    print(name, "cnn", json.dumps(result["cnn"]))
    # 48x48: twenty whole 512-frame chunks (no padded work); 96x96: one short
    # chunk.
    result["extract"] = _time_extraction(
      config, variables, 32 if paper_size else 1024
    )
    print(name, "extract", json.dumps(result["extract"]))
    cnn_results[cnn_key] = (
      name,
      {"cnn": result["cnn"], "extract": result["extract"]},
    )
  result["rnn"] = _time_training(config, "rnn", variables, _STEPS.value)
  print(name, "rnn", json.dumps(result["rnn"]))
  result["joint"] = _time_training(config, "joint", variables, num_steps)
  print(name, "joint", json.dumps(result["joint"]))
  if name in _ABLATION_CONFIGS.value:
    result["ablations"] = _ablations(
      config, variables, num_steps, result["cnn"]
    )
    print(name, "ablations", json.dumps(result["ablations"]))
  return result


def _rate(per_s: float) -> str:
  return f"{per_s:.0f}" if per_s >= 100 else f"{per_s:.1f}"


def _markdown_header(results: dict) -> list[str]:
  """The title, the setup and, on a busy machine, a warning."""
  load = results["load_average"]
  cpus = results["cpus"]
  lines = [
    "# Training benchmark",
    "",
    f"varec on {results['device']} ({cpus} CPUs, {results['machine']}), JAX "
    f"{results['jax']}, Flax {results['flax']}; random data, batch sizes of "
    "the configs, compiled first, then `steps.jitted_train_step` timed over a "
    "fixed number of steps on two fixed batches (training also gathers and "
    "augments each batch, `steps.jitted_gather`). For varec against PyTorch, "
    "measured side by side, see `compare_pytorch.md`.",
    "",
  ]
  if load["start"][0] >= cpus / 4:
    lines += [
      f"**The machine was busy**: load average {load['start'][0]:.2f} at the "
      f"start and {load['end'][0]:.2f} at the end on {cpus} CPUs (other jobs "
      "shared them), so these are lower bounds.",
      "",
    ]
  return lines


def _input_description(run: dict) -> str:
  """The table's "input, filters" column for one config."""
  size = (
    f"{run['image_size']}x{run['image_size']}, "
    f"{'/'.join(map(str, run['filters']))}"
  )
  if run.get("cnn_kind") == "mini_xception":
    size = f"{run['image_size']}x{run['image_size']}, mini-Xception"
    if run["frozen_blocks"]:
      size += f", first {run['frozen_blocks']} blocks frozen"
  return size


def _stage_rows(results: dict) -> list[str]:
  """The main table: one row per config and stage."""
  lines = [
    "| config | input, filters | stage | batch | varec | varec, best round | "
    "unit | compile s |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for run in results["runs"]:
    size = _input_description(run)
    for stage in ("cnn", "extract", "rnn", "joint"):
      r = run[stage]
      unit = f"windows of {WINDOW}" if stage in ("rnn", "joint") else "frames"
      label = stage
      if stage in ("cnn", "extract") and "cnn_same_as" in run:
        label += f" (= {run['cnn_same_as']})"
      lines.append(
        f"| {run['config']} | {size} | {label} | {r['batch_size']} {unit} | "
        f"{_rate(r['per_s'])} | {_rate(r['best_per_s'])} | "
        f"{UNITS[stage]} | {r['compile_s']:.1f} |"
      )
  return lines


def _ablation_rows(results: dict) -> list[str]:
  """The CNN stage without each speed-up; none when no run has ablations."""
  ablations = [
    (run["config"], name, a)
    for run in results["runs"]
    for name, a in run.get("ablations", {}).items()
  ]
  if not ablations:
    return []
  lines = [
    "",
    "CNN stage without each XLA:CPU speed-up (see the note below):",
    "",
    "| config | variant | frames/s | default is faster by |",
    "|---|---|---|---|",
  ]
  lines += [
    f"| {config} | {name} | {_rate(a['per_s'])} | "
    f"{a['speedup_of_default']:.2f}x |"
    for config, name, a in ablations
  ]
  return lines


def _markdown_notes(results: dict) -> list[str]:
  """The notes on the speed-ups and on what is timed."""
  return [
    "",
    "## Notes",
    "",
    "- XLA:CPU in jaxlib 0.10 hands convolutions to YNNPACK by default. For "
    "this CNN its kernels, the gradients above all, are slower than XLA's own, "
    "so `steps.jitted_train_step` compiles the train step with "
    '`xla_cpu_experimental_ynn_fusion_type=""` on CPU (YNNPACK off). Inference '
    "(`Engine.window_features`, evaluation) keeps it.",
    "- Fig. 3's input BatchNorm is folded into the first convolution "
    "(`models.NormalizedConv`): the same values, and no gradient of that "
    "convolution with respect to the CNN's input, which XLA:CPU computes "
    "slowly for a one-channel input (ablation `batch_norm_not_folded`).",
    "- The gradient of `nn.max_pool` is XLA's select-and-scatter, slow on CPU; "
    "`models.max_pool` computes the same pooling and gradient as a reshape and "
    "max with a custom JVP.",
    "- `Engine.window_features` compiles once per architecture (the compile "
    "column, first call only); frames/s leave that out. It runs in chunks of "
    "up to `eval_batch_size` frames; at 96x96 it is timed on one short chunk.",
    "- Configs with the same CNN (`= config` in the stage column) share the "
    "timing of its stage and of extraction.",
    "- real_faces: the pretrained mini-Xception fine-tuned with its first 2 "
    "blocks frozen (no backward pass through them), as `configs/real_faces.py` "
    "trains it; its depthwise convolutions and 3x3 max pooling are written as "
    "shifted slices (`models.depthwise_conv`, `models.max_pool_same`), as "
    "XLA:CPU's grouped convolution and select-and-scatter are slow.",
    f"- Timed steps: {results['steps']} at 48x48 and for the rnn stage, "
    f"{results['paper_steps']} for the cnn and joint stages at 96x96, in up to "
    f'{ROUNDS} rounds; extraction: {EXTRACT_CALLS} calls. "varec" is the '
    "median round, the next column the fastest; compile s is tracing, lowering "
    f"and XLA compilation. The whole run took {results['total_s']:.0f} s.",
  ]


def _markdown(results: dict) -> str:
  lines = _markdown_header(results)
  lines += _stage_rows(results)
  lines += _ablation_rows(results)
  lines += _markdown_notes(results)
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  load_start = os.getloadavg()
  device = jax.devices()[0]
  results = {
    "jax": jax.__version__,
    "flax": flax.__version__,
    "backend": jax.default_backend(),
    "device": device.device_kind,
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
    "steps": _STEPS.value,
    "paper_steps": _PAPER_STEPS.value,
    "runs": [],
  }
  cnn_results = {}
  start = time.perf_counter()
  for name in _CONFIGS.value:
    results["runs"].append(_benchmark_config(name, cnn_results))
  results["total_s"] = time.perf_counter() - start
  results["load_average"] = {"start": load_start, "end": os.getloadavg()}
  report.write("training", results, _markdown(results))


if __name__ == "__main__":
  app.run(main)
