"""predict.py's outputs for one video: decisions -> files.

Fed `varec.predictor`'s stream (`predictions.FramePrediction` per frame)
and its `predictions.PredictionSettings`, never the predictor: `write`
passes each frame to small consumers as it comes, frames.csv
(`frame_table.FrameTable`), each person's trajectory (`frame_table.People`),
on request annotated.mp4 (`annotation.Annotator`) and the report's player
(`html_report.PlayerWriter`) and apex faces (`apex_thumbnails`); then drops
the tracks too short to be people and writes summary.json (the headline
`expression`, the apex phase's vote; the paper's majority vote; and the
other decisions fit for real clips: dominant emotion, apex, segments; the
whole video's for its main person, then `people`, each person's:
`video_summary.VideoSummary`), trajectory.png and timeline.png (a panel, a
row, per person) and the report's page. The folder is written beside its
target and moved into place whole. Nothing here runs the model.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import pathlib
import shutil
from collections.abc import Iterable

import cv2
import numpy as np
import pandas as pd

from varec import annotation
from varec import apex_thumbnails
from varec import decisions
from varec import frame_table
from varec import html_report
from varec import plots
from varec import predictions
from varec import video_summary
from varec.preprocess import decode

FRAME_COLUMNS = frame_table.FRAME_COLUMNS
SUMMARY = "summary.json"


def write(
  frames: Iterable[predictions.FramePrediction],
  settings: predictions.PredictionSettings,
  stats: collections.Counter,
  path,
  output=None,
  annotate: bool = False,
  report: pathlib.Path | None = None,
) -> tuple[pd.DataFrame, video_summary.VideoSummary]:
  """Collects a video's predicted frames; with `output`, writes frames.csv,
  summary.json, trajectory.png, timeline.png (and annotated.mp4 if
  `annotate`; with `report`, the path of the run's report.html, the video's
  page of it, `varec.html_report`) there.

  Args:
    frames: `Predictor.predictions(path, keep_images=annotate or report,
      stats=stats)`, not started yet.
    settings: the predictor's `settings`.
    stats: the counters the stream fills.
    path: the video (named in summary.json and errors).
    output: the video's output folder, or None to write nothing.
    annotate: write annotated.mp4.
    report: the run's report.html, to write the video's page for.

  Returns:
    The per-frame table (the columns of frames.csv) and the summary.

  Raises:
    preprocess.decode.VideoError: unreadable file, no frame, or no face in any
    frame. OSError: `output` cannot be written.
  """
  path = pathlib.Path(path)
  if output is None:
    return _report(frames, stats, _Job(settings, path, annotate, None), None)
  job = _Job(settings, path, annotate, report)
  return _atomically(
    path,
    pathlib.Path(output),
    lambda staging: _report(frames, stats, job, staging),
  )


def _atomically(path: pathlib.Path, output: pathlib.Path, work):
  """`work(folder)`'s result, the folder written beside `output` and moved
  into place whole, so a failure (or a kill) never leaves a mix of new and
  old outputs.

  Raises:
    OSError: a file where `output` goes, or `work`'s (naming `output`).
  """
  if output.exists() and not output.is_dir():
    raise OSError(
      f"cannot write the outputs of {path} to {output}: a file is in the way"
    )
  # Named by the process, so that two runs into one folder never share it.
  staging = output.with_name(f".{output.name}.partial{os.getpid()}")
  if staging.exists():
    shutil.rmtree(staging)
  staging.mkdir(parents=True)
  try:
    try:
      result = work(staging)
    except OSError as e:
      raise _in_output(e, staging, output) from None
    if output.exists():
      old = output.with_name(f".{output.name}.old{os.getpid()}")
      if old.exists():
        shutil.rmtree(old)
      output.rename(old)
      staging.rename(output)
      shutil.rmtree(old)
    else:
      staging.rename(output)
  finally:
    if staging.exists():
      shutil.rmtree(staging)
  return result


@dataclasses.dataclass(frozen=True)
class _Job:
  """What one video's outputs are to be."""

  settings: predictions.PredictionSettings
  path: pathlib.Path
  annotate: bool
  report: pathlib.Path | None


def _in_output(error: OSError, staging: pathlib.Path, output: pathlib.Path):
  """`error` naming the file where it was to end up in `output`, not in the
  hidden staging folder the user never sees."""
  if not error.filename:
    return error
  try:
    inside = pathlib.Path(error.filename).relative_to(staging)
  except ValueError:
    return error
  return OSError(error.errno, error.strerror, str(output / inside))


@dataclasses.dataclass
class _Collected:
  """What the consumers kept of the stream."""

  table: frame_table.FrameTable
  people: frame_table.People
  thumbnails: apex_thumbnails.ApexThumbnails | None


