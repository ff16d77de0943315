"""Loading a run's windows and videos from a built dataset."""

import importlib
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import base
from varec import emotions
from varec import mesh_geometry
from varec import mesh_reader
from varec.data import input_pipeline
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import labels


def _config(seed=0, **data):
  config = base.get_config()
  config.seed = seed
  config.data.image_size = 32
  config.data.update(data)
  return config


def test_windows_have_the_documented_shapes(tiny_builder):
  windows, speakers = input_pipeline.load_windows(
    _config(), builder=tiny_builder
  )
  assert set(windows) == {"train", "validation", "test"}
  for name, w in windows.items():
    n = len(w["frames"])
    assert (
      w["frames"].shape == (n, 10, 32, 32, 1) and w["frames"].dtype == np.uint8
    )
    assert w["labels"].shape == (n, 10, 2) and w["labels"].dtype == np.float32
    assert w["speaker"].shape == w["video_id"].shape == (n,)
    assert set(w["speaker"]) == set(speakers[name])


def test_mirrors_are_new_speakers_kept_with_their_person(tiny_builder):
  windows, speakers = input_pipeline.load_windows(
    _config(), builder=tiny_builder
  )
  all_speakers = sorted(s for members in speakers.values() for s in members)
  assert len(all_speakers) == 6  # 3 actors and their mirror images.
  for members in speakers.values():
    assert {labels.person_of(s) for s in members} == {
      s for s in members if not s.endswith(labels.MIRROR_SUFFIX)
    }
  # A mirrored window is the flipped original.
  train = windows["train"]
  ids = list(train["video_id"])
  mirror = next(
    i for i, v in enumerate(ids) if v.endswith(labels.MIRROR_SUFFIX)
  )
  original = next(
    i
    for i, v in enumerate(ids)
    if v + labels.MIRROR_SUFFIX == ids[mirror]
    and train["start_frame"][i] == train["start_frame"][mirror]
  )
  np.testing.assert_array_equal(
    train["frames"][mirror], train["frames"][original][:, :, ::-1]
  )


def test_without_flip_only_real_speakers(tiny_builder):
  _, speakers = input_pipeline.load_windows(
    _config(flip_augment=False), builder=tiny_builder
  )
  assert sorted(s for m in speakers.values() for s in m) == sorted(
    {
      e["speaker"]
      for e in input_pipeline.read_split(tiny_builder, "videos", ("forward",))
    }
  )


def test_same_seed_same_data(tiny_builder):
  a, sa = input_pipeline.load_windows(_config(seed=5), builder=tiny_builder)
  b, sb = input_pipeline.load_windows(_config(seed=5), builder=tiny_builder)
  assert sa == sb
  np.testing.assert_array_equal(a["train"]["frames"], b["train"]["frames"])


@pytest.mark.parametrize("equalize_faces", [True, False])
def test_frames_are_the_model_input_of_the_stored_crops(
  tiny_builder, equalize_faces
):
  config = _config(
    image_size=16, equalize_faces=equalize_faces, flip_augment=False
  )
  _, speakers = input_pipeline.load_windows(config, builder=tiny_builder)
  stored = input_pipeline.read_split(tiny_builder, "videos", ("forward",))
  loaded = input_pipeline.load_videos(
    config, speakers["train"], builder=tiny_builder
  )
  assert loaded and loaded[0]["frames"].shape[1:] == (16, 16, 1)
  original = next(e for e in stored if e["video_id"] == loaded[0]["video_id"])
  np.testing.assert_array_equal(
    loaded[0]["frames"],
    crop.model_input(
      original["frames"], preprocess_config.input_config(config.data)
    ),
  )


def test_whole_videos_for_trajectories(tiny_builder):
  config = _config()
  _, speakers = input_pipeline.load_windows(config, builder=tiny_builder)
  videos = input_pipeline.load_videos(
    config, speakers["test"], builder=tiny_builder
  )
  assert videos and all(v["frames"].shape == (30, 32, 32, 1) for v in videos)
  assert {v["speaker"] for v in videos} == set(speakers["test"])


def test_unknown_dataset_name():
  with pytest.raises(ValueError, match="unknown dataset"):
    input_pipeline.get_builder(_config(name="affectnet").data)


