"""The paper's config end to end, timed phase by phase: build, train, evaluate.

    python benchmarks/gpu_train.py                 # on a GPU: configs/rnn10.py,
    100 + 100 epochs
    python benchmarks/gpu_train.py --runlocal      # anywhere: the small set,
    48x48, 1 + 2 epochs

CUDA JAX: pip install -r requirements.txt -r requirements-cuda.txt. On a bare
GPU image that has JAX but not varec's other requirements, gather them here
with `bash benchmarks/device_wheels.sh` and install them there as its header
says (this project's `device` machine: carry `.whl`).

What it runs is what `tfds build`, `train.py` and `eval.py` run, in one
process so that the device's peak memory covers all of it:

1. build: the embedded `synthetic_adfes` dataset (default config: 22 actors,
   96x96 crops), preprocessed by `VAREC_WORKERS` processes (default: every
   core); skipped when --data_dir already holds the build;
2. train: `configs/rnn10.py` on it, cnn then rnn stage, with validation and
   checkpoints every epoch, into --workdir (emptied first);
3. evaluate: `eval.py`'s evaluation of the best checkpoint on validation and
   test, with its outputs (tables, confusion matrices, figures).

Writes benchmarks/results/gpu_train.json and .md (--runlocal: into --workdir)
with the wall time of each phase, each stage's compilation (what its first
step takes beyond a steady one),
steady epoch time and steps/s (from the run's `timings.json`), the device's
peak memory (`memory_stats`, GPU only) and the run's validation and test
scores. `train_wall_s` counts both stages, compilation, validation and
checkpoints included, the build and the final evaluation excluded.

JAX's GPU allocator is set to allocate on demand (XLA_PYTHON_CLIENT_PREALLOCATE
=false) unless the environment says otherwise, so that the peak is what
varec uses, not the 75% JAX reserves by default.
"""

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# pylint: disable=g-import-not-at-top,wrong-import-position
import json
import pathlib
import shutil
import sys
import time

from absl import app
from absl import flags
import jax

# Run from a checkout.
sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
import report  # benchmarks/report.py
from configs import rnn10
from varec import evaluation
from varec import evaluation_outputs
from varec.data import input_pipeline
from varec import run_logs
from varec import train_lib
from varec import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string(
  "workdir", "/tmp/varec_gpu_train", "Run folder (emptied first)."
)
_DATA_DIR = flags.DEFINE_string(
  "data_dir", None, "TFDS data dir (default: TFDS's)."
)
_RUNLOCAL = flags.DEFINE_bool(
  "runlocal",
  False,
  "A small run that any machine finishes in "
  "minutes: the 4-actor set at 48x48, 16/32/64 filters, 1 + 2 epochs.",
)
GIB = 2**30


def get_config(runlocal: bool):
  config = rnn10.get_config()
  config.data.name = "synthetic_adfes"
  if runlocal:
    config.data.builder_config = "small"
    config.data.image_size = 48
    config.model.filters = (16, 32, 64)
    config.cnn.num_epochs, config.rnn.num_epochs = 1, 2
  return config


