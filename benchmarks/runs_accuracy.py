"""Validation and test video accuracy of every run of Table 3 workdirs, side by
side.

    python train.py --config=configs/demo.py --config.num_runs=5
    --workdir=workdir/demo_runs
    python train.py --config=configs/demo.py --config.num_runs=5 \
        --config.augment.max_shading=0 --workdir=workdir/demo_runs_no_shading
    python benchmarks/runs_accuracy.py --name=augmentation \
        --workdirs=workdir/demo_runs_no_shading,workdir/demo_runs

Table 3 pools training and validation speakers, as the paper does; this
scores each run's best checkpoint on its validation and its test speakers
separately, as `eval.py` does (`--[no]flip_average` as eval.py's: the same
models read the other way), and writes the per-run accuracies with their
mean and interquartile range to benchmarks/results/<name>.{json,md}. Workdirs
trained with the same seeds share their speaker splits, so rows compare
configs on the same people.
"""

from absl import app
from absl import flags

from varec import evaluation

import report  # benchmarks/report.py

_WORKDIRS = flags.DEFINE_list(
  "workdirs", ["workdir/demo_runs"], "Table 3 workdirs (run_0, run_1, ...)."
)
_NAME = flags.DEFINE_string("name", "runs_accuracy", "Results file name.")
_FLIP_AVERAGE = flags.DEFINE_bool(
  "flip_average",
  None,
  "Each frame's CNN output averaged with its mirror image's, or not "
  "(--noflip_average); default: as each checkpoint's config.",
)

SPLITS = ("validation", "test")


def main(argv):
  del argv
  results = {}
  for workdir in _WORKDIRS.value:
    runs = report.evaluated_runs(workdir)
    per_split = {split: [] for split in SPLITS}
    for run in runs:
      _, scored = evaluation.evaluate(
        run.root, SPLITS, flip_average=_FLIP_AVERAGE.value
      )
      for split, result in zip(SPLITS, scored):
        per_split[split].append(float(result.metrics["accuracy"]))
    results[workdir] = {s: report.summary(v) for s, v in per_split.items()}
  reading = {
    None: "as each checkpoint's config says",
    True: "mirror-averaged",
    False: "as they are",
  }[_FLIP_AVERAGE.value]
  lines = [
    "# Video accuracy per run: validation and test speakers apart",
    "",
    f"Frames read {reading}.",
    "",
    "| workdir | validation, mean (IQR) | per run | test, mean "
    "(IQR) | per run |",
    "|---|---|---|---|---|",
  ]
  for workdir, row in results.items():
    cells = [
      f"{row[s]['mean']:.3f} ({row[s]['iqr']:.3f}) | "
      + ", ".join(f"{v:.3f}" for v in row[s]["runs"])
      for s in SPLITS
    ]
    lines.append(f"| {workdir} | {' | '.join(cells)} |")
  report.write(_NAME.value, results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
