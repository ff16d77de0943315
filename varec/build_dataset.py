"""Builds a varec dataset from Python and prints its summary.

    python -m varec.build_dataset --dataset=synthetic_adfes
    python -m varec.build_dataset --dataset=adfes --manual_dir=/path/to/ADFES

The same as `tfds build data_builder/<dataset>`, without needing TensorFlow's
command line; `train.py` calls the same code when a dataset is missing.
"""

from absl import app
from absl import flags
from absl import logging

from configs import base
from varec import input_pipeline

_DATASET = flags.DEFINE_enum("dataset", "synthetic_adfes", list(input_pipeline.BUILDER_MODULES),
                             "Dataset to build.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder with the raw videos (adfes).")
_BUILDER_CONFIG = flags.DEFINE_string("builder_config", None,
                                      "TFDS builder config, e.g. small for synthetic_adfes.")


def main(argv):
  del argv
  data = base.get_data_config()
  data.name = _DATASET.value
  data.data_dir = _DATA_DIR.value
  data.manual_dir = _MANUAL_DIR.value
  data.builder_config = _BUILDER_CONFIG.value
  builder = input_pipeline.ensure_built(data)
  logging.info("Dataset ready in %s", builder.data_dir)
  print(f"{builder.name} in {builder.data_dir}")
  print(input_pipeline.build_summary(builder))


if __name__ == "__main__":
  app.run(main)
