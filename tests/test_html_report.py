"""varec.html_report: predict.py's report.html, opened in a real browser.

The browser test drives Debian's Chromium (`tests/browser.py`; `make test`
installs it) with Selenium; the screenshots it takes are kept
in pytest's cache folder (.pytest_cache/d/report_screenshots/) for a human to
look at, never committed.
"""

import json
import pathlib
import subprocess
import sys

import av
import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains

from varec import evaluation
from varec import evaluation_outputs
from varec import html_report
from varec import synthetic

from tests import browser as browser_lib
from tests.helpers import write_video

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(trained_workdir, speakers, tmp_path_factory):
  """predict.py (its command line) on a folder of two clips: one actor
  turning joyful (4 s), two actors side by side (3 s)."""
  folder = tmp_path_factory.mktemp("videos")
  one = synthetic.render_video(
    speakers[0], "joy", seed=3, size=(320, 240), num_frames=100
  )
  write_video(folder / "one.mp4", one)
  left, right = (
    synthetic.render_video(s, e, seed=4, size=(320, 288), num_frames=75)
    for s, e in ((speakers[1], "anger"), (speakers[2], "surprise"))
  )
  write_video(
    folder / "sub" / "two people.mp4", np.concatenate([left, right], 2)
  )
  output = tmp_path_factory.mktemp("predictions")
  done = subprocess.run(
    [
      sys.executable,
      str(REPO / "predict.py"),
      f"--checkpoint={trained_workdir[0]}",
      f"--video={folder}",
      f"--output={output}",
    ],
    capture_output=True,
    text=True,
    check=False,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  return output


def test_every_video_has_a_page_a_player_and_thumbnails(run):
  index = (run / html_report.INDEX).read_text()
  rows = json.loads(
    index.split('type="application/json">')[1].split("</script>")[0]
  )
  assert sorted(r["video"] for r in rows) == ["one.mp4", "sub/two people.mp4"]
  two = next(r for r in rows if r["video"].startswith("sub"))
  assert two["page"] == "sub/two%20people.mp4/page.html"
  assert len(two["people"]) == 2
  for r in rows:
    folder = run / r["video"]
    assert (folder / html_report.PAGE).is_file()
    with av.open(str(folder / html_report.PLAYER)) as player:
      stream = player.streams.video[0]
      assert stream.codec_context.name == "vp9"
      frames = sum(1 for _ in player.decode(stream))
    assert frames == round(r["duration"] * 25)
    for p in r["people"]:
      assert (folder / html_report.thumbnail(p["person"])).stat().st_size > 500


def test_eval_report_has_scores_figures_and_a_page_per_video(
  trained_workdir, tiny_builder, tmp_path
):
  model, results = evaluation.evaluate(
    trained_workdir[0], ("validation", "test"), builder=tiny_builder
  )
  written = evaluation_outputs.write_outputs(model, results, tmp_path)
  index = evaluation_outputs.write_report(
    model, results, tmp_path, written["figures"]
  )
  text = index.read_text()
  assert text.count("<tr><td>validation</td>") == 1  # The scores.
  assert "fig4_confusion_test.png" in text and "/fig7/" in text
  pages = sorted(tmp_path.glob("videos/*/*/" + html_report.PAGE))
  assert len(pages) == sum(len(r.videos) for r in results) == 8
  for r in results:
    for video, inputs in zip(r.videos.itertuples(), r.inputs):
      folder = (
        tmp_path
        / "videos"
        / r.split
        / evaluation_outputs.file_name(video.video)
      )
      assert (
        f"true {video.true_emotion}" in (folder / html_report.PAGE).read_text()
      )
      with av.open(str(folder / html_report.PLAYER)) as player:
        assert sum(1 for _ in player.decode(video=0)) == len(inputs)
      assert (
        f'href="{html_report._href(folder / html_report.PAGE, tmp_path)}"'
        in text
      )


def test_a_page_script_cannot_be_ended_by_its_data(tmp_path):
  text = html_report._json_for_script({"video": "</script><b>x"})
  assert "</script>" not in text and json.loads(text)["video"] == (
    "</script><b>x"
  )


def test_the_report_plays_in_chromium_and_its_cursor_follows(
  run, tmp_path, request
):
  screenshots = request.config.cache.mkdir("report_screenshots")
  browser = browser_lib.chromium(tmp_path)
  try:
    browser.get((run / html_report.INDEX).as_uri())
    assert len(browser.find_elements("css selector", "#rows tr")) == 2
    browser_lib.wait(
      browser,
      "return [...document.images].length > 0 && [...document.images].every("
      "(i) => i.complete && i.naturalWidth > 0)",
    )
    shown = lambda: [
      a.text for a in browser.find_elements("css selector", "#rows tr a")
    ]
    # Sorted by video name, then by duration (the two-person clip is shorter).
    assert shown() == ["one.mp4", "sub/two people.mp4"]
    browser.find_element("css selector", "th[data-key=duration]").click()
    assert shown() == ["sub/two people.mp4", "one.mp4"]
    # Filtered by an emotion: the videos where anyone shows it, no other.
    rows = browser.execute_script(
      "return JSON.parse(document.getElementById('data').textContent)"
    )
    emotion = browser.execute_script(
      "const f = document.getElementById('filter');"
      "f.value = [...f.options].find((o) => o.value).value;"
      "f.dispatchEvent(new Event('change')); return f.value;"
    )
    wanted = {
      r["video"]
      for r in rows
      if emotion == r["expression"]
      or any(p["dominant"] == emotion for p in r["people"])
    }
    assert wanted and set(shown()) == wanted
    browser.save_screenshot(str(screenshots / "index.png"))
    browser.find_element("link text", "sub/two people.mp4").click()
    browser_lib.wait(
      browser, "return document.getElementById('video').readyState >= 2"
    )
    assert len(browser.find_elements("css selector", "svg.timeline")) == 2
    # Playing: time advances and the cursors follow.
    browser.execute_script("document.getElementById('video').play()")
    browser_lib.wait(
      browser, "return document.getElementById('video').currentTime > 0.4"
    )
    browser.execute_script("document.getElementById('video').pause()")
    playing = browser.execute_script(
      "return document.getElementById('video').currentTime"
    )
    cursor = float(
      browser.find_element("css selector", ".cursor").get_attribute("data-time")
    )
    assert abs(cursor - playing) < 0.3
    # Clicking a timeline at 3/4 of the plot seeks there, and the cursor moves.
    svg = browser.find_element("css selector", "svg.timeline")
    left, width, duration = (
      float(svg.get_attribute(f"data-{k}"))
      for k in ("left", "width", "duration")
    )
    box = browser.execute_script(
      "return arguments[0].getBoundingClientRect().width", svg
    )
    unit = box / 1000  # The timeline's viewBox is 1000 wide.
    target = 0.75 * duration
    x_offset = (left + target / duration * width) * unit - box / 2
    ActionChains(browser).move_to_element_with_offset(
      svg, int(x_offset), 0
    ).click().perform()
    seeked = browser_lib.wait(
      browser,
      "const v = document.getElementById('video');"
      f"return !v.seeking && Math.abs(v.currentTime - {target}) < 0.15 && "
      "v.currentTime",
    )
    cursor = browser.find_element("css selector", ".cursor")
    assert abs(float(cursor.get_attribute("data-time")) - seeked) < 0.05
    expected_x = left + seeked / duration * width
    assert abs(float(cursor.get_attribute("x1")) - expected_x) < 1.0
    browser.save_screenshot(str(screenshots / "page.png"))
    errors = [
      e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")
    ]
    assert not errors, errors
  finally:
    browser.quit()
  print(f"screenshots: {screenshots}")
