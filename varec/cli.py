"""Command-line parsing shared by train.py, eval.py, predict.py and the
builders: a bad flag is one line naming it (and the closest valid config
field), exit status 2."""

from __future__ import annotations

import difflib
import importlib.util
import pathlib
import re
import sys

from absl import flags
import ml_collections
from ml_collections import config_flags

from configs import base

# The exit status of a bad command line, as argparse and absl use.

USAGE_ERROR = 2


def fail(program: str, message: str):
  """Prints `program: message` and exits with status 2."""
  print(f"{program}: {message}", file=sys.stderr)
  sys.exit(USAGE_ERROR)


def _config_fields(config: ml_collections.ConfigDict, prefix: str) -> list[str]:
  fields = []
  for key, value in config.items():
    fields.append(prefix + key)
    if isinstance(value, ml_collections.ConfigDict):
      fields += _config_fields(value, f"{prefix}{key}.")
  return fields


def _load_config_file(spec: str) -> ml_collections.ConfigDict | None:
  """The config that `--config=path[:argument]` names, or None if it does not
  load."""
  path = pathlib.Path(spec.split(":")[0])
  module_spec = importlib.util.spec_from_file_location(
    "_varec_cli_config", path
  )
  if module_spec is None or not path.is_file():
    return None
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config()


def unknown_field(argv: list[str]) -> str | None:
  """A message for the first `--config.x` or `--data.x` override that names
  no field."""
  config_spec = next(
    (a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None
  )
  roots = {
    "config": _load_config_file(config_spec) if config_spec else None,
    "data": base.get_data_config(),
  }
  for arg in argv[1:]:
    match = re.match(r"--(config|data)\.([^=\s]+)", arg)
    if not match or roots[match.group(1)] is None:
      continue
    root, field = match.groups()
    fields = _config_fields(roots[root], "")
    if field not in fields:
      close = difflib.get_close_matches(field, fields, n=1, cutoff=0.5)
      hint = f"; did you mean --{root}.{close[0]}?" if close else ""
      return f"--{root}.{field} is not a field of the {root}{hint}"
  return None


def define_config_dict(
  name: str, default: ml_collections.ConfigDict, help_text: str
):
  """`config_flags.DEFINE_config_dict`, which applies `--name.x` overrides
  from sys.argv as it is defined: an unknown field is one line and exit
  status 2 here too."""
  try:
    return config_flags.DEFINE_config_dict(name, default, help_text)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    fail(
      pathlib.Path(sys.argv[0]).name,
      unknown_field(sys.argv) or f"bad --{name}.* flag: {e}",
    )


def parse_flags(argv: list[str]) -> list[str]:
  """`flags.FLAGS(argv)`, with one-line errors (exit status 2) instead of
  tracebacks."""
  program = pathlib.Path(argv[0]).name
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(program, f"{e}")
  except (
    AttributeError,
    KeyError,
    TypeError,
    ValueError,
  ) as e:  # From ml_collections overrides.
    fail(program, unknown_field(argv) or f"bad config override: {e}")
  return []  # Not reached.


def os_error(e: OSError) -> str:
  """An OSError as one line: what failed, on which path, and what to do."""
  where = f" ({e.filename})" if e.filename else ""
  return (
    f"{e.strerror or e}{where}: free some space, or choose a folder this "
    "user can write"
  )
