"""Whether a training run learnt anything, and the message when it did not.

After each stage, and at the end of the run, the trainer (`varec.train_lib`)
weighs the validation it logged (metrics.jsonl) against chance: a stage learnt
nothing when its validation CCC is near 0 and its video accuracy is not above
chance (a one-sided binomial test). The checks, and for a run that learnt
nothing a message naming the numbers and what to change, go into the run's
training summary (`run_logs.write_summary`), which train.py reads for its exit
status (`LEARNT_NOTHING_STATUS`).
"""

from __future__ import annotations

from absl import logging
import numpy as np
from scipy import stats

from varec import emotions
from varec import steps
from varec import workdir as workdir_lib
from varec.preprocess import labels

# train.py's exit status when the validation of the model it trained shows that
# it learnt nothing (`check_stage`); the checkpoints stay. 1: an error, 2: a bad
# command line.
LEARNT_NOTHING_STATUS = 3
# Validation CCC (the mean of valence's and arousal's) below which a stage
# learnt no valence-arousal: outputs that are constant (a collapsed model:
# exactly 0) or unrelated to the face score 0 in expectation; the demo's
# validation CCC is ~0.9.
MIN_CCC = 0.05
# Video accuracy is above chance when a one-sided binomial test of the videos
# decided right against the chance rate rejects at this level: on a few
# validation videos, accuracy above the chance rate by luck is common (2 of 4 at
# chance 0.25: p = 0.26).
ACCURACY_P_VALUE = 0.05
# Steps the shipped recipes' stages take on the embedded dataset
# (configs/demo.py: cnn and rnn, its joint 10 epochs of 100;
# configs/real_faces.py: probe), for the advice.
RECIPE_STEPS = {"probe": 500, "cnn": 1250, "rnn": 240, "joint": 1000}


def videos_needed(n: int, chance: float) -> int | None:
  """The fewest of `n` videos right that beat `chance`: P(X >= k) <
  `ACCURACY_P_VALUE` for X ~ Binomial(n, chance); None where even n cannot."""
  # P(X >= k) = P(X > k - 1) for k = 0..n.
  tails = stats.binom.sf(np.arange(n + 1) - 1, n, chance)
  beaten = np.flatnonzero(tails < ACCURACY_P_VALUE)
  return int(beaten[0]) if beaten.size else None


def data_record(
  windows: dict,
  speakers: dict,
  label_space: emotions.LabelSpace,
  trained_emotions: tuple[str, ...],
) -> dict:
  """The sizes the learning check weighs: people and videos per split (the
  windows' "video_id" and "emotion", the split's speaker ids), and the
  validation's chance accuracy and the videos right that beat it."""
  record = {}
  for split in ("train", "validation"):
    people = {labels.person_of(s) for s in speakers[split]}
    record[f"{split}_people"] = len(people)
    record[f"{split}_videos"] = len(np.unique(windows[split]["video_id"]))
  validation = windows["validation"]
  _, first = np.unique(validation["video_id"], return_index=True)
  video_emotions = validation["emotion"][first]
  trained = [label_space.emotions.index(e) for e in trained_emotions]
  # A model that learnt nothing answers one emotion (or at random): it scores
  # the share of the validation's most common one (or 1 / the emotions trained).
  chance = max(
    1 / len(trained),
    max(np.sum(video_emotions == i) for i in trained) / len(first),
  )
  record.update(
    trained_emotions=len(trained),
    chance_accuracy=chance,
    videos_needed=videos_needed(len(first), chance),
  )
  return record


def _mean_ccc(record: dict) -> float:
  return (record["ccc_valence"] + record["ccc_arousal"]) / 2


