"""annotated.mp4: the frames with each face's box, person and emotion drawn on.

Owns one of `varec.video_report`'s outputs, fed the prediction stream
(`predictions.FramePrediction`) frame by frame: `Annotator` draws each
face's box and current emotion, and a valence-arousal inset with each
person's recent trail, and writes the frame.
"""

from __future__ import annotations

import collections

import cv2
import numpy as np

from varec import emotions
from varec import plots
from varec import predictions

# plots.PERSON_COLOURS as OpenCV's BGR.
_PERSON_BGR = tuple(
  tuple(int(c[k : k + 2], 16) for k in (5, 3, 1)) for c in plots.PERSON_COLOURS
)


class Annotator:
  """Writes frames with each face's box, person and current emotion, and a
  valence-arousal inset with each person's recent trail."""

  def __init__(self, path, shape, fps: float, label_space: emotions.LabelSpace):
    self.height, self.width = shape[:2]
    self.label_space = label_space
    self.writer = cv2.VideoWriter(
      str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (self.width, self.height)
    )
    if not self.writer.isOpened():
      raise OSError(f"cannot open a video writer for {path}")
    self.trails: dict[int, collections.deque] = {}

  def write(self, frame: predictions.FramePrediction) -> np.ndarray:
    """Writes and returns the annotated frame (`frame.image` is left as is).

    Args:
      frame: a frame of the stream, with its image.

    Returns:
      The annotated BGR image.
    """
    image = frame.image.copy()
    side = max(60, min(self.height, self.width) // 4)
    x0, y0 = self.width - side - 8, 8
    to_px = _inset(image, x0, y0, side, self.label_space)
    faces = sorted(frame.faces, key=lambda f: f.person)
    for person in list(self.trails):
      face = frame.face(person)
      if face is None or face.va is None:
        del self.trails[person]  # A trail breaks where its face is lost.
    if not faces:
      _text(image, "no face", (10, 28), (0, 0, 255))
    for line, face in enumerate(faces):
      person, va = face.person, face.va
      colour = _PERSON_BGR[person % len(_PERSON_BGR)]
      box = [int(round(v)) for v in face.box]
      cv2.rectangle(image, tuple(box[:2]), tuple(box[2:]), colour, 2)
      label = f"#{person}" if len(faces) > 1 or person else ""
      if va is None:
        text = f"{label} no output".strip()
      else:
        trail = self.trails.setdefault(person, collections.deque(maxlen=50))
        trail.append(to_px(*va))
        for p, q in zip(list(trail)[:-1], list(trail)[1:]):
          cv2.line(image, p, q, colour, 1)
        cv2.circle(image, trail[-1], 4, colour, -1)
        text = (
          f"{label} {self.label_space.emotions[face.emotion]}  "
          f"v={va[0]:+.2f} a={va[1]:+.2f}"
        ).strip()
      _text(image, text, (10, 28 + 26 * line), colour)
      if label:
        _text(image, label, (box[0], max(16, box[1] - 6)), colour)
    self.writer.write(image)
    return image

  def close(self):
    self.writer.release()


def _inset(image, x0: int, y0: int, side: int, label_space):
  """Draws the valence-arousal inset (axes, prototypes) with its top left at
  (x0, y0); returns the (valence, arousal) -> pixel mapping."""
  cv2.rectangle(image, (x0, y0), (x0 + side, y0 + side), (255, 255, 255), -1)
  for start, end in (
    ((x0 + side // 2, y0), (x0 + side // 2, y0 + side)),
    ((x0, y0 + side // 2), (x0 + side, y0 + side // 2)),
  ):
    cv2.line(image, start, end, (200, 200, 200), 1)

  def to_px(v, a):
    return int(x0 + (v + 1) / 2 * side), int(y0 + (1 - a) / 2 * side)

  for v, a in label_space.prototypes:
    cv2.drawMarker(
      image, to_px(v, a), (120, 120, 120), cv2.MARKER_TILTED_CROSS, 6, 1
    )
  return to_px


def _text(image, text: str, origin, colour) -> None:
  cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
