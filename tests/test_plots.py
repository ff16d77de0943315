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
  path = plots.timeline(
    va,
    25.0,
    segments,
    emotions.TABLE2,
    "one hour",
    tmp_path / "t.png",
    apex=(1200.0, 0.5, -0.2),
  )
  assert path.stat().st_size > 10_000
