"""Faces -> model input: §4.5 step 3's crop, step 4's flip, and stored crops as
the model sees them.

Owns the last stage of the data's way (video -> frames -> faces -> model
input): the square crop around a face box, or aligned on its landmarks
(`face_crop`, beyond the paper: `varec.face_alignment`), frames that are
already face crops (`precropped_face`), the horizontal flip (`mirror_input`),
and `model_input`, the one step from stored crops (or a face-mesh build's
landmarks) to what the model reads, shared by training, evaluation and
prediction. `mirror_input`, `model_input` and `crop_input` take an
`InputConfig` (`config.input_config`), not the raw `config.data`.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from varec import face_alignment
from varec import face_mesh
from varec import mesh_geometry
from varec import mesh_reader
from varec.preprocess import config as preprocess_config
from varec.preprocess import faces
from varec.preprocess import grayscale

# -- 3. Face crop
# ---------------------------------------------------------------


def square_box(
  box: np.ndarray, margin: float, margin_px: float = 0.0
) -> np.ndarray:
  """Square (x0, y0, x1, y1) around a face box's centre, enlarged per side by
  `margin` of its side, then by `margin_px` pixels."""
  x0, y0, x1, y1 = box
  side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin) + 2.0 * margin_px
  cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
  half = side / 2.0
  return np.round([cx - half, cy - half, cx + half, cy + half]).astype(np.int64)


# `crop_interpolation`'s values: how a crop is shrunk. Enlarging is always
# linear.
INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}


def crop_and_resize(
  gray: np.ndarray, box: np.ndarray, size: int, interpolation: str = "area"
) -> np.ndarray:
  """Crops integer box (x0, y0, x1, y1) from `gray`, replicating edge pixels
  where the box leaves the frame, and resizes to (size, size), shrinking with
  `interpolation` (`INTERPOLATIONS`)."""
  x0, y0, x1, y1 = (int(v) for v in box)
  h, w = gray.shape
  pad = max(0, -x0, -y0, x1 - w, y1 - h)
  if pad:
    gray = np.pad(gray, pad, mode="edge")
    x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
  crop = gray[y0:y1, x0:x1]
  shrink = crop.shape[0] >= size
  return cv2.resize(
    crop,
    (size, size),
    interpolation=INTERPOLATIONS[interpolation] if shrink else cv2.INTER_LINEAR,
  )


def face_crop(
  gray: np.ndarray, box: np.ndarray, config: preprocess_config.PreprocessConfig
) -> np.ndarray:
  """The (S, S) crop of the face in `box` of a full frame: aligned on its
  landmarks if `config.align_faces`, else the paper's square around the box
  with the margin."""
  if config.align_faces:
    return face_alignment.align(
      gray,
      face_alignment.landmarks(gray, box),
      config.crop_size,
      config.face_margin,
    )
  return crop_and_resize(
    gray,
    square_box(box, config.face_margin, config.face_margin_px),
    config.crop_size,
    config.crop_interpolation,
  )


def framed_crop(
  gray: np.ndarray, box: np.ndarray, config: preprocess_config.PreprocessConfig
) -> tuple[np.ndarray, bool]:
  """(The (S, S) crop of the face in `box` of a frame, whether it was
  aligned): `face_crop`, or for pre-cropped faces `precropped_face` (the box
  unused). What predict.py and a face-mesh build's crops go through."""
  if config.faces_cropped:
    return precropped_face(gray, config)
  return face_crop(gray, box, config), config.align_faces


# Pre-cropped faces are found again before alignment: upsampled to this shorter
# side (dlib's HOG window is 80 px, and stills are often 48 px) and given this
# share of replicated border per side, so that a face cut tightly at its chin or
# brows still fits the detector's window.
PRECROPPED_DETECT_SIDE = 200
PRECROPPED_BORDER = 0.25


