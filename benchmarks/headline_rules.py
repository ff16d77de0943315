"""Which headline names a clip's expression when long neutral stretches surround
it.

    python -m varec.pretrained face_mesh --out=workdir/face_mesh
    python benchmarks/headline_rules.py
    --checkpoints=workdir/face_mesh,workdir/mesh_pose/run_0

Issue 30, item 5. Each synthetic actor poses each emotion of the checkpoint's
vocabulary once, as the embedded set draws it (a neutral onset, then the rise
to the apex), and again framed by `--before_s` of the same actor's neutral
face before and `--after_s` after (neutral clips of that actor, drawn on their
own). The actors are a trained checkpoint's held-out ones (the test
speakers of its eval/videos.csv), or the first `--speakers` for a
zero-shot one. predict.py's engine reads every frame (`Predictor.predictions`,
causal windows, one person), and five rules name each clip's emotion:

- vote: the majority of all frames (the paper's, on a whole clip);
- last half: the majority of the last half of the frames (right for clips
  that end at their apex, wrong for an expression in the middle);
- dominant: summary.json's dominant_emotion (the most frequent non-neutral);
- expression (va): the apex phase by distance from neutral of the valence and
  arousal (the headline of checkpoints without a face mesh);
- expression (activity): the apex phase by facial activity (face-mesh
  checkpoints' headline: `blendshape_emotions.facial_activity`).

Writes benchmarks/results/headline_rules.{json,md}.
"""

import pathlib
import tempfile

from absl import app
from absl import flags
import numpy as np
import pandas as pd

from varec import blendshape_emotions
from varec import decisions
from varec import predictor as predictor_lib
from varec import synthetic
from varec import tracking
from varec import video_summary
from varec.preprocess import labels

import report  # benchmarks/report.py

_CHECKPOINTS = flags.DEFINE_list("checkpoints", None, "Checkpoint folders.")
_SPEAKERS = flags.DEFINE_integer(
  "speakers", 6, "Actors for a checkpoint without held-out speakers."
)
_BEFORE = flags.DEFINE_float("before_s", 3.0, "Neutral face before, seconds.")
_AFTER = flags.DEFINE_float("after_s", 2.0, "Neutral face after, seconds.")
_SIZE = (360, 288)
_FPS = 25.0
RULES = (
  "vote",
  "last half",
  "dominant",
  "expression (va)",
  "expression (activity)",
)


def _held_out(checkpoint: pathlib.Path) -> list[str] | None:
  """The test speakers of a trained run (its eval/videos.csv)."""
  videos = checkpoint / "eval" / "videos.csv"
  if not videos.is_file():
    return None
  table = pd.read_csv(videos)
  held = table[table["split"] == "test"]["speaker"]
  return sorted({s for s in held if not s.endswith(labels.MIRROR_SUFFIX)})


