"""Files written whole: into a hidden file beside the target, then renamed onto
it.

A reader (the report in a browser, a later run) never sees half a file, even
when the disk fills up or the process is killed while writing.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable


def write_whole(path, write: Callable[[pathlib.Path], object]) -> pathlib.Path:
  """Calls `write(partial)` on a path beside `path`, then renames it onto
  `path`.

  The partial name carries the process id, so concurrent writers never share
  one. On an OSError (a full disk) the partial file is removed and the error
  names `path`.
  """
  path = pathlib.Path(path)
  partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
  try:
    write(partial)
    os.replace(partial, path)
  except OSError as e:
    partial.unlink(missing_ok=True)
    raise OSError(e.errno, e.strerror or str(e), str(path)) from None
  return path
