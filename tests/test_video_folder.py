"""Your own data: the video_folder builder, trained on and evaluated end to
end."""

import json
import math
import pathlib
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from varec import emotions
from varec import evaluation
from varec import evaluation_outputs
from varec import inference
from varec import predictor as predictor_lib
from varec import synthetic
from varec import train_lib
from varec.data import input_pipeline
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import faces
from varec.preprocess import grayscale

from tests.helpers import tiny_config, write_video

SIZE = (240, 192)


def _frames(speaker, emotion, num_frames):
  return synthetic.render_video(
    speaker, emotion, seed=2, size=SIZE, num_frames=num_frames
  )


def _write_frame_folder(folder, frames):
  folder.mkdir(parents=True)
  for i, frame in enumerate(frames):
    cv2.imwrite(str(folder / f"frame_{i:04d}.png"), frame)


def _crop_faces(frames):
  """Pre-cropped faces, as many public datasets ship them."""
  gray = grayscale.equalize_histogram(grayscale.grayscale_mean_rgb(frames[0]))
  x0, y0, x1, y1 = crop.square_box(faces.detect_largest_face(gray, 320), 0.1)
  return np.ascontiguousarray(frames[:, max(0, y0) : y1, max(0, x0) : x1])


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
  """Two layouts of the same 3 actors x 2 emotions: full frames and
  pre-cropped faces."""
  full, cropped = (
    tmp_path_factory.mktemp("own"),
    tmp_path_factory.mktemp("own_cropped"),
  )
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
def test_builds_videos_frame_folders_short_clips_and_aliases(
  folders, tmp_path, cropped
):
  config = _config(tmp_path, folders[cropped], faces_cropped=cropped)
  builder = input_pipeline.ensure_built(config.data)
  summary = builder.info.metadata["build_summary"]
  assert (
    summary["videos"] == 7
    and summary["padded_videos"] == 1
    and not summary["skipped"]
  )
  assert math.isnan(summary["detection_rate"]) == cropped
  videos = input_pipeline.read_split(builder, "videos", ("forward",))
  labels = {v["video_id"]: v["emotion"] for v in videos}
  assert sorted(set(labels.values())) == sorted(
    emotions.TABLE2.index(e) for e in ("joy", "sadness", "surprise")
  )
  short = next(v for v in videos if v["video_id"] == "short")
  # 6 frames and 4 copies of the first in front.
  assert len(short["frames"]) == 10
  np.testing.assert_array_equal(short["frames"][0], short["frames"][4])


def test_missing_labels_csv_says_what_to_write(tmp_path):
  (tmp_path / "videos").mkdir()
  (tmp_path / "videos" / "a.mp4").write_bytes(b"x")
  config = _config(tmp_path / "data", tmp_path / "videos")
  with pytest.raises(
    FileNotFoundError, match="labels.csv not found.*path,speaker,emotion"
  ):
    input_pipeline.ensure_built(config.data)


# A vocabulary of its own: other names, prototypes, groups and order than Table
# 2's.
OWN_PROTOTYPES = (
  "emotion,valence,arousal,group\n"
  "gloomy,-0.6,-0.5,low\n"
  "excited,0.7,0.8,high\n"
  "calm,0.5,-0.6,low\n"
)


@pytest.fixture
def own_vocabulary(folders, tmp_path):
  """`folders`' full-frame videos relabelled in OWN_PROTOTYPES's names, and
  that CSV."""
  root = tmp_path / "own_vocabulary"
  root.mkdir()
  labels = pd.read_csv(folders[0] / "labels.csv")
  for path in labels["path"]:
    source = folders[0] / path
    (shutil.copytree if source.is_dir() else shutil.copy)(source, root / path)
  labels["emotion"] = labels["emotion"].map(
    {"happy": "Excited", "Sad": "gloomy", "surprised": "calm"}
  )
  labels.to_csv(root / "labels.csv", index=False)
  (tmp_path / "prototypes.csv").write_text(OWN_PROTOTYPES)
  return root, tmp_path / "prototypes.csv"


