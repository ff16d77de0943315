"""End-to-end prediction speed and memory: decode, detect, crop, CNN, GRU, CSV.

    python benchmarks/prediction_benchmark.py --checkpoint=workdir/demo [--minutes=1,10]

Writes synthetic 640x480 videos of the given lengths (clips of the 10
emotions, one after another), runs `predict.py`'s predictor on each in a fresh
process, with and without face alignment (`--align`; the same model either
way, so only the speed is compared), and records frames/s and the process's
peak resident memory. Writes benchmarks/results/prediction.{json,md}.
"""

import dataclasses
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2

from varec import emotions
from varec import synthetic

import report  # benchmarks/report.py

_CHECKPOINT = flags.DEFINE_string("checkpoint", "workdir/demo", "Trained checkpoint (make demo).")
_MINUTES = flags.DEFINE_list("minutes", ["1", "10"], "Video lengths in minutes.")
_ALIGN = flags.DEFINE_list("align", ["true", "false"],
                           "Face alignment on / off (overriding the checkpoint's setting).")
_SINGLE = flags.DEFINE_string("single", None, "Internal: predict this one video and print JSON.")
CLIP_FRAMES = 250  # 10 s per emotion clip.


def write_long_video(path: pathlib.Path, minutes: float) -> int:
  """Writes `minutes` of 25 fps 640x480 video clip by clip, never holding more than a clip."""
  speakers = synthetic.make_speakers(4, seed=7)
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480))
  total = int(minutes * 60 * 25)
  written, clip = 0, 0
  while written < total:
    frames = synthetic.render_video(speakers[clip % len(speakers)],
                                    emotions.EMOTIONS[clip % len(emotions.EMOTIONS)], seed=clip,
                                    size=(640, 480), num_frames=CLIP_FRAMES)
    for frame in frames[:total - written]:
      writer.write(frame)
    written += min(CLIP_FRAMES, total - written)
    clip += 1
  writer.release()
  return total


def predict_once(video: str, checkpoint: str, align: bool) -> dict:
  """Runs in its own process, so that its peak memory is its own."""
  from varec import predictor  # pylint: disable=g-import-not-at-top
  p = predictor.Predictor.from_checkpoint(checkpoint)
  p.preprocess = dataclasses.replace(p.preprocess, align_faces=align)
  with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    frames = p.predict_video(video, out)
    elapsed = time.perf_counter() - start
  return {"frames": len(frames), "seconds": elapsed, "frames_per_second": len(frames) / elapsed,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv):
  del argv
  if _SINGLE.value:
    print(json.dumps(predict_once(_SINGLE.value, _CHECKPOINT.value, _ALIGN.value == ["true"])))
    return
  if not pathlib.Path(_CHECKPOINT.value).exists():
    sys.exit(f"{_CHECKPOINT.value} does not exist: run `make demo` first, or pass --checkpoint")
  results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
             "checkpoint": _CHECKPOINT.value, "frame_size": "640x480", "runs": []}
  with tempfile.TemporaryDirectory() as tmp:
    for minutes in map(float, _MINUTES.value):
      video = pathlib.Path(tmp) / f"{minutes:g}min.mp4"
      write_long_video(video, minutes)
      for align in _ALIGN.value:
        out = subprocess.run([sys.executable, __file__, f"--single={video}", f"--align={align}",
                              f"--checkpoint={_CHECKPOINT.value}"], capture_output=True, text=True,
                             check=True)
        run = {"minutes": minutes, "align_faces": align == "true",
               **json.loads(out.stdout.strip().splitlines()[-1])}
        results["runs"].append(run)
        print(json.dumps(run))
      video.unlink()
  lines = ["# Prediction benchmark", "",
           f"`predict.py`'s predictor end to end (decode, grayscale, equalisation, detection every "
           f"5th frame, crop with or without 5-point landmarks and alignment, face-crop "
           f"equalisation, CNN, GRU, frames.csv, summary, trajectory and timeline plots) on "
           f"synthetic 640x480 25 fps videos, {results['machine']}, checkpoint "
           f"`{results['checkpoint']}`. Peak memory is the whole process's (Python, JAX and the "
           "model included).", "",
           "| video | face alignment | frames | frames/s | x real time | peak memory (MB) |",
           "|---|---|---|---|---|---|"]
  for run in results["runs"]:
    lines.append(f"| {run['minutes']:g} min | {'on' if run['align_faces'] else 'off'} | "
                 f"{run['frames']} | {run['frames_per_second']:.0f} | "
                 f"{run['frames_per_second'] / 25:.1f} | {run['peak_rss_mb']:.0f} |")
  report.write("prediction", results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
