"""Face-mesh builds and training (issue 30): a `video_folder` built with
MediaPipe's face_landmarker.task as detector stores each face's landmarks;
configs/face_mesh.py trains a head and the GRU on their blendshapes, and
eval.py and predict.py read them back. Stills are framed as video faces."""

import cv2
import numpy as np
import pytest

from configs import face_mesh as face_mesh_config
from tests.helpers import write_video
from varec import config_checks
from varec import face_mesh
from varec import inference
from varec import mesh_reader
from varec import predictor as predictor_lib
from varec import synthetic
from varec import train_lib
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop
from varec.preprocess import decode


def _mesh_preprocess(task, **fields) -> preprocess_config.PreprocessConfig:
  return preprocess_config.PreprocessConfig(
    face_detector=str(task), num_labelled_frames=10, **fields
  )


def test_a_mesh_build_stores_each_frames_landmarks(
  face_landmarker_task, synthetic_clip
):
  frames = np.concatenate(
    # Four frames without a face in the middle: filled from the nearest.
    [
      synthetic_clip[:10],
      np.full_like(synthetic_clip[:4], 90),
      synthetic_clip[10:],
    ]
  )
  video = clip.preprocess_frames(
    frames, 25.0, _mesh_preprocess(face_landmarker_task)
  )
  assert video.frames.shape == (len(frames), face_mesh.NUM_LANDMARKS, 3)
  assert video.frames.dtype == np.float32
  assert not video.detected[10:14].any() and video.detected[:10].all()
  np.testing.assert_array_equal(video.frames[10], video.frames[9])
  np.testing.assert_array_equal(video.frames[13], video.frames[14])
  assert video.num_failed_detections == 4
  # Centred, in units of their spread.
  np.testing.assert_allclose(video.frames.mean(axis=1), 0, atol=1e-4)
  skipped = clip.preprocess_frames(
    frames,
    25.0,
    _mesh_preprocess(face_landmarker_task),
    policy=decode.PREDICT_POLICY,
  )
  assert len(skipped.frames) == len(frames) - 4


def test_a_mesh_build_with_crops_stores_each_faces_crop(
  face_landmarker_task, synthetic_clip
):
  """With `mesh_crops`, each face's gray crop in the box of its landmarks
  beside them; a frame without a face takes the nearest face's crop too."""
  frames = np.concatenate(
    [synthetic_clip[:10], np.full_like(synthetic_clip[:2], 90)]
  )
  plain = clip.preprocess_frames(
    frames, 25.0, _mesh_preprocess(face_landmarker_task)
  )
  assert plain.crops is None
  config = _mesh_preprocess(face_landmarker_task, mesh_crops=True, crop_size=48)
  video = clip.preprocess_frames(frames, 25.0, config)
  np.testing.assert_array_equal(video.frames, plain.frames)
  assert video.crops.shape == (len(frames), 48, 48, 1)
  assert video.crops.dtype == np.uint8
  np.testing.assert_array_equal(video.crops[10], video.crops[9])
  np.testing.assert_array_equal(video.crops[11], video.crops[9])
  # The face in its box (rounded to pixels in `boxes`), as §4.5 crops it.
  for k in (0, 9):
    gray = config.gray(frames[k])
    expected = crop.face_crop(gray, video.boxes[k], config)
    r = np.corrcoef(video.crops[k, ..., 0].ravel(), expected.ravel())[0, 1]
    assert r > 0.95, (k, r)


def test_a_still_is_read_as_its_face_in_a_video_frame(
  face_landmarker_task, real_faces
):
  """A pre-cropped face as small as 48x48 reaches the network framed as the
  same face cut from its frame: their blendshapes agree."""
  landmarker = face_mesh.cached(str(face_landmarker_task))
  image = cv2.cvtColor(
    cv2.imread(str(real_faces / "single_face.jpg")), cv2.COLOR_BGR2RGB
  )
  (face,) = landmarker(image)
  x0, y0, x1, y1 = np.round(face.detection.box).astype(int)
  still = image[y0:y1, x0:x1]
  for side in (48, 96):
    small = cv2.resize(still, (side, side), interpolation=cv2.INTER_AREA)
    points = mesh_reader.still_landmarks(landmarker, small)
    assert points is not None, side
    scores = landmarker.blendshapes(points[None])[0]
    assert np.abs(scores - face.blendshapes).mean() < 0.05, side
  # A still without a face gives none.
  blank = np.full((48, 48, 3), 128, np.uint8)
  assert mesh_reader.still_landmarks(landmarker, blank) is None


@pytest.mark.parametrize("with_crops", [False, True])
def test_configs_face_mesh_trains_evaluates_and_predicts(
  face_landmarker_task, speakers, tmp_path, with_crops
):
  """configs/face_mesh.py, and with the crop feature (Fig. 3's CNN beside the
  mesh, `features = both`)."""
  root = tmp_path / "clips"
  rows = ["path,speaker,emotion"]
  for speaker in speakers[:3]:
    for emotion in ("joy", "sadness"):
      name = f"{speaker.speaker_id}_{emotion}.mp4"
      frames = synthetic.render_video(
        speaker, emotion, seed=1, size=(240, 192), num_frames=24
      )
      write_video(root / name, frames)
      rows.append(f"{name},{speaker.speaker_id},{emotion}")
  (root / "labels.csv").write_text("\n".join(rows) + "\n")
  config = face_mesh_config.get_config()
  config.data.manual_dir = str(root)
  config.data.data_dir = str(tmp_path / "data")
  config.data.face_detector = str(face_landmarker_task)
  config.data.num_labelled_frames = 10
  config.data.split_ratios = (1, 1, 1)
  config.cnn.num_epochs = config.rnn.num_epochs = 1
  config.cnn.min_steps = config.rnn.min_steps = 0
  config.cnn.batch_size, config.rnn.batch_size = 16, 2
  if with_crops:
    config.model.mesh_features += ("crop",)
    config.data.mesh_crops = True
    config.data.crop_size = config.data.image_size = 48
  config_checks.check_config(config)
  workdir = tmp_path / "run"
  train_lib.train_and_evaluate(config, workdir)
  model = inference.TrainedModel.load(workdir)
  assert model.config.model.cnn == "face_mesh"
  # The blendshape network's weights are MediaPipe's, untouched by training.
  graph, constants = face_mesh.blendshape_network(str(face_landmarker_task))
  trained = model.variables["params"]["cnn"]["blendshapes"]
  for key, value in face_mesh.tflite_graph.split(graph, constants)[0].items():
    np.testing.assert_array_equal(trained[key], value)
  assert ("pixels" in model.variables["params"]["cnn"]) == with_crops
  predictor = predictor_lib.Predictor(model)
  frames = predictor.predict_video(root / rows[1].split(",")[0])
  assert frames["face_found"].mean() > 0.9
  assert (frames[["valence", "arousal"]].abs().dropna() <= 1).all().all()
