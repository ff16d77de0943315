"""What training on neutral onsets (`data.neutral_onset_frames`) changes.

    python train.py --config=configs/demo.py --config.num_runs=5
    --workdir=workdir/onset0
    python train.py --config=configs/demo.py --config.num_runs=5 \
        --config.data.neutral_onset_frames=10 --workdir=workdir/onset10
    python benchmarks/neutral_onset.py --workdirs=workdir/onset0,workdir/onset10

From each run's eval outputs (test speakers: eval/frames.csv, videos.csv,
metrics.json), over runs (mean and IQR): the paper's video accuracy on the
labelled frames; the share of the first `--onset_frames` frames of each
expressive clip (the neutral start, never labelled) that the model calls
neutral; and the accuracy of the whole clip's majority vote, onset included,
neutral left out unless it is all there is (what real clips with a neutral
start ask of a model). Writes benchmarks/results/neutral_onset.{json,md}.
"""

import json
import pathlib

from absl import app
from absl import flags
import numpy as np
import pandas as pd

from varec import workdir as workdir_lib

import report  # benchmarks/report.py

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Table 3 workdirs.")
_ONSET = flags.DEFINE_integer(
  "onset_frames", 10, "Frames of the neutral start."
)
_SPLIT = flags.DEFINE_string("split", "test", "Split scored.")


def _run_scores(run: workdir_lib.Workdir) -> dict:
  eval_dir = run.eval_metrics.parent
  frames = pd.read_csv(eval_dir / "frames.csv")
  videos = pd.read_csv(eval_dir / "videos.csv")
  frames = frames[frames["split"] == _SPLIT.value]
  videos = videos[videos["split"] == _SPLIT.value]
  truth = dict(zip(videos["video"], videos["true_emotion"]))
  onset_neutral, whole_correct = [], []
  for video, group in frames.groupby("video"):
    if truth[video] == "neutral":
      continue
    emotions = group.sort_values("frame")["nearest_emotion"].to_numpy()
    onset_neutral.append(np.mean(emotions[: _ONSET.value] == "neutral"))
    expressive = emotions[emotions != "neutral"]
    votes = pd.Series(
      expressive if len(expressive) else emotions
    ).value_counts()
    whole_correct.append(votes.index[0] == truth[video])
  metrics = json.loads(run.eval_metrics.read_text())["splits"][_SPLIT.value]
  return {
    "accuracy": metrics["accuracy"],
    "onset_called_neutral": float(np.mean(onset_neutral)),
    "whole_clip_accuracy": float(np.mean(whole_correct)),
  }


def main(argv):
  del argv
  results = {}
  for workdir in _WORKDIRS.value:
    runs = [
      _run_scores(r) for r in workdir_lib.Workdir(workdir).evaluated_runs()
    ]
    results[workdir] = {}
    for key in runs[0]:
      values = [r[key] for r in runs]
      q1, q3 = np.percentile(values, [25, 75])
      results[workdir][key] = {
        "mean": float(np.mean(values)),
        "iqr": float(q3 - q1),
        "runs": values,
      }
  keys = ("accuracy", "onset_called_neutral", "whole_clip_accuracy")
  lines = [
    f"# Neutral onsets in training, {_SPLIT.value} speakers (mean "
    "(IQR) over runs)",
    "",
    f"Onset: the first {_ONSET.value} frames of each expressive clip.",
    "",
    "| workdir | video accuracy (labelled frames) | onset frames called "
    "neutral | whole-clip vote accuracy (neutral left out) |",
    "|---|---|---|---|",
  ]
  for workdir, row in results.items():
    cells = [f"{row[k]['mean']:.3f} ({row[k]['iqr']:.3f})" for k in keys]
    lines.append(f"| {pathlib.Path(workdir).name} | {' | '.join(cells)} |")
  report.write("neutral_onset", results, "\n".join(lines))


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdirs"])
  app.run(main)
