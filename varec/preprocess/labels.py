"""Labels and windows: §4.5 step 4's mirror speakers, step 5's labels, the RNN's
windows.

Owns what the dataset builders add to a clip's model input (video -> frames ->
faces -> model input): which frames carry the emotion's Table 2 prototype
(`labelled_mask`, `frame_labels`), the fixed-length windows cut from them
(`window_starts`, `cut_windows`), and the speaker id of an actor's mirror
image. The speaker split lives in `varec.splits`.
"""

from __future__ import annotations

import numpy as np

from varec import emotions

# -- 4. Mirror speakers --------------------------------------------------------

MIRROR_SUFFIX = "_mirror"


def mirror_speaker(speaker: str) -> str:
  """Speaker id of an actor's mirror image, which the paper counts as a new
  speaker."""
  return speaker + MIRROR_SUFFIX


def person_of(speaker: str) -> str:
  """The real person behind a speaker id (a mirror image maps to its
  original)."""
  return speaker.removesuffix(MIRROR_SUFFIX)


# -- 5. Labels
# ------------------------------------------------------------------


def labelled_mask(num_frames: int, num_labelled: int) -> np.ndarray:
  """(T,) bool: the last `num_labelled` frames (all frames if the video is
  shorter)."""
  mask = np.zeros(num_frames, bool)
  mask[max(0, num_frames - num_labelled) :] = True
  return mask


def frame_labels(
  emotion: str,
  num_frames: int,
  label_space: emotions.LabelSpace = emotions.TABLE2,
) -> np.ndarray:
  """(T, 2) float32: the emotion's prototype (valence, arousal) for every
  frame."""
  proto = label_space.prototype_array()[label_space.index(emotion)]
  return np.tile(proto, (num_frames, 1))


# -- 6. Windows
# -----------------------------------------------------------------


def window_starts(labelled: np.ndarray, length: int, stride: int) -> np.ndarray:
  """Start frames of the windows that lie wholly inside the labelled frames.

  Windows are aligned to the end of the video, so the apex frames are always
  used even when the labelled span is not a multiple of the stride.
  """
  idx = np.flatnonzero(labelled)
  if len(idx) < length:
    return np.zeros(0, np.int64)
  first, last_start = idx[0], idx[-1] - length + 1
  starts = np.arange(last_start, first - 1, -stride)[::-1]
  # Only contiguous runs of labelled frames make a window.
  return np.array(
    [s for s in starts if labelled[s : s + length].all()], np.int64
  )


def cut_windows(
  array: np.ndarray, starts: np.ndarray, length: int
) -> np.ndarray:
  """Stacks array[s:s+length] for each start: (num_windows, length, ...)."""
  return (
    np.stack([array[s : s + length] for s in starts])
    if len(starts)
    else (np.zeros((0, length) + array.shape[1:], array.dtype))
  )