def precropped_face(
  gray: np.ndarray, config: preprocess_config.PreprocessConfig
) -> tuple[np.ndarray, bool]:
  """(S, S) crop of a frame that is already a face crop, and whether it was
  aligned.

  With `config.align_faces`, the face is detected in the upsampled crop and
  aligned like a face in a full frame; where none is found, and without
  alignment, the whole crop is used as it is.
  """
  if config.align_faces:
    scale = max(1.0, PRECROPPED_DETECT_SIDE / min(gray.shape))
    big = (
      gray
      if scale == 1.0
      else cv2.resize(
        gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR
      )
    )
    border = round(PRECROPPED_BORDER * max(big.shape))
    big = cv2.copyMakeBorder(
      big, border, border, border, border, cv2.BORDER_REPLICATE
    )
    boxes = faces.detect_faces(big, config.detect_max_side)
    if len(boxes):
      return face_crop(big, boxes[0], config), True
  return crop_and_resize(
    gray,
    square_box(faces.whole_frame_box(gray), 0.0),
    config.crop_size,
    config.crop_interpolation,
  ), False


def precropped_faces(
  gray: list, config: preprocess_config.PreprocessConfig, name: str
):
  """(crops, alignment fallbacks) of frames that are already face crops."""
  crops, aligned = zip(*(precropped_face(g, config) for g in gray))
  fallbacks = aligned.count(False) if config.align_faces else 0
  if fallbacks:
    logging.info(
      "%s: no face found to align in %d of %d pre-cropped frames; "
      "used as they are",
      name,
      fallbacks,
      len(gray),
    )
  return np.stack(crops), fallbacks


# -- 4. Horizontal flip
# ---------------------------------------------------------


def flip_horizontal(frames: np.ndarray) -> np.ndarray:
  """Mirrors frames (..., H, W, C) left-right."""
  return frames[..., ::-1, :]


def mirror_input(
  frames: np.ndarray, config: preprocess_config.InputConfig
) -> np.ndarray:
  """Model input of `config` (`model_input`), its faces mirrored: crops
  flipped, or a face-mesh model's landmarks mirrored (`mesh_geometry.mirror`)
  and, with `config.mesh_crops`, their crops flipped. Mirror speakers and
  test-time flip averaging alike."""
  if not face_mesh.reads_mesh(config.face_detector):
    return flip_horizontal(frames)
  indices = mesh_geometry.mirror_indices(config.face_detector)
  if not config.mesh_crops:
    return mesh_geometry.mirror(frames, indices)
  points, crops = mesh_reader.split_crop(frames, config.image_size)
  return mesh_reader.with_crop(
    mesh_geometry.mirror(points, indices), flip_horizontal(crops)
  )


# -- Stored crops to model input -----------------------------------------------


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
  """(..., S, S, 1) uint8 crops resized to (..., size, size, 1) with area
  averaging."""
  if crops.shape[-2] == size:
    return crops
  flat = crops.reshape((-1,) + crops.shape[-3:-1])
  out = np.stack(
    [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in flat]
  )
  return out.reshape(crops.shape[:-3] + (size, size, 1))


def model_input(
  frames: np.ndarray,
  config: preprocess_config.InputConfig,
  crops: np.ndarray | None = None,
) -> np.ndarray:
  """Stored frames as the model of `config` sees them.

  (..., S, S, 1) face crops are each equalised on their own if
  `config.equalize_faces`, then resized to `config.image_size` (`crop_input`).
  A face-mesh build's landmarks (`mesh_reader.model_input`) are read as
  stored; with `config.mesh_crops`, together with the faces' stored `crops`
  (prepared by `crop_input`) in one vector per face (`mesh_reader.with_crop`).
  Training, evaluation and prediction all go through here.

  Args:
    frames: stored face crops, or a face-mesh build's landmarks.
    config: the model's input fields (`preprocess.config.input_config`).
    crops: a face-mesh build's stored crops, for `config.mesh_crops`.

  Returns:
    What the model reads, one entry per stored frame.

  Raises:
    ValueError: `config.mesh_crops` and no `crops`.
  """
  if not face_mesh.reads_mesh(config.face_detector):
    return crop_input(frames, config)
  if not config.mesh_crops:
    return frames
  if crops is None:
    raise ValueError(
      "data.mesh_crops: the model reads each face's crop beside its "
      "landmarks, and no crops were given"
    )
  return mesh_reader.with_crop(frames, crop_input(crops, config))


def crop_input(
  crops: np.ndarray, config: preprocess_config.InputConfig
) -> np.ndarray:
  """Stored (..., S, S, 1) face crops as a pixel CNN of `config` sees them:
  equalised one by one if `config.equalize_faces`, then resized to
  `config.image_size` (`model_input`'s, and a face-mesh build's crops')."""
  if config.equalize_faces:
    crops = grayscale.equalize_faces(crops)
  return resize_crops(crops, config.image_size)
