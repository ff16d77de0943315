"""Finding videos, bad input, and the TFDS builders on tiny generated data."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builder.adfes import adfes_dataset_builder
from varec import preprocessing
from varec import video_dataset

from tests.conftest import EXPECTED_SKIPS, TINY, TINY_CONFIG, write_video as _write


def test_parse_adfes_names(tmp_path):
  record = video_dataset.parse_file_name(tmp_path / "F01-Anger-Face Forward.mpeg", tmp_path)
  assert (record.speaker, record.emotion, record.orientation) == ("F01", "anger", "forward")
  record = video_dataset.parse_file_name(tmp_path / "M12-Embarrass-Turning Away.mpeg", tmp_path)
  assert (record.speaker, record.emotion, record.orientation) == ("M12", "embarrassment", "away")
  record = video_dataset.parse_file_name(tmp_path / "Turning Toward" / "M02_Joy.avi", tmp_path)
  assert (record.emotion, record.orientation, record.video_id) == ("joy", "toward",
                                                                    "Turning Toward/M02_Joy")
  with pytest.raises(ValueError, match="unknown emotion"):
    video_dataset.parse_file_name(tmp_path / "F01-Boredom.mp4", tmp_path)
  custom = r"^(?P<emotion>[a-z]+)_(?P<speaker>s\d+)$"
  record = video_dataset.parse_file_name(tmp_path / "happy_s7.mp4", tmp_path, custom)
  assert (record.speaker, record.emotion) == ("s7", "joy")


def test_index_csv_overrides_file_names(tmp_path):
  (tmp_path / "index.csv").write_text(
      "path,speaker,emotion,orientation\n"
      "clips/a.mp4,p1,Happy,forward\n"
      "clips/b.mp4,p2,sad,Turning Away\n"
      "clips/c.mp4,p3,boredom,forward\n")
  records, skipped = video_dataset.find_videos(tmp_path)
  assert [(r.speaker, r.emotion, r.orientation) for r in records] == [
      ("p1", "joy", "forward"), ("p2", "sadness", "away")]
  assert len(skipped) == 1 and "unknown emotion" in skipped[0].reason and "c.mp4" in skipped[0].file
  (tmp_path / "index.csv").write_text("file,label\nx.mp4,joy\n")
  with pytest.raises(ValueError, match="missing column"):
    video_dataset.find_videos(tmp_path)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    video_dataset.find_videos(tmp_path / "nowhere")
  (tmp_path / "readme.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match="no video file"):
    video_dataset.find_videos(tmp_path)


def test_orientations_filter(manual_dir):
  records, _ = video_dataset.find_videos(manual_dir, orientations=("away",))
  assert not records


def test_read_video_errors(tmp_path, synthetic_clip):
  with pytest.raises(preprocessing.VideoError, match="file not found"):
    preprocessing.read_video(tmp_path / "missing.mp4")
  frames, fps = preprocessing.read_video(_write(tmp_path / "ok.mp4", synthetic_clip))
  assert frames.shape == synthetic_clip.shape and fps == pytest.approx(25.0)


def test_preprocess_all_skips_bad_files_and_keeps_going(manual_dir, tmp_path):
  records, skipped = video_dataset.find_videos(manual_dir)
  done, failed = video_dataset.preprocess_all(records, TINY, tmp_path / "cache", workers=2)
  assert len(done) == 6
  reasons = {pathlib.Path(s.file).name: s.reason for s in skipped + failed}
  assert set(reasons) == set(EXPECTED_SKIPS)
  for name, fragment in EXPECTED_SKIPS.items():
    assert fragment in reasons[name], (name, reasons[name])
  # Cached results are reused: a second pass writes nothing new.
  mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
  video_dataset.preprocess_all(records, TINY, tmp_path / "cache", workers=1)
  assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
  assert not list((tmp_path / "cache").glob("*.tmp*"))


def test_builder_packages_windows_and_videos(tiny_builder):
  windows = tiny_builder.as_data_source(split="windows")
  videos = tiny_builder.as_data_source(split="videos")
  assert len(videos) == 6
  assert len(windows) == 6 * 2  # 20 labelled frames / stride 10.
  window = windows[0]
  assert window["frames"].shape == (10, 32, 32, 1) and window["frames"].dtype == np.uint8
  assert window["labels"].shape == (10, 2) and window["labels"].dtype == np.float32
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
    np.testing.assert_array_equal(w["frames"], v["frames"][s:s + 10])


def test_build_summary_lists_skipped_files(tiny_builder):
  summary = tiny_builder.info.metadata["build_summary"]
  assert summary["videos"] == 6 and summary["speakers"] == 3
  assert summary["frames"] == 180 and summary["windows"] == 12
  assert summary["detection_rate"] >= 0.95
  assert {pathlib.Path(s["file"]).name for s in summary["skipped"]} == set(EXPECTED_SKIPS)
  text = video_dataset.format_summary(summary)
  assert "9 file(s) skipped" in text and "holiday.mp4" in text


def test_builder_without_manual_dir_explains_what_to_do(tmp_path):
  builder = adfes_dataset_builder.Builder(config=TINY_CONFIG, data_dir=tmp_path,
                                          file_format="array_record")
  with pytest.raises(AssertionError, match="ADFES"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=tmp_path / "missing", try_download_gcs=False))


def test_tfds_command_line_builds_adfes(tmp_path, synthetic_clip):
  manual = tmp_path / "manual"
  for speaker in ("F01", "M01", "M02"):
    _write(manual / f"{speaker}-Joy-Face Forward.mp4", synthetic_clip)
  builder_dir = pathlib.Path(adfes_dataset_builder.__file__).parent
  result = subprocess.run(
      [str(pathlib.Path(sys.executable).parent / "tfds"), "build", str(builder_dir),
       f"--manual_dir={manual}", f"--data_dir={tmp_path / 'data'}", "--file_format=array_record"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  built = tfds.builder_from_directory(str(tmp_path / "data" / "adfes" / "default" / "1.1.0"))
  assert built.info.splits["videos"].num_examples == 3
  source = built.as_data_source(split="windows")
  assert source[0]["frames"].shape == (10, 96, 96, 1)


def test_index_csv_takes_spreadsheet_habits_and_skips_bad_rows_with_reasons(tmp_path):
  rows = ["Path ; Speaker ; Emotion",  # Semicolons, spaces, capitals, and a byte-order mark.
          "clips/a.mp4;p1;joy",
          "clips/a.mov;p1;joy",  # The same video as a.mp4 but for its extension.
          "clips/b.mp4;p2;sad",
          "clips/b.mp4;p2;sad",  # Listed twice.
          "../outside.mp4;p3;joy",
          f"{tmp_path.parent / 'elsewhere.mp4'};p3;joy",
          "clips/c.mp4; ;joy"]
  (tmp_path / "index.csv").write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
  records, skipped = video_dataset.find_videos(tmp_path)
  assert [(r.video_id, r.speaker, r.emotion) for r in records] == [
      ("clips/a", "p1", "joy"), ("clips/b", "p2", "sadness")]
  reasons = {s.file.rsplit(":", 1)[1]: s.reason for s in skipped}
  assert "same video as line 2" in reasons["3 (clips/a.mov)"]
  assert "same video as line 4" in reasons["5 (clips/b.mp4)"]
  assert "not inside" in reasons["6 (../outside.mp4)"]
  assert sum("not inside" in r for r in reasons.values()) == 2
  assert reasons["8 (clips/c.mp4)"] == "empty speaker"
