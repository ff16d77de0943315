"""Valence-arousal trajectory and emotion for any video, with a trained checkpoint.

    python predict.py --checkpoint=workdir/demo --video=face.mp4 [--output=out] [--annotate]
    python predict.py --checkpoint=workdir/demo --video=folder_of_videos/

Writes, per video, into <output>/<video name>/: frames.csv (frame, time, face
found, face box, valence, arousal, nearest emotion), summary.json (majority
emotion, PN group, mean valence/arousal, share of frames with a face),
trajectory.png, and with --annotate annotated.mp4. A bad file is reported and
skipped; the other files of a folder still finish, and the exit status is 1.
"""

import json
import pathlib
import sys

from absl import app
from absl import flags

from varec import checkpoints
from varec import predictor as predictor_lib
from varec import preprocessing
from varec import train_lib
from varec import video_dataset

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A train.py workdir or checkpoint folder.",
                                  required=True)
_VIDEO = flags.DEFINE_string("video", None, "A video file or a folder of videos.", required=True)
_OUTPUT = flags.DEFINE_string("output", "predictions", "Output folder.")
_ANNOTATE = flags.DEFINE_bool("annotate", False, "Also write an annotated MP4 per video.")


def video_files(path: pathlib.Path) -> list[pathlib.Path]:
  if path.is_dir():
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and p.suffix.lower() in video_dataset.VIDEO_EXTENSIONS)
  return [path]


def main(argv):
  del argv
  train_lib.quiet_library_logs()
  try:
    predictor = predictor_lib.Predictor.from_checkpoint(_CHECKPOINT.value)
  except checkpoints.CheckpointError as e:
    sys.exit(f"predict.py: {e}")
  source = pathlib.Path(_VIDEO.value)
  if not source.exists():
    sys.exit(f"predict.py: {source} does not exist")
  files = video_files(source)
  if not files:
    sys.exit(f"predict.py: no video file ({', '.join(sorted(video_dataset.VIDEO_EXTENSIONS))}) "
             f"in {source}")
  failed = []
  for path in files:
    out = pathlib.Path(_OUTPUT.value) / (path.relative_to(source).with_suffix("").as_posix()
                                         .replace("/", "__") if source.is_dir() else path.stem)
    try:
      predictor.predict_video(path, out, annotate=_ANNOTATE.value)
    except preprocessing.VideoError as e:
      failed.append(str(e))
      print(f"SKIPPED {e}", file=sys.stderr)
      continue
    summary = json.loads((out / "summary.json").read_text())
    print(f"{path}: {summary['emotion']} ({summary['pn_group']}), mean valence "
          f"{summary['mean_valence']:+.2f}, arousal {summary['mean_arousal']:+.2f}, face in "
          f"{summary['face_share']:.0%} of {summary['frames']} frames -> {out}")
  if failed:
    print(f"{len(failed)} of {len(files)} video(s) failed:", *failed, sep="\n  ", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
