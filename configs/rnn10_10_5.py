"""The paper's CNN+RNN(10, 10, 5) on ADFES, 96x96 frames, full-size CNN.

python train.py --config=configs/rnn10_10_5.py --workdir=workdir/rnn10_10_5
"""

from configs import rnn10


def get_config():
  config = rnn10.get_config()
  config.model.rnn_hidden_sizes = (10, 10, 5)
  return config
