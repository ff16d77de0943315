"""Loads a built TFDS dataset for one run: windows per split, whole videos.

Reads the array_record files with `tfds.data_source`, so TensorFlow is never
imported at training time. Builds the dataset on demand when it is missing.
The speaker split is drawn here from the run's seed (`varec.splits`), and the
mirror-image augmentation of §4.5 is applied here, so neither needs a rebuild.
The builder of `data.name` is imported on first use; what sets its datasets
apart (own emotions, a config made from the data options, ...) is read from
its class attributes (`varec.data.builder.VideoEmotionBuilder`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import pathlib

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from configs import base
from varec import emotions
from varec import locks
from varec import splits
from varec.data import builder as builder_lib
from varec.data import discovery
from varec.data import summary
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import labels as labels_lib

BUILDER_MODULES = {
  "adfes": "data_builder.adfes.adfes_dataset_builder",
  "synthetic_adfes": (
    "data_builder.synthetic_adfes.synthetic_adfes_dataset_builder"
  ),
  "video_folder": "data_builder.video_folder.video_folder_dataset_builder",
}

# Per-example fields kept in memory, besides the frames.
_FIELDS = (
  "video_id",
  "speaker",
  "emotion",
  "orientation",
  "start_frame",
  "labels",
  "labelled",
)


def _digest(value) -> str:
  return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[
    :8
  ]


def _source_digest(manual_dir, labels_csv: str | None) -> str:
  """Changes with the folder a build reads, its `labels_csv`, and the name,
  size and modification time of every file in it, so a build of one folder
  (or of its earlier content) is never read as another's."""
  folder = pathlib.Path(manual_dir).resolve()
  labels = folder / labels_csv if labels_csv else None
  content = (
    hashlib.sha1(labels.read_bytes()).hexdigest()
    if labels and labels.is_file()
    else None
  )
  return _digest([str(folder), content, discovery.files_fingerprint(folder)])


def builder_class(name: str) -> type[builder_lib.VideoEmotionBuilder]:
  """The TFDS builder class of the dataset `name`, imported on first use."""
  if name not in BUILDER_MODULES:
    raise ValueError(
      f"unknown dataset {name!r}; choose one of {', '.join(BUILDER_MODULES)}"
    )
  return importlib.import_module(BUILDER_MODULES[name]).Builder


def accepts_prototypes_csv(name: str) -> bool:
  """Whether the dataset `name` takes `data.prototypes_csv` (False for an
  unknown name)."""
  return name in BUILDER_MODULES and builder_class(name).ACCEPTS_PROTOTYPES_CSV


def _config_from_data(
  data: ml_collections.ConfigDict,
  builder_cls,
  preprocess: preprocess_config.PreprocessConfig,
  label_space: emotions.LabelSpace | None,
):
  """(config, usual preprocessing) of a builder whose configs are named by
  the data options."""
  if label_space is None:
    prototypes_csv = (
      data.prototypes_csv if builder_cls.ACCEPTS_PROTOTYPES_CSV else None
    )
    label_space = (
      emotions.LabelSpace.from_csv(prototypes_csv)
      if prototypes_csv
      else emotions.TABLE2
    )
  name = (
    f"labelled{data.num_labelled_frames}"
    f"{'_cropped' if data.faces_cropped else ''}"
  )
  if label_space != emotions.TABLE2:
    name += f"_emotions{label_space.digest()}"
  if data.manual_dir:
    name += f"_source{_source_digest(data.manual_dir, builder_cls.LABELS_CSV)}"
  config = builder_lib.VideoBuilderConfig(
    name=name, label_space=label_space, preprocess=preprocess
  )
  usual = dataclasses.replace(
    preprocess_config.PreprocessConfig(),
    pad_short_clips=builder_cls.PAD_SHORT_CLIPS,
    num_labelled_frames=preprocess.num_labelled_frames,
    faces_cropped=preprocess.faces_cropped,
  )
  return config, usual


def _listed_config(data: ml_collections.ConfigDict, builder_cls):
  """(config, usual preprocessing) of the builder config
  `data.builder_config` names."""
  configs = {c.name: c for c in builder_cls.BUILDER_CONFIGS}
  config = configs.get(data.builder_config or "default")
  if config is None:
    raise ValueError(
      f"{data.name} has no builder config {data.builder_config!r}; choose one "
      f"of {', '.join(configs)}"
    )
  return config, config.preprocess


