"""What the TFDS video builders share: finding videos, preprocessing them in
parallel, and packaging them as TFDS examples.

Every builder (`data_builder/adfes`, `data_builder/synthetic_adfes`,
`data_builder/video_folder`) lists its video files as `VideoRecord`s;
everything after that is this one code path. Emotion names are read in the
builder config's label space (Table 2 unless a `video_folder` build has a
prototypes CSV), which the dataset's `info.metadata["label_space"]` records.
A bad file never stops a build: it is reported with its reason, skipped, and
listed in the build summary (`info.metadata["build_summary"]`).
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import pathlib
import re
import uuid

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from varec import emotions
from varec import preprocessing

# ADFES file names look like "F01-Anger-Face Forward.mpeg"; the orientation part
# may be missing when the videos are sorted into one folder per orientation.
ADFES_FILENAME_PATTERN = (
    r"^(?P<speaker>[FM]\d+)[-_ ]+(?P<emotion>[A-Za-z]+)(?:[-_ ]+(?P<orientation>.+))?$")
VIDEO_EXTENSIONS = preprocessing.VIDEO_EXTENSIONS
INDEX_CSV = "index.csv"
ORIENTATIONS = ("forward", "toward", "away")


@dataclasses.dataclass(frozen=True)
class VideoRecord:
  """One labelled video file."""
  path: pathlib.Path
  video_id: str  # Unique: the path relative to the data folder, without extension.
  speaker: str
  emotion: str  # A name of the build's label space.
  orientation: str  # forward | toward | away.


@dataclasses.dataclass(frozen=True)
class Skipped:
  """A file left out of the build, and why."""
  file: str
  reason: str


def canonical_orientation(text: str) -> str | None:
  """forward / toward / away from ADFES wording ("Face Forward", "Turning Away"), else None."""
  text = text.lower()
  for name, keywords in (("toward", ("toward",)), ("away", ("away",)),
                         ("forward", ("forward", "front"))):
    if any(k in text for k in keywords):
      return name
  return None


def parse_file_name(path: pathlib.Path, root: pathlib.Path, pattern: str = ADFES_FILENAME_PATTERN,
                    label_space: emotions.LabelSpace = emotions.TABLE2) -> VideoRecord:
  """Speaker, emotion and orientation from a file name matching `pattern`.

  `pattern` is a regular expression with the named groups `speaker` and
  `emotion` and optionally `orientation`, matched against the file's stem.
  Without an orientation in the name, the folders above the file are searched
  for one ("Face Forward/F01-Anger.mpeg"); failing that, forward is assumed.

  Raises:
    ValueError: the name does not match, or names no emotion of `label_space`.
  """
  match = re.match(pattern, path.stem)
  if not match:
    raise ValueError(f"file name does not match the pattern {pattern!r}")
  groups = match.groupdict()
  emotion = label_space.canonical(groups["emotion"])
  relative = path.relative_to(root)
  orientation_text = groups.get("orientation") or " ".join(relative.parent.parts)
  orientation = canonical_orientation(orientation_text) if orientation_text else None
  if orientation is None:
    if groups.get("orientation"):
      raise ValueError(f"unknown orientation {groups['orientation']!r}")
    orientation = "forward"
  return VideoRecord(path=path, video_id=relative.with_suffix("").as_posix(),
                     speaker=groups["speaker"], emotion=emotion, orientation=orientation)


def read_index_csv(index_path: pathlib.Path, label_space: emotions.LabelSpace = emotions.TABLE2
                   ) -> tuple[list[VideoRecord], list[Skipped]]:
  """Records from a CSV with columns path, speaker, emotion[, orientation].

  Paths are relative to the CSV's folder; orientation defaults to forward.
  Spreadsheet habits are taken as meant: a byte-order mark, `;` or tab as the
  separator, spaces around names. A row is skipped, with its line and the
  reason, when its path leaves the folder, repeats an earlier row's video (the
  same path, or the same path but for its extension), its speaker is empty,
  or its emotion or orientation is unknown.
  """
  root = index_path.parent
  records, skipped, seen = [], [], {}
  with open(index_path, newline="", encoding="utf-8-sig") as f:
    sample = f.read(4096)
    f.seek(0)
    try:
      dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:  # One column, or too little text to tell: the default comma.
      dialect = csv.excel
    reader = csv.DictReader(f, dialect=dialect)
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or ()]
    missing = {"path", "speaker", "emotion"} - set(reader.fieldnames)
    if missing:
      raise ValueError(f"{index_path}: missing column(s) {', '.join(sorted(missing))} (found "
                       f"{', '.join(reader.fieldnames) or 'none'}); expected path, speaker, "
                       "emotion[, orientation]")
    for line, row in enumerate(reader, start=2):
      relative = (row["path"] or "").strip()
      try:
        path = root / relative
        # Checked on the text, so that links the user put in the folder still count as inside.
        if not relative or not pathlib.Path(os.path.normpath(path)).is_relative_to(
            os.path.normpath(root)):
          raise ValueError(f"path {relative!r} is not inside {root}")
        video_id = pathlib.Path(relative).with_suffix("").as_posix()
        if video_id in seen:
          raise ValueError(f"the same video as line {seen[video_id]} (paths differing only in "
                           "their extension name one video)")
        speaker = (row["speaker"] or "").strip()
        if not speaker:
          raise ValueError("empty speaker")
        orientation = canonical_orientation(row.get("orientation") or "forward")
        if orientation is None:
          raise ValueError(f"unknown orientation {row['orientation']!r}")
        records.append(VideoRecord(path=path, video_id=video_id, speaker=speaker,
                                   emotion=label_space.canonical(row["emotion"] or ""),
                                   orientation=orientation))
        seen[video_id] = line
      except ValueError as e:
        skipped.append(Skipped(f"{index_path}:{line} ({relative})", str(e)))
  return records, skipped


def find_videos(root, pattern: str = ADFES_FILENAME_PATTERN, orientations=ORIENTATIONS,
                label_space: emotions.LabelSpace = emotions.TABLE2
                ) -> tuple[list[VideoRecord], list[Skipped]]:
  """Lists the labelled videos under `root`, from `index.csv` if present, else file names.

  Raises:
    FileNotFoundError: `root` is missing, or holds no video file at all.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"data folder {root} does not exist")
  if (root / INDEX_CSV).is_file():
    records, skipped = read_index_csv(root / INDEX_CSV, label_space)
  else:
    records, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
      if path.suffix.lower() not in VIDEO_EXTENSIONS:
        continue
      try:
        records.append(parse_file_name(path, root, pattern, label_space))
      except ValueError as e:
        skipped.append(Skipped(str(path), str(e)))
  if not records and not skipped:
    raise FileNotFoundError(
        f"no video file in {root} (looked for {', '.join(sorted(VIDEO_EXTENSIONS))} "
        f"or an {INDEX_CSV})")
  kept = [r for r in records if r.orientation in orientations]
  if len(kept) < len(records):
    logging.info("Leaving out %d videos whose orientation is not in %s",
                 len(records) - len(kept), orientations)
  return sorted(kept, key=lambda r: r.video_id), skipped


