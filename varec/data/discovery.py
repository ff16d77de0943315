"""Finding labelled videos: what a data folder holds, before any is decoded.

Owns `VideoRecord` (one labelled video file) and `Skipped` (a file left out,
and why); ADFES file-name parsing; the `index.csv` / `labels.csv` listings
(path, speaker, emotion[, orientation]); and the fingerprint of a folder's
files that ties a build to the files it read. Emotion names are read in the
build's label space (`varec.emotions`). Needs neither TFDS nor the builders.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import re

from varec import emotions

# ADFES file names look like "F01-Anger-Face Forward.mpeg"; the orientation part
# may be missing when the videos are sorted into one folder per orientation.
ADFES_FILENAME_PATTERN = (
  r"^(?P<speaker>[FM]\d+)[-_ ]+(?P<emotion>[A-Za-z]+)"
  r"(?:[-_ ]+(?P<orientation>.+))?$"
)
VIDEO_EXTENSIONS = frozenset(
  {".mpeg", ".mpg", ".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".webm"}
)
# Optional in an ADFES-style folder: overrides the file names.
INDEX_CSV = "index.csv"
# Required in a video_folder folder: lists every video.
LABELS_CSV = "labels.csv"
ORIENTATIONS = ("forward", "toward", "away")


@dataclasses.dataclass(frozen=True)
class VideoRecord:
  """One labelled video file."""

  path: pathlib.Path
  video_id: (
    str  # Unique: the path relative to the data folder, without extension.
  )
  speaker: str
  emotion: str  # A name of the build's label space.
  orientation: str  # forward | toward | away.


@dataclasses.dataclass(frozen=True)
class Skipped:
  """A file left out of the build, and why."""

  file: str
  reason: str


def canonical_orientation(text: str) -> str | None:
  """forward / toward / away from ADFES wording ("Face Forward", "Turning
  Away"), else None."""
  text = text.lower()
  for name, keywords in (
    ("toward", ("toward",)),
    ("away", ("away",)),
    ("forward", ("forward", "front")),
  ):
    if any(k in text for k in keywords):
      return name
  return None


def parse_file_name(
  path: pathlib.Path,
  root: pathlib.Path,
  pattern: str = ADFES_FILENAME_PATTERN,
  label_space: emotions.LabelSpace = emotions.TABLE2,
) -> VideoRecord:
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
  orientation_text = groups.get("orientation") or " ".join(
    relative.parent.parts
  )
  orientation = (
    canonical_orientation(orientation_text) if orientation_text else None
  )
  if orientation is None:
    if groups.get("orientation"):
      raise ValueError(f"unknown orientation {groups['orientation']!r}")
    orientation = "forward"
  return VideoRecord(
    path=path,
    video_id=relative.with_suffix("").as_posix(),
    speaker=groups["speaker"],
    emotion=emotion,
    orientation=orientation,
  )


def read_index_csv(
  index_path: pathlib.Path, label_space: emotions.LabelSpace = emotions.TABLE2
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
    reader = _index_reader(f, index_path)
    for line, row in enumerate(reader, start=2):
      relative = (row["path"] or "").strip()
      try:
        records.append(_index_record(row, relative, root, seen, label_space))
        seen[records[-1].video_id] = line
      except ValueError as e:
        skipped.append(Skipped(f"{index_path}:{line} ({relative})", str(e)))
  return records, skipped


def _index_reader(f, index_path: pathlib.Path) -> csv.DictReader:
  """A `csv.DictReader` of the open index `f`: its separator sniffed, its
  column names stripped and lower-cased.

  Raises:
    ValueError: a column of path, speaker, emotion is missing.
  """
  sample = f.read(4096)
  f.seek(0)
  try:
    dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
  # One column, or too little text to tell: the default comma.
  except csv.Error:
    dialect = csv.excel
  reader = csv.DictReader(f, dialect=dialect)
  reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or ()]
  missing = {"path", "speaker", "emotion"} - set(reader.fieldnames)
  if missing:
    raise ValueError(
      f"{index_path}: missing column(s) {', '.join(sorted(missing))} (found "
      f"{', '.join(reader.fieldnames) or 'none'}); expected path, speaker, "
      "emotion[, orientation]"
    )
  return reader


def _index_record(
  row: dict,
  relative: str,
  root: pathlib.Path,
  seen: dict[str, int],
  label_space: emotions.LabelSpace,
) -> VideoRecord:
  """One index row's record; `relative` is its stripped path, `seen` the
  lines of the videos read so far by video id.

  Raises:
    ValueError: the row is skipped, for the reason given.
  """
  path = root / relative
  # Checked on the text, so that links the user put in the folder still count
  # as inside.
  if not relative or not pathlib.Path(os.path.normpath(path)).is_relative_to(
    os.path.normpath(root)
  ):
    raise ValueError(f"path {relative!r} is not inside {root}")
  video_id = pathlib.Path(relative).with_suffix("").as_posix()
  if video_id in seen:
    raise ValueError(
      f"the same video as line {seen[video_id]} (paths differing only in "
      "their extension name one video)"
    )
  speaker = (row["speaker"] or "").strip()
  if not speaker:
    raise ValueError("empty speaker")
  orientation = canonical_orientation(row.get("orientation") or "forward")
  if orientation is None:
    raise ValueError(f"unknown orientation {row['orientation']!r}")
  return VideoRecord(
    path=path,
    video_id=video_id,
    speaker=speaker,
    emotion=label_space.canonical(row["emotion"] or ""),
    orientation=orientation,
  )


def find_videos(
  root,
  pattern: str = ADFES_FILENAME_PATTERN,
  orientations=ORIENTATIONS,
  label_space: emotions.LabelSpace = emotions.TABLE2,
) -> tuple[list[VideoRecord], list[Skipped]]:
  """Lists the labelled videos under `root`, from `index.csv` if present, else
  file names.

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
    for path in sorted(
      p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
    ):
      if path.suffix.lower() not in VIDEO_EXTENSIONS:
        continue
      try:
        records.append(parse_file_name(path, root, pattern, label_space))
      except ValueError as e:
        skipped.append(Skipped(str(path), str(e)))
  if not records and not skipped:
    raise FileNotFoundError(
      f"no video file in {root} (looked for "
      f"{', '.join(sorted(VIDEO_EXTENSIONS))} or an {INDEX_CSV})"
    )
  kept = [r for r in records if r.orientation in orientations]
  if len(kept) < len(records):
    logging.info(
      "Leaving out %d videos whose orientation is not in %s",
      len(records) - len(kept),
      orientations,
    )
  return sorted(kept, key=lambda r: r.video_id), skipped


def inside_folder(
  records: list[VideoRecord], root, follow_symlinks: bool = False
) -> tuple[list[VideoRecord], list[Skipped]]:
  """(records whose file lies inside `root` once every link is resolved, the
  others skipped with the reason).

  A link inside the folder may point anywhere (another user's videos, a
  device, /etc/passwd): unless `follow_symlinks` (the user's explicit
  `data.follow_symlinks`), only what is really inside the folder is read.
  """
  if follow_symlinks:
    return records, []
  root = pathlib.Path(root).resolve()
  kept, skipped = [], []
  for record in records:
    target = record.path.resolve()
    if target.is_relative_to(root):
      kept.append(record)
    else:
      skipped.append(
        Skipped(
          str(record.path),
          f"a link to {target}, outside {root}: not read (set "
          "data.follow_symlinks=True to read what links point to)",
        )
      )
  return kept, skipped


def files_fingerprint(folder) -> str:
  """A digest of the name, size and modification time of every file under
  `folder` (hidden ones aside): it changes when a file is added, removed,
  replaced or edited."""
  folder = pathlib.Path(folder).resolve()
  files = []
  if folder.is_dir():
    for path in sorted(folder.rglob("*")):
      if path.is_file() and not any(
        p.startswith(".") for p in path.relative_to(folder).parts
      ):
        stat = path.stat()
        files.append(
          [path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns]
        )
  return hashlib.sha1(json.dumps(files).encode()).hexdigest()[:16]