def _report(
  frames: Iterable[predictions.FramePrediction],
  stats: collections.Counter,
  job: _Job,
  output: pathlib.Path | None,
) -> tuple[pd.DataFrame, video_summary.VideoSummary]:
  collected = _collect(frames, job, output)
  counts = video_summary.StreamCounts.of(stats)
  people, dropped = _without_short_tracks(job.settings, collected, counts)
  if not people and counts.non_finite_outputs:
    raise decode.VideoError(
      job.path,
      "the model's output is not finite (NaN or inf) for all "
      f"{counts.non_finite_outputs} frames with a face: the checkpoint is "
      "broken (a run that diverged?)",
    )
  if not people:
    raise decode.VideoError(
      job.path, f"no face found in any of {counts.frames} frames"
    )
  summary = video_summary.summarize_video(
    str(job.path), job.settings, counts, people, dropped
  )
  if output is not None:
    content = summary.to_json()
    collected.table.write_csv(output / "frames.csv")
    (output / SUMMARY).write_text(json.dumps(content, indent=2) + "\n")
    _plots(job, output, summary, people)
    if job.report is not None:
      _page(job, output, summary, content, people, collected.thumbnails)
  return collected.table.data_frame(), summary


def _collect(
  frames: Iterable[predictions.FramePrediction],
  job: _Job,
  output: pathlib.Path | None,
) -> _Collected:
  """Passes every frame to the outputs' consumers; the annotated video and
  the report's player are written as frames come."""
  settings, report = job.settings, job.report is not None
  collected = _Collected(
    frame_table.FrameTable(settings.label_space),
    frame_table.People(),
    apex_thumbnails.ApexThumbnails(
      decisions.DecisionRule.of(
        settings.label_space, settings.fps, settings.prototypes
      )
    )
    if report
    else None,
  )
  annotator = player = None
  try:
    for frame in frames:
      collected.table.add(frame)
      collected.people.add(frame)
      if not (job.annotate or report):
        continue
      if frame.image is None:
        raise ValueError("annotated videos and reports need keep_images=True")
      image = frame.image
      if job.annotate:
        annotator = annotator or annotation.Annotator(
          output / "annotated.mp4",
          image.shape,
          settings.fps,
          settings.label_space,
        )
        image = annotator.write(frame)
      if report:
        collected.thumbnails.add(frame)
        player = player or html_report.PlayerWriter(
          output / html_report.PLAYER, image.shape, settings.fps
        )
        player.write(image)
  finally:
    for writer in (annotator, player):
      if writer is not None:
        writer.close()
  return collected


def _without_short_tracks(
  settings: predictions.PredictionSettings,
  collected: _Collected,
  counts: video_summary.StreamCounts,
) -> tuple[dict[int, video_summary.Trajectory], tuple[int, ...]]:
  """(people, dropped ids) without the tracks shorter than
  `tracking.min_track_s` (false detections, passers-by), dropped from the
  table too: a frame left without a face keeps a row saying so."""
  people = collected.people.trajectories()
  if not settings.follows_people:
    return people, ()
  # A clip shorter than that (a still) keeps every face.
  shortest = min(
    math.ceil(settings.tracking.min_track_s * settings.fps), counts.frames
  )
  lengths = collected.table.track_lengths()
  dropped = tuple(sorted(p for p, n in lengths.items() if n < shortest))
  if not dropped:
    return people, ()
  collected.table.drop(set(dropped))
  return {p: t for p, t in people.items() if p not in dropped}, dropped


def _page(
  job: _Job,
  output: pathlib.Path,
  summary: video_summary.VideoSummary,
  content: dict,
  people: dict[int, video_summary.Trajectory],
  thumbnails: apex_thumbnails.ApexThumbnails,
) -> None:
  """The video's page of the HTML report (`content`: summary.json's) and its
  apex thumbnails."""
  kept = thumbnails.thumbnails()
  for person in summary.people:
    cv2.imwrite(
      str(output / html_report.thumbnail(person.person)),
      kept[person.person].image,
    )
  html_report.write_page(
    output,
    content,
    {p: (t.time_s, t.va) for p, t in people.items()},
    job.settings.label_space,
    job.report,
  )


def _plots(
  job: _Job,
  output: pathlib.Path,
  summary: video_summary.VideoSummary,
  people: dict[int, video_summary.Trajectory],
) -> None:
  """trajectory.png and timeline.png: one panel, or row, per person."""
  panels, rows = [], []
  name = job.path.name
  for entry in summary.people:
    mine = people[entry.person]
    title = (
      f"{name}: " if len(people) == 1 else f"{name}, person {entry.person}: "
    )
    step = max(1, len(mine.va) // 2000)  # A readable plot of a long video.
    panels.append(
      plots.Trajectory(
        mine.va[::step],
        mine.emotions[::step],
        f"{title}{entry.expression} ({entry.expression_pn_group})",
      )
    )
    every_frame = np.full((summary.frames, 2), np.nan)
    every_frame[mine.frame_index] = mine.va
    apex = entry.apex
    rows.append(
      plots.Timeline(
        every_frame,
        [(s.start_s, s.end_s, s.emotion) for s in entry.segments],
        f"{title}{entry.expression}; most frequent "
        f"{entry.dominant_emotion} ({entry.dominant_share:.0%} of face "
        f"frames), majority {entry.emotion}",
        apex=(apex.time_s, apex.valence, apex.arousal),
      )
    )
  space = job.settings.label_space
  plots.trajectory(panels, space, output / "trajectory.png")
  plots.timeline(rows, job.settings.fps, space, output / "timeline.png")
