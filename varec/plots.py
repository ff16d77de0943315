"""The paper's figures: confusion matrices (Fig. 4), output distribution per
emotion (Fig. 5), one video's trajectory (Fig. 6), all speakers' trajectories
per emotion (Fig. 7); and for predict.py, one video's valence and arousal over
time, one row or panel per person. Each function writes one PNG and returns
its path.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from varec import emotions  # pylint: disable=g-import-not-at-top
from varec import files  # pylint: disable=g-import-not-at-top

# As in the paper's Fig. 5.
CORRECT_COLOUR, WRONG_COLOUR = "tab:orange", "tab:blue"
# People 0, 1, ... in predict.py's annotated video and report pages (then
# repeating).
PERSON_COLOURS = ("#2e7d32", "#1565c0", "#ef6c00", "#8e24aa", "#00838f")
# Most time steps `timeline` draws: about one per pixel column.
TIMELINE_POINTS = 1000


def emotion_colours(label_space: emotions.LabelSpace) -> dict[str, tuple]:
  """One colour per emotion: tab10's in class order up to 10 emotions, else
  spread over turbo."""
  n = len(label_space.emotions)
  colours = (
    plt.get_cmap("tab10").colors
    if n <= 10
    else plt.get_cmap("turbo")(np.linspace(0, 1, n))
  )
  return dict(zip(label_space.emotions, colours))


def _va_axes(ax, label_space: emotions.LabelSpace, title: str) -> None:
  """Valence on x, arousal on y, in [-1.1, 1.1] (wider for prototypes
  beyond), prototypes named."""
  ax.axhline(0, color="0.85", lw=0.8, zorder=0)
  ax.axvline(0, color="0.85", lw=0.8, zorder=0)
  colours = emotion_colours(label_space)
  for name, (v, a) in zip(label_space.emotions, label_space.prototypes):
    ax.scatter(
      v,
      a,
      marker="X",
      s=70,
      color=colours[name],
      edgecolor="black",
      lw=0.6,
      zorder=5,
    )
    ax.annotate(
      name,
      (v, a),
      textcoords="offset points",
      xytext=(4, 4),
      fontsize=7,
      zorder=6,
    )
  limit = max(1.1, 1.1 * np.abs(label_space.prototype_array()).max())
  ax.set(
    xlim=(-limit, limit),
    ylim=(-limit, limit),
    xlabel="valence",
    ylabel="arousal",
    title=title,
  )
  ax.set_aspect("equal")


def _save(fig, path) -> pathlib.Path:
  """Writes the figure whole or not at all (`files.write_whole`)."""
  path = pathlib.Path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    return files.write_whole(
      path,
      lambda partial: fig.savefig(
        partial, dpi=110, bbox_inches="tight", format=path.suffix[1:]
      ),
    )
  finally:
    plt.close(fig)


def confusion_matrix(
  matrix: np.ndarray, label_space: emotions.LabelSpace, title: str, path
) -> pathlib.Path:
  """Fig. 4: counts and row-normalised (recall per true emotion), side by
  side."""
  rows = matrix.sum(axis=1, keepdims=True)
  normalised = np.divide(
    matrix, rows, out=np.zeros(matrix.shape), where=rows > 0
  )
  fig, axes = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"wspace": 0.5})
  for ax, values, fmt, label in (
    (axes[0], matrix, "d", "videos"),
    (axes[1], normalised, ".2f", "share of the true emotion's videos"),
  ):
    image = ax.imshow(values, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, label=label)
    for (i, j), value in np.ndenumerate(values):
      if matrix[i, j]:
        ax.text(
          j,
          i,
          format(value, fmt),
          ha="center",
          va="center",
          fontsize=7,
          color="white" if value > values.max() / 2 else "black",
        )
    ax.set_xticks(
      range(len(label_space.emotions)),
      label_space.emotions,
      rotation=60,
      ha="right",
    )
    ax.set_yticks(range(len(label_space.emotions)), label_space.emotions)
    ax.set(xlabel="predicted emotion", ylabel="true emotion")
  axes[0].set_title("counts")
  axes[1].set_title("row-normalised")
  fig.suptitle(title)
  return _save(fig, path)


def output_distribution(
  va: np.ndarray,
  true: np.ndarray,
  video_correct: np.ndarray,
  label_space: emotions.LabelSpace,
  title: str,
  path,
) -> pathlib.Path:
  """Fig. 5: every frame's output, one panel per true emotion (5 per row),
  frames of correctly recognised videos in orange and of misrecognised ones
  in blue."""
  num_emotions = len(label_space.emotions)
  grid_cols = min(5, num_emotions)
  grid_rows = -(-num_emotions // grid_cols)  # Ceiling division.
  fig, axes = plt.subplots(
    grid_rows,
    grid_cols,
    figsize=(4 * grid_cols, 4.25 * grid_rows),
    squeeze=False,
  )
  axes = axes.ravel()
  for ax in axes[num_emotions:]:
    ax.set_visible(False)
  for index, (ax, name) in enumerate(zip(axes, label_space.emotions)):
    rows = true == index
    _va_axes(
      ax,
      label_space,
      f"{name}\n"
      + (
        f"{video_correct[rows].mean():.0%} of frames in recognised videos"
        if rows.any()
        else "no videos"
      ),
    )
    ax.title.set_fontsize(9)
    for correct, colour, label in (
      (False, WRONG_COLOUR, "misrecognised video"),
      (True, CORRECT_COLOUR, "recognised video"),
    ):
      sel = rows & (video_correct == correct)
      ax.scatter(
        va[sel, 0],
        va[sel, 1],
        s=4,
        alpha=0.4,
        color=colour,
        label=label,
        zorder=2,
      )
  fig.legend(
    *axes[0].get_legend_handles_labels(),
    loc="upper right",
    fontsize=8,
    markerscale=3,
  )
  fig.suptitle(title)
  return _save(fig, path)


@dataclasses.dataclass
class Trajectory:
  """One panel of `trajectory`: a video's (or one person's) frames."""

  va: np.ndarray  # (frames, 2).
  nearest: np.ndarray  # (frames,) class indices into the label space.
  title: str
  # (frames,) bool: mark the first labelled frame.
  labelled: np.ndarray | None = None


def trajectory(
  panels: Sequence[Trajectory], label_space: emotions.LabelSpace, path
) -> pathlib.Path:
  """Fig. 6: frames in the valence-arousal plane, joined in time, coloured by
  nearest emotion, markers growing with the frame index; one panel each (a
  video, or each person in one)."""
  fig, axes = plt.subplots(
    1, len(panels), figsize=(6.5 * len(panels), 6.5), squeeze=False
  )
  for ax, panel in zip(axes[0], panels):
    _trajectory_panel(ax, panel, label_space)
  return _save(fig, path)


def _trajectory_panel(ax, panel: Trajectory, label_space) -> None:
  va, nearest, labelled = panel.va, panel.nearest, panel.labelled
  _va_axes(ax, label_space, panel.title)
  colours = emotion_colours(label_space)
  ax.plot(va[:, 0], va[:, 1], color="0.6", lw=0.7, zorder=1)
  sizes = 6 + 60 * np.arange(len(va)) / max(1, len(va) - 1)
  for index in np.unique(nearest):
    sel = nearest == index
    name = label_space.emotions[index]
    ax.scatter(
      va[sel, 0],
      va[sel, 1],
      s=sizes[sel],
      color=colours[name],
      alpha=0.8,
      label=name,
      zorder=3,
    )
  if labelled is not None and labelled.any():
    first = int(np.flatnonzero(labelled)[0])
    ax.scatter(
      *va[first],
      s=120,
      facecolor="none",
      edgecolor="black",
      zorder=4,
      label=f"first labelled frame ({first})",
    )
  ax.legend(
    loc="upper left",
    bbox_to_anchor=(1.02, 1),
    fontsize=7,
    title="nearest emotion\n(size = frame index)",
    title_fontsize=7,
  )


def emotion_trajectories(
  trajectories: dict[str, np.ndarray],
  label_space: emotions.LabelSpace,
  title: str,
  path,
) -> pathlib.Path:
  """Fig. 7: every speaker's trajectory for one emotion on one plot."""
  fig, ax = plt.subplots(figsize=(7, 7))
  _va_axes(ax, label_space, title)
  colours = plt.get_cmap("viridis")(
    np.linspace(0, 1, max(1, len(trajectories)))
  )
  for colour, (speaker, va) in zip(colours, sorted(trajectories.items())):
    ax.plot(va[:, 0], va[:, 1], color=colour, lw=0.8, alpha=0.8, label=speaker)
    ax.scatter(*va[-1], color=colour, s=25, zorder=4)
  ax.legend(
    loc="upper left",
    bbox_to_anchor=(1.02, 1),
    fontsize=6,
    title="speaker\n(dot = last frame)",
    title_fontsize=7,
  )
  return _save(fig, path)