def test_train_evaluate_and_predict_with_your_own_emotions(
  own_vocabulary, tmp_path
):
  manual_dir, csv_path = own_vocabulary
  space = emotions.LabelSpace.from_csv(csv_path)
  config = _config(tmp_path / "data", manual_dir, prototypes_csv=str(csv_path))
  config.cnn.num_epochs = config.rnn.num_epochs = 1
  builder = input_pipeline.ensure_built(config.data)
  assert input_pipeline.label_space(builder) == space
  assert builder.info.features["emotion"].names == ["gloomy", "excited", "calm"]
  final = train_lib.train_and_evaluate(config, tmp_path / "run", builder)
  assert np.isfinite(final["loss"])

  # Evaluation finds the build from the checkpoint's emotions, even after the
  # CSV has changed.
  csv_path.write_text(OWN_PROTOTYPES.replace("calm,0.5", "calm,0.4"))
  model, results = evaluation.evaluate(tmp_path / "run", ("test",))
  assert model.label_space == space
  evaluation_outputs.write_outputs(model, results, tmp_path / "eval")
  metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
  assert metrics["label_space"] == space.to_meta()
  test = metrics["splits"]["test"]
  assert list(test["per_emotion"]) == ["gloomy", "excited", "calm"]
  assert np.shape(test["confusion_matrix"]) == (3, 3)
  videos = pd.read_csv(tmp_path / "eval" / "videos.csv")
  assert set(videos.true_emotion) <= set(space.emotions)
  assert [c for c in videos.columns if c.startswith("votes_")] == [
    "votes_gloomy",
    "votes_excited",
    "votes_calm",
  ]
  group = dict(zip(space.emotions, space.groups))
  assert test["pn_accuracy"] == pytest.approx(
    np.mean(
      videos.true_emotion.map(group) == videos.predicted_emotion.map(group)
    )
  )
  assert (
    tmp_path / "eval" / "figures" / "fig5_distribution_test.png"
  ).stat().st_size > 0

  predictor = predictor_lib.Predictor.from_checkpoint(
    tmp_path / "run", batch_size=16
  )
  video = sorted(manual_dir.glob("*_joy.mp4"))[0]
  frames = predictor.predict_video(video, tmp_path / "predicted")
  summary = json.loads((tmp_path / "predicted" / "summary.json").read_text())
  assert set(frames.nearest_emotion.dropna()) <= set(space.emotions)
  assert summary["pn_group"] == group[summary["emotion"]]

  # Resuming the run with the changed CSV would mix two vocabularies.
  with pytest.raises(ValueError, match="other emotions"):
    train_lib.train_and_evaluate(config, tmp_path / "run")


# -- Stills and short clips; preprocessing carried by the checkpoint; other
# datasets ------------


@pytest.fixture(scope="module")
def stills(tmp_path_factory, speakers):
  """Apex stills as public datasets ship them: 48x48 face crops, 3 people x 2
  emotions, each clip a single image or a folder of 2 frames; emotions from a
  CSV of joy and sadness."""
  root = tmp_path_factory.mktemp("stills")
  rows = ["path,speaker,emotion"]
  for i, speaker in enumerate(speakers[:3]):
    for emotion in ("joy", "sadness"):
      apex = _crop_faces(_frames(speaker, emotion, 24)[-2:])
      apex = np.stack(
        [cv2.resize(f, (48, 48), interpolation=cv2.INTER_AREA) for f in apex]
      )
      name = f"{speaker.speaker_id}_{emotion}"
      if i % 2:
        _write_frame_folder(root / name, apex)
        rows.append(f"{name},{speaker.speaker_id},{emotion}")
      else:
        cv2.imwrite(str(root / f"{name}.png"), apex[-1])
        rows.append(f"{name}.png,{speaker.speaker_id},{emotion}")
  (root / "labels.csv").write_text("\n".join(rows) + "\n")
  (root / "emotions.csv").write_text(
    "emotion,valence,arousal,group\n"
    "joy,0.95,0.12,positive\nsadness,-0.5,-0.86,negative\n"
  )
  return root


def _stills_config(data_dir, stills, **data):
  return _config(
    data_dir,
    stills,
    faces_cropped=True,
    num_labelled_frames=3,
    prototypes_csv=str(stills / "emotions.csv"),
    **data,
  )


