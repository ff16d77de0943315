"""frames.csv and each person's trajectory, collected from the prediction
stream.

Owns two of `varec.video_report`'s consumers of `predictions.FramePrediction`:
`FrameTable` (frames.csv as typed `FrameRow`s: one per frame and person, one
for a frame without a face) and `People` (each person's frames with an
output, the `video_summary.Trajectory` their decisions read).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import itertools

import pandas as pd

from varec import emotions
from varec import predictions
from varec import video_summary

FRAME_COLUMNS = (
  "frame",
  "time_s",
  "person",
  "face_found",
  "box_x0",
  "box_y0",
  "box_x1",
  "box_y1",
  "valence",
  "arousal",
  "nearest_emotion",
)


@dataclasses.dataclass(frozen=True)
class FrameRow:
  """One row of frames.csv: a person's face on a frame, or a frame without
  one."""

  frame: int
  time_s: float  # Rounded to 0.1 ms.
  person: int | None  # None: no face on this frame.
  face_found: bool
  box: tuple[int, int, int, int] | None  # In whole source pixels.
  valence: float | None  # Rounded to 5 decimals; None without an output.
  arousal: float | None
  nearest_emotion: str | None  # The frame's emotion.

  @classmethod
  def no_face(cls, frame: int, time_s: float) -> FrameRow:
    return cls(frame, time_s, None, False, None, None, None, None)

  @classmethod
  def of(
    cls,
    frame: predictions.FramePrediction,
    face: predictions.FacePrediction,
    label_space: emotions.LabelSpace,
  ) -> FrameRow:
    """The row of `face` on `frame`."""
    va = face.va
    return cls(
      frame.index,
      round(frame.time_s, 4),
      face.person,
      True,
      box(face),
      None if va is None else round(float(va[0]), 5),
      None if va is None else round(float(va[1]), 5),
      None if face.emotion is None else label_space.emotions[face.emotion],
    )

  def values(self) -> tuple:
    """The row's values in `FRAME_COLUMNS` order."""
    box = (None,) * 4 if self.box is None else self.box
    return (
      self.frame,
      self.time_s,
      self.person,
      self.face_found,
      *box,
      self.valence,
      self.arousal,
      self.nearest_emotion,
    )


def box(face: predictions.FacePrediction) -> tuple[int, int, int, int]:
  """`face`'s box in whole source pixels, as frames.csv gives it."""
  x0, y0, x1, y1 = (int(round(v)) for v in face.box)
  return x0, y0, x1, y1


class FrameTable:
  """frames.csv's rows, in stream order."""

  def __init__(self, label_space: emotions.LabelSpace):
    self.label_space = label_space
    self.rows: list[FrameRow] = []

  def add(self, frame: predictions.FramePrediction) -> None:
    self.rows.extend(
      FrameRow.of(frame, f, self.label_space) for f in frame.faces
    )
    if not frame.faces:
      self.rows.append(FrameRow.no_face(frame.index, round(frame.time_s, 4)))

  def track_lengths(self) -> collections.Counter:
    """Rows per person: the frames each was followed on."""
    return collections.Counter(
      r.person for r in self.rows if r.person is not None
    )

  def drop(self, people: set[int]) -> None:
    """Removes `people`'s rows; a frame left without a face keeps a row
    saying so."""
    kept = []
    for _, group in itertools.groupby(self.rows, key=lambda r: r.frame):
      group = list(group)
      mine = [r for r in group if r.person not in people]
      kept.extend(mine or [FrameRow.no_face(group[0].frame, group[0].time_s)])
    self.rows = kept

  def write_csv(self, path) -> None:
    with open(path, "w", newline="") as csv_file:
      writer = csv.writer(csv_file)
      writer.writerow(FRAME_COLUMNS)
      writer.writerows(r.values() for r in self.rows)

  def data_frame(self) -> pd.DataFrame:
    return pd.DataFrame([r.values() for r in self.rows], columns=FRAME_COLUMNS)


@dataclasses.dataclass
class _Frames:
  """One person's frames with an output, as they come."""

  va: list = dataclasses.field(default_factory=list)
  emotions: list = dataclasses.field(default_factory=list)
  frame: list = dataclasses.field(default_factory=list)
  time_s: list = dataclasses.field(default_factory=list)
  # Blendshape scores (face-mesh models), else None per frame.
  blendshapes: list = dataclasses.field(default_factory=list)


class People:
  """Each person's frames with an output (a finite valence and arousal)."""

  def __init__(self):
    self._people: dict[int, _Frames] = {}

  def add(self, frame: predictions.FramePrediction) -> None:
    for face in frame.faces:
      if face.va is None:
        continue
      mine = self._people.setdefault(face.person, _Frames())
      mine.va.append(face.va)
      mine.emotions.append(face.emotion)
      mine.frame.append(frame.index)
      mine.time_s.append(frame.time_s)
      mine.blendshapes.append(face.blendshapes)

  def trajectories(self) -> dict[int, video_summary.Trajectory]:
    """Each person's `video_summary.Trajectory`, in order of appearance."""
    return {
      p: video_summary.trajectory(
        f.va, f.emotions, f.frame, f.time_s, f.blendshapes
      )
      for p, f in self._people.items()
    }
