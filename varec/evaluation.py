"""Evaluation of a checkpoint on its own speaker split, or on another dataset:
the decisions of §3.2 and the metrics of §4.4 and Table 3.

`evaluate` computes `SplitResult`s and writes nothing;
`varec.evaluation_outputs` writes them (metrics.json, videos.csv, frames.csv,
the figures of §5, report.html).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from varec import checkpoints
from varec import decisions
from varec import emotions
from varec import inference
from varec import metrics
from varec.data import input_pipeline

SPLITS = ("train", "validation", "test", "train+validation", "all")
# Data fields that say which videos to read and how they are labelled; every
# other preprocessing field belongs to the model and always comes from its
# checkpoint.
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


def split_speakers(meta: checkpoints.CheckpointMeta, split: str) -> list[str]:
  """Speakers of a split of the checkpoint's run; "a+b" joins splits, "all"
  is every one."""
  if split == "all":
    return [s for members in meta.speakers.values() for s in members]
  names = split.split("+")
  unknown = [n for n in names if n not in meta.speakers]
  if unknown:
    raise EvaluationError(
      f"unknown split {split!r}; choose from {', '.join(SPLITS)}"
    )
  return [s for n in names for s in meta.speakers[n]]


@dataclasses.dataclass
class SplitResult:
  split: str
  metrics: dict
  videos: pd.DataFrame  # One row per video.
  frames: pd.DataFrame  # One row per frame.
  # Each video's model input frames (T, S, S, 1), in the order of `videos`.
  inputs: list = dataclasses.field(default_factory=list, repr=False)


def decide(
  pred: np.ndarray, labelled: np.ndarray, rule: decisions.DecisionRule
) -> tuple[np.ndarray, decisions.Decision]:
  """(each frame's emotion, the video's decisions) of one evaluated video.

  Args:
    pred: (T, 2[+C]) the model's outputs per frame.
    labelled: (T,) the frames that decide: the labelled ones (the last 50),
      as in training; all frames when none is labelled.
    rule: how frames and the video are decided (`decisions.DecisionRule`).

  Returns:
    The (T,) per-frame emotions and the `decisions.Decision` of the deciding
    frames.
  """
  nearest = decisions.frame_emotions(pred, rule.prototypes)
  voting = labelled if labelled.any() else np.ones(len(nearest), bool)
  frames = decisions.FaceFrames(
    np.asarray(pred)[voting][:, :2], nearest[voting]
  )
  return nearest, decisions.decide(frames, rule)


def split_metrics(
  true, voted, frame_pred, frame_labels, label_space: emotions.LabelSpace
) -> dict:
  """Table 3's video-level scores, frame-level CCC/RMSE, and per-emotion
  scores."""
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


def _video_tables(
  split: str, video: dict, pred, names, nearest, vote: int, counts
) -> tuple[dict, pd.DataFrame]:
  """One video's row of the videos table, and the table of its frames
  (`nearest`, `vote`: indices into `names`, the model's emotions)."""
  true = int(video["emotion"])
  row = {
    "split": split,
    "video": video["video_id"],
    "speaker": video["speaker"],
    "true_emotion": names[true],
    "predicted_emotion": names[vote],
    "correct": true == vote,
    **{f"votes_{e}": int(c) for e, c in zip(names, counts)},
  }
  frames = pd.DataFrame(
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
  return row, frames


def evaluate_videos(
  model: inference.TrainedModel,
  predictor: inference.VideoPredictor,
  videos: list[dict],
  split: str,
  decision: str = "vote",
) -> SplitResult:
  """Decisions, metrics and tables of `videos` (emotions as class indices of
  the model's); the callers make sure there is at least one."""
  preds = predictor.predict_videos([v["frames"] for v in videos])
  names = model.label_space.emotions
  video_rows, frame_rows, true, voted = [], [], [], []
  rule = decisions.DecisionRule.of(
    model.label_space,
    model.config.data.fps,
    model.decision_prototypes,
    decision,
  )
  for video, pred in zip(videos, preds):
    nearest, decided = decide(pred, video["labelled"], rule)
    vote, counts = decided.emotion, decided.votes
    true.append(int(video["emotion"]))
    voted.append(vote)
    row, frames = _video_tables(
      split, video, pred, names, nearest, vote, counts
    )
    video_rows.append(row)
    frame_rows.append(frames)
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
  """`evaluate_videos` of the videos of a split of the checkpoint's run
  (`SPLITS`)."""
  speakers = split_speakers(model.meta, split)
  videos = input_pipeline.load_videos(model.config, speakers, builder)
  if not videos:
    raise EvaluationError(
      f"split {split!r} has no videos (speakers: "
      f"{', '.join(speakers) or 'none'})"
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
  """Evaluates a checkpoint on the given splits of its own run, with the
  given window policy (`inference.WINDOW_POLICIES`), video decision
  (`decisions.DECISIONS`) and mirror-image averaging (`inference.Engine`;
  None = the checkpoint's)."""
  model = inference.TrainedModel.load(checkpoint)
  if not any(model.meta.speakers.values()):
    raise EvaluationError(
      f"{model.path} was not trained by varec (a pretrained CNN: "
      f"{model.meta.stage}), so it has no speaker split of its own: evaluate "
      "it on a dataset, e.g. --data.name=video_folder "
      "--data.manual_dir=/path/to/videos"
    )
  builder = builder or input_pipeline.get_builder(
    model.config.data, model.label_space
  )
  if not builder.is_prepared():
    raise EvaluationError(
      f"dataset {model.config.data.name!r} is not built in {builder.data_dir}; "
      f"build it with: {input_pipeline.build_command(model.config.data)}"
    )
  input_pipeline.check_preprocessing(builder)
  dataset_space = input_pipeline.label_space(builder)
  if dataset_space != model.label_space:
    raise EvaluationError(
      f"the dataset in {builder.data_dir} has the emotions "
      f"{', '.join(dataset_space.emotions)}, the checkpoint "
      f"{', '.join(model.label_space.emotions)}: evaluate on the dataset it "
      "was trained on"
    )
  predictor = inference.VideoPredictor(model, window_policy, flip_average)
  return model, [
    evaluate_split(model, predictor, builder, s, decision) for s in splits
  ]


def cross_dataset_config(model: inference.TrainedModel, overrides: dict):
  """The checkpoint's config reading another dataset: `overrides` of its data
  fields.

  Raises:
    EvaluationError: an override of a preprocessing field, which the model
    fixes.
  """
  model_fields = sorted(set(overrides) - set(DATASET_FIELDS))
  if model_fields:
    raise EvaluationError(
      f"--data.{', --data.'.join(model_fields)}: the preprocessing of the "
      "model's input comes from its checkpoint; only "
      f"{', '.join(DATASET_FIELDS)} describe another dataset"
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
  """Videos with their emotions as `target`'s class indices and labels as its
  prototypes; and {emotion: videos} of those whose emotion `target` does not
  have, left out."""
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
  """Evaluates a checkpoint on every video of another dataset, as the one split
  `all`.

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
      f"none of the {len(examples)} videos of {config.data.name} has an "
      f"emotion of the checkpoint's ({', '.join(model.label_space.emotions)}); "
      f"left out: {left_out}"
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
