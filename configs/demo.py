"""CPU demo: CNN+RNN(10) on the embedded synthetic dataset, with a small CNN.

    python train.py --config=configs/demo.py --workdir=workdir/demo

The paper's CNN at 96x96 trains at a few dozen frames/s on a CPU; at 48x48
with 16/32/64 filters the whole demo (data, training, evaluation) runs in
minutes. Everything else follows the paper.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.data.name = "synthetic_adfes"
  config.data.image_size = 48
  config.model.filters = (16, 32, 64)
  config.model.rnn_hidden_sizes = (10,)
  config.cnn.num_epochs = 6
  config.rnn.num_epochs = 60
  return config
