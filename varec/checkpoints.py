"""Orbax checkpoints: the latest for resuming, the best (by validation CCC) for
eval.

A checkpoint holds three items:
- `variables`: the CNN+RNN's params and BatchNorm statistics;
- `opt_state`: the optimiser state of the stage being trained;
- `meta` (JSON, `CheckpointMeta`): stage, epoch, global step, the full config,
  the speaker split and the Table 2 prototypes, so that `eval.py` needs nothing
  else, and `variables_sha256`, a checksum of every array of `variables`.
Orbax writes into a temporary folder and renames it when complete, so a
killed run never leaves half a checkpoint behind; the checksum, verified at
every restore, catches files changed or damaged afterwards (Orbax reads
flipped bytes inside its data files as other numbers without a word). A full
disk or a denied folder while saving is the OSError it is (`storage_errors`),
and the temporary folders it left are removed when the workdir is next opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import pathlib

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from varec import emotions as emotions_lib
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


@dataclasses.dataclass(frozen=True)
class CheckpointMeta:
  """A checkpoint's `meta` item: where its run stands and what it learnt from.

  Field names are the stored keys. A field is None where the stored meta has no
  such key (older varec versions, imported CNNs); `to_json` leaves those out.
  Values are kept as stored, JSON lists as tuples, and checked where they are
  used (`label_space`, `config_schema.type_problems`), so that a damaged meta
  is reported as before and `to_json` gives back the dict that was stored.
  """

  stage: str | None = None  # "cnn", "rnn", "joint" or an imported CNN's.
  epoch: int | None = None  # The epoch `stage` resumes at.
  step: int | None = None  # The global step.
  completed_stages: tuple[str, ...] = ()
  # The run's config as stored (`ConfigDict.to_json`): readers compare it as
  # it is or take it through `config_schema.upgrade`.
  config: dict | None = None
  # Each split's speaker ids; every split empty for an imported CNN.
  speakers: dict[str, tuple[str, ...]] | None = None
  # The emotions it can decide (`LabelSpace.decision_prototypes`); None: all.
  trained_emotions: tuple[str, ...] | None = None
  source: dict | None = None  # An imported CNN's origin: file, licence.
  # Its label space, as `LabelSpace.to_meta` writes it (`label_space`).
  emotions: tuple[str, ...] | None = None
  prototypes: dict[str, tuple[float, float]] | None = None
  groups: dict[str, str] | None = None
  variables_sha256: str | None = None  # `checksum`, added by `save`.

  @classmethod
  def from_json(cls, stored: dict) -> CheckpointMeta:
    """The meta stored as `stored`, by this or an older varec.

    Args:
      stored: the `meta` item's JSON. Keys it lacks take their defaults (an
        older varec did not write them); keys no field names are dropped.

    Returns:
      The typed meta; `to_json` gives `stored` back.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in stored.items() if k in names}
    for name in _TUPLE_FIELDS:
      values[name] = _tuple(values.get(name))
    for name in _TUPLE_MAP_FIELDS:
      if isinstance(values.get(name), dict):
        values[name] = {k: _tuple(v) for k, v in values[name].items()}
    return cls(**{k: v for k, v in values.items() if v is not None})

  def to_json(self) -> dict:
    """The `meta` item's JSON: the stored keys in their order, lists for
    tuples; fields that are None are left out."""
    return {
      f.name: _json(getattr(self, f.name))
      for f in dataclasses.fields(self)
      if getattr(self, f.name) is not None
    }

  def label_space(self) -> emotions_lib.LabelSpace:
    """The emotions it was trained on (`LabelSpace.from_meta`, which gives a
    meta without groups Table 2's).

    Raises:
      KeyError, TypeError, ValueError: the fields make no label space.
    """
    # Read from the stored form, so that a damaged one fails as it always did.
    return emotions_lib.LabelSpace.from_meta(
      {
        k: _json(getattr(self, k))
        for k in ("emotions", "prototypes", "groups")
        if getattr(self, k) is not None
      }
    )


# Fields stored as JSON lists, and as {name: list}.
_TUPLE_FIELDS = ("completed_stages", "trained_emotions", "emotions")
_TUPLE_MAP_FIELDS = ("speakers", "prototypes")


def _tuple(value):
  """A JSON list as a tuple; anything else as it is."""
  return tuple(value) if isinstance(value, list) else value


def _json(value):
  """`value` with JSON lists for tuples, copied."""
  if isinstance(value, (list, tuple)):
    return [_json(v) for v in value]
  if isinstance(value, dict):
    return {k: _json(v) for k, v in value.items()}
  return value


def label_space_fields(space: emotions_lib.LabelSpace) -> dict:
  """The `CheckpointMeta` fields of `space`: emotions, prototypes, groups."""
  return {
    "emotions": space.emotions,
    "prototypes": dict(zip(space.emotions, space.prototypes)),
    "groups": dict(zip(space.emotions, space.groups)),
  }


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
  meta: CheckpointMeta,
  metrics: dict | None = None,
) -> None:
  """Saves a step, its meta with the checksum of `variables`; returns when it is
  written (saves are synchronous, so a full disk is raised here)."""
  meta = dataclasses.replace(meta, variables_sha256=checksum(variables))
  with storage_errors(manager):
    manager.save(
      step,
      args=ocp.args.Composite(
        variables=ocp.args.StandardSave(variables),
        opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave(meta.to_json()),
      ),
      metrics=metrics,
    )


def verify(meta: CheckpointMeta | None, variables, step_dir) -> None:
  """Raises CheckpointError when `variables` are not what step `step_dir`
  saved (checkpoints from before checksums pass unchecked)."""
  expected = meta.variables_sha256 if meta else None
  if expected and checksum(variables) != expected:
    raise CheckpointError(
      f"{step_dir}: its arrays do not match the checksum written when it was "
      "saved (its files were changed or damaged since)"
    )


def restore_meta(
  manager: ocp.CheckpointManager, step: int | None = None
) -> CheckpointMeta | None:
  """The meta of `step` (default: the latest); None when there is no step."""
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  stored = manager.restore(
    step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
  )["meta"]
  # A meta item of JSON null reads as one without any key.
  return CheckpointMeta.from_json(stored or {})


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
) -> tuple[int, CheckpointMeta, dict] | None:
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
        f"{pathlib.Path(manager.directory) / str(step)}: "
        f"{type(e).__name__}: {e}"
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
    f"{path} holds no complete varec checkpoint (expected a training workdir "
    "with checkpoints/best or checkpoints/latest, or one of their step "
    "folders); a run killed before its first checkpoint leaves none: rerun "
    "train.py with the same --workdir"
  )
