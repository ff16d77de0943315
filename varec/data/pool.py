"""Preprocessing many videos in parallel, with an on-disk cache of the results.

Owns the process pool (spawned workers; a crashed worker costs only its own
videos, which are retried one at a time) and the npz cache: one file per video,
keyed by the file's resolved path, size and modification time and the
`PreprocessConfig`, so an unchanged video is never decoded twice. A file that
cannot be used is returned as a `discovery.Skipped` with its reason, never
raised.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import re

import numpy as np

from varec import workers as workers_lib
from varec.data import discovery
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import decode


def _cache_path(
  record: discovery.VideoRecord,
  config: preprocess_config.PreprocessConfig,
  cache_dir: pathlib.Path,
) -> pathlib.Path:
  """The cache file of `record` under `config`: its video id, and a digest of
  its resolved path, size, modification time and `config` (raises OSError if
  the file is missing)."""
  stat = record.path.stat()
  key = json.dumps(
    [
      str(record.path.resolve()),
      stat.st_size,
      stat.st_mtime_ns,
      preprocess_config.build_fields(config),
    ],
    sort_keys=True,
  )
  digest = hashlib.sha1(key.encode()).hexdigest()[:16]
  # The digest keeps names apart; the id, cut short, keeps them readable and
  # within every file system's 255 bytes, whatever the video's own name.
  readable = re.sub(r"[^A-Za-z0-9_.-]", "_", record.video_id)[:_ID_CHARS]
  return cache_dir / f"{readable}-{digest}.npz"


_ID_CHARS = 80


def try_preprocess(
  record: discovery.VideoRecord, config: preprocess_config.PreprocessConfig
) -> tuple[clip.PreprocessedVideo | None, str | None]:
  """(video, None) on success, (None, reason) when the file cannot be used."""
  try:
    if not record.path.exists():
      raise decode.VideoError(record.path, "file not found")
    if not os.access(record.path, os.R_OK):
      raise decode.VideoError(
        record.path, "permission denied: this user cannot read it"
      )
    return clip.preprocess_video(record.path, config), None
  except decode.VideoError as e:
    return None, e.reason
  except Exception as e:  # pylint: disable=broad-except
    # Any other failure on one file (e.g. a decoder crash) must not kill the
    # build.
    return None, f"{type(e).__name__}: {e}"


def _preprocess_one(
  record: discovery.VideoRecord,
  config: preprocess_config.PreprocessConfig,
  cache_dir: pathlib.Path,
) -> tuple[pathlib.Path | None, str | None]:
  """Runs in a worker process: (cache file, None) on success, (None, reason)
  on failure."""
  try:
    cache = _cache_path(record, config, cache_dir)
  except FileNotFoundError:
    return None, "file not found"
  except OSError as e:
    return None, f"{type(e).__name__}: {e}"
  if not cache.exists():
    video, reason = try_preprocess(record, config)
    if video is None:
      return None, reason
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}.npz")
    try:
      fields = dataclasses.asdict(video)
      # Absent crops stay absent (npz stores arrays only).
      np.savez_compressed(
        tmp, **{k: v for k, v in fields.items() if v is not None}
      )
      os.replace(tmp, cache)  # Atomic: a killed build never leaves half a file.
    # A full disk or a folder it may not write: this file only.
    except OSError as e:
      tmp.unlink(missing_ok=True)
      return None, f"cannot write its preprocessed cache {cache}: {e}"
  return cache, None


def _run_in_pool(records, config, cache_dir, workers: int) -> dict[int, tuple]:
  """Results by record index; records whose worker process died are left out."""
  results = {}
  with workers_lib.executor(workers) as pool:
    futures = {
      pool.submit(_preprocess_one, r, config, cache_dir): i
      for i, r in enumerate(records)
    }
    for future in concurrent.futures.as_completed(futures):
      try:
        results[futures[future]] = future.result()
      except concurrent.futures.process.BrokenProcessPool:
        pass
  return results


def preprocess_all(
  records,
  config: preprocess_config.PreprocessConfig,
  cache_dir,
  workers: int | None = None,
):
  """Preprocesses every record in parallel; returns ([(record, cache file)],
  [Skipped]).

  A worker process that dies (a decoder crash, out of memory) takes down only
  the videos it was working on: the others are retried, each in a fresh process.
  """
  cache_dir = pathlib.Path(cache_dir)
  cache_dir.mkdir(parents=True, exist_ok=True)
  workers = workers or workers_lib.default_workers()
  if workers > 1 and len(records) > 1:
    results = _run_in_pool(records, config, cache_dir, workers)
    lost = [i for i in range(len(records)) if i not in results]
    if lost:
      logging.warning(
        "A preprocessing worker died; retrying %d video(s) one at a time",
        len(lost),
      )
    for i in lost:
      retry = _run_in_pool([records[i]], config, cache_dir, 1)
      results[i] = retry.get(
        0,
        (
          None,
          "the worker process crashed while preprocessing this "
          "video (if every video fails like this, run from a script "
          "guarded by `if __name__ == '__main__':` or set VAREC_WORKERS=1)",
        ),
      )
  else:
    results = {
      i: _preprocess_one(r, config, cache_dir) for i, r in enumerate(records)
    }
  done, skipped = [], []
  for i, record in enumerate(records):
    cache, reason = results[i]
    if cache is None:
      # The first few one by one; the build summary counts them all.
      if len(skipped) < _SKIPS_LOGGED:
        logging.warning("Skipping %s: %s", record.path, reason)
      skipped.append(discovery.Skipped(str(record.path), reason))
    else:
      done.append((record, cache))
  if len(skipped) > _SKIPS_LOGGED:
    logging.warning(
      "... and %d more skipped (the build summary counts them per reason)",
      len(skipped) - _SKIPS_LOGGED,
    )
  return done, skipped


_SKIPS_LOGGED = 10


def load_preprocessed(cache: pathlib.Path) -> clip.PreprocessedVideo:
  with np.load(cache) as data:
    fields = {k: data[k] for k in data.files}
  return clip.PreprocessedVideo(**fields)
