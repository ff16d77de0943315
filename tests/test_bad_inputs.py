"""Bad or awkward input through the entry points: one clear line, the right
exit status, and nothing earlier lost. (Bad video files, labels.csv and
prototype CSVs are covered beside their modules: test_data_discovery.py,
test_data_pool.py, test_video_folder.py, test_emotions.py.)"""

import errno
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import orbax.checkpoint as ocp
import pytest

from varec import checkpoints
from varec import cli
from varec import evaluation
from varec import evaluation_outputs
from varec import inference
from varec import run_logs
from varec import train_lib

from tests.helpers import tiny_config
from tests.helpers import write_video

ROOT = pathlib.Path(__file__).parent.parent


def _run(*args):
  return subprocess.run(
    [sys.executable, *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )


@pytest.mark.parametrize(
  "args,message",
  [
    (
      ("train.py", "--config=configs/demo.py", "--config.cnn.num_epoch=3"),
      "train.py: --config.cnn.num_epoch is not a field of the config; did you "
      "mean --config.cnn.num_epochs?",
    ),
    (
      ("train.py", "--config=configs/demo.py", "--config.cnn.num_epochs=three"),
      "train.py: flag --config.cnn.num_epochs=three: invalid literal",
    ),
    (
      ("train.py", "--config=configs/demo.py", "--config.cnn.batch_size=0"),
      "train.py: config: cnn.num_epochs and cnn.batch_size must be at least "
      "1, got 5 and 0",
    ),
    (
      ("train.py", "--config=configs/demo.py", "--config.model.cnn=resnet"),
      "model.cnn must be one of fig3, mini_xception, face_mesh, got 'resnet'",
    ),
    (
      ("eval.py", "--checkpoint=nowhere", "--data.manul_dir=/videos"),
      "eval.py: --data.manul_dir is not a field of the data; did you mean "
      "--data.manual_dir?",
    ),
  ],
)
def test_bad_command_lines_are_one_line_with_status_2(args, message):
  result = _run(*args)
  assert result.returncode == 2, result.stderr[-2000:]
  assert message in result.stderr
  assert "Traceback" not in result.stderr


@pytest.fixture()
def workdir_copy(trained_workdir, tmp_path):
  """A copy of the tiny trained run, free to damage."""
  return pathlib.Path(shutil.copytree(trained_workdir[0], tmp_path / "run"))


def test_a_changed_config_stops_with_the_differences_and_the_ways_out(
  workdir_copy, tiny_builder
):
  config = tiny_config()
  config.cnn.num_epochs = 3
  with pytest.raises(
    ValueError,
    match=r"holds a finished run of another config \(cnn\.num_epochs"
    r": 2 there, 3 now\): train into a new --workdir, or pass "
    r"--config\.restart=True",
  ):
    train_lib.train_and_evaluate(config, workdir_copy, builder=tiny_builder)
  config.restart = True
  train_lib.train_and_evaluate(config, workdir_copy, builder=tiny_builder)
  meta = checkpoints.restore_meta(
    checkpoints.managers(workdir_copy)[checkpoints.LATEST]
  )
  assert meta.config["cnn"]["num_epochs"] == 3
  assert meta.completed_stages == ("cnn", "rnn")


def test_a_damaged_latest_checkpoint_falls_back_with_a_warning(
  workdir_copy, caplog
):
  manager = checkpoints.managers(workdir_copy)[checkpoints.LATEST]
  newest, older = sorted(manager.all_steps(), reverse=True)[:2]
  data_files = [
    p
    for p in (
      workdir_copy / "checkpoints" / "latest" / str(newest) / "variables"
    ).rglob("*")
    if p.is_file() and "ocdbt" not in p.name
  ]
  for path in data_files:
    path.unlink()
  with caplog.at_level(logging.WARNING):
    model = inference.TrainedModel.load(workdir_copy / "checkpoints" / "latest")
  assert model.path.name == str(older)
  assert (
    f"latest/{newest}" in caplog.text and "cannot be restored" in caplog.text
  )
  # It is the last epoch's predecessor: an unfinished run, said so.
  assert "unfinished run" in caplog.text and "rnn" in caplog.text


def test_a_cnn_only_run_predicts_through_its_own_head(tiny_builder, tmp_path):
  config = tiny_config()
  config.stages = ("cnn",)
  train_lib.train_and_evaluate(config, tmp_path, builder=tiny_builder)
  model = inference.TrainedModel.load(tmp_path)
  predictor = inference.VideoPredictor(model)
  assert not predictor.uses_gru
  assert "per-frame head" in inference.output_description(model.meta, 10)


def _edit_meta(workdir, edit) -> None:
  manager = checkpoints.managers(workdir)[checkpoints.BEST]
  step = manager.best_step()
  meta = checkpoints.restore_meta(manager, step).to_json()
  edit(meta)
  meta_file = workdir / "checkpoints" / "best" / str(step) / "meta" / "metadata"
  meta_file.write_text(json.dumps(meta))


@pytest.mark.parametrize(
  "edit,message",
  [
    (
      lambda meta: meta["config"]["data"].update(image_size=0),
      "its config cannot be used: data.image_size must be at least 1, got 0",
    ),
    (
      lambda meta: meta["config"]["data"].update(image_size="48"),
      "its meta's config cannot be used: data.image_size is '48', not a number",
    ),
    (
      lambda meta: meta.update(emotions=5),
      "unusable emotions in its meta: TypeError",
    ),
  ],
)
def test_a_checkpoint_with_an_unusable_meta_is_one_line(
  workdir_copy, edit, message
):
  _edit_meta(workdir_copy, edit)
  result = _run(
    "predict.py", f"--checkpoint={workdir_copy}", "--video=nothing.mp4"
  )
  assert result.returncode == 1
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith("predict.py: ") and message in line


def _change_arrays(step_dir: pathlib.Path) -> None:
  """Changes every array of a step after saving, in files Orbax still reads.

  XOR-ing bytes of Orbax's zstd-compressed OCDBT files is caught by the
  decompressor or not depending on where the bytes land; arrays rewritten in
  valid files are always read back, so only the checksum can tell.
  """
  folder = step_dir / "variables"
  checkpointer = ocp.StandardCheckpointer()
  variables = checkpointer.restore(folder)
  shutil.rmtree(folder)
  checkpointer.save(folder, jax.tree_util.tree_map(lambda a: a + 1, variables))
  checkpointer.wait_until_finished()


def test_a_checkpoint_changed_after_saving_is_refused_not_evaluated(
  workdir_copy,
):
  manager, step = checkpoints.resolve(workdir_copy)
  _change_arrays(pathlib.Path(manager.directory) / str(step))
  result = _run("eval.py", f"--checkpoint={workdir_copy}")
  assert result.returncode != 0
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith("eval.py: ") and f"best/{step}" in line
  assert "do not match the checksum written when it was saved" in line


def test_a_changed_latest_checkpoint_falls_back_and_a_lone_one_says_the_way_out(
  workdir_copy, tiny_builder, caplog
):
  latest = workdir_copy / "checkpoints" / "latest"
  newest, older = sorted(
    checkpoints.managers(workdir_copy)[checkpoints.LATEST].all_steps(),
    reverse=True,
  )[:2]
  _change_arrays(latest / str(newest))
  with caplog.at_level(logging.WARNING):
    model = inference.TrainedModel.load(latest)
  assert model.path.name == str(older) and "checksum" in caplog.text
  shutil.rmtree(latest / str(older))
  with pytest.raises(
    checkpoints.CheckpointError,
    match=r"cannot resume: .*checksum.*--config\.restart=True",
  ):
    train_lib.train_and_evaluate(tiny_config(), workdir_copy, tiny_builder)


@pytest.mark.parametrize(
  "env,message",
  [
    (
      {"JAX_COORDINATOR_ADDRESS": "nohost"},
      "JAX_COORDINATOR_ADDRESS='nohost' is not host:port",
    ),
    (
      {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"},
      "JAX_NUM_PROCESSES must be a whole number (got '')",
    ),
    (
      {
        "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1",
        "JAX_NUM_PROCESSES": "2",
        "JAX_PROCESS_ID": "1",
      },
      "process 1 of 2 could not reach process 0 at 127.0.0.1:1 within "
      "--coordinator_timeout_s=2 s",
    ),
  ],
)
def test_a_multi_host_setting_that_cannot_work_is_one_line(env, message):
  result = subprocess.run(
    [
      sys.executable,
      "train.py",
      "--config=configs/demo.py",
      "--coordinator_timeout_s=2",
      "--workdir=/nonexistent/never_created",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
    env={**os.environ, **env},
  )
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith("train.py: ") and message in lines[-1]
  assert "Traceback" not in result.stderr


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path):
  """A full disk or a denied folder ends the same way (an OSError): one line
  naming the path. Root ignores permissions, so the folder's parent is a
  file."""
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  result = _run(
    "train.py", "--config=configs/demo.py", f"--workdir={blocker / 'run'}"
  )
  assert result.returncode == 1, result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
    f"train.py: Not a directory ({blocker / 'run'}): free some space, or "
    "choose a folder this user can write"
  )


@pytest.fixture
def small_disk(tmp_path):
  """A 4 MB tmpfs: a disk that really fills up (where this user may mount
  one)."""
  disk = tmp_path / "disk"
  disk.mkdir()
  mounted = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
    capture_output=True,
    text=True,
    check=False,
  )
  if mounted.returncode:
    pytest.skip(
      f"cannot mount a tmpfs here ({mounted.stderr.strip()}); "
      "test_orbax_storage_errors_are_os_errors covers the mapping"
    )
  yield disk
  # Lazily: a file a failed write left open (TensorBoard's) frees it at exit.
  subprocess.run(["umount", "--lazy", str(disk)], check=False)


