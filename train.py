"""Trains varec's CNN+RNN (Yin et al., 2022) and evaluates it on validation.

    python train.py --config=configs/rnn10.py --workdir=workdir/rnn10
    python train.py --config=configs/demo.py --config.cnn.num_epochs=2

Rerunning the same command resumes from the latest checkpoint in --workdir.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from varec import train_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and logs go "
                               "(default: workdir/<config file name>).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  workdir = _WORKDIR.value or f"workdir/{flags.FLAGS['config'].config_filename.rsplit('/', 1)[-1].removesuffix('.py')}"
  logging.info("JAX devices: %s", jax.devices())
  final = train_lib.train_and_evaluate(config, workdir)
  print(f"Validation after training ({workdir}): " + ", ".join(
      f"{k} {v:.3f}" for k, v in sorted(final.items())))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
