"""The one inference engine: eval.py's and predict.py's paths agree under
each window policy."""

import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from varec import face_mesh
from varec import inference
from varec import mesh_reader
from varec import predictor as predictor_lib
from varec.preprocess import clip as clip_lib
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import faces

from tests.helpers import write_video

ROOT = pathlib.Path(__file__).parent.parent


@pytest.fixture(scope="module")
def model(trained_workdir):
  return inference.TrainedModel.load(trained_workdir[0])


def _model_frames(model, clip, folder):
  """The model inputs of a clip written as a video, preprocessed as the
  builders do."""
  path = write_video(folder / "clip.mp4", clip)
  stored = clip_lib.preprocess_video(
    path, preprocess_config.config_from_data(model.config.data)
  )
  return crop.model_input(
    stored.frames, preprocess_config.input_config(model.config.data)
  )


class _StoredFrames(predictor_lib.Predictor):
  """predict.py's path fed the builders' crops of the same file, so both see
  the same frames."""

  def __init__(self, model, stored, **kwargs):
    super().__init__(model, **kwargs)
    self.stored = stored

  def _with_faces(self, frames, stats, keep_bgr):
    for frame in frames:
      frame.faces = {0: faces.whole_frame_box(frame.gray)}
      yield frame

  def _crop(self, frame, box, stats):
    return self.stored[frame.index, ..., 0]


@pytest.mark.parametrize("policy", inference.WINDOW_POLICIES)
def test_predict_and_eval_paths_agree(model, synthetic_clip, tmp_path, policy):
  path = write_video(tmp_path / "clip.mp4", synthetic_clip)
  stored = clip_lib.preprocess_video(
    path, preprocess_config.config_from_data(model.config.data)
  )
  frames = crop.model_input(
    stored.frames, preprocess_config.input_config(model.config.data)
  )
  evaluated = inference.VideoPredictor(model, policy).predict_videos([frames])[
    0
  ]
  predictor = _StoredFrames(
    model,
    stored.frames,
    window_policy=policy,
    batch_size=model.config.eval_batch_size,
  )
  streamed = np.stack([f.face(0).va for f in predictor.predictions(path)])
  np.testing.assert_array_equal(streamed, evaluated)
  # The training windows: the last one is any window's own output
  if policy == "tiled":
    # (up to the GRU's last bits, which depend on how many windows share a
    # batch).
    np.testing.assert_allclose(
      evaluated[-10:],
      predictor.engine.predict_windows(frames[None, -10:])[0],
      atol=1e-6,
    )


def test_causal_is_the_gru_over_the_window_ending_at_each_frame(
  model, synthetic_clip, tmp_path
):
  frames = _model_frames(model, synthetic_clip, tmp_path)
  causal = inference.VideoPredictor(model, "causal").predict_videos([frames])[0]
  # Padded at the start by repeating the first frame.
  windows = np.stack(
    [
      frames[np.clip(np.arange(t - 9, t + 1), 0, None)]
      for t in range(len(frames))
    ]
  )
  last = inference.VideoPredictor(model).predict_windows(windows)[:, -1]
  np.testing.assert_allclose(causal, last, atol=1e-6)


def test_stream_answers_each_stretch_on_its_own(
  model, synthetic_clip, tmp_path
):
  frames = _model_frames(model, synthetic_clip, tmp_path)
  engine = inference.Engine.from_model(model, batch_size=8)
  # Frames 0-14, a gap, then 17-23: the second stretch is shorter than one
  # window.
  kept = np.r_[0:15, 17 : len(frames)]
  for policy in inference.WINDOW_POLICIES:
    stream = inference.Stream(engine, policy)
    parts = [
      stream.push(frames[kept[i : i + 8]], kept[i : i + 8])
      for i in range(0, len(kept), 8)
    ]
    parts.append(stream.finish())
    indices = np.concatenate([i for i, _ in parts])
    va = np.concatenate([v for _, v in parts])
    np.testing.assert_array_equal(indices, kept)
    alone = engine.predict_videos([frames[:15], frames[17:]], policy)
    np.testing.assert_allclose(va, np.concatenate(alone), atol=1e-6)


def test_unknown_policy_is_refused(model):
  with pytest.raises(ValueError, match="tiled, causal"):
    inference.VideoPredictor(model, "centred")