def peak_memory_gib():
  """The device's peak memory in use so far (GiB), or None where JAX does not
  report it (CPU)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / GIB


def main(argv):
  del argv
  config = get_config(_RUNLOCAL.value)
  if _DATA_DIR.value:
    config.data.data_dir = _DATA_DIR.value
  run_logs.quiet_library_logs()
  workdir = workdir_lib.Workdir(_WORKDIR.value)
  shutil.rmtree(workdir, ignore_errors=True)
  device = jax.local_devices()[0]
  results = {
    "device": getattr(device, "device_kind", str(device)),
    "platform": device.platform,
    "devices": jax.device_count(),
    "jax": jax.__version__,
    "cpus": os.cpu_count(),
    "runlocal": _RUNLOCAL.value,
    "config": json.loads(config.to_json()),
  }

  start = time.perf_counter()
  builder = input_pipeline.ensure_built(config.data)
  results["build_s"] = time.perf_counter() - start
  results["build_summary"] = builder.info.metadata["build_summary"]

  start = time.perf_counter()
  final = train_lib.train_and_evaluate(config, workdir)
  results["train_wall_s"] = time.perf_counter() - start
  timings = json.loads(workdir.timings.read_text())
  results["stages"] = timings
  results["cnn_epoch_s"] = timings["cnn"]["steady_epoch_s"]
  results["rnn_epoch_s"] = timings["rnn"]["steady_epoch_s"]
  results["compile_s"] = {name: t["compile_s"] for name, t in timings.items()}
  results["validation_accuracy"] = final["video_accuracy"]
  results["validation"] = final
  results["peak_gpu_memory_gib_training"] = peak_memory_gib()

  start = time.perf_counter()
  model, split_results = evaluation.evaluate(workdir, ("validation", "test"))
  evaluation_outputs.write_outputs(model, split_results, workdir.eval_dir())
  results["eval_s"] = time.perf_counter() - start
  results["eval"] = {
    r.split: {
      k: v
      for k, v in r.metrics.items()
      if k not in ("per_emotion", "confusion_matrix")
    }
    for r in split_results
  }
  results["peak_gpu_memory_gib"] = peak_memory_gib()
  # --runlocal is a smoke test, not a result: kept with the run.
  report.write(
    "gpu_train",
    results,
    markdown(results),
    workdir.root if _RUNLOCAL.value else report.RESULTS,
  )


def _fmt(value, digits=2):
  return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(r: dict) -> str:
  cfg = r["config"]
  runlocal = (
    "; --runlocal (small set, not the paper config)" if r["runlocal"] else ""
  )
  lines = [
    "# The paper's config end to end (`benchmarks/gpu_train.py`)",
    "",
    f"{r['device']} ({r['platform']}, {r['devices']} device(s)), JAX "
    f"{r['jax']}, {r['cpus']} CPU cores{runlocal}. Dataset: synthetic_adfes "
    f"({cfg['data'].get('builder_config') or 'default'}), "
    f"{r['build_summary']['videos']} videos; {cfg['data']['image_size']}x"
    f"{cfg['data']['image_size']} input, filters "
    f"{tuple(cfg['model']['filters'])}, {cfg['cnn']['num_epochs']} cnn + "
    f"{cfg['rnn']['num_epochs']} rnn epochs, batch {cfg['cnn']['batch_size']}.",
    "",
    "| phase | wall time (s) |",
    "|---|---|",
    "| build (generate + preprocess; about 0 when the data dir already held "
    f"it) | {_fmt(r['build_s'], 1)} |",
    f"| train, both stages (compilation, validation, checkpoints included) | "
    f"{_fmt(r['train_wall_s'], 1)} |",
    "| evaluate (validation + test, outputs written) | "
    f"{_fmt(r['eval_s'], 1)} |",
    "",
    "| stage | steps/epoch | first step s | compilation s (its excess) | "
    "steady epoch s | steps/s | validation s (all epochs) | checkpoints s | "
    "stage total s |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for name, t in r["stages"].items():
    lines.append(
      f"| {name} | {t['steps_per_epoch']} | {_fmt(t['first_step_s'])} | "
      f"{_fmt(t['compile_s'])} | {_fmt(t['steady_epoch_s'], 3)} | "
      f"{_fmt(t['steps_per_s'], 1)} | {_fmt(t['validation_s'])} | "
      f"{_fmt(t['checkpoint_s'])} | {_fmt(t['total_s'], 1)} |"
    )
  peak = r["peak_gpu_memory_gib"]
  lines += [
    "",
    f"Peak device memory: {_fmt(peak)} GiB"
    f"{' (not reported on CPU)' if peak is None else ''}. Validation video "
    f"accuracy {r['validation_accuracy']:.3f}; test accuracy "
    f"{r['eval']['test']['accuracy']:.3f}, PN accuracy "
    f"{r['eval']['test']['pn_accuracy']:.3f}.",
  ]
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
