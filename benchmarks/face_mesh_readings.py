"""Parts 2 and 3 of benchmarks/face_mesh.py: zero-shot readings of the
videos' faces, and the faces found on the group photo."""

import collections
import math
import pathlib

import cv2
import numpy as np

from varec import blendshape_emotions
from varec import decisions
from varec import emotions
from varec import plots

import face_mesh_common as common  # benchmarks/face_mesh_common.py


def largest_faces(landmarker, frames) -> tuple[np.ndarray, np.ndarray]:
  """(indices of frames with a face, (F, 52) blendshapes of each one's
  largest face) in IMAGE mode."""
  found, scores = [], []
  for i, frame in enumerate(frames):
    faces = landmarker(frame)
    if faces:
      area = [np.prod(f.detection.box[2:] - f.detection.box[:2]) for f in faces]
      found.append(i)
      scores.append(faces[int(np.argmax(area))].blendshapes)
  return np.array(found, int), np.array(scores).reshape(-1, 52)


def zero_shot(landmarker, path, figure) -> dict:
  """A video's per-frame zero-shot readings, per-second summary and figure."""
  frames, fps = common.read_video(path)
  found, scores = largest_faces(landmarker, frames)
  reading = blendshape_emotions.read_blendshapes(scores)
  labels = reading.labels
  va = np.full((len(frames), 2), np.nan)
  va[found] = reading.valence_arousal
  seconds = _per_second(reading, found, len(frames), fps)
  decision = reading.decision
  segments = [
    (found[first] / fps, (found[last] + 1) / fps, reading.emotions[e])
    for first, last, e in decisions.segments(decision, 1, found)
  ]
  counts = collections.Counter(labels)
  top, top_count = counts.most_common(1)[0] if counts else ("none", 0)
  name = pathlib.Path(path).name
  plots.timeline(
    [
      plots.Timeline(
        va,
        segments,
        f"{name}: Face Mesh blendshapes, zero-shot (EMFACS); most frequent "
        f"{top} ({top_count / max(1, len(found)):.0%} of face frames)",
      )
    ],
    fps,
    emotions.TABLE2,
    figure,
  )
  return {
    "frames": len(frames),
    "fps": fps,
    "face_share": len(found) / len(frames),
    "valence_range": [float(np.nanmin(va[:, 0])), float(np.nanmax(va[:, 0]))],
    "arousal_range": [float(np.nanmin(va[:, 1])), float(np.nanmax(va[:, 1]))],
    "label_counts": {str(k): v for k, v in counts.most_common()},
    "unit_max": dict(
      zip(blendshape_emotions.UNITS, reading.units.max(0).round(3).tolist())
    ),
    "seconds": seconds,
    "figure": _shown(figure),
  }


def _per_second(reading, found, frames: int, fps: float) -> list[dict]:
  """`zero_shot`'s rows, one per second of a video of `frames` frames: how
  many have a face (`found`: their indices) and, where any, the most frequent
  label, the most frequent emotion other than neutral and its mean
  probability, mean valence and arousal (`reading`: of the found frames)."""
  labels = reading.labels
  # Each frame's most probable emotion other than neutral, and its probability.
  others = reading.probabilities.copy()
  others[:, blendshape_emotions.NEUTRAL] = -np.inf
  expressed = others.argmax(-1)
  expressed_p = others.max(-1)
  seconds = []
  for second in range(math.ceil(frames / fps)):
    start, stop = round(second * fps), round((second + 1) * fps)
    here = (found >= start) & (found < stop)
    row = {
      "second": second,
      "frames": min(stop, frames) - start,
      "face": int(here.sum()),
    }
    if here.any():
      label, count = collections.Counter(labels[here]).most_common(1)[0]
      other = np.bincount(expressed[here]).argmax()
      row.update(
        label=str(label),
        label_share=count / here.sum(),
        expressed=reading.emotions[other],
        expressed_probability=float(
          expressed_p[here][expressed[here] == other].mean()
        ),
        valence=float(reading.valence_arousal[here, 0].mean()),
        arousal=float(reading.valence_arousal[here, 1].mean()),
      )
    seconds.append(row)
  return seconds


def _shown(path) -> str:
  """`path` relative to the repository where it is inside it."""
  path = pathlib.Path(path).resolve()
  return str(
    path.relative_to(common.ROOT) if path.is_relative_to(common.ROOT) else path
  )


def group_photo(landmarker, path) -> dict:
  """The faces `landmarker(image)` finds on one photo, with box sizes."""
  image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
  faces = landmarker(image)
  reading = blendshape_emotions.read_blendshapes(
    np.array([f.blendshapes for f in faces]).reshape(-1, 52)
  )
  rows = []
  for face, label, (v, a) in zip(
    faces, reading.labels, reading.valence_arousal
  ):
    x0, y0, x1, y1 = (float(c) for c in face.detection.box)
    rows.append(
      {
        "box": [round(c, 1) for c in (x0, y0, x1, y1)],
        "width": x1 - x0,
        "height": y1 - y0,
        "score": face.detection.score,
        "presence": face.presence,
        "label": str(label),
        "valence": float(v),
        "arousal": float(a),
      }
    )
  return {
    "image": [image.shape[1], image.shape[0]],
    "detections": len(landmarker.detect(image)),
    "faces": rows,
  }
