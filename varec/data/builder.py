"""The TFDS builder every video dataset shares, and its two ways to build.

Every builder in `data_builder/` (adfes, synthetic_adfes, video_folder) is a
`VideoEmotionBuilder` that lists its video files as `discovery.VideoRecord`s;
everything after that is this one code path. What differs between datasets
is said by class attributes (`READS_MANUAL_DIR`, `LABELS_CSV`,
`ACCEPTS_PROTOTYPES_CSV`, `CONFIG_FROM_DATA`, `PAD_SHORT_CLIPS`), which this
module and `input_pipeline` read; no code tests a dataset's name.

Emotion names are read in the builder config's label space (Table 2 unless a
`video_folder` build has a prototypes CSV), which the dataset's
`info.metadata["label_space"]` records. A bad file never stops a build: it is
reported with its reason, skipped, and listed in the build summary
(`info.metadata["build_summary"]`).

How the videos are preprocessed is a strategy chosen per build: `PoolBuild`
(a process pool with an npz cache, the default) or `BeamBuild` (an Apache
Beam pipeline, when Beam options are given). Both give the same examples and
the same summary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import uuid

from absl import app
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from varec import emotions
from varec import face_mesh
from varec.data import discovery
from varec.data import pool
from varec.data import summary as summary_lib
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import labels as labels_lib


@dataclasses.dataclass(eq=False)
class VideoBuilderConfig(tfds.core.BuilderConfig):
  """A builder config: preprocessing parameters, the file-name pattern, the
  emotions."""

  preprocess: preprocess_config.PreprocessConfig = dataclasses.field(
    default_factory=preprocess_config.PreprocessConfig
  )
  filename_pattern: str = discovery.ADFES_FILENAME_PATTERN
  orientations: tuple[str, ...] = discovery.ORIENTATIONS
  label_space: emotions.LabelSpace = emotions.TABLE2
  # Read files that links in the manual folder point to outside it.
  follow_symlinks: bool = False


# -- How the videos are preprocessed: one strategy per build
# ---------------------


def build_strategy(download_config) -> PoolBuild | BeamBuild:
  """`BeamBuild` when `download_config` has Beam options (`tfds build
  --beam_pipeline_options=...`, or a DownloadConfig with them), else
  `PoolBuild`."""
  if download_config.beam_runner or download_config.beam_options:
    check_beam_runner(download_config)
    return BeamBuild()
  return PoolBuild()


def check_beam_runner(download_config) -> None:
  """Refuses a Beam runner that Beam does not know, before any video is read.

  Beam says so only when TFDS makes the pipeline, after the videos were listed
  (and the synthetic ones rendered). Raised as absl's UsageError, which
  `tfds build` (an absl program) prints as its usage line and this message,
  not a traceback.
  """
  beam = tfds.core.lazy_imports.apache_beam
  runner = download_config.beam_runner
  if runner is None:
    runner = download_config.beam_options.view_as(
      beam.options.pipeline_options.StandardOptions
    ).runner
  if not isinstance(runner, str):
    return
  try:
    beam.runners.runner.create_runner(runner)
  except ValueError as e:
    raise app.UsageError(f"Beam runner {runner!r}: {e}") from None


class PoolBuild:
  """The default build: the videos go through a process pool
  (`pool.preprocess_all`) with its cache in the download dir, and the summary
  is checked before any example is written."""

  # pylint: disable=protected-access
  def split_generators(
    self, builder: VideoEmotionBuilder, records, skipped, dl_manager
  ):
    config = builder.builder_config
    done, failed = pool.preprocess_all(
      records,
      config.preprocess,
      pathlib.Path(dl_manager.download_dir) / "varec_preprocessed",
    )
    builder._check_and_record(
      summary_lib.build_summary(done, skipped + failed, config.preprocess),
      dl_manager,
    )
    return {
      split: builder._generate_examples(done, windows=split == "windows")
      for split in ("windows", "videos")
    }

  def finish(self, builder: VideoEmotionBuilder, dl_manager):
    """Nothing left: the summary was checked in `split_generators`."""
    del builder, dl_manager


class BeamBuild:
  """The same splits from a Beam pipeline: one element per video, preprocessed
  in a worker.

  Both splits read one PCollection of preprocessed videos, so each video is
  decoded once; the per-video counts are combined into the build summary,
  written to a file that `finish` reads once the pipeline has run.
  """

  def __init__(self):
    self.summary_file = None

  def split_generators(
    self, builder: VideoEmotionBuilder, records, skipped, dl_manager
  ):
    beam = tfds.core.lazy_imports.apache_beam
    config = builder.builder_config
    self.summary_file = os.fspath(
      epath.Path(dl_manager.download_dir)
      / f"varec_build_summary_{uuid.uuid4().hex}.json"
    )
    order = {record.video_id: i for i, record in enumerate(records)}
    summary_args = (
      self.summary_file,
      skipped,
      order,
      builder.name,
      config.preprocess,
    )
    shared = {}

    def preprocessed(root):
      # The first split's expansion creates it, the second reuses it.
      if "videos" not in shared:
        results = (
          root
          | "ListVideos" >> beam.Create(records)
          | "Reshuffle"
          >> beam.Reshuffle()  # Spread the videos over the workers.
          | "Preprocess" >> beam.Map(_beam_preprocess, config.preprocess)
        )
        summary = (
          results
          | "VideoStats" >> beam.Map(_beam_stats, config.preprocess)
          | "CollectStats" >> beam.combiners.ToList()
          | "WriteSummary" >> beam.Map(_write_beam_summary, *summary_args)
        )
        # The summary as a side input holds examples back until it is written
        # and checked: a build with nothing to train on fails with its reasons,
        # not with an empty split.
        shared["videos"] = (
          results | "Usable" >> beam.Filter(lambda r: r[1] is not None),
          beam.pvalue.AsSingleton(summary),
        )
      return shared["videos"]

    def split(windows: bool):
      def expand(root):
        videos, summary = preprocessed(root)
        return videos | "Examples" >> beam.FlatMap(
          lambda r, _: video_examples(r[0], r[1], config, windows), summary
        )

      return beam.ptransform_fn(expand)()

    return {"windows": split(windows=True), "videos": split(windows=False)}

  def finish(self, builder: VideoEmotionBuilder, dl_manager):
    """Records and checks the summary, known only once the pipeline has run:
    a build without a usable video or window is still refused (its files are
    never published)."""
    summary_file = epath.Path(self.summary_file)
    summary = json.loads(summary_file.read_text())
    summary_file.unlink()
    # pylint: disable=protected-access
    builder._check_and_record(summary, dl_manager)


# -- The builder
# ----------------------------------------------------------------


class VideoEmotionBuilder(
  tfds.core.GeneratorBasedBuilder, skip_registration=True
):
  """Shared TFDS builder: subclasses say where the video files are, and how
  their dataset differs from the others in the class attributes below.

  Two splits hold the same feature spec:
  - `windows`: `window_length`-frame clips cut from each video's labelled
  frames;
  - `videos`: every preprocessed frame of each video (for trajectories).
  The train/validation/test split over speakers is drawn at load time from the
  run's seed (`varec.splits`), so one build serves any number of runs.
  """

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {
    "1.0.0": "First release.",
    "1.1.0": (
      "Aligned face crops by default; the preprocessing is in the metadata."
    ),
    "1.2.0": (
      "Frames stored as raw bytes, not zlib (the same values; faster to "
      "write and read)."
    ),
  }
  BUILDER_CONFIGS = [
    VideoBuilderConfig(name="default", description="Paper §4.5 settings.")
  ]

  # What differs between datasets (set in `data_builder/*/`, read by generic
  # code): the videos come from the manual dir, whose files' fingerprint goes
  # into the metadata.
  READS_MANUAL_DIR = False
  # The file in the manual dir that lists the videos (None: the builder finds
  # them itself).
  LABELS_CSV: str | None = None
  # `data.prototypes_csv` may give the build emotions of its own instead of
  # Table 2's.
  ACCEPTS_PROTOTYPES_CSV = False
  # The builder config is made from the run's data options (its name from
  # num_labelled_frames, faces_cropped, the emotions and the source folder), not
  # chosen from BUILDER_CONFIGS by `data.builder_config`.
  CONFIG_FROM_DATA = False
  # Clips and stills shorter than a window are padded to one, not skipped.
  PAD_SHORT_CLIPS = False

  # Set per build by `_download_and_prepare`: `BeamBuild` when Beam options were
  # given.
  _build_strategy: PoolBuild | BeamBuild = PoolBuild()

  def __init__(self, *, file_format=None, **kwargs):
    # ArrayRecord is what varec reads (random access, `as_data_source`); the
    # default here makes `tfds build data_builder/<name>` write it with no
    # --file_format flag.
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _video_records(
    self, dl_manager
  ) -> tuple[list[discovery.VideoRecord], list[discovery.Skipped]]:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    preprocess = self.builder_config.preprocess
    size = preprocess.crop_size
    # Raw bytes: zlib shrank equalised face crops by only ~4% but took most
    # of a build's writing time and of every read's decoding. A face-mesh
    # build stores each face's landmarks instead of a crop (and with
    # `mesh_crops` its crop as well).
    crops = tfds.features.Tensor(
      shape=(None, size, size, 1), dtype=np.uint8, encoding="bytes"
    )
    mesh = face_mesh.reads_mesh(preprocess.face_detector)
    frames = (
      tfds.features.Tensor(
        shape=(None, face_mesh.NUM_LANDMARKS, 3),
        dtype=np.float32,
        encoding="bytes",
      )
      if mesh
      else crops
    )
    also = {"crops": crops} if mesh and preprocess.mesh_crops else {}
    label_space = self.builder_config.label_space
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          "video_id": tfds.features.Text(),
          "speaker": tfds.features.Text(),
          "emotion": tfds.features.ClassLabel(names=label_space.emotions),
          "orientation": tfds.features.Text(),
          # Index of the clip's first frame in its video.
          "start_frame": np.int32,
          "frames": frames,
          "labels": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
          "labelled": tfds.features.Tensor(shape=(None,), dtype=np.bool_),
          "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.int32),
          "detected": tfds.features.Tensor(shape=(None,), dtype=np.bool_),
          "detection_rate": np.float32,
          "source_fps": np.float32,
          **also,
        }
      ),
      # Saved with the build: training and evaluation read the emotions from
      # here.
      metadata=tfds.core.MetadataDict(
        label_space=label_space.to_meta(),
        preprocess=dataclasses.asdict(self.builder_config.preprocess),
      ),
    )

  def _download_and_prepare(self, dl_manager, download_config):
    self._build_strategy = build_strategy(download_config)
    super()._download_and_prepare(dl_manager, download_config)
    self._build_strategy.finish(self, dl_manager)

  def _check_and_record(self, summary: dict, dl_manager):
    """Puts the summary in the metadata, logs it, and refuses a build with
    nothing to train on."""
    self.info.metadata["build_summary"] = summary
    # Only builders that read a manual dir may ask for it (synthetic_adfes
    # generates its own).
    if self.READS_MANUAL_DIR and pathlib.Path(dl_manager.manual_dir).is_dir():
      # Checked when the build is loaded: a build never stands for files changed
      # since.
      self.info.metadata["manual_dir_fingerprint"] = (
        discovery.files_fingerprint(dl_manager.manual_dir)
      )
    logging.info(
      "Build summary for %s:\n%s",
      self.name,
      summary_lib.format_summary(summary),
    )
    summary_lib.check_summary(
      self.name, self.builder_config.preprocess, summary
    )

  def _split_generators(self, dl_manager):
    records, skipped = self._video_records(dl_manager)
    if self.READS_MANUAL_DIR:
      records, outside = discovery.inside_folder(
        records, dl_manager.manual_dir, self.builder_config.follow_symlinks
      )
      skipped = skipped + outside
    return self._build_strategy.split_generators(
      self, records, skipped, dl_manager
    )

  def _generate_examples(self, done, windows: bool):
    for record, cache in done:
      yield from video_examples(
        record, pool.load_preprocessed(cache), self.builder_config, windows
      )


def video_examples(
  record: discovery.VideoRecord,
  video: clip.PreprocessedVideo,
  config: VideoBuilderConfig,
  windows: bool,
):
  """(key, example) of one video: its windows, or the whole video as one
  example."""
  pre = config.preprocess
  labels = labels_lib.frame_labels(
    record.emotion, len(video.frames), config.label_space
  )
  if windows:
    starts = labels_lib.window_starts(
      video.labelled, pre.window_length, pre.window_stride
    )
    spans = [(int(s), int(s) + pre.window_length) for s in starts]
  else:
    spans = [(0, len(video.frames))]
  for start, stop in spans:
    yield (
      f"{record.video_id}@{start}",
      {
        "video_id": record.video_id,
        "speaker": record.speaker,
        "emotion": record.emotion,
        "orientation": record.orientation,
        "start_frame": start,
        "frames": video.frames[start:stop],
        "labels": labels[start:stop],
        "labelled": video.labelled[start:stop],
        "boxes": video.boxes[start:stop],
        "detected": video.detected[start:stop],
        "detection_rate": np.float32(video.detection_rate),
        "source_fps": np.float32(video.source_fps),
        # A face-mesh build's crops, with `mesh_crops`.
        **({} if video.crops is None else {"crops": video.crops[start:stop]}),
      },
    )


def _beam_preprocess(
  record: discovery.VideoRecord, config: preprocess_config.PreprocessConfig
):
  """A Beam worker's step: (record, video or None, reason or None); never
  raises for a bad file."""
  video, reason = pool.try_preprocess(record, config)
  if video is None:
    logging.warning("Skipping %s: %s", record.path, reason)
  return record, video, reason


def _beam_stats(result, config: preprocess_config.PreprocessConfig):
  record, video, reason = result
  if video is None:
    return {
      "video_id": record.video_id,
      "skipped": dataclasses.asdict(
        discovery.Skipped(str(record.path), reason)
      ),
    }
  return summary_lib.video_stats(record, video, config)


def _write_beam_summary(
  stats: list[dict],
  path: str,
  listing_skipped: list[discovery.Skipped],
  order: dict[str, int],
  name: str,
  config: preprocess_config.PreprocessConfig,
) -> dict:
  """Combines the per-video counts as `summary.build_summary` does (skipped
  files in listing order), writes them to `path`, and raises if no usable
  video or window is left."""
  stats = sorted(stats, key=lambda v: order[v["video_id"]])
  failed = [discovery.Skipped(**v["skipped"]) for v in stats if "skipped" in v]
  summary = summary_lib.summarize(
    [v for v in stats if "skipped" not in v], list(listing_skipped) + failed
  )
  epath.Path(path).write_text(json.dumps(summary))
  summary_lib.check_summary(name, config, summary)
  return summary
