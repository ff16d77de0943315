"""Recommended for your own real faces: MediaPipe's face mesh, a head and a GRU
on its blendshapes.

    python -m varec.pretrained face_mesh --out=workdir/face_mesh
    python predict.py --checkpoint=workdir/face_mesh --video=clip.mp4   #
    zero-shot first
    python train.py --config=configs/face_mesh.py --workdir=workdir/mine_mesh \
        --config.data.manual_dir=my_videos \
        --config.data.face_detector=$PWD/workdir/face_mesh/face_landmarker.task
    python eval.py --checkpoint=workdir/mine_mesh
    python predict.py --checkpoint=workdir/mine_mesh --video=clip.mp4

`my_videos` holds your clips (or face stills, with
--config.data.faces_cropped=True) and a labels.csv (README, "Your own
videos"). The dataset build reads each frame's face with MediaPipe's
networks (`varec.face_mesh`) and stores its 478 landmarks; the model's
features are the 52 blendshapes Google's network computes from them
(`varec.models.FaceMesh`, never trained here), which a 2-unit head (cnn
stage) and then the GRU (rnn stage) learn to read as valence and arousal.
Few weights on features that transfer between people and cameras: what a
set of a few dozen clips can fit. With the blendshapes, the head's pose
(yaw, pitch, roll: pride, embarrassment and surprise move the head), and
each clip's mirror image as a new speaker (§4.5), its landmarks mirrored.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.data.name = "video_folder"
  config.model.cnn = "face_mesh"
  # The 52 blendshapes and the head's yaw, pitch and roll (varec.mesh_geometry).
  config.model.mesh_features = ("blendshapes", "pose")
  # MediaPipe's face_landmarker.task (python -m varec.pretrained face_mesh
  # writes it into its checkpoint folder); an absolute path.
  config.data.face_detector = "face_landmarker.task"
  # Faces followed by their landmarks between detections
  # (mesh_reader.MeshReader).
  config.data.detect_every = 5
  config.data.align_faces = False
  # Image augmentation is made for face crops, not landmarks; mirror speakers
  # (base: on) mirror the landmarks instead of the frames.
  config.augment.enabled = False
  config.stages = ("cnn", "rnn")
  config.cnn.num_epochs = 30
  config.cnn.batch_size = 64
  config.rnn.num_epochs = 30
  # The GRU has few parameters and few steps per epoch.
  config.rnn.learning_rate = 3e-3
  # Fewest steps, for sets of a few dozen clips (a few steps an epoch).
  config.cnn.min_steps = 750
  config.rnn.min_steps = 240
  config.lr_schedule = "cosine"
  # Nearest-prototype decisions trained for as well (beyond the paper's eq. 9).
  config.loss.prototype_weight = 1.0
  return config
