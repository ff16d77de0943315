"""Training and prediction speed of this checkout against another, in one run.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_commits.py --before=/tmp/before \
        --checkpoints=workdir/demo [--rounds=3]

Runs `training_benchmark.py` and `prediction_benchmark.py` of each checkout
in turn (before, after, before, after, ...), each in its own process with
its own code on the path, so both see the same machine load; writes the
median of each measurement and the ratio after/before to
benchmarks/results/compare_commits.{json,md}.
"""

import json
import os
import pathlib
import subprocess
import sys

from absl import app
from absl import flags
import numpy as np

import report  # benchmarks/report.py

_BEFORE = flags.DEFINE_string(
  "before", None, "A checkout of the earlier commit."
)
_CHECKPOINTS = flags.DEFINE_list(
  "checkpoints", ["workdir/demo"], "Checkpoints for the prediction benchmark."
)
_CONFIGS = flags.DEFINE_list(
  "configs", ["demo", "real_faces"], "Configs for the training benchmark."
)
_MINUTES = flags.DEFINE_string("minutes", "1", "Prediction video length.")
_ROUNDS = flags.DEFINE_integer(
  "rounds", 3, "Alternations of the two checkouts."
)

AFTER = pathlib.Path(__file__).resolve().parent.parent


def _run(tree: pathlib.Path, script: str, args: list[str]) -> dict:
  """Runs benchmarks/<script> of `tree` and returns the results JSON it
  wrote."""
  env = {**os.environ, "PYTHONPATH": str(tree)}
  subprocess.run(
    [sys.executable, f"benchmarks/{script}.py", *args],
    cwd=tree,
    env=env,
    check=True,
    stdout=subprocess.DEVNULL,
  )
  name = {
    "training_benchmark": "training",
    "prediction_benchmark": "prediction",
  }
  return json.loads(
    (tree / "benchmarks" / "results" / f"{name[script]}.json").read_text()
  )


def _training_rates(results: dict) -> dict[str, float]:
  rates = {}
  for config in results["runs"]:
    for stage in ("cnn", "extract", "rnn", "joint"):
      if stage in config and "per_s" in config[stage]:
        rates[f"training {config['config']} {stage}"] = config[stage]["per_s"]
  return rates


def _prediction_rates(results: dict) -> dict[str, float]:
  return {
    f"prediction {pathlib.Path(r['checkpoint']).name} "
    f"align={r['align_faces']}": r["frames_per_second"]
    for r in results["runs"]
  }


def main(argv):
  del argv
  before = pathlib.Path(_BEFORE.value).resolve()
  checkpoints = [str(pathlib.Path(c).resolve()) for c in _CHECKPOINTS.value]
  measured = {"before": {}, "after": {}}
  for _ in range(_ROUNDS.value):
    for label, tree in (("before", before), ("after", AFTER)):
      training = _run(
        tree, "training_benchmark", [f"--configs={','.join(_CONFIGS.value)}"]
      )
      prediction = _run(
        tree,
        "prediction_benchmark",
        [
          f"--checkpoints={','.join(checkpoints)}",
          f"--minutes={_MINUTES.value}",
        ],
      )
      rates = {**_training_rates(training), **_prediction_rates(prediction)}
      for key, value in rates.items():
        measured[label].setdefault(key, []).append(value)
  rows, results = (
    [],
    {"rounds": _ROUNDS.value, "before": str(before), "rates": {}},
  )
  for key in measured["after"]:
    old = float(np.median(measured["before"].get(key, [np.nan])))
    new = float(np.median(measured["after"][key]))
    results["rates"][key] = {"before": old, "after": new, "ratio": new / old}
    rows.append(f"| {key} | {old:.4g} | {new:.4g} | {new / old:.2f} |")
  markdown = "\n".join(
    [
      "# This checkout against an earlier commit, same run",
      "",
      f"Median of {_ROUNDS.value} alternating rounds of "
      f"`training_benchmark.py` (configs {', '.join(_CONFIGS.value)}) and "
      f"`prediction_benchmark.py` ({_MINUTES.value}-minute video) of each "
      "checkout; units as in training.md (frames/s or windows/s) and "
      "prediction.md (frames/s). A ratio above 1: this checkout is faster.",
      "",
      "| measurement | before | after | after / before |",
      "|---|---|---|---|",
      *rows,
    ]
  )
  report.write("compare_commits", results, markdown)


if __name__ == "__main__":
  flags.mark_flag_as_required("before")
  app.run(main)
