"""Your own data: the video_folder builder, trained on and evaluated end to end."""

import math

import cv2
import numpy as np
import pytest

from varec import emotions
from varec import evaluation
from varec import input_pipeline
from varec import preprocessing
from varec import synthetic
from varec import train_lib

from tests.conftest import tiny_config, write_video

SIZE = (240, 192)


def _frames(speaker, emotion, num_frames):
  return synthetic.render_video(speaker, emotion, seed=2, size=SIZE, num_frames=num_frames)


def _write_frame_folder(folder, frames):
  folder.mkdir(parents=True)
  for i, frame in enumerate(frames):
    cv2.imwrite(str(folder / f"frame_{i:04d}.png"), frame)


def _crop_faces(frames):
  """Pre-cropped faces, as many public datasets ship them."""
  gray = preprocessing.equalize_histogram(preprocessing.grayscale_mean_rgb(frames[0]))
  x0, y0, x1, y1 = preprocessing.square_box(preprocessing.detect_largest_face(gray, 320), 0.1)
  return np.ascontiguousarray(frames[:, max(0, y0):y1, max(0, x0):x1])


def _config(data_dir, manual_dir, **data):
  config = tiny_config()
  config.data.name = "video_folder"
  config.data.data_dir = str(data_dir)
  config.data.manual_dir = str(manual_dir)
  config.data.num_labelled_frames = 20
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def folders(tmp_path_factory, speakers):
  """Two layouts of the same 3 actors x 2 emotions: full frames and pre-cropped faces."""
  full, cropped = tmp_path_factory.mktemp("own"), tmp_path_factory.mktemp("own_cropped")
  rows = ["path,speaker,emotion"]
  for i, speaker in enumerate(speakers[:3]):
    for emotion, alias in (("joy", "happy"), ("sadness", "Sad")):
      frames = _frames(speaker, emotion, 30)
      name = f"{speaker.speaker_id}_{emotion}"
      if i == 0:  # A folder of frame images.
        _write_frame_folder(full / name, frames)
        _write_frame_folder(cropped / name, _crop_faces(frames))
        rows.append(f"{name},{speaker.speaker_id},{alias}")
      else:
        write_video(full / f"{name}.mp4", frames)
        write_video(cropped / f"{name}.mp4", _crop_faces(frames))
        rows.append(f"{name}.mp4,{speaker.speaker_id},{alias}")
  short = _frames(speakers[1], "surprise", 6)  # Shorter than a window.
  write_video(full / "short.mp4", short)
  write_video(cropped / "short.mp4", _crop_faces(short))
  rows.append(f"short.mp4,{speakers[1].speaker_id},surprised")
  for root in (full, cropped):
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
  return full, cropped


@pytest.mark.parametrize("cropped", [False, True])
def test_builds_videos_frame_folders_short_clips_and_aliases(folders, tmp_path, cropped):
  config = _config(tmp_path, folders[cropped], faces_cropped=cropped)
  builder = input_pipeline.ensure_built(config.data)
  summary = builder.info.metadata["build_summary"]
  assert summary["videos"] == 7 and summary["padded_videos"] == 1 and not summary["skipped"]
  assert math.isnan(summary["detection_rate"]) == cropped
  videos = input_pipeline.read_split(builder, "videos", ("forward",))
  labels = {v["video_id"]: v["emotion"] for v in videos}
  assert sorted(set(labels.values())) == sorted(
      emotions.emotion_index(e) for e in ("joy", "sadness", "surprise"))
  short = next(v for v in videos if v["video_id"] == "short")
  assert len(short["frames"]) == 10  # 6 frames and 4 copies of the first in front.
  np.testing.assert_array_equal(short["frames"][0], short["frames"][4])


def test_missing_labels_csv_says_what_to_write(tmp_path):
  (tmp_path / "videos").mkdir()
  (tmp_path / "videos" / "a.mp4").write_bytes(b"x")
  config = _config(tmp_path / "data", tmp_path / "videos")
  with pytest.raises(FileNotFoundError, match="labels.csv not found.*path,speaker,emotion"):
    input_pipeline.ensure_built(config.data)


def test_train_and_evaluate_on_your_own_videos(folders, tmp_path):
  config = _config(tmp_path / "data", folders[0])
  final = train_lib.train_and_evaluate(config, tmp_path / "run")
  assert np.isfinite(final["loss"])
  model, results = evaluation.evaluate(tmp_path / "run", ("validation", "test"))
  assert model.config.data.name == "video_folder"
  assert all(r.metrics["videos"] > 0 for r in results)
