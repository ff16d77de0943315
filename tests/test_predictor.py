"""predict.py and varec.predictor: outputs, faceless frames, resampling, bad
input."""

import collections
import dataclasses
import json
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from varec import inference
from varec import locks
from varec import apex_thumbnails
from varec import html_report
from varec import predictions
from varec import decisions
from varec import predictor as predictor_lib
from varec import synthetic
from varec import video_report
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import decode

from tests.helpers import write_video

ROOT = pathlib.Path(__file__).parent.parent


@pytest.fixture(scope="module")
def predictor(trained_workdir):
  return predictor_lib.Predictor.from_checkpoint(
    trained_workdir[0], batch_size=16
  )


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, synthetic_clip):
  """8 frames without a face, then 24 with one (320x240, 25 fps)."""
  blank = np.full((8,) + synthetic_clip.shape[1:], 120, np.uint8)
  return write_video(
    tmp_path_factory.mktemp("videos") / "clip.mp4",
    np.concatenate([blank, synthetic_clip]),
  )


def test_predict_video_writes_every_output(predictor, face_video, tmp_path):
  frames = predictor.predict_video(face_video, tmp_path, annotate=True)
  assert list(frames.columns) == list(video_report.FRAME_COLUMNS)
  assert len(frames) == 32
  np.testing.assert_allclose(frames.time_s, np.arange(32) / 25.0)
  # No face: empty values, not invented numbers.
  assert not frames.face_found[:8].any() and frames.valence[:8].isna().all()
  assert frames.face_found[12:].all() and frames.valence[12:].notna().all()
  summary = json.loads((tmp_path / "summary.json").read_text())
  # The demo's checkpoints average each frame with its mirror image, and say so.
  assert predictor.engine.flip_average
  assert "mirror image" in summary["model_output"]
  counts = frames.nearest_emotion.value_counts()
  assert summary["votes"] == counts.to_dict()
  assert counts[summary["emotion"]] == counts.max()
  assert summary["pn_group"] in ("negative", "neutral", "positive")
  assert 0.5 < summary["face_share"] < 1.0
  assert summary["mean_valence"] == pytest.approx(
    frames.valence.mean(), abs=1e-4
  )
  assert (tmp_path / "trajectory.png").stat().st_size > 10_000
  assert (tmp_path / "timeline.png").stat().st_size > 10_000
  # The decisions for real videos agree with frames.csv.
  faces = frames[frames.face_found]
  covered = np.concatenate(
    [
      np.arange(s["start_frame"], s["end_frame"] + 1)
      for s in summary["segments"]
    ]
  )
  # Each face frame once, no faceless one.
  np.testing.assert_array_equal(covered, faces.frame)
  for s in summary["segments"]:
    assert s["start_s"] == frames.time_s[s["start_frame"]]
    assert s["end_s"] == pytest.approx(frames.time_s[s["end_frame"]] + 1 / 25)
  dominant = summary["dominant_emotion"]
  assert summary["dominant_share"] == pytest.approx(
    counts[dominant] / len(faces)
  )
  assert dominant != "neutral" or set(counts.index) == {"neutral"}
  space = predictor.label_space
  assert summary["dominant_pn_group"] == space.groups[space.index(dominant)]
  apex = summary["apex"]
  assert (
    frames.face_found[apex["frame"]]
    and apex["time_s"] == frames.time_s[apex["frame"]]
  )
  assert set(summary["decisions"]) == {
    "frame_emotion",
    "expression",
    "dominant_emotion",
    "apex",
    "segments",
  }
  # The headline: intensity-weighted, recomputed from frames.csv.
  face_va = faces[["valence", "arousal"]].to_numpy()
  neutral = space.neutral_index
  expected, share = decisions.intensity_vote(
    faces.nearest_emotion.map(space.emotions.index).to_numpy(),
    decisions.smooth(face_va, 5, faces.frame.to_numpy()),
    predictor.prototypes[neutral],
    neutral,
  )
  assert summary["expression"] == space.emotions[expected]
  assert summary["expression_intensity_share"] == pytest.approx(share, abs=1e-4)
  capture = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
  assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 32
  capture.release()


def test_python_api_returns_a_table_without_writing(predictor, face_video):
  frames = predictor.predict_video(face_video)
  assert isinstance(frames, pd.DataFrame) and len(frames) == 32


def test_predictions_do_not_depend_on_batch_size(
  trained_workdir, predictor, face_video
):
  other = predictor_lib.Predictor.from_checkpoint(
    trained_workdir[0], batch_size=5
  )
  a = predictor.predict_video(face_video)
  b = other.predict_video(face_video)
  np.testing.assert_allclose(
    a.valence.to_numpy(float), b.valence.to_numpy(float), atol=1e-5
  )


