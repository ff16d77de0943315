"""Shared defaults for every varec config; the other configs start from here.

Not run on its own: see configs/rnn10.py, configs/rnn10_10_5.py, configs/demo.py.
"""

import ml_collections


def get_data_config() -> ml_collections.ConfigDict:
  """Dataset and preprocessing (paper §4.5)."""
  data = ml_collections.ConfigDict()
  data.name = "adfes"  # TFDS builder: adfes | synthetic_adfes.
  data.data_dir = ml_collections.config_dict.placeholder(str)  # TFDS data dir; None = TFDS default.
  data.manual_dir = ml_collections.config_dict.placeholder(str)  # Raw ADFES videos (adfes only).
  data.orientations = ("forward",)  # ADFES head orientations used: forward, toward, away.
  data.image_size = 96  # Model input side in pixels; frames are stored at 96 and resized if smaller.
  data.window_length = 10  # Frames per RNN window (the paper's time step).
  data.flip_augment = True  # Add mirrored videos as new speakers (paper: 22 -> 44).
  data.split_mirror_separately = False  # True = paper: a mirror image may land in another split.
  data.split_ratios = (8, 2, 1)  # Train:validation:test speakers.
  return data


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Drives the speaker split, initialisation and shuffling.
  config.data = get_data_config()
  return config