def _rules(predictor, path) -> dict[str, int]:
  """Each rule's emotion (index) for one clip."""
  va, nearest, index, time_s, scores = [], [], [], [], []
  for frame in predictor.predictions(path):
    face = frame.face(0)
    if face is None or face.va is None:
      continue
    va.append(face.va)
    nearest.append(face.emotion)
    index.append(frame.index)
    time_s.append(frame.time_s)
    scores.append(face.blendshapes)
  va, nearest, index = np.array(va), np.array(nearest), np.array(index)
  space = predictor.label_space
  arrays = (va, nearest, index, np.array(time_s))
  activity = None
  if all(s is not None for s in scores):
    scores = np.array(scores)
    activity = blendshape_emotions.facial_activity(
      scores, blendshape_emotions.resting_face(scores)
    )
  plain = video_summary.person_summary(
    space, predictor.prototypes, _FPS, arrays + (None,), len(va)
  )
  names = space.emotions
  out = {
    "vote": decisions.video_vote(nearest),
    "last half": decisions.video_vote(nearest[len(nearest) // 2 :]),
    "dominant": names.index(plain["dominant_emotion"]),
    "expression (va)": names.index(plain["expression"]),
  }
  if activity is not None:
    mesh = video_summary.person_summary(
      space, predictor.prototypes, _FPS, arrays + (activity,), len(va)
    )
    out["expression (activity)"] = names.index(mesh["expression"])
  return out


def _clips(speaker, emotion: str, seed: int) -> dict[str, np.ndarray]:
  """The clip as drawn, and framed by the actor's neutral face."""
  clip = synthetic.render_video(speaker, emotion, seed, size=_SIZE)
  before, after = (
    synthetic.render_video(
      speaker, "neutral", seed + k, size=_SIZE, num_frames=round(s * _FPS)
    )
    for k, s in ((1, _BEFORE.value), (2, _AFTER.value))
  )
  return {
    "as drawn": clip,
    "neutral around": np.concatenate([before, clip, after]),
  }


def _checkpoint_scores(path: pathlib.Path, tmp: pathlib.Path) -> dict:
  predictor = predictor_lib.Predictor.from_checkpoint(
    path, tracking=tracking.TrackingConfig(max_people=1)
  )
  names = predictor.label_space.emotions
  held = _held_out(path)
  speakers = synthetic.make_speakers()
  chosen = (
    [s for s in speakers if s.speaker_id in held]
    if held
    else speakers[: _SPEAKERS.value]
  )
  rows = []
  for k, speaker in enumerate(chosen):
    for emotion in names:
      for kind, frames in _clips(speaker, emotion, 1000 + k).items():
        video = tmp / f"{speaker.speaker_id}_{emotion}_{kind[0]}.mp4"
        synthetic.write_video(video, frames, fps=_FPS)
        decided = _rules(predictor, video)
        rows.append(
          {"clip": kind, "truth": emotion}
          | {rule: names[i] for rule, i in decided.items()}
        )
        print(rows[-1], flush=True)
  table = pd.DataFrame(rows)
  scores = {}
  for kind, part in table.groupby("clip"):
    scores[kind] = {
      rule: float((part[rule] == part["truth"]).mean())
      for rule in RULES
      if rule in part
    }
    scores[kind]["clips"] = len(part)
  return {
    "speakers": [s.speaker_id for s in chosen],
    "emotions": list(names),
    "accuracy": scores,
  }


def main(argv):
  del argv
  results = {
    "before_s": _BEFORE.value,
    "after_s": _AFTER.value,
    "checkpoints": {},
  }
  with tempfile.TemporaryDirectory() as tmp:
    for checkpoint in _CHECKPOINTS.value:
      results["checkpoints"][checkpoint] = _checkpoint_scores(
        pathlib.Path(checkpoint), pathlib.Path(tmp)
      )
  lines = [
    "# Headline rules on synthetic clips with long neutral stretches",
    "",
    "    python benchmarks/headline_rules.py --checkpoints="
    + ",".join(_CHECKPOINTS.value),
    "",
    f"Each clip as drawn, and framed by {_BEFORE.value:g} s of the actor's "
    f"neutral face before and {_AFTER.value:g} s after. Share of clips whose "
    "emotion each rule names (benchmarks/headline_rules.py's docstring "
    "defines the rules).",
    "",
    "| checkpoint | clips | n | " + " | ".join(RULES) + " |",
    "|---|---|---|" + "---|" * len(RULES),
  ]
  for checkpoint, result in results["checkpoints"].items():
    for kind, scores in result["accuracy"].items():
      cells = [f"{scores[r]:.3f}" if r in scores else "-" for r in RULES]
      lines.append(
        f"| {checkpoint} | {kind} | {scores['clips']} | "
        + " | ".join(cells)
        + " |"
      )
  report.write("headline_rules", results, "\n".join(lines) + "\n")


if __name__ == "__main__":
  flags.mark_flag_as_required("checkpoints")
  app.run(main)
