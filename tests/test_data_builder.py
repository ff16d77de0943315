"""The TFDS builders on tiny generated data: both splits, a missing manual
dir, `tfds build`."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builder.adfes import adfes_dataset_builder

from tests.helpers import TINY_CONFIG, write_video as _write


def test_builder_packages_windows_and_videos(tiny_builder):
  windows = tiny_builder.as_data_source(split="windows")
  videos = tiny_builder.as_data_source(split="videos")
  assert len(videos) == 6
  assert len(windows) == 6 * 2  # 20 labelled frames / stride 10.
  window = windows[0]
  assert (
    window["frames"].shape == (10, 32, 32, 1)
    and window["frames"].dtype == np.uint8
  )
  assert (
    window["labels"].shape == (10, 2) and window["labels"].dtype == np.float32
  )
  assert window["labelled"].all() and window["start_frame"] >= 10
  video = videos[0]
  assert video["frames"].shape == (30, 32, 32, 1)
  assert video["labelled"].sum() == 20 and not video["labelled"][:10].any()
  assert 0.95 <= video["detection_rate"] <= 1.0
  # Windows are exact slices of their video.
  by_id = {videos[i]["video_id"]: videos[i] for i in range(len(videos))}
  for i in range(len(windows)):
    w = windows[i]
    v = by_id[w["video_id"]]
    s = int(w["start_frame"])
    np.testing.assert_array_equal(w["frames"], v["frames"][s : s + 10])


def test_builder_without_manual_dir_explains_what_to_do(tmp_path):
  builder = adfes_dataset_builder.Builder(
    config=TINY_CONFIG, data_dir=tmp_path, file_format="array_record"
  )
  with pytest.raises(AssertionError, match="ADFES"):
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
        manual_dir=tmp_path / "missing", try_download_gcs=False
      )
    )


def test_tfds_command_line_builds_adfes(tmp_path, synthetic_clip):
  manual = tmp_path / "manual"
  for speaker in ("F01", "M01", "M02"):
    _write(manual / f"{speaker}-Joy-Face Forward.mp4", synthetic_clip)
  builder_dir = pathlib.Path(adfes_dataset_builder.__file__).parent
  result = subprocess.run(
    [
      str(pathlib.Path(sys.executable).parent / "tfds"),
      "build",
      str(builder_dir),
      f"--manual_dir={manual}",
      f"--data_dir={tmp_path / 'data'}",
      "--file_format=array_record",
    ],
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  built = tfds.builder_from_directory(
    str(tmp_path / "data" / "adfes" / "default" / "1.2.0")
  )
  assert built.info.splits["videos"].num_examples == 3
  source = built.as_data_source(split="windows")
  assert source[0]["frames"].shape == (10, 96, 96, 1)
