"""`varec.preprocess.labels`: mirror speakers, labelled frames and windows."""

import numpy as np
import pytest

from varec import emotions
from varec.preprocess import crop
from varec.preprocess import labels as labels_lib


def test_flip_and_mirror_speaker():
  frames = np.arange(2 * 3 * 4 * 1).reshape(2, 3, 4, 1)
  np.testing.assert_array_equal(
    crop.flip_horizontal(frames), frames[:, :, ::-1, :]
  )
  assert labels_lib.mirror_speaker("F01") == "F01_mirror"
  assert labels_lib.person_of(labels_lib.mirror_speaker("F01")) == "F01"
  assert labels_lib.person_of("M03") == "M03"


def test_labels_cover_the_last_frames_with_the_prototype():
  mask = labels_lib.labelled_mask(150, 50)
  assert mask.sum() == 50 and mask[-50:].all() and not mask[:100].any()
  assert labels_lib.labelled_mask(30, 50).all()
  labels = labels_lib.frame_labels("Anger", 4)
  np.testing.assert_array_equal(
    labels, np.tile([-0.4, 0.8], (4, 1)).astype(np.float32)
  )
  assert labels.dtype == np.float32
  with pytest.raises(ValueError, match="unknown emotion"):
    labels_lib.frame_labels("boredom", 3)
  own = emotions.LabelSpace(
    ("calm", "tense"), ((0.3, -0.6), (-0.2, 0.7)), ("low", "high")
  )
  np.testing.assert_array_equal(
    labels_lib.frame_labels("Tense", 2, own),
    np.float32([[-0.2, 0.7], [-0.2, 0.7]]),
  )


def test_windows_tile_the_labelled_frames_from_the_end():
  mask = labels_lib.labelled_mask(150, 50)
  np.testing.assert_array_equal(
    labels_lib.window_starts(mask, 10, 10), [100, 110, 120, 130, 140]
  )
  assert len(labels_lib.window_starts(mask, 10, 1)) == 41
  # 45 labelled frames: windows end-aligned, the first 5 labelled frames unused.
  np.testing.assert_array_equal(
    labels_lib.window_starts(labels_lib.labelled_mask(100, 45), 10, 10),
    [60, 70, 80, 90],
  )
  assert (
    len(labels_lib.window_starts(labels_lib.labelled_mask(100, 5), 10, 10)) == 0
  )
  frames = np.arange(150)
  windows = labels_lib.cut_windows(frames, np.array([100, 140]), 10)
  np.testing.assert_array_equal(
    windows, [np.arange(100, 110), np.arange(140, 150)]
  )