def _buckets(values: np.ndarray, size: int):
  """(mean, min, max) of `values` (T, d) per `size` consecutive rows; NaN
  rows are ignored, and a bucket of NaN rows only is NaN."""
  padded = np.full((-(-len(values) // size) * size, values.shape[1]), np.nan)
  padded[: len(values)] = values
  blocks = padded.reshape(-1, size, values.shape[1])
  count = np.sum(~np.isnan(blocks), axis=1)
  mean = np.divide(
    np.nansum(blocks, axis=1),
    count,
    out=np.full(count.shape, np.nan),
    where=count > 0,
  )
  return mean, np.fmin.reduce(blocks, axis=1), np.fmax.reduce(blocks, axis=1)


@dataclasses.dataclass
class Timeline:
  """One row of `timeline`: a video's (or one person's) valence and arousal."""

  va: np.ndarray  # (frames, 2), NaN where there is no face (the lines break).
  segments: list  # (start_s, end_s, emotion name).
  title: str
  apex: tuple[float, float, float] | None = None  # (time_s, valence, arousal).


def timeline(
  rows: Sequence[Timeline],
  fps: float,
  label_space: emotions.LabelSpace,
  path,
) -> pathlib.Path:
  """Valence and arousal against time, emotion segments as a coloured band
  above; one row each (a video, or each person in one), on one time axis.

  Past `TIMELINE_POINTS` frames, each drawn step is the mean of consecutive
  frames with their min-max range shaded, so an hour of video draws as fast
  as a minute; the data are not changed. Time is in minutes past 10 minutes.
  """
  duration = max(len(row.va) for row in rows) / fps
  scale, unit = (60, "min") if duration > 600 else (1, "s")
  fig, axes = plt.subplots(
    2 * len(rows),
    1,
    sharex=True,
    figsize=(10, 1.0 + 3.5 * len(rows)),
    gridspec_kw={"height_ratios": (1, 8) * len(rows), "hspace": 0.3},
  )
  for k, row in enumerate(rows):
    band, ax = axes[2 * k], axes[2 * k + 1]
    size = -(-len(row.va) // TIMELINE_POINTS)
    mean, low, high = _buckets(row.va, size)
    t = (np.arange(len(mean)) * size + (size - 1) / 2) / fps / scale
    _segment_band(band, row.segments, scale, label_space, row.title)
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    colours = _va_lines(ax, t, mean, low, high, size)
    if row.apex is not None:
      _apex_marker(ax, row.apex, scale, colours)
    # Beyond [-1, 1] only if the outputs are.
    limit = max(1.0, np.nanmax(np.abs(row.va)))
    ax.set(
      xlim=(0, duration / scale),
      ylim=(-limit, limit),
      ylabel="valence, arousal",
    )
    ax.legend(loc="lower left", bbox_to_anchor=(1.01, 0), fontsize=7)
  axes[-1].set(xlabel=f"time ({unit})")
  return _save(fig, path)


def _segment_band(
  band, segments, scale: float, label_space: emotions.LabelSpace, title: str
) -> None:
  """The timeline's band: one colour per emotion, in the vocabulary's order."""
  by_emotion: dict[str, list] = {}
  for start, end, name in segments:
    by_emotion.setdefault(name, []).append(
      (start / scale, (end - start) / scale)
    )
  colours = emotion_colours(label_space)
  for name in (e for e in label_space.emotions if e in by_emotion):
    band.broken_barh(by_emotion[name], (0, 1), color=colours[name], label=name)
  band.set(yticks=[], ylim=(0, 1), title=title)
  band.legend(
    loc="upper left",
    bbox_to_anchor=(1.01, 1),
    fontsize=7,
    title="segments",
    title_fontsize=7,
  )


def _va_lines(ax, t, mean, low, high, size: int) -> list[str]:
  """Valence and arousal, bucket means with their min-max range when `size` > 1;
  returns the colours of the two lines."""
  # Black and dark grey: the band's emotion colours stay unambiguous.
  lines = (("valence", "black", "-"), ("arousal", "0.45", "--"))
  for column, (name, colour, style) in enumerate(lines):
    ax.plot(
      t,
      mean[:, column],
      color=colour,
      ls=style,
      lw=0.9,
      label=name
      if size == 1
      else f"{name}, mean of {size} frames (shaded: min-max)",
    )
    if size > 1:
      ax.fill_between(
        t, low[:, column], high[:, column], color=colour, alpha=0.2, lw=0
      )
  return [c for _, c, _ in lines]


def _apex_marker(ax, apex, scale: float, colours) -> None:
  """A dashed line at the apex and stars at its valence and arousal."""
  time_s, *values = apex
  ax.axvline(
    time_s / scale,
    color="black",
    ls="--",
    lw=0.8,
    label="apex (smoothed values)",
  )
  ax.scatter(
    [time_s / scale] * 2,
    values,
    color=colours,
    marker="*",
    s=90,
    edgecolor="black",
    lw=0.5,
    zorder=4,
  )
