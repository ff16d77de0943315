"""The package's structure rules (issue 18), checked on the source."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRAINER = "varec.train_lib"  # The module that defines train_and_evaluate.
# Only these may import the trainer: the training entry point, benchmarks, tests.
TRAINER_USERS = ("train.py", "benchmarks/", "tests/")
MAX_FUNCTION_LINES = 80
# Drawing code, exempt from the function length rule.
RENDERER = "varec/synthetic/"


def _sources(*folders: str):
  for pattern in ("*.py",):
    yield from sorted(ROOT.glob(pattern))
  for folder in folders:
    yield from sorted((ROOT / folder).rglob("*.py"))


def _imported_modules(tree: ast.AST):
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module
      yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_only_entry_points_import_the_trainer():
  offenders = []
  for path in _sources("varec", "data_builder", "configs"):
    relative = path.relative_to(ROOT).as_posix()
    if relative == "varec/train_lib.py" or relative.startswith(TRAINER_USERS):
      continue
    if TRAINER in set(_imported_modules(ast.parse(path.read_text()))):
      offenders.append(relative)
  assert not offenders, f"library modules importing {TRAINER}: {offenders}"


def test_the_trainer_defines_train_and_evaluate():
  tree = ast.parse((ROOT / "varec" / "train_lib.py").read_text())
  assert "train_and_evaluate" in {
    n.name for n in tree.body if isinstance(n, ast.FunctionDef)
  }


def test_functions_are_short():
  long = []
  for path in _sources("varec", "data_builder", "configs", "benchmarks"):
    relative = path.relative_to(ROOT).as_posix()
    if relative.startswith(RENDERER):
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        lines = node.end_lineno - node.lineno + 1
        if lines > MAX_FUNCTION_LINES:
          long.append(f"{relative}:{node.lineno} {node.name} ({lines} lines)")
  assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
