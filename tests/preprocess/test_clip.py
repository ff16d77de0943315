"""`varec.preprocess.clip`: the whole way for one clip, file or still."""

import cv2
import numpy as np
import pytest
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import decode
from varec.preprocess import faces
from varec.preprocess import labels


def test_preprocess_frames_on_a_drawn_face(synthetic_clip):
  frames = synthetic_clip
  config = preprocess_config.PreprocessConfig(
    crop_size=48, detect_every=3, num_labelled_frames=12
  )
  video = clip.preprocess_frames(frames, 25.0, config, name="clip")
  t = len(frames)
  assert video.frames.shape == (t, 48, 48, 1) and video.frames.dtype == np.uint8
  assert video.boxes.shape == (t, 4)
  assert video.labelled.sum() == 12
  assert video.detection_rate >= 0.95
  assert video.num_detection_attempts == faces.detection_schedule(t, 3).sum()
  # The crop holds the face: the box lies inside the frame and is a plausible
  # size.
  h, w = frames.shape[1:3]
  x0, y0, x1, y1 = video.boxes[0]
  assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and (y1 - y0) > h / 5


def test_preprocess_frames_resamples_other_rates(synthetic_clip):
  config = preprocess_config.PreprocessConfig(
    crop_size=32, detect_every=10, num_labelled_frames=5
  )
  video = clip.preprocess_frames(synthetic_clip, 50.0, config)
  assert len(video.frames) == round(len(synthetic_clip) / 2)


def test_preprocess_frames_rejects_faceless_and_short_clips():
  blank = np.full((12, 120, 160, 3), 128, np.uint8)
  with pytest.raises(decode.VideoError, match="no face"):
    clip.preprocess_frames(
      blank, 25.0, preprocess_config.PreprocessConfig(), name="blank.mp4"
    )
  with pytest.raises(decode.VideoError, match="shorter than one window"):
    clip.preprocess_frames(
      blank[:5], 25.0, preprocess_config.PreprocessConfig(), name="short.mp4"
    )


def _still(size=64):
  """A face-like still: a bright disc with dark eyes and mouth (no detection
  needed)."""
  image = np.full((size, size, 3), 60, np.uint8)
  cv2.circle(image, (size // 2, size // 2), size // 3, (200, 200, 200), -1)
  return image


def test_a_still_becomes_one_labelled_window():
  config = preprocess_config.PreprocessConfig(
    faces_cropped=True,
    align_faces=False,
    pad_short_clips=True,
    crop_size=32,
    num_labelled_frames=3,
  )
  video = clip.preprocess_frames(_still()[None], 25.0, config)
  assert video.frames.shape == (10, 32, 32, 1) and video.num_padded_frames == 9
  assert video.labelled.all()  # The copies of a labelled still carry its label.
  np.testing.assert_array_equal(
    labels.window_starts(video.labelled, 10, 10), [0]
  )


def test_copies_of_an_unlabelled_first_frame_stay_unlabelled():
  config = preprocess_config.PreprocessConfig(
    faces_cropped=True,
    align_faces=False,
    pad_short_clips=True,
    crop_size=32,
    num_labelled_frames=3,
  )
  video = clip.preprocess_frames(np.stack([_still()] * 8), 25.0, config)
  np.testing.assert_array_equal(video.labelled, [False] * 7 + [True] * 3)
  assert len(labels.window_starts(video.labelled, 10, 10)) == 0


def test_an_image_file_is_a_one_frame_clip(tmp_path):
  path = tmp_path / "still.png"
  cv2.imwrite(str(path), _still())
  config = preprocess_config.PreprocessConfig(
    faces_cropped=True, align_faces=False, pad_short_clips=True, crop_size=32
  )
  video = clip.preprocess_video(path, config)
  assert video.num_padded_frames == 9 and video.labelled.all()
  with pytest.raises(decode.VideoError, match="shorter than one window"):
    clip.preprocess_video(
      path,
      preprocess_config.PreprocessConfig(faces_cropped=True, align_faces=False),
    )