def test_video_folder_builds_are_named_by_their_emotions(tmp_path):
  csv = tmp_path / "own.csv"
  header = "emotion,valence,arousal,group\n"
  csv.write_text(header + "calm,0.5,-0.6,low\ntense,-0.3,0.7,high\n")
  data = dict(name="video_folder", data_dir=str(tmp_path / "data"))
  table2 = input_pipeline.get_builder(_config(**data).data)
  own = input_pipeline.get_builder(
    _config(prototypes_csv=str(csv), **data).data
  )
  csv.write_text(header + "calm,0.5,-0.6,low\ntense,-0.3,0.8,high\n")
  changed = input_pipeline.get_builder(
    _config(prototypes_csv=str(csv), **data).data
  )
  # Builds made before CSVs existed still count.
  assert table2.builder_config.name == "labelled50"
  assert len({b.builder_config.name for b in (table2, own, changed)}) == 3
  assert own.builder_config.label_space.emotions == ("calm", "tense")
  with pytest.raises(
    ValueError, match="prototypes_csv is for the video_folder dataset"
  ):
    input_pipeline.get_builder(
      _config(name="adfes", prototypes_csv=str(csv)).data
    )


def test_label_space_of_a_build(tiny_builder, monkeypatch):
  assert tiny_builder.info.metadata["label_space"] == emotions.TABLE2.to_meta()
  # As in builds from before.
  monkeypatch.delitem(tiny_builder.info.metadata, "label_space")
  assert input_pipeline.label_space(tiny_builder) == emotions.TABLE2


@pytest.mark.parametrize("name", ["synthetic_adfes", "video_folder"])
def test_unequalised_frames_name_a_build_of_their_own(name, tmp_path):
  """configs/real_faces.py on any dataset: a field added after the first
  builds, away from its old default, names the build."""
  data = dict(name=name, data_dir=str(tmp_path))
  usual = input_pipeline.get_builder(_config(**data).data).builder_config
  raw = input_pipeline.get_builder(
    _config(equalize_frames=False, **data).data
  ).builder_config
  assert raw.name != usual.name and "_preprocess" in raw.name
  assert raw.preprocess.equalize_frames is False


def test_build_command_names_the_options_that_select_the_build():
  data = base.get_data_config()
  data.name, data.data_dir = "synthetic_adfes", "/data"
  assert input_pipeline.build_command(data) == (
    "python -m varec.build_dataset --data.name=synthetic_adfes "
    "--data.data_dir=/data"
  )
  data.name, data.manual_dir, data.prototypes_csv = (
    "video_folder",
    "/videos",
    "/e.csv",
  )
  assert input_pipeline.build_command(data) == (
    "python -m varec.build_dataset --data.name=video_folder "
    "--data.manual_dir=/videos --data.data_dir=/data "
    "--data.prototypes_csv=/e.csv"
  )
  # Preprocessing that differs from the defaults selects another build, so it is
  # named.
  data.face_margin, data.align_faces, data.faces_cropped = 0.25, False, True
  assert input_pipeline.build_command(data).endswith(
    "--data.face_margin=0.25 --data.faces_cropped=True --data.align_faces=False"
  )


def test_a_tfrecord_build_is_explained_in_one_line(manual_dir, tmp_path):
  data = base.get_data_config()
  data.name, data.manual_dir, data.data_dir = (
    "adfes",
    str(manual_dir),
    str(tmp_path),
  )
  module = importlib.import_module(input_pipeline.BUILDER_MODULES["adfes"])
  legacy = module.Builder(
    config=input_pipeline.builder_config(data, module),
    data_dir=tmp_path,
    file_format="tfrecord",
  )
  legacy.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False
    )
  )
  with pytest.raises(
    ValueError,
    match=r"adfes/default build in .* holds TFRecord files .* "
    r"varec reads ArrayRecord: delete",
  ):
    input_pipeline.get_builder(data)


def test_a_build_is_not_read_for_files_changed_since(manual_dir, tmp_path):
  source = pathlib.Path(shutil.copytree(manual_dir, tmp_path / "adfes"))
  data = base.get_data_config()
  data.name, data.manual_dir, data.data_dir = (
    "adfes",
    str(source),
    str(tmp_path / "tfds"),
  )
  input_pipeline.ensure_built(data)
  input_pipeline.ensure_built(data)  # Unchanged files: the build is used.
  next((source / "Face Forward").glob("*.mp4")).unlink()
  with pytest.raises(
    ValueError,
    match=r"adfes/default build in .* was made from other files "
    r"than .*adfes holds now",
  ):
    input_pipeline.ensure_built(data)


