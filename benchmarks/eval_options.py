"""What each evaluation option does, over the runs of a Table 3 workdir.

    python train.py --config=configs/demo.py --config.num_runs=5
    --workdir=workdir/demo_runs
    python benchmarks/eval_options.py --workdirs=workdir/demo_runs

Evaluates every run's best checkpoint on its own test speakers under each option
of eval.py (the same trained models, so differences are the option's alone) and
writes the mean and interquartile range over runs of video accuracy, PN accuracy
and frame CCC to benchmarks/results/eval_options.{json,md}:

- `bounded`: valence-arousal clipped to [-1, 1], the paper's vote, each frame as
  it is (the options below differ from it in one respect each);
- `unbounded`: the outputs as the network gives them (before bounding existed);
- `flip_average`: each frame's CNN output averaged with its mirror image's;
- `intensity`: `--decision=intensity`, the apex phase's vote.

Several workdirs (e.g. recipe variants) each get their rows.
"""

import contextlib

from absl import app
from absl import flags

from varec import evaluation
from varec import inference

import report  # benchmarks/report.py

_WORKDIRS = flags.DEFINE_list(
  "workdirs", ["workdir/demo_runs"], "Table 3 workdirs (run_0, run_1, ...)."
)
_SPLIT = flags.DEFINE_string("split", "test", "Split each run is scored on.")
_NAME = flags.DEFINE_string("name", "eval_options", "Results file name.")

METRICS = ("accuracy", "pn_accuracy", "frame_ccc_valence", "frame_ccc_arousal")


@contextlib.contextmanager
def _unbounded():
  """The engine's outputs as the network gives them, as before bounding."""
  bounded = inference.bounded
  inference.bounded = lambda outputs: outputs
  try:
    yield
  finally:
    inference.bounded = bounded


OPTIONS = {
  "bounded": ({"flip_average": False}, contextlib.nullcontext),
  "unbounded": ({"flip_average": False}, _unbounded),
  "flip_average": ({"flip_average": True}, contextlib.nullcontext),
  "intensity": (
    {"decision": "intensity", "flip_average": False},
    contextlib.nullcontext,
  ),
}


def main(argv):
  del argv
  results = {}
  for workdir in _WORKDIRS.value:
    runs = report.evaluated_runs(workdir)
    rows = {}
    for option, (kwargs, context) in OPTIONS.items():
      per_run = {m: [] for m in METRICS}
      with context():
        for run in runs:
          _, (split,) = evaluation.evaluate(run.root, [_SPLIT.value], **kwargs)
          for m in METRICS:
            per_run[m].append(float(split.metrics[m]))
      rows[option] = {m: report.summary(v) for m, v in per_run.items()}
    results[workdir] = rows
  lines = [
    f"# Evaluation options, {_SPLIT.value} speakers of each run "
    "(mean (IQR) over runs)",
    "",
    "| workdir | option | accuracy | PN accuracy | CCC valence | CCC arousal "
    "| accuracy per run |",
    "|---|---|---|---|---|---|---|",
  ]
  for workdir, rows in results.items():
    for option, row in rows.items():
      cells = [f"{row[m]['mean']:.3f} ({row[m]['iqr']:.3f})" for m in METRICS]
      per_run = ", ".join(f"{v:.3f}" for v in row["accuracy"]["runs"])
      lines.append(
        f"| {workdir} | {option} | {' | '.join(cells)} | {per_run} |"
      )
  report.write(_NAME.value, results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
