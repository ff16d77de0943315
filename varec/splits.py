"""Speaker-independent train/validation/test split (paper §4.5, step 5).

The paper shuffles its 44 speakers (22 actors and their mirror images) each
run and splits them 8:2:1, so an actor's mirror image may land in another
split than the actor: the test set then holds a known face, flipped. By
default varec keeps each person and their mirror image together
(`group_mirrors=True`); `group_mirrors=False` reproduces the paper exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from varec.preprocess import labels

SPLIT_NAMES = ("train", "validation", "test")


def split_sizes(
  num_groups: int, ratios: Sequence[float]
) -> tuple[int, int, int]:
  """Group counts per split, proportional to `ratios`, each split non-empty when
  possible.

  The largest remainders get the leftover groups; 22 groups at 8:2:1 give
  (16, 4, 2) and 44 give (32, 8, 4).
  """
  if num_groups < len(SPLIT_NAMES):
    raise ValueError(
      f"need at least {len(SPLIT_NAMES)} speakers to split, got {num_groups}"
    )
  ratios = np.asarray(ratios, np.float64)
  exact = num_groups * ratios / ratios.sum()
  sizes = np.floor(exact).astype(int)
  for i in np.argsort(-(exact - sizes), kind="stable")[
    : num_groups - sizes.sum()
  ]:
    sizes[i] += 1
  # Steal from the largest split so that no split is empty.
  for i in np.flatnonzero(sizes == 0):
    sizes[np.argmax(sizes)] -= 1
    sizes[i] = 1
  return tuple(int(s) for s in sizes)


def split_speakers(
  speakers: Iterable[str],
  seed: int,
  ratios: Sequence[float] = (8, 2, 1),
  group_mirrors: bool = True,
) -> dict[str, tuple[str, ...]]:
  """Assigns every speaker to train, validation or test, shuffled by `seed`.

  Args:
    speakers: speaker ids; mirror images end in
    `preprocess.labels.MIRROR_SUFFIX`. seed: the run's seed; the same seed and
    speakers always give the same split. ratios: relative sizes of train,
    validation and test, counted in groups. group_mirrors: keep a person and
    their mirror image in the same split.

  Returns:
    {split name: sorted speaker ids}.
  """
  speakers = sorted(set(speakers))
  key = labels.person_of if group_mirrors else (lambda s: s)
  groups = sorted({key(s) for s in speakers})
  order = np.random.default_rng(seed).permutation(len(groups))
  sizes = split_sizes(len(groups), ratios)
  bounds = np.cumsum((0,) + sizes)
  split_of_group = {}
  for name, lo, hi in zip(SPLIT_NAMES, bounds[:-1], bounds[1:]):
    for g in order[lo:hi]:
      split_of_group[groups[g]] = name
  return {
    name: tuple(s for s in speakers if split_of_group[key(s)] == name)
    for name in SPLIT_NAMES
  }
