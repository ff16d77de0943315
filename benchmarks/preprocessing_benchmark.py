"""Preprocessing speed: decode + grayscale + equalisation + detection + crop.

    python benchmarks/preprocessing_benchmark.py [--videos=4 --seconds=10]

Renders synthetic 640x480 videos at 25 fps, then times the §4.5 chain
(`varec.data.pool.preprocess_all`, all cores) and each stage alone on one
core. Writes benchmarks/results/preprocessing.{json,md}.
"""

import json
import os
import pathlib
import platform
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from varec import synthetic
from varec.data import discovery
from varec.data import pool
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import decode
from varec.preprocess import faces
from varec.preprocess import grayscale

import report  # benchmarks/report.py

_VIDEOS = flags.DEFINE_integer("videos", 4, "Number of videos.")
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Length of each video.")
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count(), "Worker processes.")


def _stage_times(
  path, config: preprocess_config.PreprocessConfig
) -> dict[str, float]:
  """Milliseconds per frame of each stage, on one core."""
  t0 = time.perf_counter()
  frames, _ = decode.read_video(path)
  t1 = time.perf_counter()
  gray = [
    grayscale.equalize_histogram(grayscale.grayscale_mean_rgb(f))
    for f in frames
  ]
  t2 = time.perf_counter()
  attempted = faces.detection_schedule(len(gray), config.detect_every)
  boxes = [
    faces.detect_largest_face(gray[t], config.detect_max_side)
    for t in np.flatnonzero(attempted)
  ]
  t3 = time.perf_counter()
  box = crop.square_box(
    next(b for b in boxes if b is not None), config.face_margin
  )
  for g in gray:
    crop.crop_and_resize(g, box, config.crop_size)
  t4 = time.perf_counter()
  n = len(frames)
  return {
    "decode": 1e3 * (t1 - t0) / n,
    "grayscale_equalise": 1e3 * (t2 - t1) / n,
    "detect_per_frame": 1e3 * (t3 - t2) / n,
    "detect_per_attempt": 1e3 * (t3 - t2) / attempted.sum(),
    "crop_resize": 1e3 * (t4 - t3) / n,
  }


def main(argv):
  del argv
  num_frames = int(round(_SECONDS.value * 25))
  results = {
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    "frame_size": "640x480",
    "videos": _VIDEOS.value,
    "frames_per_video": num_frames,
    "workers": _WORKERS.value,
    "runs": [],
  }
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    paths = _write_videos(tmp, num_frames)
    records, _ = discovery.find_videos(tmp)
    for detect_every, max_side in ((5, 320), (1, 320), (1, 640)):
      config = preprocess_config.PreprocessConfig(
        detect_every=detect_every, detect_max_side=max_side
      )
      cache = tmp / f"cache_{detect_every}_{max_side}"
      start = time.perf_counter()
      done, skipped = pool.preprocess_all(
        records, config, cache, workers=_WORKERS.value
      )
      elapsed = time.perf_counter() - start
      assert not skipped, skipped
      rates = [pool.load_preprocessed(c).detection_rate for _, c in done]
      run = {
        "detect_every": detect_every,
        "detect_max_side": max_side,
        "frames_per_second": len(records) * num_frames / elapsed,
        "detection_rate": float(np.mean(rates)),
        "ms_per_frame_one_core": _stage_times(paths[0], config),
      }
      results["runs"].append(run)
      print(json.dumps(run))
  report.write("preprocessing", results, _markdown(results))


def _write_videos(folder: pathlib.Path, num_frames: int) -> list[pathlib.Path]:
  """Renders `--videos` synthetic 640x480 videos of joy into `folder`.

  Returns:
    The videos' paths, one speaker each.
  """
  paths = []
  speakers = synthetic.make_speakers(_VIDEOS.value, seed=1)
  for i, speaker in enumerate(speakers):
    frames = synthetic.render_video(
      speaker, "joy", seed=i, size=(640, 480), num_frames=num_frames
    )
    paths.append(folder / synthetic.video_file_name(speaker.speaker_id, "joy"))
    synthetic.write_video(paths[-1], frames)
  return paths


def _markdown(results: dict) -> str:
  """The results as benchmarks/results/preprocessing.md."""
  lines = [
    "# Preprocessing benchmark",
    "",
    f"{results['videos']} synthetic 640x480 videos x "
    f"{results['frames_per_video']} frames, "
    f"{results['workers']} worker processes, {results['machine']}. "
    "Frames/s cover decode + grayscale + equalisation + detection + crop + "
    "cache write (process start-up included).",
    "",
    "| detect every | detect at (px) | frames/s | detection rate | ms/frame on "
    "one core: decode / gray+eq / detect / crop |",
    "|---|---|---|---|---|",
  ]
  for run in results["runs"]:
    ms = run["ms_per_frame_one_core"]
    lines.append(
      f"| {run['detect_every']} | {run['detect_max_side']} | "
      f"{run['frames_per_second']:.0f} | {run['detection_rate']:.1%} | "
      f"{ms['decode']:.2f} / {ms['grayscale_equalise']:.2f} / "
      f"{ms['detect_per_frame']:.2f} / {ms['crop_resize']:.2f} |"
    )
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
