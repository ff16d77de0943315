"""Build statistics: what a build made of its videos, and whether it can be
used.

Owns the per-video counts (`video_stats`: frames, windows, face detections,
padding), their sum over a build with every skipped file and its reason
(`summarize`, stored as `info.metadata["build_summary"]`), the summary as
text for the build log, and `check_summary`, which refuses a build with no
usable video or no window to train on.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from varec.data import discovery
from varec.data import pool
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import labels


def video_stats(
  record: discovery.VideoRecord,
  video: clip.PreprocessedVideo,
  config: preprocess_config.PreprocessConfig,
) -> dict:
  """One video's counts for the build summary (small: a Beam worker sends it
  on)."""
  return {
    "video_id": record.video_id,
    "file": str(record.path),
    "speaker": record.speaker,
    "frames": len(video.frames),
    "windows": len(
      labels.window_starts(
        video.labelled, config.window_length, config.window_stride
      )
    ),
    "detection_attempts": int(video.num_detection_attempts),
    "failed_detections": int(video.num_failed_detections),
    "detection_rate": float(video.detection_rate),
    "padded": bool(video.num_padded_frames > 0),
    "alignment_fallbacks": int(video.num_alignment_fallbacks),
  }


def summarize(stats: list[dict], skipped: list[discovery.Skipped]) -> dict:
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
    "detection_rate": float(1 - failed / attempted)
    if attempted
    else float("nan"),
    "min_video_detection_rate": float(min(rates)) if rates else float("nan"),
    "failed_detections": int(failed),
    "padded_videos": int(sum(v["padded"] for v in stats)),
    # Pre-cropped frames where no face was found to align: used as they are.
    "alignment_fallbacks": int(sum(v["alignment_fallbacks"] for v in stats)),
    "skipped": [dataclasses.asdict(s) for s in skipped],
  }


def build_summary(
  done, skipped, config: preprocess_config.PreprocessConfig
) -> dict:
  """`summarize` over the preprocessed videos of `pool.preprocess_all`."""
  return summarize(
    [
      video_stats(record, pool.load_preprocessed(cache), config)
      for record, cache in done
    ],
    skipped,
  )


def format_summary(summary: dict) -> str:
  """The summary as the build log's text: one line of counts, then every
  skipped file."""
  detection = (
    "face detection not run (faces pre-cropped)"
    if np.isnan(summary["detection_rate"])
    else f"face detection rate {summary['detection_rate']:.2%} "
    f"({summary['failed_detections']} misses; lowest video "
    f"{summary['min_video_detection_rate']:.1%})"
  )
  padded = (
    f"{summary['padded_videos']} short clip(s) padded; "
    if summary.get("padded_videos")
    else ""
  )
  fallbacks = (
    f"{summary['alignment_fallbacks']} pre-cropped frame(s) with no face found "
    "to align, used as they are; "
    if summary.get("alignment_fallbacks")
    else ""
  )
  without = summary.get("videos_without_window", [])
  lines = [
    f"{summary['videos']} videos, {summary['speakers']} speakers, "
    f"{summary['frames']} frames, {summary['windows']} windows; {detection}; "
    f"{padded}{fallbacks}{len(summary['skipped'])} file(s) skipped"
  ]
  if without:
    lines.append(
      f"  {len(without)} video(s) have fewer labelled frames in a row than one "
      "window and give no training window (see num_labelled_frames)"
    )
  lines += skipped_lines(summary["skipped"])
  return "\n".join(lines)


SKIPS_LISTED = 20


def skipped_lines(skipped: list[dict]) -> list[str]:
  """Every skipped file and its reason, or, past `SKIPS_LISTED`, the first
  ones and a count per reason (all of them stay in the build's metadata)."""
  lines = [f"  skipped {s['file']}: {s['reason']}" for s in skipped]
  if len(lines) <= SKIPS_LISTED:
    return lines
  reasons = collections.Counter(s["reason"] for s in skipped)
  common = reasons.most_common(10)
  return (
    lines[: SKIPS_LISTED // 2]
    + [
      f"  ... {len(lines) - SKIPS_LISTED // 2} more; skipped files per reason:"
    ]
    + [f"    {count} x {reason}" for reason, count in common]
    + (
      [f"    {len(reasons) - len(common)} other reasons"]
      if len(reasons) > len(common)
      else []
    )
  )


def no_window_error(
  name: str, config: preprocess_config.PreprocessConfig, summary: dict
) -> str:
  """Why a build would give no training window at all, and the setting to
  change."""
  return (
    f"{name}: none of the {summary['videos']} usable video(s) has "
    f"{config.window_length} labelled frames in a row, so there is no "
    f"{config.window_length}-frame window to train on: only the last "
    f"num_labelled_frames={config.num_labelled_frames} frames of each clip "
    "carry its label. Raise data.num_labelled_frames to at least "
    f"{config.window_length} (stills and clips shorter than a window are "
    "padded to one window with copies of their first frame, "
    "labelled like it).\n" + format_summary(summary)
  )


def check_summary(
  name: str, config: preprocess_config.PreprocessConfig, summary: dict
):
  """Raises when a build has no usable video, or no window to train on."""
  if not summary["videos"]:
    raise RuntimeError(
      f"{name}: no usable video; every file was skipped:\n"
      + format_summary(summary)
    )
  if not summary["windows"]:
    raise ValueError(no_window_error(name, config, summary))
