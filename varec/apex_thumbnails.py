"""Each person's face at their apex, kept as the video streams past.

Owns the report's `apex_<person>.jpg` (`varec.html_report.thumbnail`): the
apex is `decisions.apex_frame` on the person's smoothed trajectory, known
only once the video has ended, so `ApexThumbnails` smooths each trajectory
as its frames come, exactly as `decisions.smooth` does (the same float64
cumulative sums and windows), and keeps the face of the frame furthest from
neutral so far (ties to the first, as `np.argmax`). No frame is read twice.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from varec import decisions
from varec import frame_table
from varec import html_report
from varec import predictions


@dataclasses.dataclass(frozen=True, eq=False)
class Thumbnail:
  """A person's face on one frame (`html_report.apex_thumbnail`)."""

  frame: int  # The frame's number.
  image: np.ndarray  # (S, S, 3) uint8 BGR.


@dataclasses.dataclass(frozen=True, eq=False)
class _Pending:
  """A frame whose smoothed value waits for the frames after it."""

  position: int  # Among the person's frames with an output.
  frame: int
  image: np.ndarray
  box: tuple[int, int, int, int]


class _RunningApex:
  """One person's apex so far, on their trajectory smoothed as it comes."""

  def __init__(self, window: int, origin: np.ndarray):
    self.half = window // 2
    self.origin = origin
    # total[k]: the sum of the first k values, as `np.cumsum` adds them.
    self.total: list[np.ndarray] = [np.zeros(2)]
    self.start = 0  # Where the current stretch of consecutive frames begins.
    self.last_frame: int | None = None
    self.pending: collections.deque[_Pending] = collections.deque()
    self.distance = -np.inf
    self.best: Thumbnail | None = None

  def add(self, frame: int, va: np.ndarray, image: np.ndarray, box) -> None:
    """Takes the person's next frame with an output."""
    count = len(self.total) - 1
    if self.last_frame is not None and frame != self.last_frame + 1:
      self.finish()  # A gap ends a stretch: no average reaches across it.
      self.start = count
    value = np.asarray(va, np.float64)
    self.total.append(value.copy() if not count else self.total[-1] + value)
    self.pending.append(_Pending(count, frame, image, box))
    self.last_frame = frame
    while self.pending and self.pending[0].position + self.half < count + 1:
      self._settle(self.pending.popleft(), count + 1)

  def finish(self) -> None:
    """Settles the frames left at the end of a stretch."""
    stop = len(self.total) - 1
    while self.pending:
      self._settle(self.pending.popleft(), stop)

  def _settle(self, pending: _Pending, stop: int) -> None:
    """The smoothed value at `pending` (windows clipped to its stretch,
    which ends at `stop`); its face is kept if furthest so far."""
    t = pending.position
    low, high = max(t - self.half, self.start), min(t + self.half + 1, stop)
    smoothed = (self.total[high] - self.total[low]) / (high - low)
    distance = np.linalg.norm(smoothed[None] - self.origin, axis=-1)[0]
    if distance > self.distance:
      self.distance = distance
      image = html_report.apex_thumbnail(pending.image, pending.box)
      self.best = Thumbnail(pending.frame, image)


class ApexThumbnails:
  """Each person's face at their apex (`decisions.apex_frame`), from the
  frames of the stream (which must carry their images)."""

  def __init__(self, rule: decisions.DecisionRule):
    self.window = rule.smoothing
    self.origin = np.asarray(rule.origin)
    self._people: dict[int, _RunningApex] = {}

  def add(self, frame: predictions.FramePrediction) -> None:
    for face in frame.faces:
      if face.va is None:
        continue  # Not on the trajectory: decisions never see it.
      person = self._people.setdefault(
        face.person, _RunningApex(self.window, self.origin)
      )
      person.add(frame.index, face.va, frame.image, frame_table.box(face))

  def thumbnails(self) -> dict[int, Thumbnail]:
    """Each person's face at their apex, once the stream has ended."""
    for person in self._people.values():
      person.finish()
    return {p: a.best for p, a in self._people.items()}
