"""varec.checkpoints: saving, restoring, resolving paths, storage errors, the
typed meta."""

import json
import logging
import pathlib
import types

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.helpers import tiny_config
from varec import checkpoints
from varec import emotions
from varec import run_logs
from varec import train_lib


def _flat(tree):
  return jax.tree_util.tree_leaves(tree)


@pytest.fixture(scope="module")
def trained(trained_workdir):
  return trained_workdir


def test_checkpoint_restore_gives_identical_parameters(trained, tmp_path):
  workdir, _ = trained
  manager, step = checkpoints.resolve(workdir / "checkpoints" / "latest")
  variables, _ = checkpoints.restore(manager, step)
  copy = checkpoints.managers(tmp_path)[checkpoints.LATEST]
  checkpoints.save(
    copy,
    7,
    variables,
    {"count": np.zeros(())},
    checkpoints.CheckpointMeta(stage="rnn"),
  )
  copy.wait_until_finished()
  again, _ = checkpoints.restore(copy, 7)
  for a, b in zip(_flat(variables), _flat(again)):
    np.testing.assert_array_equal(a, b)


def test_resolve_explains_bad_checkpoint_paths(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match="does not exist"):
    checkpoints.resolve(tmp_path / "nothing")
  (tmp_path / "checkpoints" / "latest").mkdir(parents=True)
  with pytest.raises(
    checkpoints.CheckpointError, match="no complete varec checkpoint"
  ):
    checkpoints.resolve(tmp_path)


def test_orbax_storage_errors_are_os_errors(tmp_path):
  """The mapping, by injection, and the console filter that keeps Orbax's writer
  threads from repeating the error the save raises once."""
  manager = checkpoints.managers(tmp_path)[checkpoints.LATEST]
  for status, code in checkpoints.STORAGE_STATUS.items():
    with pytest.raises(OSError) as raised:
      with checkpoints.storage_errors(manager):
        raise ValueError(f'{status}: Error writing local file "x": Failed')
    assert (raised.value.errno, raised.value.filename) == (
      code,
      str(manager.directory),
    )
  with pytest.raises(ValueError, match="something else"):
    with checkpoints.storage_errors(manager):
      raise ValueError("something else")
  record = logging.LogRecord(
    "absl",
    logging.ERROR,
    "/x/orbax/checkpoint/future.py",
    1,
    "thread raised: RESOURCE_EXHAUSTED: Failed writing",
    None,
    None,
  )
  # pylint: disable=protected-access
  library_filter = run_logs._LibraryInfoFilter()
  assert not library_filter.filter(record)
  record.msg = "thread raised: INTERNAL: something else"
  assert library_filter.filter(record)


_SPEAKERS = {"train": ("F01", "M02"), "validation": ("F03",), "test": ("M04",)}
_TRAINED = ("anger", "joy", "sadness")


def _previous_meta(stage="rnn", epoch=1, step=12, completed=("cnn",)) -> dict:
  """`Run.meta()` as the previous varec wrote it: a dict built by hand."""
  return {
    "stage": stage,
    "epoch": epoch,
    "step": step,
    "completed_stages": list(completed),
    "config": json.loads(tiny_config().to_json()),
    "speakers": {k: list(v) for k, v in _SPEAKERS.items()},
    "trained_emotions": list(_TRAINED),
    **emotions.TABLE2.to_meta(),
  }


def _previous_import_meta() -> dict:
  """An imported CNN's meta as the previous `keras_hdf5.write_checkpoint`
  wrote it."""
  return {
    "stage": "imported",
    "epoch": 0,
    "step": 0,
    "completed_stages": [],
    "config": json.loads(tiny_config().to_json()),
    "speakers": {"train": [], "validation": [], "test": []},
    "source": {"file": "cnn.h5", "license": "MIT", "shape": [48, 48, 1]},
    **emotions.table2_subset(("anger", "joy", "neutral")).to_meta(),
  }


@pytest.mark.parametrize("stored", [_previous_meta(), _previous_import_meta()])
def test_a_previous_meta_round_trips_to_identical_json(stored):
  stored = {**stored, "variables_sha256": "ab" * 32}
  meta = checkpoints.CheckpointMeta.from_json(json.loads(json.dumps(stored)))
  # Key order included: Orbax writes json.dumps of the dict.
  assert json.dumps(meta.to_json()) == json.dumps(stored)
  assert meta.to_json() is not meta.to_json()  # A copy each time.