def test_frames_reach_the_model_as_in_training(
  trained_workdir, predictor, synthetic_clip, tmp_path
):
  # The dataset path: preprocess the file as the builders do, then the model
  # input step.
  path = write_video(tmp_path / "clip.mp4", synthetic_clip)
  stored = clip.preprocess_video(
    path, preprocess_config.config_from_data(predictor.model.config.data)
  )
  frames = crop.model_input(
    stored.frames, preprocess_config.input_config(predictor.model.config.data)
  )
  last_window = inference.VideoPredictor(predictor.model).predict_windows(
    frames[None, -10:]
  )
  streamed = predictor.predict_video(path)
  np.testing.assert_allclose(
    streamed[["valence", "arousal"]].to_numpy(float)[-1],
    last_window[0, -1],
    atol=1e-4,
  )


def test_stream_resamples_50_to_25_fps(tmp_path, synthetic_clip):
  path = tmp_path / "fast.mp4"
  synthetic.write_video(path, synthetic_clip, fps=50.0)
  frames = list(clip.stream_video(path, 25.0))
  assert len(frames) == 12
  assert [f.time_s for f in frames][:3] == [0.0, 0.04, 0.08]
  # Each frame knows the decoded frame it is: every other one.
  assert [f.source_index for f in frames] == list(range(0, 24, 2))


def test_two_actors_side_by_side_are_two_people_by_face_size(
  trained_workdir, speakers, tmp_path
):
  """A 720x288 video of two synthetic actors (a dlib checkpoint recording
  320 px): its recorded detection (--min_face=0) misses the left one's
  100-px face, shrunk to 44 px; the default min_face (60 px) finds both."""
  left, right = (
    synthetic.render_video(
      speakers[k], emotion, seed=k, size=(360, 288), num_frames=25
    )
    for k, emotion in ((0, "joy"), (3, "sadness"))
  )
  video = write_video(tmp_path / "two.mp4", np.concatenate([left, right], 2))
  found = {}
  for min_face in (None, 60):
    predictor = predictor_lib.Predictor.from_checkpoint(
      trained_workdir[0], min_face=min_face
    )
    assert predictor.preprocess.detect_max_side == 320
    frames = predictor.predict_video(video)
    found[min_face] = sorted(
      frames.groupby("person").box_x0.mean().lt(360).tolist()
    )
  assert found == {None: [False], 60: [False, True]}


def test_bad_inputs(predictor, tmp_path):
  text = tmp_path / "notes.mp4"
  text.write_text("not a video")
  with pytest.raises(decode.VideoError, match="cannot be opened"):
    predictor.predict_video(text)
  empty = tmp_path / "empty.mp4"
  empty.write_bytes(b"")
  with pytest.raises(decode.VideoError, match="empty file"):
    predictor.predict_video(empty)
  faceless = write_video(
    tmp_path / "wall.mp4", np.full((12, 120, 160, 3), 90, np.uint8)
  )
  with pytest.raises(
    decode.VideoError, match="no face found in any of 12 frames"
  ):
    predictor.predict_video(faceless)
  with pytest.raises(decode.VideoError, match="file not found"):
    predictor.predict_video(tmp_path / "missing.mp4")


