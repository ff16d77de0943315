"""Speaker split: sizes, disjointness, mirror grouping, determinism."""

import itertools

import pytest

from varec import splits
from varec.preprocess import labels

PEOPLE = [f"F{i:02d}" for i in range(1, 11)] + [
  f"M{i:02d}" for i in range(1, 13)
]
SPEAKERS = PEOPLE + [labels.mirror_speaker(p) for p in PEOPLE]


def test_split_sizes_follow_8_2_1():
  assert splits.split_sizes(22, (8, 2, 1)) == (16, 4, 2)
  assert splits.split_sizes(44, (8, 2, 1)) == (32, 8, 4)
  assert splits.split_sizes(3, (8, 2, 1)) == (1, 1, 1)
  assert sum(splits.split_sizes(13, (8, 2, 1))) == 13
  with pytest.raises(ValueError):
    splits.split_sizes(2, (8, 2, 1))


@pytest.mark.parametrize("group_mirrors", [True, False])
def test_splits_are_disjoint_and_complete(group_mirrors):
  split = splits.split_speakers(SPEAKERS, seed=3, group_mirrors=group_mirrors)
  for a, b in itertools.combinations(splits.SPLIT_NAMES, 2):
    assert not set(split[a]) & set(split[b])
  assert sorted(itertools.chain(*split.values())) == sorted(SPEAKERS)
  assert tuple(len(split[n]) for n in splits.SPLIT_NAMES) == (32, 8, 4)


def test_mirror_images_stay_with_their_person_by_default():
  for seed in range(10):
    split = splits.split_speakers(SPEAKERS, seed=seed)
    for members in split.values():
      persons = {labels.person_of(s) for s in members}
      assert set(members) == persons | {
        labels.mirror_speaker(p) for p in persons
      }


def test_paper_mode_separates_some_mirror_images():
  separated = 0
  for seed in range(10):
    split = splits.split_speakers(SPEAKERS, seed=seed, group_mirrors=False)
    where = {s: n for n, members in split.items() for s in members}
    separated += sum(
      where[p] != where[labels.mirror_speaker(p)] for p in PEOPLE
    )
  assert separated > 0


def test_same_seed_same_split_other_seed_other_split():
  a = splits.split_speakers(SPEAKERS, seed=7)
  assert a == splits.split_speakers(list(reversed(SPEAKERS)), seed=7)
  assert any(splits.split_speakers(SPEAKERS, seed=s) != a for s in range(8, 12))
