"""What a config must satisfy before it builds, trains or evaluates anything.

Every problem is reported at once, naming the field (`ConfigError`).
"""

from __future__ import annotations

import json
import math
import pathlib

import flax
import ml_collections

from varec import checkpoints
from varec import config_schema
from varec import emotions
from varec import face_mesh
from varec import model_lib
from varec import models
from varec import steps
from varec.preprocess import crop
from varec.preprocess import faces
from varec.preprocess import config as preprocess_config
from varec.preprocess import grayscale


class ConfigError(ValueError):
  """A config that cannot train a sensible model; the message names the
  field(s)."""


def data_problems(data: ml_collections.ConfigDict) -> list[str]:
  """What is wrong with the data fields of a config (for builds, training and
  eval)."""
  problems = []
  ratios = tuple(data.split_ratios)
  if len(ratios) != 3 or min(ratios) <= 0:
    problems.append(
      "data.split_ratios must be 3 positive numbers (train, validation, test), "
      f"got {ratios}"
    )
  for field in (
    "num_labelled_frames",
    "window_length",
    "image_size",
    "crop_size",
    "detect_every",
  ):
    if data[field] < 1:
      problems.append(f"data.{field} must be at least 1, got {data[field]}")
  if data.image_size > data.crop_size:
    problems.append(
      f"data.image_size ({data.image_size}) cannot exceed data.crop_size "
      f"({data.crop_size}), the side of the stored crops"
    )
  onset = data.neutral_onset_frames
  if onset and (onset < data.window_length or data.faces_cropped):
    problems.append(
      f"data.neutral_onset_frames must be 0 or at least data.window_length "
      f"({data.window_length}), for clips that start neutral, not pre-cropped "
      f"stills (data.faces_cropped), got {onset}"
    )
  if not data.fps > 0:
    problems.append(f"data.fps must be positive, got {data.fps}")
  if data.face_margin < 0:
    problems.append(
      f"data.face_margin must be 0 or more, got {data.face_margin}"
    )
  for field, values in (
    ("crop_interpolation", crop.INTERPOLATIONS),
    ("grayscale", grayscale.GRAYSCALES),
  ):
    if data[field] not in values:
      problems.append(
        f"data.{field} must be one of {', '.join(values)}, got {data[field]}"
      )
  return problems + _face_framing_problems(data)


def _face_framing_problems(data: ml_collections.ConfigDict) -> list[str]:
  """What is wrong with how the data fields frame a detected face."""
  problems = []
  if data.face_margin_px < 0:
    problems.append(
      f"data.face_margin_px must be 0 or more, got {data.face_margin_px}"
    )
  if data.align_faces and (
    data.face_detector != faces.DLIB_HOG or data.face_margin_px
  ):
    problems.append(
      "data.align_faces frames faces by dlib's landmarks in dlib's face box: "
      "with an OpenCV cascade as data.face_detector or data.face_margin_px, "
      "set data.align_faces=False"
    )
  if data.detect_max_side < 80:
    problems.append(
      f"data.detect_max_side must be at least 80 (dlib's detector window), got "
      f"{data.detect_max_side}"
    )
  return problems


# Why pre-cropped faces need their crops equalised when frames are.
CONTEXT_EQUALISATION = (
  "data.equalize_frames equalises a pre-cropped face as the face alone but a "
  "face in a video frame with its background, so the same face reaches the "
  "model in two contrasts; with faces_cropped set data.equalize_faces=True "
  "(which evens that out) or data.equalize_frames=False"
)


def context_dependent(data: ml_collections.ConfigDict) -> bool:
  """Whether pre-cropped faces would be equalised unlike faces cut from
  frames."""
  return data.faces_cropped and data.equalize_frames and not data.equalize_faces


