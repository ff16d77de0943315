"""Evaluation of a checkpoint on its own speaker split: the decisions of §3.2,
the metrics of §4.4 and Table 3, and the figures of §5.

`evaluate` computes; `write_outputs` writes metrics.json, videos.csv,
frames.csv and the figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import re
import shutil

import cv2
import numpy as np
import pandas as pd

from varec import emotions
from varec import files
from varec import html_report
from varec import inference
from varec import metrics
from varec import plots
from varec import video_report
from varec import workdir as workdir_lib
from varec.data import input_pipeline
from varec.data import pool

SPLITS = ("train", "validation", "test", "train+validation", "all")
# Data fields that say which videos to read and how they are labelled; every other
# preprocessing field belongs to the model and always comes from its checkpoint.
DATASET_FIELDS = (
  "name",
  "builder_config",
  "data_dir",
  "manual_dir",
  "follow_symlinks",
  "prototypes_csv",
  "orientations",
  "faces_cropped",
  "num_labelled_frames",
)


class EvaluationError(Exception):
  """Something that stops an evaluation; the message says what to do."""


def split_speakers(meta: dict, split: str) -> list[str]:
  """Speakers of a split of the checkpoint's run; "a+b" joins splits, "all" is every one."""
  if split == "all":
    return [s for members in meta["speakers"].values() for s in members]
  names = split.split("+")
  unknown = [n for n in names if n not in meta["speakers"]]
  if unknown:
    raise EvaluationError(
      f"unknown split {split!r}; choose from {', '.join(SPLITS)}"
    )
  return [s for n in names for s in meta["speakers"][n]]


@dataclasses.dataclass
class SplitResult:
  split: str
  metrics: dict
  videos: pd.DataFrame  # One row per video.
  frames: pd.DataFrame  # One row per frame.
  # Each video's model input frames (T, S, S, 1), in the order of `videos`.
  inputs: list = dataclasses.field(default_factory=list, repr=False)


def decide(
  pred: np.ndarray,
  labelled: np.ndarray,
  label_space: emotions.LabelSpace,
  decision: str = "vote",
  prototypes: np.ndarray | None = None,
):
  """(per-frame emotion, video emotion, vote counts) of one video.

  Each frame takes the nearest of `prototypes` (default: every emotion's;
  a model's own are `TrainedModel.decision_prototypes`). The video decides
  over its labelled frames (the last 50), as in training: by the paper's
  majority vote, or by `metrics.intensity_vote` (`decision`, one of
  `metrics.DECISIONS`).
  """
  if prototypes is None:
    prototypes = label_space.prototype_array()
  nearest = metrics.frame_emotions(pred, prototypes)
  voting = labelled if labelled.any() else np.ones(len(nearest), bool)
  voters = nearest[voting]
  if decision == "intensity":
    vote, _ = metrics.intensity_vote(
      voters,
      pred[voting],
      label_space.neutral_point(),
      label_space.neutral_index,
    )
  elif decision == "vote":
    vote = metrics.video_vote(voters)
  else:
    raise ValueError(
      f"decision must be one of {', '.join(metrics.DECISIONS)}, got {decision!r}"
    )
  return nearest, vote, np.bincount(voters, minlength=len(prototypes))


def split_metrics(
  true, voted, frame_pred, frame_labels, label_space: emotions.LabelSpace
) -> dict:
  """Table 3's video-level scores, frame-level CCC/RMSE, and per-emotion scores."""
  num_classes = len(label_space.emotions)
  precision, recall = metrics.macro_precision_recall(true, voted, num_classes)
  per_p, per_r = metrics.per_class_precision_recall(true, voted, num_classes)
  frame = metrics.va_metrics(frame_pred, frame_labels)
  counts = np.bincount(true, minlength=num_classes)
  return {
    "videos": int(len(true)),
    "accuracy": metrics.accuracy(true, voted),
    "macro_precision": precision,
    "macro_recall": recall,
    "pn_accuracy": metrics.pn_accuracy(true, voted, label_space.groups),
    **{
      f"frame_{k}": float(frame[k])
      for k in ("ccc_valence", "ccc_arousal", "rmse_valence", "rmse_arousal")
    },
    "per_emotion": {
      e: {
        "videos": int(counts[i]),
        "precision": float(per_p[i]),
        "recall": float(per_r[i]),
      }
      for i, e in enumerate(label_space.emotions)
    },
    "confusion_matrix": metrics.confusion_matrix(
      true, voted, num_classes
    ).tolist(),
  }