def test_the_data_layer_does_not_import_the_builders():
  # data_builder imports varec.data, never the other way round (the builders are
  # looked up by name when a dataset is asked for).
  code = (
    "import sys; import varec.data.discovery, varec.data.input_pipeline; "
    "print(sorted(m for m in sys.modules if m.startswith('data_builder')))"
  )
  result = subprocess.run(
    [sys.executable, "-c", code],
    cwd=pathlib.Path(__file__).parent.parent,
    capture_output=True,
    text=True,
    timeout=300,
    check=True,
  )
  assert result.stdout.strip() == "[]"


def test_neutral_onsets_join_the_training_windows_only(tiny_builder):
  plain, _ = input_pipeline.load_windows(_config(), builder=tiny_builder)
  windows, speakers = input_pipeline.load_windows(
    _config(neutral_onset_frames=10), builder=tiny_builder
  )
  for name in ("validation", "test"):
    np.testing.assert_array_equal(
      windows[name]["frames"], plain[name]["frames"]
    )
  train = windows["train"]
  neutral = emotions.TABLE2.neutral_point()
  onset = np.all(train["labels"] == neutral, axis=(1, 2))
  onset &= train["emotion"] != emotions.TABLE2.index("neutral")
  # One window (frames 0-9) per clip that is not neutral: the tiny clips are
  # longer than their 20 labelled frames and the 10 of the onset.
  videos = input_pipeline.load_videos(
    _config(), speakers["train"], tiny_builder
  )
  expressive = [
    v for v in videos if v["emotion"] != emotions.TABLE2.index("neutral")
  ]
  assert all(len(v["labelled"]) >= 30 for v in expressive)
  assert onset.sum() == len(expressive)
  assert set(train["start_frame"][onset]) == {0}
  first = {v["video_id"]: v["frames"][:10] for v in expressive}
  for frames, video_id in zip(train["frames"][onset], train["video_id"][onset]):
    np.testing.assert_array_equal(frames, first[video_id])
  assert len(train["frames"]) == len(plain["train"]["frames"]) + onset.sum()


def test_a_neutral_onset_no_clip_has_is_refused(tiny_builder):
  with pytest.raises(ValueError, match="no training clip has 1000 frames"):
    input_pipeline.load_windows(
      _config(neutral_onset_frames=1000), builder=tiny_builder
    )


def test_a_mesh_with_crops_is_one_vector_per_face_and_mirrors_both(
  face_landmarker_task,
):
  """With `data.mesh_crops`, the model reads each face's landmarks and crop
  (prepared as a pixel CNN's, `crop_input`) in one vector; its mirror image
  mirrors the landmarks and flips the crop."""
  data = _config(
    face_detector=str(face_landmarker_task), mesh_crops=True, image_size=16
  ).data
  rng = np.random.default_rng(0)
  landmarks = rng.normal(size=(3, 478, 3)).astype(np.float32)
  crops = rng.integers(0, 256, (3, 24, 24, 1), np.uint8)
  example = {"frames": landmarks, "crops": crops, "speaker": "F01"}
  example["video_id"] = "F01_joy"
  inputs = preprocess_config.input_config(data)
  frames = crop.model_input(landmarks, inputs, crops)
  expected_crops = crop.crop_input(crops, inputs)
  assert expected_crops.shape == (3, 16, 16, 1)
  np.testing.assert_array_equal(
    frames, mesh_reader.with_crop(landmarks, expected_crops)
  )
  mirror = input_pipeline.mirrored({**example, "frames": frames}, inputs)
  points, flipped = mesh_reader.split_crop(mirror["frames"], 16)
  np.testing.assert_array_equal(
    points,
    mesh_geometry.mirror(
      landmarks, mesh_geometry.mirror_indices(str(face_landmarker_task))
    ),
  )
  np.testing.assert_array_equal(flipped, expected_crops[:, :, ::-1])
  assert mirror["speaker"] == labels.mirror_speaker("F01")
  # Loading goes through the same: the example, then its mirror speaker.
  assert data.flip_augment
  prepared = input_pipeline.prepare_examples([example], data)
  np.testing.assert_array_equal(prepared[0]["frames"], frames)
  np.testing.assert_array_equal(prepared[1]["frames"], mirror["frames"])
  with pytest.raises(ValueError, match="no crops"):
    crop.model_input(landmarks, inputs)
