"""Evaluates a trained checkpoint on its run's validation and test speakers.

    python eval.py --checkpoint=workdir/demo
    python eval.py --checkpoint=workdir/demo --split=test --output=/tmp/eval

The checkpoint carries the config, the dataset name and the speaker split, so
nothing else is needed. Writes metrics.json, videos.csv, frames.csv and the
paper's figures (Figs. 4-7) into --output (default: <workdir>/eval).
"""

import pathlib
import sys

from absl import app
from absl import flags

from varec import checkpoints
from varec import evaluation
from varec import train_lib

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A train.py workdir (its best checkpoint) "
                                  "or a checkpoint folder.", required=True)
_SPLIT = flags.DEFINE_list("split", ["validation", "test"],
                           f"Splits to evaluate, from {', '.join(evaluation.SPLITS)}.")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder (default: beside the checkpoint).")
_FIGURES = flags.DEFINE_bool("figures", True, "Draw Figs. 4-7.")


def default_output(checkpoint_path: pathlib.Path) -> pathlib.Path:
  """<workdir>/eval for a checkpoint at <workdir>/checkpoints/<best|latest>/<step>."""
  if checkpoint_path.parent.parent.name == "checkpoints":
    return checkpoint_path.parent.parent.parent / "eval"
  return checkpoint_path / "eval"


def main(argv):
  del argv
  train_lib.quiet_library_logs()
  try:
    model, results = evaluation.evaluate(_CHECKPOINT.value, _SPLIT.value)
  except (checkpoints.CheckpointError, evaluation.EvaluationError) as e:
    sys.exit(f"eval.py: {e}")
  output = pathlib.Path(_OUTPUT.value) if _OUTPUT.value else default_output(model.path)
  written = evaluation.write_outputs(model, results, output, figures=_FIGURES.value)
  print(f"Checkpoint {model.path}")
  print(evaluation.summary(results))
  print(f"Wrote {', '.join(str(p) for p in written['tables'])}")
  if written["figures"]:
    print(f"Figures ({len(written['figures'])}) in {output / 'figures'}, e.g.:")
    for path in written["figures"][:3]:
      print(f"  {path}")


if __name__ == "__main__":
  app.run(main)
