"""Writing an evaluation: tables, figures, kept splits, the printed summary."""

import json

import pandas as pd

from varec import evaluation
from varec import evaluation_outputs


def test_file_name_keeps_safe_characters_only():
  assert (
    evaluation_outputs.file_name("M01-Joy-Face Forward/é.mp4")
    == "M01-Joy-Face_Forward_.mp4"
  )


def test_evaluate_and_write_every_file(trained_workdir, tiny_builder, tmp_path):
  workdir, _ = trained_workdir
  model, results = evaluation.evaluate(
    workdir, ("validation", "test"), builder=tiny_builder
  )
  written = evaluation_outputs.write_outputs(model, results, tmp_path)
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert set(metrics["splits"]) == {"validation", "test"}
  # The demo's reading (mirror averaging, the checkpoint's config), recorded.
  assert model.config.flip_average
  assert all(s["flip_average"] is True for s in metrics["splits"].values())
  videos = pd.read_csv(tmp_path / "videos.csv")
  # 1 actor and its mirror image per split, 2 emotions each.
  assert (videos.groupby("split").size() == 4).all()
  vote_columns = [c for c in videos.columns if c.startswith("votes_")]
  assert (
    videos[vote_columns].sum(axis=1) == 20
  ).all()  # The tiny set labels 20 frames.
  names = {p.name for p in written["figures"]}
  assert {
    "fig4_confusion_test.png",
    "fig5_distribution_validation.png",
  } <= names
  assert sum(p.parent.parent.name == "fig6" for p in written["figures"]) == 8
  assert sum(p.parent.parent.name == "fig7" for p in written["figures"]) == 4
  assert all(p.stat().st_size > 10_000 for p in written["figures"])
  assert "PN-acc" in evaluation_outputs.summary(results)


def test_evaluating_one_split_keeps_the_others(
  trained_workdir, tiny_builder, tmp_path
):
  workdir, _ = trained_workdir
  model, results = evaluation.evaluate(
    workdir, ("validation", "test"), builder=tiny_builder
  )
  evaluation_outputs.write_outputs(model, results, tmp_path, figures=False)
  before = json.loads((tmp_path / "metrics.json").read_text())["splits"][
    "validation"
  ]
  evaluation_outputs.write_outputs(
    model, [r for r in results if r.split == "test"], tmp_path, figures=False
  )
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert metrics["splits"]["validation"] == before and set(
    metrics["splits"]
  ) == {"validation", "test"}
  videos = pd.read_csv(tmp_path / "videos.csv")
  assert (videos.groupby("split").size() == 4).all() and set(
    videos["split"]
  ) == {"validation", "test"}
  assert set(pd.read_csv(tmp_path / "frames.csv")["split"]) == {
    "validation",
    "test",
  }
  # Another checkpoint's evaluation replaces the folder's tables and figures.
  (tmp_path / "figures").mkdir()
  other = json.loads((tmp_path / "metrics.json").read_text())
  other["checkpoint"] = "/elsewhere"
  (tmp_path / "metrics.json").write_text(json.dumps(other))
  evaluation_outputs.write_outputs(
    model, [r for r in results if r.split == "test"], tmp_path, figures=False
  )
  assert set(json.loads((tmp_path / "metrics.json").read_text())["splits"]) == {
    "test"
  }
  assert not (tmp_path / "figures").exists()
  assert set(pd.read_csv(tmp_path / "videos.csv")["split"]) == {"test"}