def test_stills_train_without_flags_and_are_aligned(stills, tmp_path):
  config = _stills_config(tmp_path / "data", stills)
  builder = input_pipeline.ensure_built(config.data)
  summary = builder.info.metadata["build_summary"]
  # Every clip is padded to one window, all of it labelled, and its faces found
  # and aligned.
  assert (
    summary["videos"] == 6
    and summary["windows"] == 6
    and summary["padded_videos"] == 6
  )
  assert summary["alignment_fallbacks"] == 0 and not summary["skipped"]
  final = train_lib.train_and_evaluate(config, tmp_path / "run", builder)
  assert np.isfinite(final["loss"])


def test_zero_windows_stop_with_the_setting_to_change(folders, tmp_path):
  # 30-frame clips with only their last 5 frames labelled: no 10-frame window.
  config = _config(tmp_path / "data", folders[0], num_labelled_frames=5)
  with pytest.raises(
    ValueError, match="num_labelled_frames=5.*Raise data.num_labelled_frames"
  ):
    input_pipeline.ensure_built(config.data)


def test_builds_of_other_folders_or_labels_never_mix(folders, stills, tmp_path):
  config = _config(tmp_path, folders[0])
  name = input_pipeline.get_builder(config.data).builder_config.name
  assert (
    input_pipeline.get_builder(
      _config(tmp_path, folders[1]).data
    ).builder_config.name
    != name
  )
  config.data.face_margin = 0.3
  assert input_pipeline.get_builder(config.data).builder_config.name != name
  edited = tmp_path / "edited"
  edited.mkdir()
  (edited / "labels.csv").write_text("path,speaker,emotion\n")
  before = input_pipeline.get_builder(
    _config(tmp_path, edited).data
  ).builder_config.name
  (edited / "labels.csv").write_text("path,speaker,emotion\na.mp4,x,joy\n")
  labelled = input_pipeline.get_builder(
    _config(tmp_path, edited).data
  ).builder_config.name
  assert labelled != before
  # A video replaced under the same name (another size) is another build too.
  (edited / "a.mp4").write_bytes(b"first take")
  first = input_pipeline.get_builder(
    _config(tmp_path, edited).data
  ).builder_config.name
  (edited / "a.mp4").write_bytes(b"second, longer take")
  assert (
    input_pipeline.get_builder(
      _config(tmp_path, edited).data
    ).builder_config.name
    != first
  )
  assert first != labelled


@pytest.fixture(scope="module")
def wide_margin_run(folders, tmp_path_factory):
  """A tiny model trained on full-frame videos with a non-default margin,
  unaligned."""
  tmp = tmp_path_factory.mktemp("margin")
  config = _config(tmp / "data", folders[0], face_margin=0.3, align_faces=False)
  config.cnn.num_epochs = config.rnn.num_epochs = 1
  train_lib.train_and_evaluate(config, tmp / "run")
  return tmp / "run"


def test_prediction_takes_every_preprocessing_setting_from_the_checkpoint(
  wide_margin_run, folders, tmp_path
):
  predictor = predictor_lib.Predictor.from_checkpoint(
    wide_margin_run, batch_size=16
  )
  assert (
    predictor.preprocess.face_margin == 0.3
    and not predictor.preprocess.align_faces
  )
  path = sorted(folders[0].glob("*_joy.mp4"))[0]
  streamed = predictor.predict_video(path)[["valence", "arousal"]].to_numpy(
    float
  )
  # The dataset path with the checkpoint's settings gives the same last-frame
  # output...
  model = predictor.model
  stored = clip.preprocess_video(
    path, preprocess_config.config_from_data(model.config.data)
  )
  frames = crop.model_input(
    stored.frames, preprocess_config.input_config(model.config.data)
  )
  window = inference.VideoPredictor(model).predict_windows(frames[None, -10:])
  np.testing.assert_allclose(streamed[-1], window[0, -1], atol=1e-4)
  # ... and the default margin would not have.
  default = clip.preprocess_video(
    path, preprocess_config.PreprocessConfig(align_faces=False)
  )
  assert not np.array_equal(default.frames, stored.frames)


