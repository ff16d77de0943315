"""Orbax checkpoints: the latest for resuming, the best (by validation CCC) for
eval.

A checkpoint holds three items:
- `variables`: the CNN+RNN's params and BatchNorm statistics;
- `opt_state`: the optimiser state of the stage being trained;
- `meta` (JSON): stage, epoch, global step, the full config, the speaker
  split and the Table 2 prototypes, so that `eval.py` needs nothing else, and
  `variables_sha256`, a checksum of every array of `variables`.
Orbax writes into a temporary folder and renames it when complete, so a
killed run never leaves half a checkpoint behind; the checksum, verified at
every restore, catches files changed or damaged afterwards (Orbax reads
flipped bytes inside its data files as other numbers without a word). A full
disk or a denied folder while saving is the OSError it is (`storage_errors`),
and the temporary folders it left are removed when the workdir is next opened.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pathlib

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from varec import workdir as workdir_lib

LATEST = workdir_lib.LATEST
BEST = workdir_lib.BEST
BEST_METRIC = "val_ccc"


def managers(workdir) -> dict[str, ocp.CheckpointManager]:
  """{"latest": keeps the last checkpoint, "best": keeps the highest
  `val_ccc`}."""
  workdir = workdir_lib.Workdir(pathlib.Path(workdir).absolute())
  items = ("variables", "opt_state", "meta")
  return {
    # Two, so that a damaged newest step (a disk full, a file deleted) falls
    # back.
    LATEST: ocp.CheckpointManager(
      workdir.checkpoint_dir(LATEST),
      item_names=items,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=2,
        create=True,
        cleanup_tmp_directories=True,
        enable_async_checkpointing=False,
      ),
    ),
    BEST: ocp.CheckpointManager(
      workdir.checkpoint_dir(BEST),
      item_names=items,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=1,
        create=True,
        cleanup_tmp_directories=True,
        enable_async_checkpointing=False,
        best_fn=lambda m: m[BEST_METRIC],
        best_mode="max",
      ),
    ),
  }


CHECKSUM = "variables_sha256"


def checksum(variables) -> str:
  """SHA-256 of every array of `variables`: its path, dtype, shape and bytes."""
  digest = hashlib.sha256()
  leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
  for path, leaf in sorted(leaves, key=lambda kv: jax.tree_util.keystr(kv[0])):
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(
      f"{jax.tree_util.keystr(path)}:{array.dtype.str}:{array.shape}".encode()
    )
    digest.update(array.tobytes())
  return digest.hexdigest()


# The status codes tensorstore gives Orbax for a full disk and a denied folder.
STORAGE_STATUS = {
  "RESOURCE_EXHAUSTED": errno.ENOSPC,
  "PERMISSION_DENIED": errno.EACCES,
}


@contextlib.contextmanager
def storage_errors(manager: ocp.CheckpointManager):
  """Turns Orbax's full-disk and permission errors (tensorstore's status, in a
  ValueError of many lines) into the OSError they are, naming the manager's
  folder."""
  try:
    yield
  except (ValueError, RuntimeError) as e:
    text = str(e)
    code = next((c for s, c in STORAGE_STATUS.items() if s in text), None)
    if code is None:
      raise
    raise OSError(code, os.strerror(code), str(manager.directory)) from None


def save(
  manager: ocp.CheckpointManager,
  step: int,
  variables,
  opt_state,
  meta: dict,
  metrics: dict | None = None,
) -> None:
  """Saves a step, its meta with the checksum of `variables`; returns when it is
  written (saves are synchronous, so a full disk is raised here)."""
  with storage_errors(manager):
    manager.save(
      step,
      args=ocp.args.Composite(
        variables=ocp.args.StandardSave(variables),
        opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave({**meta, CHECKSUM: checksum(variables)}),
      ),
      metrics=metrics,
    )


def verify(meta: dict, variables, step_dir) -> None:
  """Raises CheckpointError when `variables` are not what step `step_dir`
  saved (checkpoints from before checksums pass unchecked)."""
  expected = (meta or {}).get(CHECKSUM)
  if expected and checksum(variables) != expected:
    raise CheckpointError(
      f"{step_dir}: its arrays do not match the checksum written when it was "
      "saved (its files were changed or damaged since)"
    )


def restore_meta(
  manager: ocp.CheckpointManager, step: int | None = None
) -> dict | None:
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  return manager.restore(
    step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
  )["meta"]


def restore(
  manager: ocp.CheckpointManager,
  step: int,
  variables_template=None,
  opt_state_template=None,
):
  """(variables, opt_state) at `step`; without templates, plain nested dicts."""
  args = {"variables": ocp.args.StandardRestore(variables_template)}
  if opt_state_template is not None:
    args["opt_state"] = ocp.args.StandardRestore(opt_state_template)
  restored = manager.restore(step, args=ocp.args.Composite(**args))
  return restored["variables"], restored.get(
    "opt_state"
  ) if opt_state_template is not None else None


def restore_newest(
  manager: ocp.CheckpointManager, variables_template=None, steps=None
) -> tuple[int, dict, dict] | None:
  """(step, meta, variables) of the newest of `steps` (default: all) that
  restores.

  A step that does not restore is skipped with a warning naming it; None when
  there is no step.

  Raises:
    CheckpointError: there are steps, and none restores.
  """
  steps = (
    sorted(manager.all_steps(), reverse=True) if steps is None else list(steps)
  )
  errors = []
  for step in steps:
    try:
      meta = restore_meta(manager, step)
      variables, _ = restore(manager, step, variables_template)
      verify(meta, variables, pathlib.Path(manager.directory) / str(step))
    # pylint: disable=broad-except; Orbax raises many kinds for a damaged step.
    except Exception as e:
      errors.append(
        f"{pathlib.Path(manager.directory) / str(step)}: {type(e).__name__}: {e}"
      )
      logging.warning(
        "Checkpoint %s cannot be restored (%s); trying an older one",
        errors[-1],
        type(e).__name__,
      )
      continue
    return step, meta, variables
  if errors:
    raise CheckpointError(
      "no checkpoint could be restored: " + "; ".join(errors)
    )
  return None


class CheckpointError(Exception):
  """A path that does not hold a usable varec checkpoint; says what to run."""


def resolve(path) -> tuple[ocp.CheckpointManager, int]:
  """Finds the checkpoint meant by `path`: a workdir, a manager folder or a step
  folder.

  A workdir means its best checkpoint (falling back to its latest).
  """
  path = pathlib.Path(path).absolute()
  if not path.exists():
    raise CheckpointError(
      f"{path} does not exist; train first: python train.py "
      f"--config=configs/demo.py --workdir={path}"
    )
  workdir = workdir_lib.Workdir(path)
  if workdir.checkpoints.is_dir():
    candidates = [workdir.checkpoint_dir(BEST), workdir.checkpoint_dir(LATEST)]
  elif path.name.isdigit():
    candidates = [path.parent]
  else:
    candidates = [path]
  for folder in candidates:
    if not folder.is_dir():
      continue
    manager = ocp.CheckpointManager(
      folder, item_names=("variables", "opt_state", "meta")
    )
    steps = manager.all_steps()
    step = (
      int(path.name)
      if path.name.isdigit()
      else (
        manager.best_step() if folder.name == BEST else manager.latest_step()
      )
    )
    if steps and step in steps:
      return manager, step
  raise CheckpointError(
    f"{path} holds no complete varec checkpoint (expected a training workdir with "
    "checkpoints/best or checkpoints/latest, or one of their step folders); a run "
    "killed before its first checkpoint leaves none: rerun train.py with the same --workdir"
  )
