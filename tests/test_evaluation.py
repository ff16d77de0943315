"""Evaluation: window tiling, decisions, splits, bad input."""

import dataclasses

import numpy as np
import pytest

from varec import checkpoints
from varec import decisions
from varec import emotions
from varec import evaluation
from varec import inference

E = emotions.TABLE2.index


def test_covering_windows_match_training_windows_and_cover_every_frame():
  np.testing.assert_array_equal(
    inference.covering_window_starts(50, 10), [0, 10, 20, 30, 40]
  )
  starts = inference.covering_window_starts(153, 10)
  # End-aligned like the training windows (140, 130, ... ), plus one at 0.
  assert starts[0] == 0 and starts[1] == 3 and starts[-1] == 143
  covered = np.zeros(153, bool)
  for s in starts:
    covered[s : s + 10] = True
  assert covered.all()
  with pytest.raises(ValueError, match="shorter than one window"):
    inference.covering_window_starts(5, 10)


def test_decide_votes_over_labelled_frames_only():
  protos = emotions.TABLE2.prototype_array()
  pred = np.concatenate(
    [np.tile(protos[E("neutral")], (30, 1)), np.tile(protos[E("joy")], (20, 1))]
  )
  labelled = np.zeros(50, bool)
  labelled[-20:] = True
  rule = decisions.DecisionRule.of(emotions.TABLE2, 25.0)
  nearest, decided = evaluation.decide(pred, labelled, rule)
  vote, counts = decided.emotion, decided.votes
  assert vote == E("joy") and counts[E("joy")] == 20 and counts.sum() == 20
  assert (nearest[:30] == E("neutral")).all()


def test_a_model_decides_only_among_its_trained_emotions_and_neutral():
  """An output between joy and surprise, nearest pride's prototype, goes to
  the nearer trained emotion when pride was never taught; neutral stays."""
  protos = emotions.TABLE2.prototype_array()
  pred = np.stack([protos[E("pride")] + 0.02] * 6 + [[0.01, -0.02]] * 4)
  labelled = np.ones(10, bool)
  rule = decisions.DecisionRule.of(emotions.TABLE2, 25.0)
  _, decided = evaluation.decide(pred, labelled, rule)
  assert decided.emotion == E("pride")
  decision_protos = emotions.TABLE2.decision_prototypes(
    ["anger", "joy", "sadness", "surprise"]
  )
  rule = decisions.DecisionRule.of(emotions.TABLE2, 25.0, decision_protos)
  nearest, decided = evaluation.decide(pred, labelled, rule)
  vote, counts = decided.emotion, decided.votes
  assert set(nearest[:6]) == {E("surprise")}  # 0.36 from pride, joy 0.77.
  assert set(nearest[6:]) == {E("neutral")}
  assert vote == E("surprise") and counts[E("pride")] == 0


def test_split_speakers_joins_and_rejects():
  meta = checkpoints.CheckpointMeta(
    speakers={"train": ("a",), "validation": ("b",), "test": ("c",)}
  )
  assert evaluation.split_speakers(meta, "train+validation") == ["a", "b"]
  with pytest.raises(evaluation.EvaluationError, match="unknown split"):
    evaluation.split_speakers(meta, "holdout")


def test_checkpoint_whose_dataset_is_not_built(trained_workdir, tmp_path):
  workdir, _ = trained_workdir
  model = inference.TrainedModel.load(workdir)
  # pylint: disable=g-import-not-at-top
  from data_builder.adfes import adfes_dataset_builder
  from tests.helpers import TINY_CONFIG  # pylint: disable=g-import-not-at-top

  empty = adfes_dataset_builder.Builder(config=TINY_CONFIG, data_dir=tmp_path)
  with pytest.raises(
    evaluation.EvaluationError, match="is not built.*varec.build_dataset"
  ):
    evaluation.evaluate(workdir, builder=empty)
  assert model.config.data.name == "synthetic_adfes"


def test_split_without_videos(trained_workdir, tiny_builder):
  workdir, _ = trained_workdir
  model = inference.TrainedModel.load(workdir)
  model = dataclasses.replace(
    model,
    meta=dataclasses.replace(
      model.meta, speakers={**model.meta.speakers, "test": ("nobody",)}
    ),
  )
  predictor = inference.VideoPredictor(model)
  with pytest.raises(evaluation.EvaluationError, match="has no videos"):
    evaluation.evaluate_split(model, predictor, tiny_builder, "test")


def test_foreign_checkpoint_is_refused(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  manager = ocp.CheckpointManager(
    tmp_path / "checkpoints" / "latest", item_names=("state",)
  )
  manager.save(
    3, args=ocp.args.Composite(state=ocp.args.StandardSave({"w": np.zeros(3)}))
  )
  manager.wait_until_finished()
  with pytest.raises(
    checkpoints.CheckpointError, match="not a varec checkpoint.*variables, meta"
  ):
    inference.TrainedModel.load(tmp_path)


def test_dataset_with_other_emotions_is_refused(
  trained_workdir, tiny_builder, monkeypatch
):
  other = emotions.LabelSpace(
    ("calm", "tense"), ((0.5, -0.6), (-0.3, 0.7)), ("low", "high")
  )
  monkeypatch.setitem(
    tiny_builder.info.metadata, "label_space", other.to_meta()
  )
  with pytest.raises(
    evaluation.EvaluationError, match="calm, tense, the checkpoint anger"
  ):
    evaluation.evaluate(trained_workdir[0], builder=tiny_builder)
