"""Helpers several test files share: the tiny build and config, and clips on
disk.

Fixtures stay in conftest.py; what a test file imports comes from here.
"""

from configs import demo
from varec import synthetic
from varec.data import builder as builder_lib
from varec.preprocess import config as preprocess_config

TINY = preprocess_config.PreprocessConfig(
  crop_size=32, num_labelled_frames=20, detect_every=5
)
TINY_CONFIG = builder_lib.VideoBuilderConfig(name="tiny", preprocess=TINY)

# Why the build skips each bad file of conftest's `manual_dir`.
EXPECTED_SKIPS = {
  "F09-Anger-Face Forward.mp4": "shorter than one window",
  "F10-Fear-Face Forward.mp4": "no face",
  "M11-Boredom-Face Forward.mp4": "unknown emotion",
  "holiday.mp4": "does not match",
  "M12-Joy-Face Forward.mp4": "cannot be opened",
  "M10-Pride-Face Forward.mp4": "empty file",
  "M09-Disgust-Face Forward.avi": "cannot be opened",
  "F08-Joy-Face Forward.avi": "truncated",
  "F07-Joy-Face Forward.avi": "no frame could be decoded",
}


def write_video(path, frames):
  """Writes frames to `path` (creating folders) and returns the path."""
  path.parent.mkdir(parents=True, exist_ok=True)
  synthetic.write_video(path, frames, fps=25.0)
  return path


def tiny_config():
  """The demo config shrunk to seconds: 32x32 frames, 4/8/8 filters, 1-2
  epochs."""
  config = demo.get_config()
  config.data.image_size = 32
  config.model.filters = (4, 8, 8)
  config.model.num_features = 16
  config.cnn.num_epochs, config.cnn.batch_size = 2, 32
  config.rnn.num_epochs, config.rnn.batch_size = 2, 4
  config.joint.num_epochs, config.joint.batch_size = 1, 4
  # The epochs given, however few steps they take (the demo's floors are the
  # full set's).
  for stage in ("probe", "cnn", "rnn", "joint"):
    config[stage].min_steps = 0
  config.stages = ("cnn", "rnn")
  return config
