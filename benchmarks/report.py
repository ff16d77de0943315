"""Writes a benchmark's results as benchmarks/results/<name>.json and <name>.md."""

import json
import pathlib

RESULTS = pathlib.Path(__file__).parent / "results"


def write(name: str, results: dict, markdown: str) -> None:
  """Saves `results` (JSON) and `markdown` side by side, and prints the markdown."""
  RESULTS.mkdir(exist_ok=True)
  (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
  (RESULTS / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
  print(markdown)