@pytest.mark.parametrize("module", ["varec.predictor", "predict"])
def test_prediction_imports_no_dataset_code(module):
  loaded = subprocess.run(
    [
      sys.executable,
      "-c",
      f"import sys, {module}; print(' '.join(sys.modules))",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=True,
  ).stdout.split()
  for name in (
    "tensorflow_datasets",
    "varec.train_lib",
    "varec.data.input_pipeline",
    "varec.evaluation",
    "varec.evaluation_outputs",
    "varec.data.builder",
    "data_builder",
  ):
    assert name not in loaded


def test_outputs_stay_on_the_paper_plane(model, synthetic_clip, tmp_path):
  """A head scaled up 50-fold overshoots [-1, 1]; the engine clips valence
  and arousal there, and leaves outputs inside the plane as they are."""
  frames = _model_frames(model, synthetic_clip, tmp_path)
  engine = inference.Engine.from_model(model)
  inside = engine.predict_videos([frames])[0]
  params = model.variables["params"]
  loud = {
    **model.variables,
    "params": {
      **params,
      "rnn": jax.tree_util.tree_map(lambda w: 50 * w, params["rnn"]),
      "cnn": {
        **params["cnn"],
        "va": jax.tree_util.tree_map(lambda w: 50 * w, params["cnn"]["va"]),
      },
    },
  }
  louder = inference.Engine(model.config, loud, engine.uses_gru)
  out = louder.predict_videos([frames])[0]
  assert np.abs(out).max() == 1.0
  # Already inside: unchanged.
  np.testing.assert_array_equal(inside, inference.bounded(inside))
  raw = np.array([[1.5, -0.2], [np.nan, 3.0], [-2.0, 0.5]])
  np.testing.assert_array_equal(
    inference.bounded(raw), [[1.0, -0.2], [np.nan, 1.0], [-1.0, 0.5]]
  )


def test_flip_average_is_the_mean_of_a_frame_and_its_mirror_image(
  model, synthetic_clip, tmp_path
):
  frames = _model_frames(model, synthetic_clip, tmp_path)
  plain = inference.Engine.from_model(model, flip_average=False)
  averaged = inference.Engine.from_model(model, flip_average=True)
  mirrored = frames[..., ::-1, :]
  np.testing.assert_allclose(
    averaged.features(frames),
    (plain.features(frames) + plain.features(mirrored)) / 2,
    atol=1e-6,
  )
  # A mirrored video's averaged outputs are the video's: the test-time
  # augmentation is symmetric.
  np.testing.assert_allclose(
    averaged.predict_videos([frames])[0],
    averaged.predict_videos([mirrored])[0],
    atol=1e-5,
  )


@pytest.mark.parametrize("setting", [False, True])
def test_flip_average_follows_the_config_unless_the_caller_says(
  model, synthetic_clip, tmp_path, setting
):
  frames = _model_frames(model, synthetic_clip, tmp_path)
  config = model.config.copy_and_resolve_references()
  config.flip_average = setting
  default = inference.Engine(config, model.variables, uses_gru=True)
  assert default.flip_average is setting
  np.testing.assert_array_equal(
    default.features(frames),
    inference.Engine.from_model(model, flip_average=setting).features(frames),
  )
  overridden = inference.Engine(
    config, model.variables, uses_gru=True, flip_average=not setting
  )
  assert not np.allclose(
    overridden.features(frames), default.features(frames), atol=1e-6
  )


def test_flip_averaging_a_face_mesh_mirrors_its_landmarks(face_mesh_checkpoint):
  """A face-mesh model's test-time mirror is its landmarks mirrored
  (`preprocess.crop.mirror_input`), not its arrays reversed: the averaged
  blendshapes of a face and its mirror image are left-right symmetric."""
  reference = np.load(ROOT / "tests" / "data" / "face_mesh_reference.npz")
  points = np.stack(
    [
      mesh_reader.model_input(p)
      for p in reference["WolfgangLanger_Pexels.mp4/landmarks"][:8]
    ]
  )
  model = inference.TrainedModel.load(face_mesh_checkpoint)
  plain = inference.Engine.from_model(model, flip_average=False)
  features, outputs = plain.features_and_outputs(points)
  np.testing.assert_allclose(features, plain.features(points), atol=1e-6)
  np.testing.assert_allclose(outputs, plain.frame_outputs(points), atol=1e-6)
  averaged, _ = inference.Engine.from_model(
    model, flip_average=True
  ).features_and_outputs(points)
  names = list(face_mesh.BLENDSHAPES)
  pairs = [
    (names.index(n), names.index(n.replace("Left", "Right")))
    for n in names
    if "Left" in n
  ]
  left, right = np.array(pairs).T

  def asymmetry(x):
    return np.abs(x[:, left] - x[:, right]).mean()

  # MediaPipe's network is not exactly mirror-symmetric, so a face and its
  # mirror image do not swap their scores exactly; averaged, they still halve
  # the face's left-right difference and stay near its own scores (reversed
  # arrays, what flipping a crop's axis does to landmarks, did neither).
  assert asymmetry(averaged) < 0.6 * asymmetry(features)
  assert np.abs(averaged - features).mean() < 0.06
