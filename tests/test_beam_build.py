"""The Beam build (`tfds build --beam_pipeline_options=...`) gives the same
dataset as the process-pool build: the same examples, the same summary, bad
files skipped and counted."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builder.adfes import adfes_dataset_builder
from tests.helpers import EXPECTED_SKIPS

BEAM_OPTIONS = (
  "runner=DirectRunner,direct_num_workers=2,"
  "direct_running_mode=multi_processing"
)


def _examples(builder, split):
  return {
    (x["video_id"], int(x["start_frame"])): x
    for x in builder.as_data_source(split=split)
  }


def _tfds_build(manual_dir, data_dir, beam_options: str):
  """`tfds build` of the adfes builder, as a user runs it."""
  return subprocess.run(
    [
      str(pathlib.Path(sys.executable).parent / "tfds"),
      "build",
      str(pathlib.Path(adfes_dataset_builder.__file__).parent),
      f"--manual_dir={manual_dir}",
      f"--data_dir={data_dir}",
      f"--beam_pipeline_options={beam_options}",
    ],
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )


def test_beam_build_matches_the_process_pool_build(manual_dir, tmp_path):
  pool = adfes_dataset_builder.Builder(data_dir=tmp_path / "pool")
  pool.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False
    )
  )
  result = _tfds_build(manual_dir, tmp_path / "beam", BEAM_OPTIONS)
  assert result.returncode == 0, result.stderr[-3000:]
  beam = tfds.builder_from_directory(
    str(tmp_path / "beam" / "adfes" / "default" / "1.2.0")
  )

  summary = beam.info.metadata["build_summary"]
  assert summary == pool.info.metadata["build_summary"]
  assert summary["videos"] == 6 and summary["windows"] > 0
  assert {pathlib.Path(s["file"]).name for s in summary["skipped"]} == set(
    EXPECTED_SKIPS
  )
  assert (
    beam.info.metadata["manual_dir_fingerprint"]
    == pool.info.metadata["manual_dir_fingerprint"]
  )
  for split in ("windows", "videos"):
    expected, built = _examples(pool, split), _examples(beam, split)
    assert (
      built.keys() == expected.keys()
      and len(built) == pool.info.splits[split].num_examples
    )
    for key, example in expected.items():
      assert built[key].keys() == example.keys()
      for name, value in example.items():
        np.testing.assert_array_equal(
          built[key][name], value, err_msg=f"{key} {name}"
        )
  assert not list((tmp_path / "beam").rglob("varec_build_summary_*.json"))


def test_beam_build_with_no_usable_video_is_refused(tmp_path):
  # pylint: disable=g-import-not-at-top
  from apache_beam.options.pipeline_options import PipelineOptions

  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "F01-Joy-Face Forward.mp4").write_bytes(b"not a video")
  builder = adfes_dataset_builder.Builder(data_dir=tmp_path / "data")
  with pytest.raises(
    RuntimeError, match="no usable video(.|\n)*F01-Joy-Face Forward.mp4"
  ):
    builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(
        manual_dir=manual,
        try_download_gcs=False,
        beam_options=PipelineOptions(["--runner=DirectRunner"]),
      )
    )
  # Nothing published.
  assert not list((tmp_path / "data" / "adfes").glob("*/1.2.0"))


def test_unknown_beam_runner_is_one_line(manual_dir, tmp_path):
  result = _tfds_build(manual_dir, tmp_path, "runner=Nope")
  assert result.returncode != 0
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("Beam runner 'Nope': ") and "DirectRunner" in last