def builder_config(
  data: ml_collections.ConfigDict,
  module,
  label_space: emotions.LabelSpace | None = None,
) -> builder_lib.VideoBuilderConfig:
  """The builder config of `data`: its preprocessing, emotions and (for a
  builder with `CONFIG_FROM_DATA`, such as video_folder) source.

  Builds that differ in any of these have different names, so they live side
  by side in one data dir and one is never read as another.
  """
  builder_cls = module.Builder
  preprocess = preprocess_config.config_from_data(
    data, pad_short_clips=builder_cls.PAD_SHORT_CLIPS
  )
  if builder_cls.CONFIG_FROM_DATA:
    base, usual = _config_from_data(data, builder_cls, preprocess, label_space)
  else:
    base, usual = _listed_config(data, builder_cls)
  usual = preprocess_config.build_fields(usual)
  # A field build_fields leaves out of `usual` holds its old default there,
  # which `preprocess` (that has it) leaves.
  changed = {
    k: v
    for k, v in preprocess_config.build_fields(preprocess).items()
    if k not in usual or v != usual[k]
  }
  config = base
  if changed:
    config = dataclasses.replace(
      config,
      name=f"{config.name}_preprocess{_digest(changed)}",
      preprocess=preprocess,
    )
  if data.follow_symlinks:
    config = dataclasses.replace(
      config, name=f"{config.name}_links", follow_symlinks=True
    )
  # TFDS takes a listed config only as the very object it lists (`base`).
  return config


def get_builder(
  data: ml_collections.ConfigDict,
  label_space: emotions.LabelSpace | None = None,
) -> tfds.core.DatasetBuilder:
  """The TFDS builder named by `data.name`, reading and writing array_record
  files.

  Its preprocessing follows `data` (`preprocess.config.config_from_data`). A
  video_folder build has the emotions of `data.prototypes_csv` (Table 2
  without one), or `label_space` when given: a checkpoint's, so that its build
  is found even if the CSV has moved or changed since training.
  """
  builder_cls = builder_class(data.name)
  if data.prototypes_csv and not builder_cls.ACCEPTS_PROTOTYPES_CSV:
    raise ValueError(
      f"data.prototypes_csv is for the video_folder dataset; {data.name} has "
      "Table 2's emotions"
    )
  module = importlib.import_module(BUILDER_MODULES[data.name])
  config = builder_config(data, module, label_space)
  try:
    return module.Builder(
      config=config, data_dir=data.data_dir, file_format="array_record"
    )
  except ValueError as e:
    if "File format is already set" not in str(e):
      raise
    raise ValueError(
      f"the {data.name}/{config.name} build in "
      f"{data.data_dir or tfds.core.constants.DATA_DIR} holds TFRecord files "
      "(written by an older `tfds build` or with --file_format=tfrecord), and "
      f"varec reads ArrayRecord: delete that {data.name}/{config.name} folder "
      f"and rebuild with `{build_command(data)}` or `tfds build` (ArrayRecord "
      "by default now)"
    ) from None


def build_command(data: ml_collections.ConfigDict) -> str:
  """The `varec.build_dataset` command line that builds the dataset of
  `data`."""
  keys = ["name", "manual_dir", "data_dir", "builder_config"]
  # Only some builders (video_folder) take it.
  if accepts_prototypes_csv(data.name):
    keys += ["prototypes_csv"]
  defaults = base.get_data_config()
  keys += [
    k
    for k in ("follow_symlinks",) + preprocess_config.PREPROCESS_FIELDS
    if data.get(k) is not None and data.get(k) != defaults.get(k)
  ]
  options = [
    f"--data.{key}={data.get(key)}" for key in keys if data.get(key) is not None
  ]
  return " ".join(["python -m varec.build_dataset"] + options)


def ensure_built(
  data: ml_collections.ConfigDict,
  label_space: emotions.LabelSpace | None = None,
) -> tfds.core.DatasetBuilder:
  """Returns the builder, building the dataset first if it is not there yet."""
  builder = get_builder(data, label_space)
  if not builder.is_prepared():
    # One build of a dataset at a time; a second waits and reads the first's.
    with locks.exclusive(
      pathlib.Path(builder.data_dir).parent,
      "a dataset build",
      wait_s=float("inf"),
      on_wait=lambda holder: logging.info(
        "Waiting for %s, which is building %s in %s",
        holder,
        data.name,
        builder.data_dir,
      ),
    ):
      builder = get_builder(data, label_space)
      if not builder.is_prepared():
        logging.info(
          "Dataset %s (%s) is not built in %s; building it now.",
          data.name,
          builder.builder_config.name,
          builder.data_dir,
        )
        builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(
            manual_dir=data.manual_dir, try_download_gcs=False
          )
        )
  check_preprocessing(builder)
  check_source(builder, data.manual_dir)
  return builder