def check_stage(stage: str, records: list[dict], data: dict) -> dict:
  """Whether stage `stage` learnt anything, from its epochs' logged validation
  (`records`, metrics.jsonl) at its best epoch (by CCC: the best checkpoint's).

  It learnt nothing when both its validation CCC is below `MIN_CCC` and its
  video accuracy is not above chance (`data`: `data_record`). Either alone
  is noted (`ccc_at_chance`, `accuracy_at_chance`) but is not nothing: a
  model can learn valence-arousal without the categories, and a handful of
  validation videos cannot show accuracy above chance at all.
  """
  val = [
    r for r in records if r["stage"] == stage and r["split"] == "validation"
  ]
  train = [r for r in records if r["stage"] == stage and r["split"] == "train"]
  if not val:
    return {"stage": stage, "checked": False, "learnt_nothing": False}
  best = max(
    val, key=lambda r: _mean_ccc(r) if np.isfinite(_mean_ccc(r)) else -np.inf
  )
  ccc, videos = round(_mean_ccc(best), 6), data["validation_videos"]
  correct = round(best["video_accuracy"] * videos)
  needed = data["videos_needed"]
  ccc_at_chance = not ccc >= MIN_CCC
  accuracy_at_chance = needed is None or correct < needed
  return {
    "stage": stage,
    "checked": True,
    "epoch": best["epoch"],
    "epochs": len(val),
    "ccc": ccc,
    "ccc_valence": best["ccc_valence"],
    "ccc_arousal": best["ccc_arousal"],
    "video_accuracy": best["video_accuracy"],
    "videos_right": correct,
    "train_ccc_first": round(_mean_ccc(train[0]), 6) if train else None,
    "train_ccc_last": round(_mean_ccc(train[-1]), 6) if train else None,
    **{
      k: data[k]
      for k in ("validation_videos", "chance_accuracy", "videos_needed")
    },
    "ccc_at_chance": ccc_at_chance,
    "accuracy_at_chance": accuracy_at_chance,
    "learnt_nothing": ccc_at_chance and accuracy_at_chance,
  }


# A stage whose training CCC reached this fitted its own training frames.
FITTED_TRAIN_CCC = 0.3
_RULE = "=" * 78


def _learning_rate(config, name: str) -> float:
  return (
    config[name].learning_rate or steps.DEFAULT_LEARNING_RATES[config.optimizer]
  )


def _people(n: int) -> str:
  return f"{n} {'person' if n == 1 else 'people'}"


def _plural(n: int, noun: str) -> str:
  return f"{n} {noun}{'' if n == 1 else 's'}"


def _evidence_lines(summary: dict) -> list[str]:
  """What the validation, the training CCC, the steps and the data were."""
  check, data = summary["verdict"], summary["data"]
  name, n = check["stage"], check["validation_videos"]
  lines = [
    f"Validation ({n} videos of {_people(data['validation_people'])}), the "
    f"{name} stage's best of {_plural(check['epochs'], 'epoch')} (epoch "
    f"{check['epoch']}, the checkpoint eval.py takes):",
    f"  CCC {check['ccc']:.3f} (valence {check['ccc_valence']:.3f}, arousal "
    f"{check['ccc_arousal']:.3f}): below {MIN_CCC}; a constant output scores 0",
  ]
  accuracy = (
    f"  video accuracy {check['video_accuracy']:.3f} ({check['videos_right']} "
    f"of {n}): chance {check['chance_accuracy']:.3f} "
    f"({data['trained_emotions']} emotions trained, or the share of the "
    "most common)"
  )
  needed = check["videos_needed"]
  lines.append(
    accuracy
    + (
      f"; above it takes {needed} of {n} (binomial test, p < "
      f"{ACCURACY_P_VALUE})"
      if needed is not None
      else f"; {n} videos cannot show more (binomial test: {n} of {n} has p = "
      f"{stats.binom.sf(n - 1, n, check['chance_accuracy']):.2f}, not < "
      f"{ACCURACY_P_VALUE})"
    )
  )
  if check["train_ccc_last"] is not None:
    lines.append(
      f"  training CCC of the {name} stage: {check['train_ccc_first']:.3f} in "
      f"its first epoch, {check['train_ccc_last']:.3f} in its last"
    )
  stages = summary["stages"]
  lines += [
    f"  the {s} stage's best validation: CCC {r['learning']['ccc']:.3f}, video "
    f"accuracy {r['learning']['video_accuracy']:.3f}"
    + (" (learnt nothing either)" if r["learning"]["learnt_nothing"] else "")
    for s, r in stages.items()
    if s != name and r.get("learning", {}).get("checked")
  ]
  schedules = [
    f"{s} {r['schedule']['steps']} ({r['schedule']['steps_per_epoch']} an "
    f"epoch x {r['schedule']['epochs']}, "
    f"{s}.min_steps={r['schedule']['min_steps']})"
    for s, r in stages.items()
    if "schedule" in r  # Not in runs trained before the summary existed.
  ]
  if schedules:
    lines.append("  steps: " + ", ".join(schedules))
  lines.append(
    f"  training set: {data['train_videos']} videos (mirror images included) "
    f"of {_people(data['train_people'])}"
  )
  return lines


