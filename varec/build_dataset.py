"""Builds a varec dataset from Python and prints its summary.

    python -m varec.build_dataset --data.name=synthetic_adfes
    python -m varec.build_dataset --data.name=adfes
    --data.manual_dir=/path/to/ADFES
    python -m varec.build_dataset --data.name=video_folder
    --data.manual_dir=/path/to/videos \
        --data.prototypes_csv=my_emotions.csv --data.faces_cropped=True

Every field of `configs/base.py`'s data config is a flag, so a build here is
the one `train.py` finds with the same `--config.data.*` values. The same as
`tfds build data_builder/<dataset>`, without needing TensorFlow's command
line; `train.py` calls the same code when a dataset is missing.
"""

from absl import app
from absl import logging

from configs import base
from varec import cli
from varec import config_checks
from varec.data import input_pipeline


def _default_data_config():
  data = base.get_data_config()
  data.name = "synthetic_adfes"
  return data


_DATA = cli.define_config_dict(
  "data",
  _default_data_config(),
  "Dataset to build: the data fields of a varec config.",
)


def main(argv):
  del argv
  problems = config_checks.data_problems(_DATA.value)
  if problems:
    cli.fail("varec.build_dataset", "; ".join(problems))
  builder = input_pipeline.ensure_built(_DATA.value)
  logging.info("Dataset ready in %s", builder.data_dir)
  print(f"{builder.name} in {builder.data_dir}")
  print(input_pipeline.build_summary(builder))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