def distillation_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Learning without forgetting (`loss.distill_weight`) needs a pretrained
  classifier to keep and a frame stage to keep it in."""
  loss = config.loss
  if not loss.distill_weight:
    return []
  if loss.distill_weight < 0 or not loss.distill_temperature > 0:
    return [
      "loss.distill_weight must be >= 0 and loss.distill_temperature > 0, got "
      f"{loss.distill_weight} and {loss.distill_temperature}"
    ]
  problems = []
  kind = model_lib.CNNS.get(config.model.cnn)  # Unknown kinds: cnn_problems.
  if not config.init_from or not (kind and kind.has_classifier):
    problems.append(
      "loss.distill_weight keeps what a pretrained classifier knows: set "
      "init_from to one (python -m varec.pretrained fer) and model.cnn to its "
      "CNN "
      f"({', '.join(k for k, v in model_lib.CNNS.items() if v.has_classifier)})"
    )
  if not set(config.stages) & set(steps.FRAME_STAGES):
    problems.append(
      "loss.distill_weight acts in the probe and cnn stages: add cnn to stages"
    )
  if "joint" in config.stages:
    problems.append(
      "loss.distill_weight does not act in the joint stage, whose CNN would "
      "forget unchecked: drop joint from stages or set loss.distill_weight=0"
    )
  return problems


def face_detector_problems(detector: str) -> list[str]:
  """What keeps `data.face_detector` from detecting: an OpenCV cascade must be a
  readable file at an absolute path (a checkpoint's relative one is resolved
  against its folder first: `inference.TrainedModel.load`)."""
  if detector == faces.DLIB_HOG:
    return []
  if not pathlib.Path(detector).is_absolute():
    return [
      f"data.face_detector must be {faces.DLIB_HOG} or the absolute "
      f"path of an OpenCV cascade file or MediaPipe's face_landmarker.task, "
      f"got {detector}"
    ]
  if detector.endswith(".task"):
    try:
      face_mesh.cached(detector)
    except face_mesh.FaceMeshError as e:
      return [f"data.face_detector: {e}"]
    return []
  try:
    faces.haar_cascade(detector)
  except ValueError as e:
    return [f"data.face_detector: {e}"]
  return []


def face_mesh_problems(config: ml_collections.ConfigDict) -> list[str]:
  """What keeps a face-mesh model (`model.cnn = face_mesh`) from training:
  its networks come from MediaPipe's face_landmarker.task, and it reads
  landmarks, which image augmentation does not apply to (mirror speakers and
  flip averaging mirror them, `preprocess.crop.mirror_input`); its crop
  feature reads the crops that a build makes with `data.mesh_crops` only."""
  if config.model.cnn != "face_mesh":
    if config.data.mesh_crops:
      return [
        "data.mesh_crops stores face crops beside a face mesh's landmarks, "
        f"for model.cnn=face_mesh, not {config.model.cnn}"
      ]
    return []
  problems = []
  if not face_mesh.reads_mesh(config.data.face_detector):
    problems.append(
      "model.cnn=face_mesh needs data.face_detector to be MediaPipe's "
      f"face_landmarker.task, got {config.data.face_detector}"
    )
  features = tuple(config.model.mesh_features)
  if "blendshapes" not in features or set(features) - set(
    models.FaceMesh.FEATURES
  ):
    problems.append(
      "model.mesh_features must hold blendshapes and any of pose, mesh, "
      f"crop, got {', '.join(features) or 'none'}"
    )
  if ("crop" in features) != bool(config.data.mesh_crops):
    problems.append(
      "model.mesh_features with crop (a pixel CNN beside the mesh) needs "
      "each face's crop in the build, and only it does: set "
      f"data.mesh_crops={'crop' in features}"
    )
  if config.augment.enabled:
    problems.append(
      "model.cnn=face_mesh reads face landmarks, which augment.enabled (made "
      "for face crops) does not transform yet: set augment.enabled=False"
    )
  return problems


def stage_problems(
  config: ml_collections.ConfigDict, num_devices: int | None = None
) -> list[str]:
  """What is wrong with `config.stages` and each stage's sizes and learning
  rate.

  Args:
    config: a training config.
    num_devices: the devices each batch is shared over (`steps.data_mesh`),
      whose count every batch size must be a multiple of; None: not checked.

  Returns:
    One line per problem, naming the field.
  """
  problems = []
  stages = list(config.stages)
  if (
    not stages
    or set(stages) - set(steps.STAGES)
    or stages != sorted(stages, key=steps.STAGES.index)
    or (len(set(stages)) != len(stages))
  ):
    problems.append(
      f"stages must be one or more of {', '.join(steps.STAGES)}, each once, in "
      f"this order; got {tuple(stages)}"
    )
  for name in config.stages:
    if name not in steps.STAGES:
      continue
    stage = config[name]
    if stage.num_epochs < 1 or stage.batch_size < 1:
      problems.append(
        f"{name}.num_epochs and {name}.batch_size must be at least 1, got "
        f"{stage.num_epochs} and {stage.batch_size}"
      )
    elif num_devices and stage.batch_size % num_devices:
      problems.append(
        f"{name}.batch_size ({stage.batch_size}) must be a multiple of the "
        f"{num_devices} devices training shares each batch over"
      )
    if not isinstance(stage.min_steps, int) or stage.min_steps < 0:
      problems.append(
        f"{name}.min_steps must be a whole number, 0 or more (0: num_epochs as "
        f"given), got {stage.min_steps}"
      )
    rate = stage.learning_rate
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
      problems.append(
        f"{name}.learning_rate must be positive and finite (or None for the "
        f"optimiser's default), got {rate}"
      )
  return problems


def optimizer_problems(config: ml_collections.ConfigDict) -> list[str]:
  """What is wrong with the optimizer's fields, which `steps.make_optimizer`
  reads."""
  problems = []
  if config.optimizer not in steps.DEFAULT_LEARNING_RATES:
    problems.append(
      f"optimizer must be one of {', '.join(steps.DEFAULT_LEARNING_RATES)}, "
      f"got {config.optimizer!r}"
    )
  if config.lr_schedule not in steps.LR_SCHEDULES:
    problems.append(
      f"lr_schedule must be one of {', '.join(steps.LR_SCHEDULES)}, got "
      f"{config.lr_schedule!r}"
    )
  # Each `not 0 <= x < inf` also refuses NaN, which compares false.
  if not 0 <= config.warmup_epochs < math.inf:
    problems.append(
      "warmup_epochs must be a finite number of epochs, 0 or more (0: no "
      f"warmup), got {config.warmup_epochs}"
    )
  if not 0 <= config.momentum < 1:
    problems.append(
      f"momentum must be at least 0 and below 1, got {config.momentum}"
    )
  if not 0 <= config.sgd_decay < math.inf:
    problems.append(
      f"sgd_decay must be a finite number, 0 or more (0: no decay), got "
      f"{config.sgd_decay}"
    )
  return problems


def check_config(
  config: ml_collections.ConfigDict, num_devices: int | None = None
) -> None:
  """Raises ConfigError naming the field of a config that cannot train a
  sensible model.

  Args:
    config: a training config.
    num_devices: the devices training shares each batch over; None: batch
      sizes are not checked against them (`stage_problems`).
  """
  problems = []
  if config.num_runs < 1:
    problems.append(f"num_runs must be at least 1, got {config.num_runs}")
  if config.seed < 0:
    problems.append(
      f"seed must be 0 or more (it draws the speaker split, initialisation, "
      f"shuffling and dropout), got {config.seed}"
    )
  if context_dependent(config.data):
    problems.append(CONTEXT_EQUALISATION)
  problems += face_detector_problems(config.data.face_detector)
  problems += face_mesh_problems(config)
  problems += stage_problems(config, num_devices)
  problems += optimizer_problems(config)
  if "cnn" not in config.stages and not config.init_from:
    problems.append(
      "without the cnn stage or init_from the CNN would stay at its random "
      "initialisation: add 'cnn' to stages or set init_from"
    )
  hidden = tuple(config.model.rnn_hidden_sizes)
  if not hidden or min(hidden) < 1:
    problems.append(
      f"model.rnn_hidden_sizes must be one or more positive sizes, got {hidden}"
    )
  problems += data_problems(config.data)
  if config.eval_batch_size < 1:
    problems.append(
      f"eval_batch_size must be at least 1, got {config.eval_batch_size}"
    )
  problems += cnn_problems(config)
  if "probe" in config.stages and not config.init_from:
    problems.append(
      "the probe stage trains the head on a pretrained CNN's features: set "
      "init_from, or drop probe from stages"
    )
  problems += distillation_problems(config)
  if config.model.class_prototypes and set(config.stages) & {
    "probe",
    "cnn",
    "joint",
  }:
    problems.append(
      "model.class_prototypes makes the CNN a zero-shot classifier, which is "
      "not trained: set model.class_prototypes=() to fine-tune"
    )
  if problems:
    raise ConfigError("config: " + "; ".join(problems))


def cnn_problems(config: ml_collections.ConfigDict) -> list[str]:
  """What is wrong with the CNN fields of a config, as its `model_lib.CNNS`
  entry says."""
  kind, compute_dtype = config.model.cnn, config.compute_dtype
  problems = []
  if compute_dtype not in model_lib.COMPUTE_DTYPES:
    problems.append(
      f"compute_dtype must be one of {', '.join(model_lib.COMPUTE_DTYPES)}, "
      f"got {compute_dtype!r}"
    )
  if kind not in model_lib.CNNS:
    return problems + [
      f"model.cnn must be one of {', '.join(model_lib.CNNS)}, got {kind!r}"
    ]
  cnn = model_lib.CNNS[kind]
  if (
    compute_dtype in model_lib.COMPUTE_DTYPES
    and compute_dtype not in cnn.compute_dtypes
  ):
    able = [
      k for k, c in model_lib.CNNS.items() if compute_dtype in c.compute_dtypes
    ]
    problems.append(
      f"compute_dtype {compute_dtype} is implemented for the {', '.join(able)} "
      f"CNN only; use compute_dtype={cnn.compute_dtypes[0]} with "
      f"model.cnn={kind}"
    )
  if config.data.image_size < cnn.min_image_size(config):
    problems.append(
      f"data.image_size must be at least {cnn.min_image_size(config)} for the "
      f"{kind} CNN, got {config.data.image_size}"
    )
  frozen = config.model.frozen_blocks
  if not 0 <= frozen <= cnn.num_blocks:
    problems.append(
      f"model.frozen_blocks must be between 0 and {cnn.num_blocks} for the "
      f"{kind} CNN, got {frozen}"
    )
  elif frozen and not config.init_from:
    problems.append(
      "model.frozen_blocks keeps CNN blocks as loaded: set init_from to a "
      "pretrained CNN, or frozen_blocks=0"
    )
  return problems


# Fields that do not change what a run trains, so a run may resume with other
# values.
RESUMABLE_FIELDS = ("num_runs", "eval_batch_size", "data.data_dir", "restart")


def config_differences(
  before: dict, config: ml_collections.ConfigDict
) -> dict[str, tuple]:
  """{field: (value in `before`, value in `config`)} of the fields that change a
  run.

  Fields that only one of them has (a checkpoint from before a field existed)
  are not compared.
  """
  old = flax.traverse_util.flatten_dict(before, sep=".")
  new = flax.traverse_util.flatten_dict(json.loads(config.to_json()), sep=".")
  return {
    k: (old[k], new[k])
    for k in sorted(old.keys() & new.keys())
    if old[k] != new[k] and k not in RESUMABLE_FIELDS
  }


def check_resumable(
  meta: checkpoints.CheckpointMeta,
  config: ml_collections.ConfigDict,
  speakers: dict,
  label_space: emotions.LabelSpace,
  workdir,
) -> None:
  """Raises ValueError unless the latest checkpoint in `workdir` is of this run.

  Args:
    meta: that checkpoint's meta (`checkpoints.save`).
    config: the run's config.
    speakers: the run's speaker ids per split.
    label_space: the run's emotions.
    workdir: the run's folder, which the messages name.

  Raises:
    ValueError: the checkpoint is of another config (`config_differences`),
      speaker split, set of emotions or preprocessing; says what to do.
  """
  differ = config_differences(meta.config, config)
  if differ:
    finished = set(config.stages) <= set(meta.completed_stages)
    raise ValueError(
      f"{workdir} holds {'a finished' if finished else 'an unfinished'} run of "
      "another config ("
      + ", ".join(
        f"{k}: {a!r} there, {b!r} now" for k, (a, b) in list(differ.items())[:8]
      )
      + f"{', ...' if len(differ) > 8 else ''}): train into a new --workdir, "
      "or pass --config.restart=True to discard that run and start over"
    )
  if meta.speakers != {k: tuple(v) for k, v in speakers.items()}:
    raise ValueError(
      f"{workdir} holds a run with another speaker split (another seed or "
      "dataset); use a new --workdir"
    )
  if meta.label_space() != label_space:
    raise ValueError(
      f"{workdir} holds a run with other emotions (another prototypes CSV); "
      "use a new --workdir"
    )
  before = preprocess_config.config_from_data(
    config_schema.upgrade(meta.config).data
  )
  if before != preprocess_config.config_from_data(config.data):
    raise ValueError(
      f"{workdir} holds a run with other preprocessing ({before}); use a new "
      "--workdir"
    )
