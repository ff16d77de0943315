"""Part 1 of benchmarks/face_mesh.py: the speed of the per-frame chain, of
each network alone and of the landmark network's compiled variants."""

import contextlib
import resource
import statistics
import time

import cv2
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from varec import blendshape_emotions
from varec import face_detection
from varec import face_mesh
from varec import tflite_graph

import face_mesh_common as common  # benchmarks/face_mesh_common.py

NETWORK_INPUTS = {
  "detector": (face_detection.DETECTOR_SIDE, face_detection.DETECTOR_SIDE, 3),
  "landmarks": (face_mesh.LANDMARKS_SIDE, face_mesh.LANDMARKS_SIDE, 3),
  "blendshapes": (len(face_mesh.BLENDSHAPE_LANDMARKS), 2),
}


YNN_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}


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
    "b": f"detector on every {common.DETECT_EVERY.value}th frame, ROI reused, "
    f"landmarks and blendshapes {common.BATCH.value} frames per call",
  }
  runs = {
    "a": lambda: image_mode(landmarker, frames),
    "b": lambda: roi_reuse(
      landmarker, frames, common.DETECT_EVERY.value, common.BATCH.value
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
  batched, _ = landmarks_of_frames(
    landmarker, frames[:1], [roi], common.BATCH.value
  )
  results["batched_helper_max_abs_px"] = float(np.abs(own - batched).max())
  return results


def network_speed(landmarker, frames_per_pass: int, passes: int) -> list:
  """Each network alone at batch 1 and `--batch`: ms per call and per frame."""
  rng = np.random.default_rng(0)
  rows = []
  for key, shape in NETWORK_INPUTS.items():
    network = landmarker.networks[key]
    for batch in (1, common.BATCH.value):
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
    [cv2.resize(f, (side, side)) for f in frames[: common.BATCH.value]]
  )
  crops = crops.astype(np.float32) / 255
  rows, compiled, reference = [], [], {}
  for batch, (conv, function), (ynn, options), weights in _variants():
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


def _variants() -> list[tuple]:
  """`landmark_variants`' variants in order: (batch, (depthwise as, its
  `_conv`), (YNNPACK fusions, compiler options), weights)."""
  shifted, grouped = (
    ("shifted sums", tflite_graph._conv),
    (
      "grouped convolution",
      _grouped_conv,
    ),
  )
  off, on = ("off", YNN_OFF), ("on (XLA default)", None)
  return [
    (batch, conv, ynn, weights)
    for batch in (1, common.BATCH.value)
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


def _time_variants(compiled: list, rows: list, passes: int) -> None:
  """Sets each row's ms per call, frames/s and time against its batch's
  first row; passes taken in turn, so other load on the machine falls on all."""
  times = [[] for _ in rows]
  for _ in range(passes):
    for (executable, arguments), row, row_times in zip(compiled, rows, times):
      calls = common.VARIANT_CALLS.value * (common.BATCH.value // row["batch"])
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