def evaluate_videos(
  model: inference.TrainedModel,
  predictor: inference.VideoPredictor,
  videos: list[dict],
  split: str,
  decision: str = "vote",
) -> SplitResult:
  """Decisions, metrics and tables of `videos` (emotions as class indices of the model's);
  the callers make sure there is at least one."""
  preds = predictor.predict_videos([v["frames"] for v in videos])
  names = model.label_space.emotions
  video_rows, frame_rows, true, voted = [], [], [], []
  for video, pred in zip(videos, preds):
    nearest, vote, counts = decide(
      pred,
      video["labelled"],
      model.label_space,
      decision,
      model.decision_prototypes,
    )
    true.append(int(video["emotion"]))
    voted.append(vote)
    video_rows.append(
      {
        "split": split,
        "video": video["video_id"],
        "speaker": video["speaker"],
        "true_emotion": names[true[-1]],
        "predicted_emotion": names[vote],
        "correct": true[-1] == vote,
        **{f"votes_{e}": int(c) for e, c in zip(names, counts)},
      }
    )
    frame_rows.append(
      pd.DataFrame(
        {
          "split": split,
          "video": video["video_id"],
          "frame": np.arange(len(pred)),
          "valence": pred[:, 0],
          "arousal": pred[:, 1],
          "nearest_emotion": np.asarray(names)[nearest],
          "labelled": video["labelled"],
        }
      )
    )
  labelled = np.concatenate([v["labelled"] for v in videos])
  frame_pred = np.concatenate(preds)[labelled][:, :2]
  frame_labels = np.concatenate([v["labels"] for v in videos])[labelled]
  return SplitResult(
    split,
    {
      "decision": decision,
      "flip_average": predictor.engine.flip_average,
      **split_metrics(
        np.array(true),
        np.array(voted),
        frame_pred,
        frame_labels,
        model.label_space,
      ),
    },
    pd.DataFrame(video_rows),
    pd.concat(frame_rows, ignore_index=True),
    [v["frames"] for v in videos],
  )


def evaluate_split(
  model: inference.TrainedModel,
  predictor: inference.VideoPredictor,
  builder,
  split: str,
  decision: str = "vote",
) -> SplitResult:
  speakers = split_speakers(model.meta, split)
  videos = input_pipeline.load_videos(model.config, speakers, builder)
  if not videos:
    raise EvaluationError(
      f"split {split!r} has no videos (speakers: {', '.join(speakers) or 'none'})"
    )
  return evaluate_videos(model, predictor, videos, split, decision)


def evaluate(
  checkpoint,
  splits=("validation", "test"),
  builder=None,
  window_policy: str = "tiled",
  decision: str = "vote",
  flip_average: bool | None = None,
) -> tuple[inference.TrainedModel, list[SplitResult]]:
  """Evaluates a checkpoint on the given splits of its own run, with the given window policy
  (`inference.WINDOW_POLICIES`), video decision (`metrics.DECISIONS`) and
  mirror-image averaging (`inference.Engine`; None = the checkpoint's)."""
  model = inference.TrainedModel.load(checkpoint)
  if not any(model.meta["speakers"].values()):
    raise EvaluationError(
      f"{model.path} was not trained by varec (a pretrained CNN: {model.meta.get('stage')}), "
      "so it has no speaker split of its own: evaluate it on a dataset, e.g. "
      "--data.name=video_folder --data.manual_dir=/path/to/videos"
    )
  builder = builder or input_pipeline.get_builder(
    model.config.data, model.label_space
  )
  if not builder.is_prepared():
    raise EvaluationError(
      f"dataset {model.config.data.name!r} is not built in {builder.data_dir}; build it with: "
      f"{input_pipeline.build_command(model.config.data)}"
    )
  input_pipeline.check_preprocessing(builder)
  dataset_space = input_pipeline.label_space(builder)
  if dataset_space != model.label_space:
    raise EvaluationError(
      f"the dataset in {builder.data_dir} has the emotions {', '.join(dataset_space.emotions)}, "
      f"the checkpoint {', '.join(model.label_space.emotions)}: evaluate on the dataset it was "
      "trained on"
    )
  predictor = inference.VideoPredictor(model, window_policy, flip_average)
  return model, [
    evaluate_split(model, predictor, builder, s, decision) for s in splits
  ]


def cross_dataset_config(model: inference.TrainedModel, overrides: dict):
  """The checkpoint's config reading another dataset: `overrides` of its data fields.

  Raises:
    EvaluationError: an override of a preprocessing field, which the model fixes.
  """
  model_fields = sorted(set(overrides) - set(DATASET_FIELDS))
  if model_fields:
    raise EvaluationError(
      f"--data.{', --data.'.join(model_fields)}: the preprocessing of the model's input comes "
      f"from its checkpoint; only {', '.join(DATASET_FIELDS)} describe another dataset"
    )
  config = model.config.copy_and_resolve_references()
  config.data.update(overrides)
  if (
    "prototypes_csv" not in overrides
    and not input_pipeline.accepts_prototypes_csv(config.data.name)
  ):
    config.data.prototypes_csv = None
  config.data.flip_augment = False  # Every video once, as recorded.
  return config


def relabel(
  videos: list[dict], source: emotions.LabelSpace, target: emotions.LabelSpace
) -> tuple[list[dict], dict[str, int]]:
  """Videos with their emotions as `target`'s class indices and labels as its prototypes;
  and {emotion: videos} of those whose emotion `target` does not have, left out."""
  kept, left_out = [], {}
  prototypes = target.prototype_array()
  for video in videos:
    name = source.emotions[int(video["emotion"])]
    try:
      index = target.index(name)
    except ValueError:
      left_out[name] = left_out.get(name, 0) + 1
      continue
    kept.append(
      {
        **video,
        "emotion": index,
        "labels": np.tile(prototypes[index], (len(video["labels"]), 1)),
      }
    )
  return kept, left_out


