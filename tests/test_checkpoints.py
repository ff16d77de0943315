"""varec.checkpoints: saving, restoring, resolving paths, storage errors."""

import logging

import jax
import numpy as np
import pytest

from varec import checkpoints
from varec import run_logs


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
    copy, 7, variables, {"count": np.zeros(())}, {"stage": "rnn"}
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