def test_full_disk_checkpointing_is_an_os_error_and_nothing_half_written_stays(
  tiny_builder, small_disk
):
  """Orbax's RESOURCE_EXHAUSTED on a full disk is the OSError train.py
  reports in one line; once there is space, the next run starts clean, with
  no temporary folder left."""
  run_logs.quiet_library_logs()  # As train.py does.
  filler = small_disk / "filler"
  # The logs fit in what is left; a checkpoint (a dozen files) does not.
  filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 24 * 1024))
  workdir = small_disk / "run"
  with pytest.raises(OSError) as raised:
    train_lib.train_and_evaluate(tiny_config(), workdir, builder=tiny_builder)
  assert raised.value.errno == errno.ENOSPC
  assert raised.value.filename.startswith(str(workdir / "checkpoints"))
  assert cli.os_error(raised.value).startswith(
    f"No space left on device ({workdir / 'checkpoints'}"
  )
  assert list(workdir.rglob("*.orbax-checkpoint-tmp"))  # What Orbax left.
  filler.unlink()
  final = train_lib.train_and_evaluate(
    tiny_config(), workdir, builder=tiny_builder
  )
  assert final and not list(workdir.rglob("*.orbax-checkpoint-tmp"))
  latest = checkpoints.managers(workdir)[checkpoints.LATEST]
  assert checkpoints.restore_meta(latest).completed_stages == ("cnn", "rnn")