# -- Parallel preprocessing with an on-disk cache -------------------------------


def _cache_path(record: VideoRecord, config: preprocessing.PreprocessConfig,
                cache_dir: pathlib.Path) -> pathlib.Path:
  stat = record.path.stat()
  key = json.dumps([str(record.path.resolve()), stat.st_size, stat.st_mtime_ns,
                    dataclasses.asdict(config)], sort_keys=True)
  digest = hashlib.sha1(key.encode()).hexdigest()[:16]
  return cache_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', record.video_id)}-{digest}.npz"


def _try_preprocess(record: VideoRecord, config: preprocessing.PreprocessConfig
                    ) -> tuple[preprocessing.PreprocessedVideo | None, str | None]:
  """(video, None) on success, (None, reason) when the file cannot be used."""
  try:
    if not record.path.exists():
      raise preprocessing.VideoError(record.path, "file not found")
    return preprocessing.preprocess_video(record.path, config), None
  except preprocessing.VideoError as e:
    return None, e.reason
  except Exception as e:  # pylint: disable=broad-except
    # Any other failure on one file (e.g. a decoder crash) must not kill the build.
    return None, f"{type(e).__name__}: {e}"


def _preprocess_one(record: VideoRecord, config: preprocessing.PreprocessConfig,
                    cache_dir: pathlib.Path) -> tuple[pathlib.Path | None, str | None]:
  """Runs in a worker process: (cache file, None) on success, (None, reason) on failure."""
  try:
    cache = _cache_path(record, config, cache_dir)
  except FileNotFoundError:
    return None, "file not found"
  except OSError as e:
    return None, f"{type(e).__name__}: {e}"
  if not cache.exists():
    video, reason = _try_preprocess(record, config)
    if video is None:
      return None, reason
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, **dataclasses.asdict(video))
    os.replace(tmp, cache)  # Atomic: a killed build never leaves half a file.
  return cache, None