def test_run_meta_is_what_the_previous_version_wrote():
  run = types.SimpleNamespace(
    config=tiny_config(),
    progress=train_lib.Progress(step=12),
    speakers=_SPEAKERS,
    trained_emotions=_TRAINED,
    label_space=emotions.TABLE2,
  )
  meta = train_lib.Run.meta(run, "rnn", 1, ("cnn",))
  assert json.dumps(meta.to_json()) == json.dumps(_previous_meta())
  assert meta.speakers["train"] == ("F01", "M02")
  assert meta.label_space() == emotions.TABLE2


def _meta_file(manager, step) -> bytes:
  return (
    pathlib.Path(manager.directory) / str(step) / "meta" / "metadata"
  ).read_bytes()


def test_saved_meta_files_are_byte_identical_to_the_previous_ones(tmp_path):
  variables = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}}
  opt_state = {"count": np.zeros((), np.int32)}
  stored = _previous_meta()
  typed = checkpoints.managers(tmp_path / "typed")[checkpoints.LATEST]
  checkpoints.save(
    typed, 5, variables, opt_state, checkpoints.CheckpointMeta.from_json(stored)
  )
  # What the previous `checkpoints.save` wrote.
  previous = checkpoints.managers(tmp_path / "previous")[checkpoints.LATEST]
  previous.save(
    5,
    args=ocp.args.Composite(
      variables=ocp.args.StandardSave(variables),
      opt_state=ocp.args.StandardSave(opt_state),
      meta=ocp.args.JsonSave(
        {**stored, "variables_sha256": checkpoints.checksum(variables)}
      ),
    ),
  )
  assert _meta_file(typed, 5) == _meta_file(previous, 5)
  restored = checkpoints.restore_meta(previous, 5)
  assert restored == checkpoints.CheckpointMeta.from_json(
    {**stored, "variables_sha256": checkpoints.checksum(variables)}
  )
  checkpoints.verify(restored, variables, "step 5")


def test_a_trained_checkpoints_meta_file_round_trips(trained):
  workdir, _ = trained
  manager, step = checkpoints.resolve(workdir / "checkpoints" / "latest")
  written = _meta_file(manager, step)
  meta = checkpoints.restore_meta(manager, step)
  assert json.dumps(meta.to_json()).encode() == written
  assert meta.variables_sha256 and meta.completed_stages == ("cnn", "rnn")


def test_a_meta_of_an_older_varec_loads_with_the_defaults():
  """Before trained_emotions, PN groups and checksums; and a meta without any
  key, which readers refuse as not a trained checkpoint."""
  stored = {
    k: v
    for k, v in _previous_meta().items()
    if k not in ("trained_emotions", "groups")
  }
  meta = checkpoints.CheckpointMeta.from_json(stored)
  assert meta.trained_emotions is None and meta.groups is None
  assert meta.variables_sha256 is None and meta.source is None
  # Table 2's emotions without groups take Table 2's groups.
  assert meta.label_space() == emotions.TABLE2
  assert meta.to_json() == stored
  checkpoints.verify(meta, {"w": np.zeros(2)}, "unchecked")
  empty = checkpoints.CheckpointMeta.from_json({"unknown": 1})
  assert empty == checkpoints.CheckpointMeta()
  assert (empty.stage, empty.step, empty.completed_stages) == (None, None, ())
  assert empty.config is None and empty.speakers is None
  assert empty.to_json() == {"completed_stages": []}


def test_a_damaged_meta_is_kept_as_stored_and_fails_where_it_is_read():
  meta = checkpoints.CheckpointMeta.from_json(
    {**_previous_meta(), "emotions": 5}
  )
  assert meta.emotions == 5 and meta.to_json()["emotions"] == 5
  with pytest.raises(TypeError):
    meta.label_space()
  without = checkpoints.CheckpointMeta.from_json({"stage": "rnn"})
  with pytest.raises(KeyError, match="emotions"):
    without.label_space()
  changed = checkpoints.CheckpointMeta.from_json(
    {**_previous_meta(), "variables_sha256": "0" * 64}
  )
  with pytest.raises(checkpoints.CheckpointError, match="checksum"):
    checkpoints.verify(changed, {"w": np.zeros(2)}, "step 3")
