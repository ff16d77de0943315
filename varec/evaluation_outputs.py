"""Writes an evaluation's `evaluation.SplitResult`s: metrics.json, videos.csv,
frames.csv, the figures of §5 (Figs. 4-7), report.html and the printed summary.

`varec.evaluation` computes the results; this module only writes them.
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
import shutil

import cv2
import numpy as np
import pandas as pd

from varec import emotions
from varec import evaluation
from varec import files
from varec import html_report
from varec import inference
from varec import plots
from varec import video_summary
from varec import workdir as workdir_lib
from varec import workers


def file_name(text: str) -> str:
  """`text` as a file or folder name.

  Args:
    text: a split, video, emotion or dataset name.

  Returns:
    `text` with each run of characters other than letters, digits, `_`, `.`
    and `-` replaced by one underscore.
  """
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def write_outputs(
  model: inference.TrainedModel,
  results: list[evaluation.SplitResult],
  output,
  figures: bool = True,
) -> dict[str, list[pathlib.Path]]:
  """Writes metrics.json, videos.csv, frames.csv and (optionally) the figures.

  Args:
    model: the evaluated checkpoint.
    results: its `evaluation.SplitResult`s.
    output: the folder; splits an earlier evaluation of the same checkpoint
      and dataset wrote there and `results` do not redo are kept.
    figures: whether to draw Figs. 4-7 into `output`/figures.

  Returns:
    {"tables": the files written, "figures": the figures drawn}.
  """
  output = pathlib.Path(output)
  output.mkdir(parents=True, exist_ok=True)
  tables = _write_tables(model, results, output)
  if not figures:
    return {"tables": tables, "figures": []}
  fig_dir = output / "figures"
  calls = [
    c for r in results for c in _split_figures(r, model.label_space, fig_dir)
  ]
  # Matplotlib draws on one core; the figures are independent.
  return {"tables": tables, "figures": workers.run_calls(calls)}


def _write_tables(
  model: inference.TrainedModel, results: list[evaluation.SplitResult], output
) -> list[pathlib.Path]:
  """metrics.json, videos.csv and frames.csv, keeping earlier runs' other
  splits."""
  metrics_file = {
    "checkpoint": str(model.path),
    "dataset": results[0]
    .metrics.get("dataset", {})
    .get("name", model.config.data.name),
    # Row and column order of the confusion matrices.
    "label_space": model.label_space.to_meta(),
    "splits": {r.split: r.metrics for r in results},
  }
  kept = _earlier_splits(output, metrics_file)
  metrics_file["splits"] = {**kept, **metrics_file["splits"]}
  tables = {
    "videos.csv": [r.videos for r in results],
    "frames.csv": [r.frames for r in results],
  }
  for name, frames in tables.items():
    if kept and (output / name).exists():
      earlier = pd.read_csv(output / name)
      frames = [earlier[earlier["split"].isin(kept)]] + frames
    files.write_whole(
      output / name,
      lambda path, f=frames: pd.concat(f).to_csv(
        path, index=False, float_format="%.5f"
      ),
    )
  # Last: metrics.json names the splits the other files hold.
  files.write_whole(
    output / workdir_lib.EVAL_METRICS,
    lambda path: path.write_text(json.dumps(metrics_file, indent=2) + "\n"),
  )
  return [
    output / workdir_lib.EVAL_METRICS,
    output / "videos.csv",
    output / "frames.csv",
  ]


def _split_figures(
  r: evaluation.SplitResult, space: emotions.LabelSpace, fig_dir: pathlib.Path
) -> list[tuple]:
  """The (plot function, arguments) that draw Figs. 4 and 5 of one split, then
  Fig. 6 per video and Fig. 7 per emotion (`workers.run_calls`)."""
  split = file_name(r.split)
  calls = [
    (
      plots.confusion_matrix,
      (
        np.asarray(r.metrics["confusion_matrix"]),
        space,
        f"{r.split}: accuracy {r.metrics['accuracy']:.2f}, PN accuracy "
        f"{r.metrics['pn_accuracy']:.2f}",
        fig_dir / f"fig4_confusion_{split}.png",
      ),
    )
  ]
  frames = r.frames[r.frames["labelled"]].merge(
    r.videos[["video", "true_emotion", "correct"]], on="video"
  )
  calls.append(
    (
      plots.output_distribution,
      (
        frames[["valence", "arousal"]].to_numpy(),
        frames["true_emotion"].map(space.emotions.index).to_numpy(),
        frames["correct"].to_numpy(),
        space,
        f"{r.split}: labelled frames' outputs by true emotion",
        fig_dir / f"fig5_distribution_{split}.png",
      ),
    )
  )
  return calls + _trajectory_figures(r, space, fig_dir)


def _trajectory_figures(
  r: evaluation.SplitResult, space: emotions.LabelSpace, fig_dir: pathlib.Path
) -> list[tuple]:
  """The (plot function, arguments) that draw Fig. 6 of each video of one split,
  then Fig. 7 of each emotion (`workers.run_calls`)."""
  split = file_name(r.split)
  calls = []
  by_emotion: dict[str, dict[str, np.ndarray]] = {}
  for video in r.videos.itertuples():
    f = r.frames[r.frames["video"] == video.video]
    va = f[["valence", "arousal"]].to_numpy()
    calls.append(
      (
        plots.trajectory,
        (
          [
            plots.Trajectory(
              va,
              f["nearest_emotion"].map(space.emotions.index).to_numpy(),
              f"{video.video}\ntrue {video.true_emotion}, predicted "
              f"{video.predicted_emotion}",
              labelled=f["labelled"].to_numpy(),
            )
          ],
          space,
          fig_dir / "fig6" / split / f"{file_name(video.video)}.png",
        ),
      )
    )
    curves = by_emotion.setdefault(video.true_emotion, {})
    # A speaker with several videos of one emotion (head orientations) gets
    # one curve each.
    curves[video.speaker if video.speaker not in curves else video.video] = va
  for emotion, trajectories in by_emotion.items():
    calls.append(
      (
        plots.emotion_trajectories,
        (
          trajectories,
          space,
          f"{r.split}: {emotion}, all speakers",
          fig_dir / "fig7" / split / f"{file_name(emotion)}.png",
        ),
      )
    )
  return calls


def write_report(
  model: inference.TrainedModel,
  results: list[evaluation.SplitResult],
  output,
  figures: list[pathlib.Path],
) -> pathlib.Path:
  """Writes report.html (`varec.html_report`): the scores, the figures, and a
  page per evaluated video under videos/<split>/<video>/, its player the
  model's input frames.

  Args:
    model: the evaluated checkpoint.
    results: its `evaluation.SplitResult`s.
    output: the folder (`write_outputs`').
    figures: the figures `write_outputs` drew.

  Returns:
    The path of report.html.
  """
  output = pathlib.Path(output)
  index = output / html_report.INDEX
  videos, calls = [], []
  for r in results:
    for video, inputs in zip(r.videos.itertuples(), r.inputs):
      folder = output / "videos" / file_name(r.split) / file_name(video.video)
      calls.append(_page_call(model, r, video, inputs, folder, index))
      videos.append(
        {
          "split": r.split,
          "video": video.video,
          "speaker": video.speaker,
          "true": video.true_emotion,
          "predicted": video.predicted_emotion,
          "correct": video.correct,
          "folder": folder,
        }
      )
  # Each page encodes its video player (VP9): one per core.
  workers.run_calls(calls)
  return html_report.write_eval_index(output, model, results, figures, videos)


def _page_call(
  model: inference.TrainedModel,
  r: evaluation.SplitResult,
  video,
  inputs,
  folder: pathlib.Path,
  index: pathlib.Path,
) -> tuple:
  """The (`_video_page`, arguments) that write the page of `video`, a row of
  `r.videos`, into `folder` (`workers.run_calls`)."""
  frames = r.frames[r.frames["video"] == video.video]
  caption = (
    f"{r.split}, speaker {video.speaker}: true {video.true_emotion}, "
    f"predicted {video.predicted_emotion} "
    f"({'correct' if video.correct else 'wrong'}); the player shows the "
    "model's input frames"
  )
  return (
    _video_page,
    (
      folder,
      model.label_space,
      model.decision_prototypes,
      model.config.data.fps,
      video.video,
      frames[["valence", "arousal", "nearest_emotion", "frame"]],
      np.asarray(inputs),
      caption,
      index,
    ),
  )


def _video_page(
  folder: pathlib.Path,
  space: emotions.LabelSpace,
  decision_prototypes,
  fps: float,
  video: str,
  frames: pd.DataFrame,
  inputs: np.ndarray,
  caption: str,
  index: pathlib.Path,
) -> None:
  """One evaluated video's page, player (`inputs`, the model's frames) and
  apex thumbnail."""
  folder.mkdir(parents=True, exist_ok=True)
  va = frames[["valence", "arousal"]].to_numpy()
  frame_index = frames["frame"].to_numpy()
  arrays = (
    va,
    frames["nearest_emotion"].map(space.emotions.index).to_numpy(),
    frame_index,
    frame_index / fps,
    None,  # No facial activity: the apex phase by valence-arousal.
  )
  person = video_summary.person_summary(
    space, decision_prototypes, fps, arrays, len(frames)
  )
  gray = inputs[..., 0]
  if gray.dtype != np.uint8:  # Frames in [0, 1].
    gray = np.clip(np.round(gray * 255), 0, 255).astype(np.uint8)
  html_report.write_gray_player(folder / html_report.PLAYER, gray, fps)
  side = html_report.THUMBNAIL_SIDE
  cv2.imwrite(
    str(folder / html_report.thumbnail(0)),
    cv2.resize(gray[person["apex"]["frame"]], (side, side)),
  )
  html_report.write_page(
    folder,
    {
      "video": video,
      "fps": fps,
      "frames": len(frames),
      "people": [{"person": 0, **person}],
    },
    {0: (arrays[3], va)},
    space,
    index,
    caption=caption,
  )


def _earlier_splits(output: pathlib.Path, metrics_file: dict) -> dict:
  """Metrics of the splits an earlier eval of the same checkpoint and dataset
  wrote into `output` and this one does not redo; they are kept. Outputs of
  another checkpoint or dataset are removed, figures included, so that
  nothing stale sits beside the new ones."""
  path = output / workdir_lib.EVAL_METRICS
  if not path.exists():
    return {}
  try:
    earlier = json.loads(path.read_text())
    same = all(
      earlier.get(k) == metrics_file[k]
      for k in ("checkpoint", "dataset", "label_space")
    )
  except (json.JSONDecodeError, AttributeError):
    same = False
  if same:
    return {
      k: v
      for k, v in earlier["splits"].items()
      if k not in metrics_file["splits"]
    }
  logging.warning(
    "%s holds the evaluation of another checkpoint or dataset; replacing it",
    output,
  )
  for name in (workdir_lib.EVAL_METRICS, "videos.csv", "frames.csv"):
    (output / name).unlink(missing_ok=True)
  shutil.rmtree(output / "figures", ignore_errors=True)
  return {}


def summary(results: list[evaluation.SplitResult]) -> str:
  """The scores of each split as a text table (eval.py and train.py print it).

  Args:
    results: `evaluation.SplitResult`s.

  Returns:
    One line per split, under a header line.
  """
  lines = [
    f"{'split':18s} videos  accuracy  macro-P  macro-R  PN-acc  CCC-v  CCC-a"
  ]
  for r in results:
    m = r.metrics
    lines.append(
      f"{r.split:18s} {m['videos']:6d}  {m['accuracy']:8.3f}  "
      f"{m['macro_precision']:7.3f}  {m['macro_recall']:7.3f}  "
      f"{m['pn_accuracy']:6.3f}  {m['frame_ccc_valence']:5.2f}  "
      f"{m['frame_ccc_arousal']:5.2f}"
    )
  return "\n".join(lines)
