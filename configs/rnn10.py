"""The paper's CNN+RNN(10) on ADFES, 96x96 frames, full-size CNN.

    tfds build data_builder/adfes --manual_dir=/path/to/ADFES
    python train.py --config=configs/rnn10.py --workdir=workdir/rnn10

base's additions beyond the paper stay on (training-frame augmentation, face
alignment and face-crop equalisation); for the paper's exact setup add
--config.augment.enabled=False --config.data.align_faces=False
--config.data.equalize_faces=False.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.data.name = "adfes"
  config.model.rnn_hidden_sizes = (10,)
  return config
