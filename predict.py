"""Valence-arousal trajectory and emotion for any video, with a trained
checkpoint.

    python predict.py --checkpoint=workdir/demo --video=face.mp4 [--output=out]
    [--annotate]
    python predict.py --checkpoint=workdir/demo --video=folder_of_videos/

Writes, per video, into <output>/<video file name>/ (for a folder: <output>/<the
video's path inside the folder>/, e.g. predictions/a/clip.mp4/, so that no two
videos share a folder): frames.csv (frame, time, person, face found, face box,
valence, arousal, nearest emotion: one row per frame and person); summary.json
(the paper's majority emotion and PN group, the dominant emotion other than
neutral and its share of the frames with a face, the apex of the smoothed
trajectory, emotion segments, mean valence/arousal, share of frames with a face,
and how each decision is made: for the main person, then for each person in
`people`); trajectory.png (valence-arousal plane) and timeline.png (valence and
arousal over time under the segments), a panel per person; and with --annotate
annotated.mp4. Every face is followed as a person of its own (`varec.tracking`;
--max_people=1: the largest face only). --window_policy=causal (default: the GRU
window ending at each frame, streaming) or tiled (eval.py's windows). Real clips
are mostly neutral, so the console line names the dominant emotion first, then
the majority. A bad file is reported and skipped; the other files of a folder
still finish, and the exit status is 1. Each video's outputs are written beside
their folder and moved into place whole, replacing an earlier run's.
"""

import collections
import os
import pathlib
import sys

from absl import app
from absl import flags

from varec import checkpoints
from varec import cli
from varec import html_report
from varec import inference
from varec import locks
from varec import mesh_reader
from varec import predictor as predictor_lib
from varec import run_logs
from varec import tracking
from varec import video_report
from varec import video_summary
from varec.data import discovery
from varec.preprocess import decode

_CHECKPOINT = flags.DEFINE_string(
  "checkpoint", None, "A train.py workdir or checkpoint folder.", required=True
)
_VIDEO = flags.DEFINE_string(
  "video", None, "A video file or a folder of videos.", required=True
)
_OUTPUT = flags.DEFINE_string("output", "predictions", "Output folder.")
_ANNOTATE = flags.DEFINE_bool(
  "annotate", False, "Also write an annotated MP4 per video."
)
_FACES_CROPPED = flags.DEFINE_bool(
  "faces_cropped",
  None,
  "The videos' frames are face crops (no detection in the whole "
  "frame). Default: as the checkpoint's training data.",
)
_WINDOW_POLICY = flags.DEFINE_enum(
  "window_policy",
  "causal",
  inference.WINDOW_POLICIES,
  "causal: each frame's output from the GRU window ending at it (streaming, "
  "constant memory); tiled: eval.py's windows, tiled back from the end of each "
  "stretch of frames with a face.",
)

_FLIP_AVERAGE = flags.DEFINE_bool(
  "flip_average",
  None,
  "Average each frame's CNN output with its mirror image's (test-time "
  "augmentation); --noflip_average: don't. Default: as the checkpoint's "
  "config.flip_average.",
)
_REPORT = flags.DEFINE_bool(
  "report",
  True,
  "Write report.html in --output (and each video's page.html, player.webm and "
  "apex thumbnails): the run to browse offline. --noreport: none.",
)
_MAX_PEOPLE = flags.DEFINE_integer(
  "max_people",
  tracking.ALL_PEOPLE.max_people,
  "Faces followed per frame, the largest, each person tracked with their own "
  "windows; 0 = all; 1 = the largest face only, as evaluation does.",
)
_MIN_TRACK_S = flags.DEFINE_float(
  "min_track_s",
  tracking.ALL_PEOPLE.min_track_s,
  "People seen for less time than this are left out (false detections, "
  "passers-by).",
)
_SAME_PERSON_DISTANCE = flags.DEFINE_float(
  "same_person_distance",
  tracking.ALL_PEOPLE.same_person_distance,
  "Largest dlib face-descriptor distance at which a face is taken for a known "
  "person (dlib's threshold: 0.6).",
)
_MIN_FACE = flags.DEFINE_float(
  "min_face",
  mesh_reader.MIN_FACE_PX,
  "The narrowest face found, in pixels, for every checkpoint: face-mesh ones "
  "also read the frame in overlapping squares sized for it; dlib and Haar ones "
  "add to their recorded detection (frames shrunk to data.detect_max_side) the "
  "faces found where the frame is read at the scale that makes this their "
  "smallest face (dlib 80 px, Haar twice its window). Smaller: slower. 0 = the "
  "checkpoint's recorded detection alone, exactly as before (face mesh: "
  "MediaPipe's one look).",
)


def video_files(
  path: pathlib.Path, output: pathlib.Path
) -> tuple[list[pathlib.Path], list[str]]:
  """(the videos of `path`, a file or a folder; what was left out of the
  folder, and why). A folder of frame images without videos is one clip.

  varec's own outputs are never read back as input: the output folder when
  it lies inside the input folder, the folders of an earlier run (they hold
  a summary.json) and hidden ones (a run's staging folders).
  """
  if not path.is_dir():
    return [path], []
  output = output.resolve()
  files, left_out = [], []
  for p in sorted(path.rglob("*")):
    if not p.is_file() or p.suffix.lower() not in discovery.VIDEO_EXTENSIONS:
      continue
    if p.resolve().is_relative_to(output):
      left_out.append(f"{p} (inside --output={output})")
    elif any(part.startswith(".") for part in p.relative_to(path).parts):
      left_out.append(f"{p} (hidden)")
    elif (p.parent / video_report.SUMMARY).is_file():
      left_out.append(f"{p} (an earlier run's output)")
    else:
      files.append(p)
  # A folder of frame images and no video: one clip, as training reads it.
  images = (p.suffix.lower() in decode.IMAGE_EXTENSIONS for p in path.iterdir())
  if not files and not left_out and any(images):
    return [path], []
  return files, left_out


