"""`varec.preprocess.config`: a data config's `PreprocessConfig`, and back."""

from varec import config_schema
from varec.data import input_pipeline
from varec.preprocess import config as preprocess_config


def test_config_from_data_follows_every_field_and_old_checkpoints():
  from configs import base  # pylint: disable=g-import-not-at-top

  data = base.get_data_config()
  data.name = "synthetic_adfes"
  assert (
    preprocess_config.config_from_data(data)
    == preprocess_config.PreprocessConfig()
  )
  data.update(
    {
      "face_margin": 0.25,
      "detect_every": 3,
      "crop_size": 64,
      "window_length": 8,
      "align_faces": False,
      "faces_cropped": True,
      "num_labelled_frames": 7,
    }
  )
  config = preprocess_config.config_from_data(data)
  assert (
    config.face_margin,
    config.detect_every,
    config.crop_size,
    config.window_length,
    config.window_stride,
    config.align_faces,
    config.faces_cropped,
    config.num_labelled_frames,
  ) == (0.25, 3, 64, 8, 8, False, True, 7)
  assert preprocess_config.data_fields(config) == {
    k: data[k] for k in preprocess_config.PREPROCESS_FIELDS
  }
  # A checkpoint from before these fields existed was built with the defaults,
  # unaligned.
  old = config_schema.upgrade(
    {"data": {"name": "adfes", "image_size": 48}}
  ).data
  assert preprocess_config.config_from_data(
    old
  ) == preprocess_config.PreprocessConfig(align_faces=False)
  # Whether short clips are padded is the dataset builder's, not the name's.
  assert not preprocess_config.config_from_data(
    config_schema.upgrade({"data": {"name": "video_folder"}}).data
  ).pad_short_clips
  assert input_pipeline.builder_class("video_folder").PAD_SHORT_CLIPS
  assert not input_pipeline.builder_class("adfes").PAD_SHORT_CLIPS