def test_a_full_disk_while_predicting_names_the_video_and_its_output_folder(
  trained_workdir, synthetic_clip, small_disk
):
  """predict.py skips the video with one line naming it and where its outputs
  were to go (not the hidden staging folder), and leaves nothing
  half-written."""
  video = write_video(small_disk.parent / "clip.mp4", synthetic_clip)
  filler = small_disk / "filler"
  filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 64 * 1024))
  output = small_disk / "out"
  result = _run(
    "predict.py",
    f"--checkpoint={trained_workdir[0]}",
    f"--video={video}",
    f"--output={output}",
  )
  assert result.returncode == 1
  assert (
    f"SKIPPED {video}: No space left on device ({output / 'clip.mp4'}/"
    in result.stderr
  ), result.stderr[-2000:]
  assert ".partial" not in result.stderr and "Traceback" not in result.stderr
  assert not (output / "clip.mp4").exists()
  assert not list(output.glob(".clip.mp4.*"))


def test_a_full_disk_while_evaluating_is_an_os_error_naming_the_file(
  trained_workdir, tiny_builder, small_disk
):
  """Tables, figures (drawn in worker processes) and the report on a disk
  that fills up: an OSError naming the file, which eval.py prints as one
  line, and no half file."""
  workdir, _ = trained_workdir
  model, results = evaluation.evaluate(
    workdir, ("validation", "test"), builder=tiny_builder
  )
  filler = small_disk / "filler"
  # The tables fit; the figures do not.
  filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 64 * 1024))
  output = small_disk / "eval"
  with pytest.raises(OSError) as raised:
    evaluation_outputs.write_outputs(model, results, output)
  assert raised.value.errno == errno.ENOSPC
  assert raised.value.filename.startswith(str(output / "figures"))
  assert (output / "metrics.json").exists()
  assert not list(output.rglob("*.partial"))
  written = [p for p in output.rglob("*.png") if p.stat().st_size]
  assert all(p.read_bytes()[-8:-4] == b"IEND" for p in written)