def output_name(path: pathlib.Path, source: pathlib.Path) -> pathlib.Path:
  """A video's output folder under --output: its path inside the input
  folder, or its file name; as unique as the paths themselves (clip.mp4 and
  clip.mov differ)."""
  inside = source.is_dir() and path != source  # Not a folder of frames itself.
  return path.relative_to(source) if inside else pathlib.Path(path.name)


def _predict_all(predictor, files, source, output) -> list[str]:
  """Writes each video's outputs; the reasons of those that failed."""
  failed = []
  settings = predictor.settings
  report = output / html_report.INDEX if _REPORT.value else None
  for path in files:
    out = output / output_name(path, source)
    stats = collections.Counter()
    frames = predictor.predictions(
      path, keep_images=_ANNOTATE.value or report is not None, stats=stats
    )
    try:
      _, summary = video_report.write(
        frames,
        settings,
        stats,
        path,
        out,
        annotate=_ANNOTATE.value,
        report=report,
      )
    except (decode.VideoError, OSError) as e:
      failed.append(_skip_reason(path, e))
      print(f"SKIPPED {failed[-1]}", file=sys.stderr)
      continue
    main = summary.main
    print(
      f"{path}: {main.expression} ({main.expression_pn_group}; apex at "
      f"{main.apex.time_s:.1f} s), most frequent {main.dominant_emotion} "
      f"({main.dominant_share:.0%} of face frames), majority {main.emotion}, "
      "mean valence "
      f"{main.mean_valence:+.2f}, arousal {main.mean_arousal:+.2f}, face in "
      f"{main.face_share:.0%} of {summary.frames} frames"
      + _people(summary)
      + f" -> {out}"
    )
  return failed


def _skip_reason(path, error: Exception) -> str:
  """Why a video was skipped: its VideoError (which names it), or an OSError
  writing its outputs as one line naming it; one without errno is varec's own
  refusal (a file in the way), which names it already."""
  if isinstance(error, OSError) and error.errno:
    return f"{path}: {cli.os_error(error)}"
  return str(error)


def _people(summary: video_summary.VideoSummary) -> str:
  """The console line's people, when there are several: each one's headline
  and dominant emotions."""
  if len(summary.people) < 2:
    return ""
  return "; people: " + "; ".join(
    f"#{p.person} {p.expression}, most frequent {p.dominant_emotion} "
    f"({p.dominant_share:.0%}), face in {p.face_share:.0%}"
    for p in summary.people
  )


def _predictor() -> predictor_lib.Predictor:
  """The flags' predictor; exits on a checkpoint or setting that cannot be
  used."""
  try:
    predictor = predictor_lib.Predictor.from_checkpoint(
      _CHECKPOINT.value,
      faces_cropped=_FACES_CROPPED.value,
      window_policy=_WINDOW_POLICY.value,
      flip_average=_FLIP_AVERAGE.value,
      tracking=tracking.TrackingConfig(
        _MAX_PEOPLE.value, _MIN_TRACK_S.value, _SAME_PERSON_DISTANCE.value
      ),
      min_face=_MIN_FACE.value or None,
    )
  except (checkpoints.CheckpointError, ValueError) as e:
    sys.exit(f"predict.py: {e}")
  if _FACES_CROPPED.value is None and predictor.preprocess.faces_cropped:
    print(
      "predict.py: the checkpoint was trained on pre-cropped faces, so each "
      "frame is taken as a face crop; pass --faces_cropped=false for full "
      "video frames",
      file=sys.stderr,
    )
  return predictor


def main(argv):
  del argv
  if "://" in _VIDEO.value:
    sys.exit(
      f"predict.py: --video={_VIDEO.value} is a URL; predict.py reads video "
      "files and folders on this machine: download the video first"
    )
  run_logs.quiet_library_logs()
  predictor = _predictor()
  source = pathlib.Path(_VIDEO.value)
  if not source.exists():
    sys.exit(f"predict.py: {source} does not exist")
  output = pathlib.Path(_OUTPUT.value)
  files, left_out = video_files(source, output)
  if left_out:
    print(
      f"predict.py: not reading {len(left_out)} video(s) varec wrote: "
      + "; ".join(left_out[:3])
      + ("; ..." if len(left_out) > 3 else ""),
      file=sys.stderr,
    )
  if not files:
    sys.exit(
      "predict.py: no video file "
      f"({', '.join(sorted(discovery.VIDEO_EXTENSIONS))}) in {source}"
    )
  try:
    output.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    sys.exit(
      f"predict.py: cannot create the output folder --output={output}: {e}"
    )
  if not os.access(output, os.W_OK | os.X_OK):
    sys.exit(
      f"predict.py: cannot write into the output folder --output={output}"
    )
  try:
    with locks.exclusive(output, "predict.py"):
      failed = _predict_all(predictor, files, source, output)
      if _REPORT.value:
        print(f"Report: {html_report.write_index(output)}")
  except locks.Busy as e:
    sys.exit(f"predict.py: {e}")
  if failed:
    print(
      f"{len(failed)} of {len(files)} video(s) failed:",
      *failed,
      sep="\n  ",
      file=sys.stderr,
    )
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