def check_source(builder: tfds.core.DatasetBuilder, manual_dir) -> None:
  """Raises ValueError if the files in `manual_dir` changed since the build
  read them."""
  stored = builder.info.metadata.get("manual_dir_fingerprint")
  if (
    manual_dir and stored and stored != discovery.files_fingerprint(manual_dir)
  ):
    raise ValueError(
      f"the {builder.name}/{builder.builder_config.name} build in "
      f"{builder.data_dir} was made from other files than {manual_dir} holds "
      "now (added, removed or changed since): delete that build folder to "
      "rebuild it, or use another data_dir"
    )


def check_preprocessing(builder: tfds.core.DatasetBuilder) -> None:
  """Raises ValueError if a build's recorded preprocessing is not the one
  asked for."""
  stored = builder.info.metadata.get("preprocess")
  stored = (
    None if stored is None else preprocess_config.upgrade_recorded(stored)
  )
  wanted = dataclasses.asdict(builder.builder_config.preprocess)
  if stored is not None and stored != wanted:
    differ = sorted(k for k in wanted if stored.get(k) != wanted[k])
    raise ValueError(
      f"the build in {builder.data_dir} was preprocessed with other settings "
      f"({', '.join(f'{k}={stored.get(k)!r}' for k in differ)}; this run needs "
      f"{', '.join(f'{k}={wanted[k]!r}' for k in differ)}); delete it or use "
      "another data_dir"
    )


def label_space(builder: tfds.core.DatasetBuilder) -> emotions.LabelSpace:
  """The emotions of a build: class indices, prototypes and PN groups."""
  meta = builder.info.metadata.get("label_space")
  # Builds made before the metadata recorded emotions could only have Table 2's.
  return (
    emotions.TABLE2 if meta is None else emotions.LabelSpace.from_meta(meta)
  )


def build_summary(builder: tfds.core.DatasetBuilder) -> str:
  """The build's counts and skipped files, as text."""
  return summary.format_summary(builder.info.metadata["build_summary"])


def read_split(
  builder: tfds.core.DatasetBuilder, split: str, orientations
) -> list[dict]:
  """Every example of a TFDS split ("windows" or "videos") with an allowed
  orientation."""
  source = builder.as_data_source(split=split)
  examples = []
  for i in range(len(source)):
    example = source[i]
    for key in ("video_id", "speaker", "orientation"):
      example[key] = (
        example[key].decode()
        if isinstance(example[key], bytes)
        else example[key]
      )
    if example["orientation"] in orientations:
      examples.append(example)
  return examples


def mirrored(example: dict, config: preprocess_config.InputConfig) -> dict:
  """The example's mirror image as a new speaker (§4.5 step 4): its model
  input mirrored (`preprocess.crop.mirror_input`).

  Face boxes keep the original video's coordinates.
  """
  return {
    **example,
    "frames": crop.mirror_input(example["frames"], config),
    "speaker": labels_lib.mirror_speaker(example["speaker"]),
    "video_id": example["video_id"] + labels_lib.MIRROR_SUFFIX,
  }


def prepare_examples(
  examples: list[dict], data: ml_collections.ConfigDict
) -> list[dict]:
  """Frames (and a face-mesh build's crops) as model input
  (`preprocess.crop.model_input`), plus mirror images if `data.flip_augment`."""
  inputs = preprocess_config.input_config(data)
  out = [
    {
      **e,
      "frames": crop.model_input(e["frames"], inputs, e.get("crops")),
    }
    for e in examples
  ]
  if data.flip_augment:
    out += [mirrored(e, inputs) for e in out]
  return out


def stack(examples: list[dict]) -> dict[str, np.ndarray]:
  """Equal-length clips (windows) as one dict of arrays with a leading
  example axis."""
  if not examples:
    raise ValueError("no examples to stack")
  return {
    key: np.stack([e[key] for e in examples]) for key in ("frames",) + _FIELDS
  }


def select_speakers(examples: list[dict], speakers) -> list[dict]:
  speakers = set(speakers)
  return [e for e in examples if e["speaker"] in speakers]


def speaker_split(
  speakers, config: ml_collections.ConfigDict
) -> dict[str, tuple[str, ...]]:
  """The run's train/validation/test speakers, drawn from `config.seed`."""
  return splits.split_speakers(
    speakers,
    seed=config.seed,
    ratios=config.data.split_ratios,
    group_mirrors=not config.data.split_mirror_separately,
  )


