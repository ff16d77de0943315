"""Finding videos and their labels: ADFES file names, index.csv, missing
folders."""

import pytest

from varec.data import discovery


def test_parse_adfes_names(tmp_path):
  record = discovery.parse_file_name(
    tmp_path / "F01-Anger-Face Forward.mpeg", tmp_path
  )
  assert (record.speaker, record.emotion, record.orientation) == (
    "F01",
    "anger",
    "forward",
  )
  record = discovery.parse_file_name(
    tmp_path / "M12-Embarrass-Turning Away.mpeg", tmp_path
  )
  assert (record.speaker, record.emotion, record.orientation) == (
    "M12",
    "embarrassment",
    "away",
  )
  record = discovery.parse_file_name(
    tmp_path / "Turning Toward" / "M02_Joy.avi", tmp_path
  )
  assert (record.emotion, record.orientation, record.video_id) == (
    "joy",
    "toward",
    "Turning Toward/M02_Joy",
  )
  with pytest.raises(ValueError, match="unknown emotion"):
    discovery.parse_file_name(tmp_path / "F01-Boredom.mp4", tmp_path)
  custom = r"^(?P<emotion>[a-z]+)_(?P<speaker>s\d+)$"
  record = discovery.parse_file_name(
    tmp_path / "happy_s7.mp4", tmp_path, custom
  )
  assert (record.speaker, record.emotion) == ("s7", "joy")


def test_index_csv_overrides_file_names(tmp_path):
  (tmp_path / "index.csv").write_text(
    "path,speaker,emotion,orientation\n"
    "clips/a.mp4,p1,Happy,forward\n"
    "clips/b.mp4,p2,sad,Turning Away\n"
    "clips/c.mp4,p3,boredom,forward\n"
  )
  records, skipped = discovery.find_videos(tmp_path)
  assert [(r.speaker, r.emotion, r.orientation) for r in records] == [
    ("p1", "joy", "forward"),
    ("p2", "sadness", "away"),
  ]
  assert (
    len(skipped) == 1
    and "unknown emotion" in skipped[0].reason
    and "c.mp4" in skipped[0].file
  )
  (tmp_path / "index.csv").write_text("file,label\nx.mp4,joy\n")
  with pytest.raises(ValueError, match="missing column"):
    discovery.find_videos(tmp_path)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    discovery.find_videos(tmp_path / "nowhere")
  (tmp_path / "readme.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match="no video file"):
    discovery.find_videos(tmp_path)


def test_orientations_filter(manual_dir):
  records, _ = discovery.find_videos(manual_dir, orientations=("away",))
  assert not records


def test_index_csv_takes_spreadsheet_habits_and_skips_bad_rows_with_reasons(
  tmp_path,
):
  rows = [
    # Semicolons, spaces, capitals, and a byte-order mark.
    "Path ; Speaker ; Emotion",
    "clips/a.mp4;p1;joy",
    "clips/a.mov;p1;joy",  # The same video as a.mp4 but for its extension.
    "clips/b.mp4;p2;sad",
    "clips/b.mp4;p2;sad",  # Listed twice.
    "../outside.mp4;p3;joy",
    f"{tmp_path.parent / 'elsewhere.mp4'};p3;joy",
    "clips/c.mp4; ;joy",
  ]
  (tmp_path / "index.csv").write_text(
    "\ufeff" + "\n".join(rows) + "\n", encoding="utf-8"
  )
  records, skipped = discovery.find_videos(tmp_path)
  assert [(r.video_id, r.speaker, r.emotion) for r in records] == [
    ("clips/a", "p1", "joy"),
    ("clips/b", "p2", "sadness"),
  ]
  reasons = {s.file.rsplit(":", 1)[1]: s.reason for s in skipped}
  assert "same video as line 2" in reasons["3 (clips/a.mov)"]
  assert "same video as line 4" in reasons["5 (clips/b.mp4)"]
  assert "not inside" in reasons["6 (../outside.mp4)"]
  assert sum("not inside" in r for r in reasons.values()) == 2
  assert reasons["8 (clips/c.mp4)"] == "empty speaker"
