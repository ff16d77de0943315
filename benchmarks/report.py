"""Writes a benchmark's results as <name>.json and <name>.md, in
benchmarks/results/ by default."""

import functools
import json
import pathlib

from absl import app
import numpy as np

from varec import workdir as workdir_lib
from varec.preprocess import clip
from varec.preprocess import config as preprocess_config
from varec.preprocess import crop

RESULTS = pathlib.Path(__file__).parent / "results"


def write(
  name: str, results: dict, markdown: str, folder: pathlib.Path = RESULTS
) -> None:
  """Saves `results` (JSON) and `markdown` side by side in `folder`, and
  prints the markdown."""
  folder.mkdir(parents=True, exist_ok=True)
  (folder / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
  (folder / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
  print(markdown)


def summary(values: list[float]) -> dict:
  """Mean, interquartile range and the values themselves, over runs."""
  q1, q3 = np.percentile(values, [25, 75])
  return {"mean": float(np.mean(values)), "iqr": float(q3 - q1), "runs": values}


def evaluated_runs(workdir: str) -> list:
  """The evaluated runs of a Table 3 workdir (`workdir.Workdir`s); a usage
  error if none."""
  runs = workdir_lib.Workdir(workdir).evaluated_runs()
  if not runs:
    raise app.UsageError(f"{workdir} holds no evaluated run_* folders")
  return runs


@functools.cache
def _face_crops(
  video: str, config: preprocess_config.PreprocessConfig
) -> np.ndarray:
  """A video's face crops, read once for all runs that preprocess it alike."""
  return clip.preprocess_video(video, config).frames


def model_frames(model, video: str) -> np.ndarray:
  """(T, S, S, 1) inputs of a checkpoint (`inference.TrainedModel`) for a video,
  preprocessed as its training data was."""
  data = model.config.data
  crops = _face_crops(video, preprocess_config.config_from_data(data))
  return crop.model_input(crops, preprocess_config.input_config(data))
