"""varec.plots: figures of long videos."""

import numpy as np

from varec import emotions
from varec import plots


def test_timeline_draws_an_hour_of_frames(tmp_path):
  rng = np.random.default_rng(0)
  va = np.clip(np.cumsum(rng.normal(0, 0.02, (90_000, 2)), axis=0), -1, 1)
  va[30_000:32_000] = np.nan  # 80 s without a face.
  # A segment every 2 s, cycling through the emotions.
  segments = [
    (start, start + 2.0, emotions.EMOTIONS[k % 10])
    for k, start in enumerate(np.arange(0, 3600, 2.0))
  ]
  one = plots.Timeline(va, segments, "one hour", apex=(1200.0, 0.5, -0.2))
  path = plots.timeline([one], 25.0, emotions.TABLE2, tmp_path / "t.png")
  assert path.stat().st_size > 10_000
  # Two people: twice the rows, on one time axis (the second leaves early).
  other = plots.Timeline(va[:45_000], segments[:900], "person 1")
  two = plots.timeline([one, other], 25.0, emotions.TABLE2, tmp_path / "2.png")
  assert two.stat().st_size > path.stat().st_size