def default_workers() -> int:
  return int(os.environ.get("VAREC_WORKERS", os.cpu_count() or 1))


def _run_in_pool(records, config, cache_dir, workers: int) -> dict[int, tuple]:
  """Results by record index; records whose worker process died are left out."""
  results = {}
  # Spawned, not forked: the parent may hold TensorFlow or JAX threads.
  with concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=multiprocessing.get_context("spawn")) as pool:
    futures = {pool.submit(_preprocess_one, r, config, cache_dir): i for i, r in enumerate(records)}
    for future in concurrent.futures.as_completed(futures):
      try:
        results[futures[future]] = future.result()
      except concurrent.futures.process.BrokenProcessPool:
        pass
  return results


def preprocess_all(records, config: preprocessing.PreprocessConfig, cache_dir,
                   workers: int | None = None):
  """Preprocesses every record in parallel; returns ([(record, cache file)], [Skipped]).

  A worker process that dies (a decoder crash, out of memory) takes down only
  the videos it was working on: the others are retried, each in a fresh process.
  """
  cache_dir = pathlib.Path(cache_dir)
  cache_dir.mkdir(parents=True, exist_ok=True)
  workers = workers or default_workers()
  if workers > 1 and len(records) > 1:
    results = _run_in_pool(records, config, cache_dir, workers)
    lost = [i for i in range(len(records)) if i not in results]
    if lost:
      logging.warning("A preprocessing worker died; retrying %d video(s) one at a time", len(lost))
    for i in lost:
      retry = _run_in_pool([records[i]], config, cache_dir, 1)
      results[i] = retry.get(0, (None, "the worker process crashed while preprocessing this "
                                 "video (if every video fails like this, run from a script "
                                 "guarded by `if __name__ == '__main__':` or set VAREC_WORKERS=1)"))
  else:
    results = {i: _preprocess_one(r, config, cache_dir) for i, r in enumerate(records)}
  done, skipped = [], []
  for i, record in enumerate(records):
    cache, reason = results[i]
    if cache is None:
      logging.warning("Skipping %s: %s", record.path, reason)
      skipped.append(Skipped(str(record.path), reason))
    else:
      done.append((record, cache))
  return done, skipped


def load_preprocessed(cache: pathlib.Path) -> preprocessing.PreprocessedVideo:
  with np.load(cache) as data:
    fields = {k: data[k] for k in data.files}
  return preprocessing.PreprocessedVideo(**fields)


# -- TFDS packaging --------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class VideoBuilderConfig(tfds.core.BuilderConfig):
  """A builder config: preprocessing parameters, the file-name pattern, the emotions."""
  preprocess: preprocessing.PreprocessConfig = dataclasses.field(
      default_factory=preprocessing.PreprocessConfig)
  filename_pattern: str = ADFES_FILENAME_PATTERN
  orientations: tuple[str, ...] = ORIENTATIONS
  label_space: emotions.LabelSpace = emotions.TABLE2


def video_stats(record: VideoRecord, video: preprocessing.PreprocessedVideo,
                config: preprocessing.PreprocessConfig) -> dict:
  """One video's counts for the build summary (small: a Beam worker sends it on)."""
  return {
      "video_id": record.video_id,
      "file": str(record.path),
      "speaker": record.speaker,
      "frames": len(video.frames),
      "windows": len(preprocessing.window_starts(video.labelled, config.window_length,
                                                 config.window_stride)),
      "detection_attempts": int(video.num_detection_attempts),
      "failed_detections": int(video.num_failed_detections),
      "detection_rate": float(video.detection_rate),
      "padded": bool(video.num_padded_frames > 0),
      "alignment_fallbacks": int(video.num_alignment_fallbacks),
  }