def neutral_onset_windows(
  videos: list[dict], data: ml_collections.ConfigDict, neutral_point
) -> list[dict]:
  """Windows cut from the first `data.neutral_onset_frames` frames of each
  clip, every frame labelled `neutral_point` (beyond the paper).

  Posed clips (ADFES, CK+) start from a neutral face: their onset shows the
  model the neutral that labels without a neutral class never do. A clip
  whose first frames are already labelled (shorter than the onset and its
  labelled frames together) gives none.
  """
  n, length = data.neutral_onset_frames, data.window_length
  labels = np.tile(np.asarray(neutral_point, np.float32), (length, 1))
  windows = []
  for video in videos:
    if len(video["labelled"]) < n or video["labelled"][:n].any():
      continue
    for start in range(0, n - length + 1, length):
      windows.append(
        {
          **video,
          "frames": video["frames"][start : start + length],
          "labels": labels,
          "labelled": np.ones(length, bool),
          "start_frame": np.int64(start),
        }
      )
  return windows


def load_windows(config: ml_collections.ConfigDict, builder=None):
  """Windows of every split for one run (`builder` defaults to `ensure_built`).

  With `data.neutral_onset_frames`, the training split also holds the
  windows of its clips' neutral onsets (`neutral_onset_windows`); validation
  and test keep the paper's labelled frames only.

  Returns:
    ({split name: stacked windows}, {split name: speaker ids}). Windows hold
    frames (N, T, S, S, 1) uint8, labels (N, T, 2) float32 and the fields in
    `_FIELDS`.

  Raises:
    ValueError: a split without windows, or no training clip with a neutral
      onset of the length asked for.
  """
  builder = builder or ensure_built(config.data)
  examples = prepare_examples(
    read_split(builder, "windows", config.data.orientations), config.data
  )
  speakers = speaker_split({e["speaker"] for e in examples}, config)
  windows = {}
  for name, members in speakers.items():
    selected = select_speakers(examples, members)
    if name == "train" and config.data.neutral_onset_frames:
      selected += _training_onsets(config, speakers["train"], builder)
    # In frame order within each video (TFDS stores examples shuffled): the
    # video vote's tie-break during validation looks at which emotion came last.
    selected.sort(key=lambda e: (e["video_id"], int(e["start_frame"])))
    if not selected:
      raise ValueError(f"split {name!r} has no windows (speakers {members})")
    windows[name] = stack(selected)
  return windows, speakers


def _training_onsets(config, speakers, builder) -> list[dict]:
  n = config.data.neutral_onset_frames
  onsets = neutral_onset_windows(
    load_videos(config, speakers, builder, first_frames=n),
    config.data,
    label_space(builder).neutral_point(),
  )
  if not onsets:
    raise ValueError(
      f"data.neutral_onset_frames={n}: no training clip has {n} frames before "
      f"its labelled ones (the last data.num_labelled_frames="
      f"{config.data.num_labelled_frames}); lower either, or set it to 0"
    )
  logging.info(
    "%d neutral onset windows (the first %d frames of each clip) join training",
    len(onsets),
    n,
  )
  return onsets


def load_videos(
  config: ml_collections.ConfigDict,
  speakers,
  builder=None,
  first_frames: int | None = None,
) -> list[dict]:
  """Whole preprocessed videos of the given speakers (mirror images included if
  flipped); with `first_frames`, only that many of each video's frames are
  made model input (every other field stays whole)."""
  builder = builder or ensure_built(config.data)
  examples = read_split(builder, "videos", config.data.orientations)
  if first_frames is not None:
    examples = [{**e, "frames": e["frames"][:first_frames]} for e in examples]
  return select_speakers(prepare_examples(examples, config.data), speakers)


def with_build_preprocessing(
  config: ml_collections.ConfigDict, builder
) -> ml_collections.ConfigDict:
  """`config` with the data fields of the preprocessing `builder`'s data went
  through.

  They are what the checkpoints carry to eval.py and predict.py, so they must
  describe the data trained on even when a caller hands over its own builder.
  """
  fields = preprocess_config.data_fields(builder.builder_config.preprocess)
  differ = {k: v for k, v in fields.items() if config.data[k] != v}
  if not differ:
    return config
  logging.info("Recording the build's preprocessing in the config: %s", differ)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.data.update(differ)
  return config
