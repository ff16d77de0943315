"""How the HTML report scales: a 1,000-video run's index, written and opened.

    python benchmarks/report_benchmark.py --checkpoint=workdir/demo
    [--videos=1000]

Predicts one short synthetic clip with `predict.py`'s predictor and report,
copies its output folder `--videos` times (each copy with another dominant
emotion, so that filtering has work to do), then times
`html_report.write_index` over them, and opening report.html in headless
Chromium (tests/browser.py) until every row is in the
table (the page's own rendering, thumbnails loading lazily after). Writes
benchmarks/results/report.{json,md}.
"""

import collections
import json
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2

from varec import emotions
from varec import html_report
from varec import predictor as predictor_lib
from varec import synthetic
from varec import video_report

import report  # benchmarks/report.py

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
# noqa: E402  (the tests' browser setup)
from tests import browser as browser_lib

_CHECKPOINT = flags.DEFINE_string("checkpoint", "workdir/demo", "A checkpoint.")
_VIDEOS = flags.DEFINE_integer("videos", 1000, "Videos in the run.")


def _one_video(folder: pathlib.Path) -> pathlib.Path:
  """A 2 s clip predicted with its report page; returns its output folder."""
  clip = synthetic.render_video(
    synthetic.make_speakers(1, seed=3)[0],
    "joy",
    seed=0,
    size=(320, 240),
    num_frames=50,
  )
  video = folder / "clip.mp4"
  writer = cv2.VideoWriter(
    str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240)
  )
  for frame in clip:
    writer.write(frame)
  writer.release()
  out = folder / "run" / "video_0000.mp4"
  predictor = predictor_lib.Predictor.from_checkpoint(_CHECKPOINT.value)
  stats = collections.Counter()
  video_report.write(
    predictor.predictions(video, keep_images=True, stats=stats),
    predictor.settings,
    stats,
    video,
    out,
    report=out.parent / html_report.INDEX,
  )
  return out


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    first = _one_video(pathlib.Path(tmp))
    run = first.parent
    names = emotions.EMOTIONS
    for k in range(1, _VIDEOS.value):
      copy = run / f"video_{k:04d}.mp4"
      shutil.copytree(first, copy)
      summary = json.loads((copy / "summary.json").read_text())
      emotion = names[k % len(names)]
      summary["expression"] = summary["dominant_emotion"] = emotion
      summary["people"][0]["dominant_emotion"] = emotion
      (copy / "summary.json").write_text(json.dumps(summary))
    start = time.perf_counter()
    index = html_report.write_index(run)
    write_s = time.perf_counter() - start
    browser = browser_lib.chromium(pathlib.Path(tmp))
    try:
      start = time.perf_counter()
      browser.get(index.as_uri())
      rows = browser_lib.wait(
        browser,
        "return document.querySelectorAll('#rows tr').length >= "
        f"{_VIDEOS.value} && document.querySelectorAll('#rows tr').length",
      )
      open_s = time.perf_counter() - start
    finally:
      browser.quit()
    results = {
      "machine": f"{platform.machine()}, {os.cpu_count()} cores",
      "videos": _VIDEOS.value,
      "rows_shown": rows,
      "index_bytes": index.stat().st_size,
      "write_index_s": write_s,
      "open_index_s": open_s,
    }
  print(json.dumps(results))
  lines = [
    "# HTML report at scale",
    "",
    f"A run of {results['videos']} videos (one predicted clip's folder, "
    f"copied), {results['machine']}: `html_report.write_index` over them, and "
    "headless Chromium opening report.html until every row is in the table.",
    "",
    "| videos | index size | write the index | open the index (all "
    "rows shown) |",
    "|---|---|---|---|",
    f"| {results['videos']} | {results['index_bytes'] / 1024:.0f} kB | "
    f"{results['write_index_s']:.2f} s | {results['open_index_s']:.2f} s |",
  ]
  report.write("report", results, "\n".join(lines))


if __name__ == "__main__":
  app.run(main)
