"""Where does video accuracy go? The model's own decisions vs probes on its CNN
features.

    python benchmarks/feature_probe.py --checkpoint=workdir/demo

For the validation and test speakers of a trained run, compares the video
accuracy of (1) the model itself (GRU valence-arousal -> nearest Table 2
prototype -> majority vote), (2) a ridge regression from the CNN's 300-d
features to valence-arousal, decided the same way, and (3) a logistic
regression from the same features straight to the emotion. Probes are fit on
the run's training speakers' labelled frames. If (3) is far above (1) and (2),
the features tell the emotions apart and the 2-d valence-arousal bottleneck
with nearest-prototype decisions is what loses accuracy.
Writes benchmarks/results/feature_probe.{json,md}.
"""

import os

from absl import app
from absl import flags
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from varec import inference
from varec.data import input_pipeline
from varec import decisions
from varec import metrics

import report  # benchmarks/report.py

_CHECKPOINT = flags.DEFINE_string(
  "checkpoint", "workdir/demo", "Trained checkpoint (make demo)."
)

# Two of the decisions compared, as the table names them.
MODEL = "model (GRU valence-arousal, nearest prototype)"
RIDGE = "ridge on CNN features (valence-arousal, nearest prototype)"


def _video_accuracy(frame_emotions: np.ndarray, windows: dict) -> float:
  """Accuracy of the paper's vote over each video's windows' frame emotions."""
  ids = windows["video_id"]
  videos = np.unique(ids)
  voted = [
    decisions.video_vote(frame_emotions[ids == v].ravel()) for v in videos
  ]
  true = [windows["emotion"][ids == v][0] for v in videos]
  return metrics.accuracy(np.array(true), np.array(voted))


def main(argv):
  del argv
  model = inference.TrainedModel.load(_CHECKPOINT.value)
  prototypes = model.label_space.prototype_array()
  windows, _ = input_pipeline.load_windows(model.config)
  predictor = inference.VideoPredictor(model)
  splits = {}
  for split, data in windows.items():
    t = data["frames"].shape[1]
    features = predictor.engine.window_features(data["frames"])
    splits[split] = {
      "features": features.reshape(-1, features.shape[-1]),
      "labels": data["labels"].reshape(-1, 2),
      "frame_emotion": np.repeat(data["emotion"], t),
      "windows": data,
    }
  train = splits["train"]
  scaler = StandardScaler().fit(train["features"])
  ridge = Ridge(alpha=1e4).fit(
    scaler.transform(train["features"]), train["labels"]
  )
  logistic = LogisticRegression(max_iter=2000).fit(
    scaler.transform(train["features"]), train["frame_emotion"]
  )
  results = {
    "checkpoint": os.path.relpath(model.path),
    "speakers": model.meta.speakers,
    "splits": {},
  }
  for split in ("validation", "test"):
    s = splits[split]
    x = scaler.transform(s["features"])
    by_frame = {
      MODEL: decisions.nearest_emotion(
        predictor.predict_windows(s["windows"]["frames"]).reshape(-1, 2),
        prototypes,
      ),
      RIDGE: decisions.nearest_emotion(
        ridge.predict(x).astype(np.float32), prototypes
      ),
      "logistic regression on CNN features (emotion)": logistic.predict(x),
    }
    w = s["windows"]
    results["splits"][split] = {
      name: _video_accuracy(d.reshape(len(w["video_id"]), -1), w)
      for name, d in by_frame.items()
    }
  lines = [
    f"Checkpoint `{results['checkpoint']}`; video accuracy over "
    "labelled frames.",
    "",
    "| decision | validation | test |",
    "|---|---|---|",
  ]
  for name in results["splits"]["validation"]:
    lines.append(
      f"| {name} | {results['splits']['validation'][name]:.3f} | "
      f"{results['splits']['test'][name]:.3f} |"
    )
  report.write("feature_probe", results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
