"""Your own data: the video_folder builder, trained on and evaluated end to end."""

import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest

from varec import emotions
from varec import evaluation
from varec import input_pipeline
from varec import predictor as predictor_lib
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
      emotions.TABLE2.index(e) for e in ("joy", "sadness", "surprise"))
  short = next(v for v in videos if v["video_id"] == "short")
  assert len(short["frames"]) == 10  # 6 frames and 4 copies of the first in front.
  np.testing.assert_array_equal(short["frames"][0], short["frames"][4])


def test_missing_labels_csv_says_what_to_write(tmp_path):
  (tmp_path / "videos").mkdir()
  (tmp_path / "videos" / "a.mp4").write_bytes(b"x")
  config = _config(tmp_path / "data", tmp_path / "videos")
  with pytest.raises(FileNotFoundError, match="labels.csv not found.*path,speaker,emotion"):
    input_pipeline.ensure_built(config.data)


# A vocabulary of its own: other names, prototypes, groups and order than Table 2's.
OWN_PROTOTYPES = ("emotion,valence,arousal,group\n"
                  "gloomy,-0.6,-0.5,low\n"
                  "excited,0.7,0.8,high\n"
                  "calm,0.5,-0.6,low\n")


@pytest.fixture
def own_vocabulary(folders, tmp_path):
  """`folders`' full-frame videos relabelled in OWN_PROTOTYPES's names, and that CSV."""
  root = tmp_path / "own_vocabulary"
  root.mkdir()
  labels = pd.read_csv(folders[0] / "labels.csv")
  for path in labels["path"]:
    (root / path).symlink_to(folders[0] / path)
  labels["emotion"] = labels["emotion"].map({"happy": "Excited", "Sad": "gloomy",
                                             "surprised": "calm"})
  labels.to_csv(root / "labels.csv", index=False)
  (tmp_path / "prototypes.csv").write_text(OWN_PROTOTYPES)
  return root, tmp_path / "prototypes.csv"


def test_train_evaluate_and_predict_with_your_own_emotions(own_vocabulary, tmp_path):
  manual_dir, csv_path = own_vocabulary
  space = emotions.LabelSpace.from_csv(csv_path)
  config = _config(tmp_path / "data", manual_dir, prototypes_csv=str(csv_path))
  config.cnn.num_epochs = config.rnn.num_epochs = 1
  builder = input_pipeline.ensure_built(config.data)
  assert input_pipeline.label_space(builder) == space
  assert builder.info.features["emotion"].names == ["gloomy", "excited", "calm"]
  final = train_lib.train_and_evaluate(config, tmp_path / "run", builder)
  assert np.isfinite(final["loss"])

  # Evaluation finds the build from the checkpoint's emotions, even after the CSV has changed.
  csv_path.write_text(OWN_PROTOTYPES.replace("calm,0.5", "calm,0.4"))
  model, results = evaluation.evaluate(tmp_path / "run", ("test",))
  assert model.label_space == space
  evaluation.write_outputs(model, results, tmp_path / "eval")
  metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
  assert metrics["label_space"] == space.to_meta()
  test = metrics["splits"]["test"]
  assert list(test["per_emotion"]) == ["gloomy", "excited", "calm"]
  assert np.shape(test["confusion_matrix"]) == (3, 3)
  videos = pd.read_csv(tmp_path / "eval" / "videos.csv")
  assert set(videos.true_emotion) <= set(space.emotions)
  assert [c for c in videos.columns if c.startswith("votes_")] == [
      "votes_gloomy", "votes_excited", "votes_calm"]
  group = dict(zip(space.emotions, space.groups))
  assert test["pn_accuracy"] == pytest.approx(np.mean(
      videos.true_emotion.map(group) == videos.predicted_emotion.map(group)))
  assert (tmp_path / "eval" / "figures" / "fig5_distribution_test.png").stat().st_size > 0

  predictor = predictor_lib.Predictor.from_checkpoint(tmp_path / "run", batch_size=16)
  video = sorted(manual_dir.glob("*_joy.mp4"))[0]
  frames = predictor.predict_video(video, tmp_path / "predicted")
  summary = json.loads((tmp_path / "predicted" / "summary.json").read_text())
  assert set(frames.nearest_emotion.dropna()) <= set(space.emotions)
  assert summary["pn_group"] == group[summary["emotion"]]

  # Resuming the run with the changed CSV would mix two vocabularies.
  with pytest.raises(ValueError, match="other emotions"):
    train_lib.train_and_evaluate(config, tmp_path / "run")