def test_cross_dataset_evaluation_with_the_checkpoints_preprocessing(
  stills, folders, tmp_path
):
  config = _stills_config(tmp_path / "data", stills)
  config.cnn.num_epochs = config.rnn.num_epochs = 1
  train_lib.train_and_evaluate(config, tmp_path / "run")
  overrides = {
    "name": "video_folder",
    "manual_dir": str(folders[0]),
    "faces_cropped": False,
    "num_labelled_frames": 20,
    "prototypes_csv": None,
  }
  model, results = evaluation.evaluate_cross_dataset(
    tmp_path / "run", overrides
  )
  (result,) = results
  assert result.split == "all"
  # The other folder's surprise clip is not an emotion of the checkpoint: left
  # out, reported.
  assert result.metrics["left_out"] == {"surprise": 1}
  assert result.metrics["videos"] == 6 and set(result.videos.true_emotion) == {
    "joy",
    "sadness",
  }
  assert np.shape(result.metrics["confusion_matrix"]) == (2, 2)
  # Built with the checkpoint's preprocessing (aligned) and the folder's own
  # description.
  built = input_pipeline.get_builder(
    evaluation.cross_dataset_config(model, overrides).data
  )
  assert built.is_prepared() and built.builder_config.preprocess.align_faces
  assert not built.builder_config.preprocess.faces_cropped
  evaluation_outputs.write_outputs(
    model, [result], tmp_path / "eval", figures=False
  )
  assert (
    json.loads((tmp_path / "eval" / "metrics.json").read_text())["splits"][
      "all"
    ]["videos"]
    == 6
  )
  with pytest.raises(
    evaluation.EvaluationError, match="comes from its checkpoint"
  ):
    evaluation.cross_dataset_config(model, {"face_margin": 0.2})


def test_a_run_is_not_resumed_with_other_preprocessing(
  wide_margin_run, folders, tmp_path
):
  config = _config(
    tmp_path / "data", folders[0], face_margin=0.2, align_faces=False
  )
  with pytest.raises(
    ValueError,
    match=r"holds a finished run of another config \(.*"
    r"data\.face_margin: 0\.3 there, 0\.2 now",
  ):
    train_lib.train_and_evaluate(config, wide_margin_run)


def test_links_out_of_the_folder_are_not_read_unless_asked(
  folders, tmp_path, monkeypatch
):
  """A labels.csv row naming a link inside the folder that points outside it
  (another folder's video, /etc/passwd) is skipped with its reason, and the
  file it points to is never opened; data.follow_symlinks reads it."""
  root = tmp_path / "mine"
  shutil.copytree(folders[0], root)
  outside = tmp_path / "elsewhere" / "joy.mp4"
  outside.parent.mkdir()
  shutil.move(root / "short.mp4", outside)
  (root / "short.mp4").symlink_to(outside)
  (root / "passwd.mp4").symlink_to("/etc/passwd")
  with open(root / "labels.csv", "a") as f:
    f.write("passwd.mp4,M99,joy\n")
  opened = []
  preprocess_video = clip.preprocess_video
  monkeypatch.setattr(
    clip,
    "preprocess_video",
    lambda path, *a, **k: (
      opened.append(path) or preprocess_video(path, *a, **k)
    ),
  )
  monkeypatch.setenv("VAREC_WORKERS", "1")  # The monkeypatch reaches the build.
  builder = input_pipeline.ensure_built(_config(tmp_path / "d1", root).data)
  summary = builder.info.metadata["build_summary"]
  reasons = {
    pathlib.Path(s["file"]).name: s["reason"] for s in summary["skipped"]
  }
  assert set(reasons) == {"short.mp4", "passwd.mp4"}
  assert (
    "outside" in reasons["short.mp4"]
    and "follow_symlinks" in reasons["passwd.mp4"]
  )
  assert opened and not any(
    "short" in str(p) or "passwd" in str(p) for p in opened
  )
  followed = input_pipeline.ensure_built(
    _config(tmp_path / "d2", root, follow_symlinks=True).data
  )
  reasons = {
    pathlib.Path(s["file"]).name: s["reason"]
    for s in followed.info.metadata["build_summary"]["skipped"]
  }
  assert "short.mp4" not in reasons and "passwd.mp4" in reasons  # Not a video.


def test_labels_of_a_single_emotion_are_refused(folders, tmp_path):
  root = tmp_path / "one_emotion"
  shutil.copytree(folders[0], root)
  labels = pd.read_csv(root / "labels.csv")
  labels["emotion"] = "joy"
  labels.to_csv(root / "labels.csv", index=False)
  with pytest.raises(ValueError, match="every training video shows joy"):
    train_lib.train_and_evaluate(
      _config(tmp_path / "data", root), tmp_path / "run"
    )
