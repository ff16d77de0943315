"""Table 3 of the paper: mean and interquartile range over runs.

Each run reshuffles the speakers (seed + run index), trains, and is evaluated
on training+validation and on test. `train.py --config.num_runs=5` writes the
table for one model configuration; this module's command joins several:

    python -m varec.table3 --workdirs=workdir/rnn10,workdir/rnn10_10_5
    --output=table3
"""

from __future__ import annotations

import json
import pathlib

from absl import app
from absl import flags
import numpy as np
import pandas as pd

from varec import workdir as workdir_lib

ROWS = (
  ("macro_precision", "Average Macro-Precision"),
  ("macro_recall", "Average Macro-Recall"),
  ("accuracy", "Average Accuracy"),
  ("pn_accuracy", "Average PN Accuracy"),
)
COLUMNS = (("train+validation", "Training and Validation"), ("test", "Testing"))
EVAL_SPLITS = tuple(split for split, _ in COLUMNS)


def collect(workdir) -> list[dict]:
  """Per-run {split: metrics} from each run's eval/metrics.json."""
  runs = [
    json.loads(run.eval_metrics.read_text())["splits"]
    for run in workdir_lib.Workdir(workdir).evaluated_runs()
  ]
  if not runs:
    raise FileNotFoundError(
      f"no run_*/eval/metrics.json under {workdir}; train with "
      "`python train.py --config=... --config.num_runs=5 --workdir=...` first"
    )
  return runs


def summarise(runs_by_model: dict[str, list[dict]]) -> pd.DataFrame:
  """Tidy table: model, split, metric, mean, iqr, runs, values."""
  rows = []
  for model, runs in runs_by_model.items():
    for split, _ in COLUMNS:
      for metric, _ in ROWS:
        values = np.array([run[split][metric] for run in runs])
        q1, q3 = np.percentile(values, [25, 75])
        rows.append(
          {
            "model": model,
            "split": split,
            "metric": metric,
            "mean": values.mean(),
            "iqr": q3 - q1,
            "runs": len(values),
            "values": " ".join(f"{v:.4f}" for v in values),
          }
        )
  return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
  """The paper's layout: one row per metric, (model, split) columns, "mean
  (IQR)" cells."""
  models = list(dict.fromkeys(table["model"]))
  header = ["", *[f"{m}: {title}" for m in models for _, title in COLUMNS]]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for metric, title in ROWS:
    cells = [title]
    for model in models:
      for split, _ in COLUMNS:
        row = table[
          (table.model == model)
          & (table.split == split)
          & (table.metric == metric)
        ].iloc[0]
        cells.append(f"{row['mean']:.2f} ({row['iqr']:.2f})")
    lines.append("| " + " | ".join(cells) + " |")
  runs = sorted(set(table["runs"]))
  lines += [
    "",
    f"Mean over {', '.join(map(str, runs))} runs (speakers reshuffled 8:2:1 "
    "each run); interquartile range in brackets.",
  ]
  return "\n".join(lines) + "\n"


def write(
  runs_by_model: dict[str, list[dict]], output
) -> tuple[pathlib.Path, pathlib.Path]:
  output = pathlib.Path(output)
  output.mkdir(parents=True, exist_ok=True)
  table = summarise(runs_by_model)
  table.to_csv(output / "table3.csv", index=False, float_format="%.4f")
  (output / "table3.md").write_text(to_markdown(table))
  return output / "table3.md", output / "table3.csv"


_WORKDIRS = flags.DEFINE_list(
  "workdirs", None, "Multi-run workdirs, one per model configuration."
)
_OUTPUT = flags.DEFINE_string(
  "output", ".", "Folder for table3.md and table3.csv."
)


def main(argv):
  del argv
  md, _ = write(
    {pathlib.Path(w).name: collect(w) for w in _WORKDIRS.value}, _OUTPUT.value
  )
  print(md.read_text())


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdirs"])
  app.run(main)