def summarize(stats: list[dict], skipped: list[Skipped]) -> dict:
  """The build log's and `info.metadata`'s counts, with every skipped file."""
  stats = sorted(stats, key=lambda v: v["video_id"])
  attempted = sum(v["detection_attempts"] for v in stats)
  failed = sum(v["failed_detections"] for v in stats)
  rates = [v["detection_rate"] for v in stats if v["detection_attempts"]]
  return {
      "videos": len(stats),
      "speakers": len({v["speaker"] for v in stats}),
      "frames": int(sum(v["frames"] for v in stats)),
      "windows": int(sum(v["windows"] for v in stats)),
      "videos_without_window": [v["file"] for v in stats if not v["windows"]],
      "detection_rate": float(1 - failed / attempted) if attempted else float("nan"),
      "min_video_detection_rate": float(min(rates)) if rates else float("nan"),
      "failed_detections": int(failed),
      "padded_videos": int(sum(v["padded"] for v in stats)),
      # Pre-cropped frames where no face was found to align: used as they are.
      "alignment_fallbacks": int(sum(v["alignment_fallbacks"] for v in stats)),
      "skipped": [dataclasses.asdict(s) for s in skipped],
  }


def build_summary(done, skipped, config: preprocessing.PreprocessConfig) -> dict:
  """`summarize` over the preprocessed videos of `preprocess_all`."""
  return summarize([video_stats(record, load_preprocessed(cache), config)
                    for record, cache in done], skipped)


def format_summary(summary: dict) -> str:
  detection = ("face detection not run (faces pre-cropped)" if np.isnan(summary["detection_rate"])
               else f"face detection rate {summary['detection_rate']:.2%} ({summary['failed_detections']} "
               f"misses; lowest video {summary['min_video_detection_rate']:.1%})")
  padded = (f"{summary['padded_videos']} short clip(s) padded; "
            if summary.get("padded_videos") else "")
  fallbacks = (f"{summary['alignment_fallbacks']} pre-cropped frame(s) with no face found to "
               "align, used as they are; " if summary.get("alignment_fallbacks") else "")
  without = summary.get("videos_without_window", [])
  lines = [f"{summary['videos']} videos, {summary['speakers']} speakers, "
           f"{summary['frames']} frames, {summary['windows']} windows; {detection}; {padded}"
           f"{fallbacks}{len(summary['skipped'])} file(s) skipped"]
  if without:
    lines.append(f"  {len(without)} video(s) have fewer labelled frames in a row than one "
                 "window and give no training window (see num_labelled_frames)")
  lines += [f"  skipped {s['file']}: {s['reason']}" for s in summary["skipped"]]
  return "\n".join(lines)


def no_window_error(name: str, config: preprocessing.PreprocessConfig, summary: dict) -> str:
  """Why a build would give no training window at all, and the setting to change."""
  return (f"{name}: none of the {summary['videos']} usable video(s) has {config.window_length} "
          f"labelled frames in a row, so there is no {config.window_length}-frame window to "
          f"train on: only the last num_labelled_frames={config.num_labelled_frames} frames of "
          "each clip carry its label. Raise data.num_labelled_frames to at least "
          f"{config.window_length} (stills and clips shorter than a window are padded to one "
          "window with copies of their first frame, labelled like it).\n" + format_summary(summary))


def check_summary(name: str, config: preprocessing.PreprocessConfig, summary: dict):
  """Raises when a build has no usable video, or no window to train on."""
  if not summary["videos"]:
    raise RuntimeError(f"{name}: no usable video; every file was skipped:\n"
                       + format_summary(summary))
  if not summary["windows"]:
    raise ValueError(no_window_error(name, config, summary))


