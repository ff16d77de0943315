"""Evaluates a trained checkpoint on its run's validation and test speakers, or
on every video of another dataset.

    python eval.py --checkpoint=workdir/demo
    python eval.py --checkpoint=workdir/demo --split=test --output=/tmp/eval
    python eval.py --checkpoint=workdir/mine --data.name=video_folder
    --data.manual_dir=other/

The checkpoint carries the config, the dataset name, the speaker split and the
preprocessing, so nothing else is needed. Writes metrics.json, videos.csv,
frames.csv and the paper's figures (Figs. 4-7) into --output (default:
<workdir>/eval). Any --data.* flag (name, manual_dir, data_dir, builder_config,
prototypes_csv, orientations, faces_cropped, num_labelled_frames) evaluates on
another dataset instead: every video of it, as the one split `all`, built with
the checkpoint's preprocessing if needed; emotions the checkpoint does not know
are reported and left out (default output: <workdir>/eval_<dataset>).
"""

import pathlib
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from configs import base
from varec import checkpoints
from varec import cli
from varec import evaluation
from varec import evaluation_outputs
from varec import inference
from varec import decisions
from varec import run_logs
from varec import workdir as workdir_lib

_CHECKPOINT = flags.DEFINE_string(
  "checkpoint",
  None,
  "A train.py workdir (its best checkpoint) or a checkpoint folder.",
  required=True,
)
_SPLIT = flags.DEFINE_list(
  "split",
  None,
  f"Splits to evaluate, from {', '.join(evaluation.SPLITS)} (default: "
  "validation,test; another dataset has only `all`).",
)
_OUTPUT = flags.DEFINE_string(
  "output", None, "Output folder (default: beside the checkpoint)."
)
_FIGURES = flags.DEFINE_bool("figures", True, "Draw Figs. 4-7.")
_REPORT = flags.DEFINE_bool(
  "report",
  True,
  "Write report.html in --output: the scores, the figures and a page per "
  "evaluated video (its input frames as a player beside its trajectory). "
  "--noreport: none.",
)
_WINDOW_POLICY = flags.DEFINE_enum(
  "window_policy",
  "tiled",
  inference.WINDOW_POLICIES,
  "tiled: windows tiled back from the end of each video, as in training (the "
  "paper's); causal: each frame's output from the GRU window ending at it, as "
  "predict.py's default.",
)
_DECISION = flags.DEFINE_enum(
  "decision",
  "vote",
  decisions.DECISIONS,
  "How a video's labelled frames decide its emotion. vote: the paper's "
  "majority of per-frame emotions; intensity: each frame weighted by its "
  "distance from neutral, for clips with a neutral onset (see README, "
  "Real faces).",
)
_FLIP_AVERAGE = flags.DEFINE_bool(
  "flip_average",
  None,
  "Average each frame's CNN output with its mirror image's (test-time "
  "augmentation); --noflip_average: don't. Default: as the checkpoint's "
  "config.flip_average.",
)
_DATA = cli.define_config_dict(
  "data",
  base.get_data_config(),
  "Another dataset to evaluate on: data fields that differ "
  "from the checkpoint's (only the flags given count).",
)


def default_output(
  checkpoint_path: pathlib.Path, dataset: str | None = None
) -> pathlib.Path:
  """<workdir>/eval (or eval_<dataset>) for a checkpoint of a workdir; else
  in the checkpoint."""
  workdir = workdir_lib.Workdir.of_checkpoint(
    checkpoint_path
  ) or workdir_lib.Workdir(checkpoint_path)
  return workdir.eval_dir(
    None if dataset is None else evaluation_outputs.file_name(dataset)
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  run_logs.quiet_library_logs()
  overrides = config_flags.get_override_values(flags.FLAGS["data"])
  dataset = None
  try:
    if overrides:
      if _SPLIT.value not in (None, ["all"]):
        raise evaluation.EvaluationError(
          "another dataset (--data.*) is evaluated as one split, all; "
          "drop --split"
        )
      model, results = evaluation.evaluate_cross_dataset(
        _CHECKPOINT.value,
        overrides,
        _WINDOW_POLICY.value,
        _DECISION.value,
        _FLIP_AVERAGE.value,
      )
      dataset = next(
        (
          pathlib.Path(str(overrides[k])).name
          for k in ("manual_dir", "name", "data_dir")
          if overrides.get(k)
        ),
        "other",
      )
    else:
      model, results = evaluation.evaluate(
        _CHECKPOINT.value,
        _SPLIT.value or ["validation", "test"],
        window_policy=_WINDOW_POLICY.value,
        decision=_DECISION.value,
        flip_average=_FLIP_AVERAGE.value,
      )
  except (checkpoints.CheckpointError, evaluation.EvaluationError) as e:
    sys.exit(f"eval.py: {e}")
  except OSError as e:  # A full disk, a folder it may not write.
    sys.exit(f"eval.py: {cli.os_error(e)}")
  output = (
    pathlib.Path(_OUTPUT.value)
    if _OUTPUT.value
    else default_output(model.path, dataset)
  )
  try:
    written = evaluation_outputs.write_outputs(
      model, results, output, figures=_FIGURES.value
    )
    report = (
      evaluation_outputs.write_report(
        model, results, output, written["figures"]
      )
      if _REPORT.value
      else None
    )
  except OSError as e:
    sys.exit(f"eval.py: {cli.os_error(e)}")
  _print_written(model, results, written, output, report)


def _print_written(model, results, written, output, report) -> None:
  """What was evaluated, the scores, and what `main` wrote where."""
  print(f"Checkpoint {model.path}")
  for r in results:
    if r.metrics.get("left_out"):
      print(
        "Left out (emotions the checkpoint does not know): "
        f"{r.metrics['left_out']}"
      )
  print(evaluation_outputs.summary(results))
  print(f"Wrote {', '.join(str(p) for p in written['tables'])}")
  if written["figures"]:
    print(f"Figures ({len(written['figures'])}) in {output / 'figures'}, e.g.:")
    for path in written["figures"][:3]:
      print(f"  {path}")
  if report is not None:
    print(f"Report: {report}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