def test_folder_run_keeps_outputs_apart_and_skips_only_bad_videos(
  trained_workdir, face_video, tmp_path
):
  folder, out = tmp_path / "in", tmp_path / "out"
  for name in ("good.mp4", "good.mov", "a/b.mp4", "a__b.mp4", "blocked.mp4"):
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(face_video.read_bytes())
  (folder / "broken.avi").write_bytes(b"\x00" * 1000)
  (out / "good.mp4").mkdir(parents=True)
  (out / "good.mp4" / "annotated.mp4").write_text("an earlier run's")
  (out / "blocked.mp4").write_text("a file where an output folder goes")
  result = subprocess.run(
    [
      sys.executable,
      "predict.py",
      f"--checkpoint={trained_workdir[0]}",
      f"--video={folder}",
      f"--output={out}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode == 1
  assert "broken.avi" in result.stderr and "cannot be opened" in result.stderr
  assert "blocked.mp4: a file is in the way" in result.stderr
  assert "2 of 6 video(s) failed" in result.stderr
  for name in ("good.mp4", "good.mov", "a/b.mp4", "a__b.mp4"):
    assert json.loads((out / name / "summary.json").read_text())[
      "video"
    ].endswith(name)
  # The earlier run's outputs were replaced whole, and nothing half-written is
  # left.
  assert not (out / "good.mp4" / "annotated.mp4").exists()
  assert (
    out / "blocked.mp4"
  ).read_text() == "a file where an output folder goes"
  # Nothing hidden but the lock file (which the system unlocks when its holder
  # exits).
  assert [p.name for p in out.rglob(".*")] == [locks.LOCK_FILE]
  assert "good.mp4" in result.stdout and "apex at" in result.stdout


def test_unwritable_output_stops_before_any_work(
  trained_workdir, face_video, tmp_path
):
  (tmp_path / "taken").write_text("a file")
  result = subprocess.run(
    [
      sys.executable,
      "predict.py",
      f"--checkpoint={trained_workdir[0]}",
      f"--video={face_video}",
      f"--output={tmp_path / 'taken'}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode == 1
  assert (
    f"cannot create the output folder --output={tmp_path / 'taken'}"
    in result.stderr
  )


def test_a_truncated_video_is_predicted_with_a_warning(
  predictor, synthetic_clip, tmp_path
):
  path = tmp_path / "cut.avi"
  synthetic.write_video(path, np.concatenate([synthetic_clip] * 3), fps=25.0)
  path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
  predictor.predict_video(path, tmp_path / "out")
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert summary["source_frames_announced"] == 72
  assert (
    summary["source_frames_decoded"] < 72 == summary["source_frames_announced"]
  )
  assert summary["frames"] == summary["source_frames_decoded"]
  assert "truncated" in summary["note_truncated"]


def test_non_finite_outputs_give_no_emotion(
  trained_workdir, face_video, tmp_path
):
  broken = predictor_lib.Predictor.from_checkpoint(
    trained_workdir[0], batch_size=16
  )
  broken.engine._gru = (
    lambda variables, windows: np.full(  # pylint: disable=protected-access
      windows.shape[:2] + (2,), np.nan, np.float32
    )
  )
  with pytest.raises(
    decode.VideoError, match="not finite .* the checkpoint is broken"
  ):
    broken.predict_video(face_video, tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_a_url_is_refused_in_one_line(trained_workdir):
  result = subprocess.run(
    [
      sys.executable,
      "predict.py",
      f"--checkpoint={trained_workdir[0]}",
      "--video=https://example.invalid/face.mp4",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
    "predict.py: --video=https://example.invalid/face.mp4 is a URL; "
    "predict.py reads video files and folders on this machine: download the "
    "video first"
  ]


def test_a_folder_is_read_without_what_varec_wrote_into_it(tmp_path):
  """predict.py --video=D --output=D/out, run twice, must not predict its own
  annotated videos: the output folder, earlier runs' folders and staging
  folders are left out, and said so."""
  import predict  # pylint: disable=g-import-not-at-top

  source = tmp_path / "clips"
  for name in (
    "a.mp4",
    "sub/b.avi",
    "out/a.mp4/annotated.mp4",
    "old_run/a.mp4/annotated.mp4",
    ".a.mp4.partial123/annotated.mp4",
  ):
    (source / name).parent.mkdir(parents=True, exist_ok=True)
    (source / name).write_bytes(b"video")
  (source / "old_run/a.mp4" / video_report.SUMMARY).write_text("{}")
  files, left_out = predict.video_files(source, source / "out")
  assert files == [source / "a.mp4", source / "sub/b.avi"]
  assert len(left_out) == 3
  assert any("inside --output" in r for r in left_out)
  assert any("an earlier run's output" in r for r in left_out)
  # The output folder elsewhere, given as a relative path, changes nothing else.
  files, left_out = predict.video_files(source, pathlib.Path("elsewhere"))
  assert len(files) == 3 and len(left_out) == 2


def test_a_folder_of_frames_is_predicted_as_one_clip(
  trained_workdir, face_video, tmp_path
):
  """As training reads it (at the checkpoint's frame rate)."""
  import predict  # pylint: disable=g-import-not-at-top

  frames_dir = tmp_path / "clip_frames"
  frames_dir.mkdir()
  frames, _ = decode.read_video(face_video)
  for i, frame in enumerate(frames):
    cv2.imwrite(str(frames_dir / f"{i:04d}.png"), frame)
  files, _ = predict.video_files(frames_dir, tmp_path / "out")
  assert files == [frames_dir]
  assert predict.output_name(frames_dir, frames_dir) == pathlib.Path(
    "clip_frames"
  )
  predictor = predictor_lib.Predictor.from_checkpoint(trained_workdir[0])
  table = predictor.predict_video(frames_dir)
  # The same frames as the video's (PNG is lossless; both at 25 fps).
  video = predictor.predict_video(face_video)
  assert len(table) == len(video) == len(frames)
  np.testing.assert_array_equal(table["face_found"], video["face_found"])
  np.testing.assert_allclose(
    table[["valence", "arousal"]], video[["valence", "arousal"]], atol=1e-5
  )


def test_frames_are_decided_among_the_trained_emotions_and_neutral(
  trained_workdir, face_video
):
  """A checkpoint that saw two emotions decides each frame among those two
  and neutral, with the same valence-arousal."""
  model = inference.TrainedModel.load(trained_workdir[0])
  every = predictor_lib.Predictor(model).predict_video(face_video)
  taught = dataclasses.replace(
    model,
    meta=dataclasses.replace(model.meta, trained_emotions=("joy", "anger")),
  )
  frames = predictor_lib.Predictor(taught).predict_video(face_video)
  decided = set(frames.nearest_emotion.dropna())
  assert decided and decided <= {"joy", "anger", "neutral"}
  np.testing.assert_array_equal(frames.valence, every.valence)
  assert set(every.nearest_emotion.dropna()) - {"joy", "anger", "neutral"}


def test_the_stream_gives_each_frame_typed(predictor, face_video):
  """`Predictor.predictions`: one `FramePrediction` per frame, in order, its
  faces what frames.csv then says of them."""
  stats = collections.Counter()
  frames = list(
    predictor.predictions(face_video, keep_images=True, stats=stats)
  )
  assert all(isinstance(f, predictions.FramePrediction) for f in frames)
  assert [f.index for f in frames] == list(range(32))
  assert [f.source_index for f in frames] == list(range(32))  # At 25 fps.
  assert [f.time_s for f in frames] == [k / 25.0 for k in range(32)]
  assert all(f.image.shape == (240, 320, 3) for f in frames)
  assert stats["frames"] == 32 and not stats["non_finite_outputs"]
  assert not any(f.faces for f in frames[:8])
  faces = [face for f in frames for face in f.faces]
  assert {face.person for face in faces} == {0}
  space = predictor.label_space
  for face in faces:
    assert face.box.shape == (4,) and face.va.shape == (2,)
    assert face.emotion == int(
      decisions.nearest_emotion(face.va, predictor.prototypes)
    )
    # A GRU's outputs: valence and arousal only; no face mesh.
    assert face.probabilities is None and face.landmarks is None
    assert face.blendshapes is None
  table = predictor.predict_video(face_video)
  with_face = table[table.face_found]
  np.testing.assert_array_equal(
    with_face.frame, [f.index for f in frames if f.faces]
  )
  np.testing.assert_allclose(
    with_face[["valence", "arousal"]].to_numpy(float),
    [face.va for face in faces],
    atol=1e-5,
  )
  assert list(with_face.nearest_emotion) == [
    space.emotions[face.emotion] for face in faces
  ]
  assert all(f.image is None for f in predictor.predictions(face_video)), (
    "images only where asked for"
  )


def test_the_apex_face_is_kept_as_the_video_streams_past(
  predictor, face_video, tmp_path
):
  """The report's apex thumbnail is cut from the frame summary.json names as
  the apex, without reading the video again."""
  stats = collections.Counter()
  output = tmp_path / "out"
  _, summary = video_report.write(
    predictor.predictions(face_video, keep_images=True, stats=stats),
    predictor.settings,
    stats,
    face_video,
    output,
    report=tmp_path / html_report.INDEX,
  )
  written = json.loads((output / video_report.SUMMARY).read_text())
  # The typed summary is summary.json, byte for byte.
  assert (output / video_report.SUMMARY).read_text() == (
    json.dumps(summary.to_json(), indent=2) + "\n"
  )
  assert summary.main.apex.frame == written["apex"]["frame"]
  rule = decisions.DecisionRule.of(
    predictor.label_space, predictor.settings.fps, predictor.prototypes
  )
  kept = apex_thumbnails.ApexThumbnails(rule)
  for frame in predictor.predictions(face_video, keep_images=True):
    kept.add(frame)
  thumbnails = kept.thumbnails()
  for person in written["people"]:
    thumbnail = thumbnails[person["person"]]
    assert thumbnail.frame == person["apex"]["frame"]
    on_disk = cv2.imread(str(output / html_report.thumbnail(person["person"])))
    _, jpeg = cv2.imencode(".jpg", thumbnail.image)
    np.testing.assert_array_equal(on_disk, cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    assert on_disk.shape == (html_report.THUMBNAIL_SIDE,) * 2 + (3,)