def files_fingerprint(folder) -> str:
  """A digest of the name, size and modification time of every file under `folder`
  (hidden ones aside): it changes when a file is added, removed, replaced or edited."""
  folder = pathlib.Path(folder).resolve()
  files = []
  if folder.is_dir():
    for path in sorted(folder.rglob("*")):
      if path.is_file() and not any(p.startswith(".") for p in path.relative_to(folder).parts):
        stat = path.stat()
        files.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
  return hashlib.sha1(json.dumps(files).encode()).hexdigest()[:16]


class VideoEmotionBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared TFDS builder: subclasses only say where the video files are.

  Two splits hold the same feature spec:
  - `windows`: `window_length`-frame clips cut from each video's labelled frames;
  - `videos`: every preprocessed frame of each video (for trajectories).
  The train/validation/test split over speakers is drawn at load time from the
  run's seed (`varec.splits`), so one build serves any number of runs.
  """

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "First release.",
                   "1.1.0": "Aligned face crops by default; the preprocessing is in the metadata."}
  BUILDER_CONFIGS = [VideoBuilderConfig(name="default", description="Paper §4.5 settings.")]

  # Set per build by `_download_and_prepare`: True when Beam options were given.
  _beam_build = False

  def __init__(self, *, file_format=None, **kwargs):
    # ArrayRecord is what varec reads (random access, `as_data_source`); the default
    # here makes `tfds build data_builder/<name>` write it with no --file_format flag.
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _video_records(self, dl_manager) -> tuple[list[VideoRecord], list[Skipped]]:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.preprocess.image_size
    label_space = self.builder_config.label_space
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video_id": tfds.features.Text(),
            "speaker": tfds.features.Text(),
            "emotion": tfds.features.ClassLabel(names=label_space.emotions),
            "orientation": tfds.features.Text(),
            "start_frame": np.int32,  # Index of the clip's first frame in its video.
            "frames": tfds.features.Tensor(shape=(None, size, size, 1), dtype=np.uint8,
                                           encoding="zlib"),
            "labels": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),
            "labelled": tfds.features.Tensor(shape=(None,), dtype=np.bool_),
            "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.int32),
            "detected": tfds.features.Tensor(shape=(None,), dtype=np.bool_),
            "detection_rate": np.float32,
            "source_fps": np.float32,
        }),
        # Saved with the build: training and evaluation read the emotions from here.
        metadata=tfds.core.MetadataDict(
            label_space=label_space.to_meta(),
            preprocess=dataclasses.asdict(self.builder_config.preprocess)),
    )

  def _download_and_prepare(self, dl_manager, download_config):
    # `tfds build --beam_pipeline_options=...` (or a DownloadConfig with Beam options)
    # asks for the Beam build; without them the videos go through a process pool.
    self._beam_build = bool(download_config.beam_runner or download_config.beam_options)
    super()._download_and_prepare(dl_manager, download_config)
    if self._beam_build:
      # The summary is known only once the pipeline has run; a build without a
      # usable video or window is still refused (its files are never published).
      summary_file = epath.Path(self._beam_summary_file)
      summary = json.loads(summary_file.read_text())
      summary_file.unlink()
      self._check_and_record(summary, dl_manager)

  def _check_and_record(self, summary: dict, dl_manager):
    """Puts the summary in the metadata, logs it, and refuses a build with nothing to train on."""
    self.info.metadata["build_summary"] = summary
    # Only builders that read a manual dir may ask for it (synthetic_adfes generates its own).
    if self.MANUAL_DOWNLOAD_INSTRUCTIONS and pathlib.Path(dl_manager.manual_dir).is_dir():
      # Checked when the build is loaded: a build never stands for files changed since.
      self.info.metadata["manual_dir_fingerprint"] = files_fingerprint(dl_manager.manual_dir)
    logging.info("Build summary for %s:\n%s", self.name, format_summary(summary))
    check_summary(self.name, self.builder_config.preprocess, summary)

  def _split_generators(self, dl_manager):
    records, skipped = self._video_records(dl_manager)
    if self._beam_build:
      return self._beam_split_generators(records, skipped, dl_manager)
    config = self.builder_config
    done, failed = preprocess_all(
        records, config.preprocess, pathlib.Path(dl_manager.download_dir) / "varec_preprocessed")
    self._check_and_record(build_summary(done, skipped + failed, config.preprocess), dl_manager)
    return {split: self._generate_examples(done, windows=split == "windows")
            for split in ("windows", "videos")}

  def _generate_examples(self, done, windows: bool):
    for record, cache in done:
      yield from video_examples(record, load_preprocessed(cache), self.builder_config, windows)

  def _beam_split_generators(self, records, skipped, dl_manager):
    """The same splits from a Beam pipeline: one element per video, preprocessed in a worker.

    Both splits read one PCollection of preprocessed videos, so each video is
    decoded once; the per-video counts are combined into the build summary,
    written to a file that `_download_and_prepare` reads once the pipeline has run.
    """
    beam = tfds.core.lazy_imports.apache_beam
    config = self.builder_config
    self._beam_summary_file = os.fspath(
        epath.Path(dl_manager.download_dir) / f"varec_build_summary_{uuid.uuid4().hex}.json")
    order = {record.video_id: i for i, record in enumerate(records)}
    shared = {}

    def preprocessed(root):
      if "videos" not in shared:  # The first split's expansion creates it, the second reuses it.
        results = (root | "ListVideos" >> beam.Create(records)
                   | "Reshuffle" >> beam.Reshuffle()  # Spread the videos over the workers.
                   | "Preprocess" >> beam.Map(_beam_preprocess, config.preprocess))
        summary = (results
                   | "VideoStats" >> beam.Map(_beam_stats, config.preprocess)
                   | "CollectStats" >> beam.combiners.ToList()
                   | "WriteSummary" >> beam.Map(_write_beam_summary, self._beam_summary_file,
                                                skipped, order, self.name, config.preprocess))
        # The summary as a side input holds examples back until it is written and checked:
        # a build with nothing to train on fails with its reasons, not with an empty split.
        shared["videos"] = (results | "Usable" >> beam.Filter(lambda r: r[1] is not None),
                            beam.pvalue.AsSingleton(summary))
      return shared["videos"]

    def split(windows: bool):
      def expand(root):
        videos, summary = preprocessed(root)
        return videos | "Examples" >> beam.FlatMap(
            lambda r, _: video_examples(r[0], r[1], config, windows), summary)
      return beam.ptransform_fn(expand)()

    return {"windows": split(windows=True), "videos": split(windows=False)}


def video_examples(record: VideoRecord, video: preprocessing.PreprocessedVideo,
                   config: VideoBuilderConfig, windows: bool):
  """(key, example) of one video: its windows, or the whole video as one example."""
  pre = config.preprocess
  labels = preprocessing.frame_labels(record.emotion, len(video.frames), config.label_space)
  if windows:
    starts = preprocessing.window_starts(video.labelled, pre.window_length, pre.window_stride)
    spans = [(int(s), int(s) + pre.window_length) for s in starts]
  else:
    spans = [(0, len(video.frames))]
  for start, stop in spans:
    yield f"{record.video_id}@{start}", {
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
    }


def _beam_preprocess(record: VideoRecord, config: preprocessing.PreprocessConfig):
  """A Beam worker's step: (record, video or None, reason or None); never raises for a bad file."""
  video, reason = _try_preprocess(record, config)
  if video is None:
    logging.warning("Skipping %s: %s", record.path, reason)
  return record, video, reason


def _beam_stats(result, config: preprocessing.PreprocessConfig):
  record, video, reason = result
  if video is None:
    return {"video_id": record.video_id, "skipped": dataclasses.asdict(
        Skipped(str(record.path), reason))}
  return video_stats(record, video, config)


def _write_beam_summary(stats: list[dict], path: str, listing_skipped: list[Skipped],
                        order: dict[str, int], name: str,
                        config: preprocessing.PreprocessConfig) -> dict:
  """Combines the per-video counts as `build_summary` does (skipped files in listing
  order), writes them to `path`, and raises if no usable video or window is left."""
  stats = sorted(stats, key=lambda v: order[v["video_id"]])
  failed = [Skipped(**v["skipped"]) for v in stats if "skipped" in v]
  summary = summarize([v for v in stats if "skipped" not in v], list(listing_skipped) + failed)
  epath.Path(path).write_text(json.dumps(summary))
  check_summary(name, config, summary)
  return summary
