"""The parameters of every stage: §4.5's `PreprocessConfig` and the model's
`InputConfig`.

Owns the settings of the data's whole way (video -> frames -> faces -> model
input). `config_from_data` turns a run's (or a checkpoint's, upgraded by
`varec.config_schema`) `config.data` into the `PreprocessConfig` the dataset
builders and predict.py cut faces with, so training data, evaluation and
prediction are cut alike; `build_fields` and `upgrade_recorded` keep the names
builds and caches were made under. `input_config` reads, once, the fields of
`config.data` that turn stored crops into model input (`varec.preprocess.crop`).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from configs import base
from varec import face_mesh
from varec.preprocess import grayscale

# The one set of defaults: configs/base.py's data fields.
_DEFAULTS = base.get_data_config()


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
  """Parameters of §4.5; defaults are configs/base.py's (which says where
  they leave the paper)."""

  fps: float = _DEFAULTS.fps  # Target frame rate; other rates are resampled.
  # Side of the square face crop the builds store.
  crop_size: int = _DEFAULTS.crop_size
  # Added on each side of the face box, as a fraction.
  face_margin: float = _DEFAULTS.face_margin
  # Frames are downscaled to this for detection.
  detect_max_side: int = _DEFAULTS.detect_max_side
  # Detect on every k-th frame (and the last).
  detect_every: int = _DEFAULTS.detect_every
  # The last N frames carry the label.
  num_labelled_frames: int = _DEFAULTS.num_labelled_frames
  window_length: int = _DEFAULTS.window_length  # Frames per RNN window.
  # Step between window starts (non-overlapping).
  window_stride: int = _DEFAULTS.window_length
  # Frames are already face crops: no detection.
  faces_cropped: bool = _DEFAULTS.faces_cropped
  # Pad clips shorter than a window by repeating their first frame.
  pad_short_clips: bool = False
  # Beyond the paper: crop along dlib's 5 landmarks, eyes level
  # (`varec.face_alignment`).
  align_faces: bool = _DEFAULTS.align_faces
  # Step 2: equalise whole frames (the paper); off for networks never shown it.
  equalize_frames: bool = _DEFAULTS.equalize_frames
  # Step 3's detector: `faces.DLIB_HOG` (the paper) or an OpenCV Haar cascade
  # file.
  face_detector: str = _DEFAULTS.face_detector
  # How an unaligned face is shrunk to the crop: "area" averages, "linear"
  # samples.
  crop_interpolation: str = _DEFAULTS.crop_interpolation
  # Step 2's colour to gray: "mean_rgb" (the paper) or "luma".
  grayscale: str = _DEFAULTS.grayscale
  # Source pixels added to each side of the box after `face_margin` (fer: 10).
  face_margin_px: int = _DEFAULTS.face_margin_px
  # A face-mesh build also stores each face's gray crop (steps 2-3 in the
  # landmarks' box), for a model that reads both (`model.mesh_features`).
  mesh_crops: bool = _DEFAULTS.mesh_crops

  @property
  def gray(self) -> grayscale.GrayConversion | None:
    """Step 2, or None for a face-mesh build without crops (it reads colour
    frames only)."""
    if face_mesh.reads_mesh(self.face_detector) and not self.mesh_crops:
      return None
    return grayscale.GrayConversion(self.grayscale, self.equalize_frames)


# The data-config fields that set a `PreprocessConfig` (a checkpoint carries
# them all), each an attribute of the same name.
PREPROCESS_FIELDS = (
  "fps",
  "face_margin",
  "detect_max_side",
  "detect_every",
  "num_labelled_frames",
  "window_length",
  "faces_cropped",
  "align_faces",
  "crop_size",
  "equalize_frames",
  "face_detector",
  "crop_interpolation",
  "grayscale",
  "face_margin_px",
  "mesh_crops",
)

# Builds named the stored crop side `image_size` before it was called
# `crop_size`; the builder-config names (a digest of these fields) and the
# preprocessing cache keep the old name, so that builds and caches made before
# are still found.
_BUILD_NAMES = {"crop_size": "image_size"}
# Fields added after the first builds, with the value builds had before: hashed
# only when they leave it, so that those builds and caches are still found.
_ADDED_BUILD_FIELDS = {
  "equalize_frames": True,
  "face_detector": "dlib_hog",
  "crop_interpolation": "area",
  "grayscale": "mean_rgb",
  "face_margin_px": 0,
  "mesh_crops": False,
}


def config_from_data(
  data: ml_collections.ConfigDict, pad_short_clips: bool = False
) -> PreprocessConfig:
  """The `PreprocessConfig` of a complete data config (`config.data` of a run,
  or a checkpoint's after `config_schema.upgrade`).

  `pad_short_clips` is the dataset's (its builder's `PAD_SHORT_CLIPS`: a
  `video_folder`'s clips and stills may be shorter than a window, the paper's
  datasets reject them).
  """
  return PreprocessConfig(
    window_stride=data.window_length,
    pad_short_clips=pad_short_clips,
    **{field: data[field] for field in PREPROCESS_FIELDS},
  )


def data_fields(config: PreprocessConfig) -> dict:
  """The data-config fields of a `PreprocessConfig`: the inverse of
  `config_from_data`."""
  return {field: getattr(config, field) for field in PREPROCESS_FIELDS}


def build_fields(config: PreprocessConfig) -> dict:
  """The fields of `config` under the names builds hash (builder-config
  names, caches)."""
  return {
    _BUILD_NAMES.get(k, k): v
    for k, v in dataclasses.asdict(config).items()
    if k not in _ADDED_BUILD_FIELDS or v != _ADDED_BUILD_FIELDS[k]
  }


def upgrade_recorded(recorded: dict) -> dict:
  """A build's recorded preprocessing (`info.metadata["preprocess"]`) under
  today's names."""
  today = {old: new for new, old in _BUILD_NAMES.items()}
  return {
    **_ADDED_BUILD_FIELDS,
    **{today.get(k, k): v for k, v in recorded.items()},
  }


@dataclasses.dataclass(frozen=True)
class InputConfig:
  """The data-config fields that turn stored crops (or a face-mesh build's
  landmarks) into model input: what `crop.model_input`, `crop.crop_input`
  and `crop.mirror_input` read."""

  # Side of the crops the model reads (`data.image_size`).
  image_size: int
  # Each crop equalised on its own before resizing (`data.equalize_faces`).
  equalize_faces: bool
  # `faces.DLIB_HOG`, a Haar cascade file, or MediaPipe's face_landmarker.task
  # (the model reads landmarks: `face_mesh.reads_mesh`).
  face_detector: str
  # A face-mesh model also reads each face's crop (`data.mesh_crops`).
  mesh_crops: bool


def input_config(data: ml_collections.ConfigDict) -> InputConfig:
  """The `InputConfig` of data config `data` (`config.data` of a run or a
  checkpoint), read once where the config is at hand.

  Args:
    data: a data config; one without `face_detector` or `mesh_crops` (a bare
      one, as tests make) takes configs/base.py's: dlib's detector, no crops.

  Returns:
    Its model-input fields.
  """
  return InputConfig(
    image_size=data.image_size,
    equalize_faces=data.equalize_faces,
    face_detector=getattr(data, "face_detector", _DEFAULTS.face_detector),
    mesh_crops=getattr(data, "mesh_crops", _DEFAULTS.mesh_crops),
  )
