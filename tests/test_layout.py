"""The package's structure rules (issue 18), checked on the source."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TRAINER = "varec.train_lib"  # The module that defines train_and_evaluate.
# Only these may import the trainer: the training entry point, benchmarks,
# tests.
TRAINER_USERS = ("train.py", "benchmarks/", "tests/")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 600
# Drawing code, exempt from the length rules.
RENDERER = "varec/synthetic/"
# The data layer: reading, preprocessing and storing datasets. The renderer
# draws faces and writes videos; it must not depend on how they are read.
DATA_LAYER = ("varec.data", "varec.preprocess")
# Modules below the entry points that take typed values: a parameter with one
# of these names must say its type (a dataclass, not a predictor object or a
# raw `config.data` ConfigDict).
TYPED_BELOW_ENTRY_POINTS = (
  "varec/preprocess/",
  "varec/decisions.py",
  "varec/metrics.py",
  "varec/video_report.py",
  "varec/video_summary.py",
  "varec/frame_table.py",
  "varec/apex_thumbnails.py",
  "varec/annotation.py",
  "varec/predictions.py",
  "varec/html_report.py",
  "varec/plots.py",
  "varec/tracking.py",
)
UNTYPED_NAMES = ("predictor", "data", "meta", "settings", "summary")


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


def _module_name(path: pathlib.Path) -> str:
  relative = path.relative_to(ROOT).with_suffix("")
  parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
  return ".".join(parts)


def _import_graph() -> dict[str, set[str]]:
  """{module: the varec modules it imports} over the package, every import
  (module level, in functions, under TYPE_CHECKING)."""
  modules = {_module_name(p): p for p in (ROOT / "varec").rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        imported.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module:
        # `from package import module` imports the module, not the
        # package's other modules.
        inner = {f"{node.module}.{alias.name}" for alias in node.names}
        imported.update((inner & modules.keys()) or {node.module})
    graph[name] = {m for m in imported if m in modules and m != name}
  return graph


def test_no_import_cycles():
  graph = _import_graph()
  state, cycles = {}, []

  def visit(module, stack):
    state[module] = "open"
    for target in sorted(graph[module]):
      if state.get(target) == "open":
        cycles.append(stack[stack.index(target) :] + [target])
      elif target not in state:
        visit(target, stack + [target])
    state[module] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module, [module])
  assert not cycles, f"import cycles: {cycles}"


def test_the_renderer_imports_nothing_from_the_data_layer():
  graph = _import_graph()
  offenders = {
    m: sorted(t for t in targets if t.startswith(DATA_LAYER))
    for m, targets in graph.items()
    if m.startswith("varec.synthetic")
  }
  assert not {m: t for m, t in offenders.items() if t}, offenders


def test_modules_are_short():
  long = []
  for path in _sources("varec", "data_builder", "configs", "benchmarks"):
    relative = path.relative_to(ROOT).as_posix()
    lines = len(path.read_text().splitlines())
    if not relative.startswith(RENDERER) and lines > MAX_MODULE_LINES:
      long.append(f"{relative} ({lines} lines)")
  assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_modules_below_the_entry_points_take_typed_values():
  untyped = []
  for path in _sources(*TYPED_BELOW_ENTRY_POINTS):
    relative = path.relative_to(ROOT).as_posix()
    if not relative.startswith(TYPED_BELOW_ENTRY_POINTS):
      continue
    for node in ast.walk(ast.parse(path.read_text())):
      if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      for arg in node.args.args + node.args.kwonlyargs:
        if arg.arg in UNTYPED_NAMES and arg.annotation is None:
          untyped.append(f"{relative}:{node.lineno} {node.name}({arg.arg})")
  assert not untyped, f"parameters without a type: {untyped}"


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