def _rate_advice(config, name: str, fitted: bool) -> str:
  """The learning-rate line, read from how far the training CCC got."""
  rate = _learning_rate(config, name)
  default = steps.DEFAULT_LEARNING_RATES[config.optimizer]
  line = (
    f"  - The learning rate: the {name} stage ran at {rate:.3g} "
    f"({config.optimizer}, {config.lr_schedule}, "
    f"warmup_epochs={config.warmup_epochs:g}). "
  )
  if fitted:
    return line + (
      "Its training CCC rose while validation stayed at chance: it memorised "
      "the training people; more steps will not help, more people and "
      "augmentation will."
    )
  if rate < default / 30:
    return line + (
      f"Its training CCC stayed low, at a rate far below {config.optimizer}'s "
      f"default: try --config.{name}.learning_rate={default:g}."
    )
  return line + (
    "Its training CCC stayed low: try "
    f"--config.{name}.learning_rate={rate * 3:.3g} (or {rate / 3:.3g} if the "
    "training loss jumps about)."
  )


def _advice_lines(config, summary: dict) -> list[str]:
  """What to change, most likely first."""
  check, data = summary["verdict"], summary["data"]
  name = check["stage"]
  short = {
    s: RECIPE_STEPS[s]
    for s, r in summary["stages"].items()
    if "schedule" in r and r["schedule"]["steps"] < RECIPE_STEPS[s]
  }
  fitted = (check["train_ccc_last"] or 0.0) >= FITTED_TRAIN_CCC
  lines = ["What to change:"]
  if short:
    lines.append(
      "  - More optimisation steps: "
      + " ".join(f"--config.{s}.min_steps={n}" for s, n in short.items())
      + " (as many as the shipped recipes' stages take on the embedded "
      "dataset; a small set then trains more epochs), or more num_epochs."
    )
  lines.append(_rate_advice(config, name, fitted))
  if not config.init_from:
    lines.append(
      "  - Start from a pretrained CNN rather than from scratch: "
      "configs/real_faces.py (after python -m varec.pretrained fer), whose CNN "
      "has seen ~28,000 real faces."
    )
  lines += [
    f"  - More clips and more people: {_people(data['train_people'])} to train "
    "on is few to tell emotions apart on faces never seen; each new person "
    "helps more than more clips of the same ones.",
    "  - Check the labels (labels.csv: each clip's emotion; your prototypes "
    "CSV's valence and arousal): labels that do not match the faces leave "
    "nothing to learn.",
  ]
  return lines


def learnt_nothing_message(workdir, config, summary: dict) -> str:
  """The loud message of a run whose validation shows it learnt nothing (the
  summary's verdict): the numbers, and what to change."""
  workdir = workdir_lib.Workdir(workdir)
  return "\n".join(
    [_RULE, f"TRAINING LEARNT NOTHING: {workdir}", _RULE]
    + _evidence_lines(summary)
    + _advice_lines(config, summary)
    + [
      f"The checkpoints are kept ({workdir.checkpoints}); this message is in "
      f"{workdir.training_summary}. train.py exits with status "
      f"{LEARNT_NOTHING_STATUS}.",
      _RULE,
    ]
  )


def record_stage(
  summary: dict, stage: str, records: list[dict], last: bool
) -> None:
  """Checks stage `stage` (`check_stage`) into `summary["stages"][stage]`,
  with a warning where it learnt nothing and is not the `last` (whose verdict
  speaks)."""
  check = check_stage(stage, records, summary["data"])
  summary["stages"][stage]["learning"] = check
  if check["learnt_nothing"] and not last:
    logging.warning(
      "The %s stage learnt nothing (best validation CCC %.3f, video accuracy "
      "%.3f against chance %.3f); the stages after it start from it.",
      stage,
      check["ccc"],
      check["video_accuracy"],
      check["chance_accuracy"],
    )


def record_verdict(summary: dict, config, workdir, records: list[dict]) -> None:
  """The learning check of the last stage, the model eval.py takes, with its
  message, into `summary["verdict"]`."""
  workdir = workdir_lib.Workdir(workdir)
  name = config.stages[-1]
  verdict = check_stage(name, records, summary["data"])
  summary["verdict"] = verdict
  if verdict["learnt_nothing"]:
    verdict["message"] = learnt_nothing_message(workdir, config, summary)
    logging.error(
      "Validation shows that the model learnt nothing (CCC %.3f, video "
      "accuracy %.3f, chance %.3f): see %s",
      verdict["ccc"],
      verdict["video_accuracy"],
      verdict["chance_accuracy"],
      workdir.training_summary,
    )
  elif not verdict["checked"]:
    verdict["message"] = (
      f"no validation of the {name} stage is logged in {workdir.metrics}: "
      "cannot tell whether the model learnt anything"
    )
    logging.warning("%s", verdict["message"])