def evaluate_cross_dataset(
  checkpoint,
  overrides: dict,
  window_policy: str = "tiled",
  decision: str = "vote",
  flip_average: bool | None = None,
) -> tuple[inference.TrainedModel, list[SplitResult]]:
  """Evaluates a checkpoint on every video of another dataset, as the one split `all`.

  `overrides` are data-config fields naming the dataset (e.g. name, manual_dir);
  the dataset is built with the checkpoint's preprocessing if it is not yet.
  Emotions the checkpoint does not know are left out, and counted in the
  split's metrics as `left_out`.
  """
  model = inference.TrainedModel.load(checkpoint)
  config = cross_dataset_config(model, overrides)
  try:
    builder = input_pipeline.ensure_built(config.data)
  except (FileNotFoundError, ValueError) as e:
    raise EvaluationError(
      f"cannot build the dataset to evaluate on: {e}"
    ) from e
  source = input_pipeline.label_space(builder)
  examples = input_pipeline.prepare_examples(
    input_pipeline.read_split(builder, "videos", config.data.orientations),
    config.data,
  )
  videos, left_out = relabel(examples, source, model.label_space)
  if not videos:
    raise EvaluationError(
      f"none of the {len(examples)} videos of {config.data.name} has an emotion of the "
      f"checkpoint's ({', '.join(model.label_space.emotions)}); left out: {left_out}"
    )
  result = evaluate_videos(
    model,
    inference.VideoPredictor(model, window_policy, flip_average),
    videos,
    "all",
    decision,
  )
  result.metrics["left_out"] = left_out
  result.metrics["dataset"] = {k: config.data[k] for k in DATASET_FIELDS}
  return model, [result]


def file_name(text: str) -> str:
  """`text` as a file or folder name: runs of other characters become one underscore."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def write_outputs(
  model: inference.TrainedModel,
  results: list[SplitResult],
  output,
  figures: bool = True,
) -> dict[str, list[pathlib.Path]]:
  """Writes metrics.json, videos.csv, frames.csv and (optionally) the figures."""
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
  return {"tables": tables, "figures": pool.run_calls(calls)}


def _write_tables(
  model: inference.TrainedModel, results: list[SplitResult], output
) -> list[pathlib.Path]:
  """metrics.json, videos.csv and frames.csv, keeping earlier runs' other splits."""
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
  r: SplitResult, space: emotions.LabelSpace, fig_dir: pathlib.Path
) -> list[tuple]:
  """The (plot function, arguments) that draw Figs. 4 and 5 of one split, then
  Fig. 6 per video and Fig. 7 per emotion (`pool.run_calls`)."""
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
  results: list[SplitResult],
  output,
  figures: list[pathlib.Path],
) -> pathlib.Path:
  """report.html in `output` (`varec.html_report`): the scores, the figures,
  and a page per evaluated video under videos/<split>/<video>/, its player
  the model's input frames."""
  output = pathlib.Path(output)
  index = output / html_report.INDEX
  space, fps = model.label_space, model.config.data.fps
  videos, calls = [], []
  for r in results:
    for video, inputs in zip(r.videos.itertuples(), r.inputs):
      folder = output / "videos" / file_name(r.split) / file_name(video.video)
      frames = r.frames[r.frames["video"] == video.video]
      caption = (
        f"{r.split}, speaker {video.speaker}: true {video.true_emotion}, "
        f"predicted {video.predicted_emotion} "
        f"({'correct' if video.correct else 'wrong'}); the player shows the "
        "model's input frames"
      )
      calls.append(
        (
          _video_page,
          (
            folder,
            space,
            model.decision_prototypes,
            fps,
            video.video,
            frames[["valence", "arousal", "nearest_emotion", "frame"]],
            np.asarray(inputs),
            caption,
            index,
          ),
        )
      )
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
  pool.run_calls(calls)
  return html_report.write_eval_index(output, model, results, figures, videos)


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
  """One evaluated video's page, player (`inputs`, the model's frames) and apex thumbnail."""
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
  person = video_report.person_summary(
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
  """Metrics of the splits an earlier eval of the same checkpoint and dataset wrote into
  `output` and this one does not redo; they are kept. Outputs of another checkpoint or
  dataset are removed, figures included, so that nothing stale sits beside the new ones."""
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


def summary(results: list[SplitResult]) -> str:
  lines = [
    f"{'split':18s} videos  accuracy  macro-P  macro-R  PN-acc  CCC-v  CCC-a"
  ]
  for r in results:
    m = r.metrics
    lines.append(
      f"{r.split:18s} {m['videos']:6d}  {m['accuracy']:8.3f}  {m['macro_precision']:7.3f}  "
      f"{m['macro_recall']:7.3f}  {m['pn_accuracy']:6.3f}  {m['frame_ccc_valence']:5.2f}  "
      f"{m['frame_ccc_arousal']:5.2f}"
    )
  return "\n".join(lines)
