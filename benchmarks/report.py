"""Writes a benchmark's results as <name>.json and <name>.md, in benchmarks/results/ by default."""

import json
import pathlib

RESULTS = pathlib.Path(__file__).parent / "results"


def write(
  name: str, results: dict, markdown: str, folder: pathlib.Path = RESULTS
) -> None:
  """Saves `results` (JSON) and `markdown` side by side in `folder`, and prints the markdown."""
  folder.mkdir(parents=True, exist_ok=True)
  (folder / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
  (folder / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
  print(markdown)
