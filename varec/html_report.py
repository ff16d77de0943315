"""report.html: a predict.py run to browse, offline, in any current browser.

Per video, in its output folder: `player.webm` (the frames as processed, or
annotated with --annotate: VP9, which Chromium and Firefox play, encoded with
PyAV's bundled FFmpeg/libvpx), `apex_<person>.jpg` (each person's face at
their apex) and `page.html`: the video beside each person's valence and
arousal over time (segments as a coloured band) and the valence-arousal
plane with Table 2's prototypes; cursors on both follow playback, and a click
on a timeline seeks the video. In the output folder, `report.html` indexes
every video there: apex thumbnail, each person's dominant emotion and PN
group, apex time, face share, duration; sortable and filterable in the page.

Everything a page needs is in it or beside it: its data inline as JSON, its
script and style inline (varec's own, no library, no network), so pages open
from the file system. The index holds one short row per video and links to
the pages, which are only read when opened: a run of 1,000 videos stays
quick to browse.
"""

from __future__ import annotations

import html
import json
import os
import pathlib
import urllib.parse

import cv2
import matplotlib.colors
import numpy as np

from varec import emotions
from varec import files
from varec import plots
from varec.preprocess import crop as crop_lib

PLAYER = "player.webm"
PAGE = "page.html"
INDEX = "report.html"
# The player's longest side: enough to see a face, small enough for 1,000
# videos.
PLAYER_MAX_SIDE = 720
THUMBNAIL_SIDE = 96


class PlayerWriter:
  """Writes BGR frames as a VP9 WebM video for browsers (PyAV)."""

  def __init__(self, path, shape, fps: float):
    import av  # pylint: disable=g-import-not-at-top

    height, width = shape[:2]
    scale = min(1.0, PLAYER_MAX_SIDE / max(height, width))
    # VP9 in 4:2:0 needs even sides.
    self.size = (
      max(2, round(width * scale / 2) * 2),
      max(2, round(height * scale / 2) * 2),
    )
    self.container = av.open(str(path), "w")
    self.stream = self.container.add_stream(
      "libvpx-vp9",
      rate=round(fps),
      # Real-time settings: encoding keeps pace with prediction.
      options={"deadline": "realtime", "cpu-used": "8", "crf": "36", "b": "0"},
    )
    self.stream.width, self.stream.height = self.size
    self.stream.pix_fmt = "yuv420p"
    self._av = av

  def write(self, bgr: np.ndarray) -> None:
    if bgr.shape[1::-1] != self.size:
      bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
    frame = self._av.VideoFrame.from_ndarray(bgr, format="bgr24")
    for packet in self.stream.encode(frame):
      self.container.mux(packet)

  def close(self) -> None:
    for packet in self.stream.encode():
      self.container.mux(packet)
    self.container.close()


def apex_thumbnail(image: np.ndarray, box) -> np.ndarray:
  """`apex_<person>.jpg`'s pixels: the face in `box` (x0, y0, x1, y1, source
  pixels) of a BGR frame, squared with a margin, `THUMBNAIL_SIDE` wide."""
  square = crop_lib.square_box(np.asarray(box, float), 0.2)
  return np.stack(
    [
      crop_lib.crop_and_resize(image[..., c], square, THUMBNAIL_SIDE)
      for c in range(3)
    ],
    axis=-1,
  )


def thumbnail(person: int) -> str:
  return f"apex_{person}.jpg"


def _colours(label_space: emotions.LabelSpace) -> dict[str, str]:
  return {
    name: matplotlib.colors.to_hex(colour)
    for name, colour in plots.emotion_colours(label_space).items()
  }


def write_page(
  folder,
  summary: dict,
  people: dict,
  label_space,
  index: pathlib.Path,
  caption: str = "",
) -> pathlib.Path:
  """`page.html` of one video; `people` maps each person to (time_s, va)
  arrays; `index` is the report that lists it (linked back)."""
  colours = _colours(label_space)
  data = {
    "video": pathlib.Path(summary["video"]).name,
    "caption": caption,
    "index": pathlib.Path(os.path.relpath(index, folder)).as_posix(),
    "fps": summary["fps"],
    "duration": summary["frames"] / summary["fps"],
    "player": PLAYER,
    "prototypes": [
      {"emotion": e, "v": v, "a": a, "colour": colours[e]}
      for e, (v, a) in zip(label_space.emotions, label_space.prototypes)
    ],
    "people": [
      {
        "person": p["person"],
        "expression": p["expression"],
        "pn_group": p["expression_pn_group"],
        "dominant": p["dominant_emotion"],
        "dominant_share": p["dominant_share"],
        "apex": p["apex"],
        "thumbnail": thumbnail(p["person"]),
        "t": np.round(people[p["person"]][0], 3).tolist(),
        "v": np.round(people[p["person"]][1][:, 0], 3).tolist(),
        "a": np.round(people[p["person"]][1][:, 1], 3).tolist(),
        "segments": [
          [s["start_s"], s["end_s"], s["emotion"]] for s in p["segments"]
        ],
      }
      for p in summary["people"]
    ],
    "colours": colours,
    "person_colours": plots.PERSON_COLOURS,
  }
  page = _PAGE.replace("__TITLE__", html.escape(data["video"])).replace(
    "__DATA__", _json_for_script(data)
  )
  return _write_text(pathlib.Path(folder) / PAGE, page)


def write_index(output) -> pathlib.Path:
  """`report.html` in `output`: one row for every video page under it."""
  output = pathlib.Path(output)
  rows = []
  for page in sorted(output.rglob(PAGE)):
    folder = page.parent
    if any(part.startswith(".") for part in folder.relative_to(output).parts):
      continue  # A run's staging folder.
    try:
      summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
      continue
    here = _href(folder, output)
    rows.append(
      {
        "video": folder.relative_to(output).as_posix(),
        "page": f"{here}/{PAGE}",
        "thumbnail": f"{here}/{thumbnail(summary['person'])}",
        "expression": summary["expression"],
        "pn_group": summary["expression_pn_group"],
        "people": [
          {
            "person": p["person"],
            "dominant": p["dominant_emotion"],
            "pn_group": p["dominant_pn_group"],
          }
          for p in summary["people"]
        ],
        "apex_s": summary["apex"]["time_s"],
        "face_share": summary["face_share"],
        "duration": summary["frames"] / summary["fps"],
      }
    )
  page = _INDEX.replace("__TITLE__", html.escape(output.name)).replace(
    "__DATA__", _json_for_script(rows)
  )
  return _write_text(output / INDEX, page)


def write_eval_index(output, model, results, figures, videos) -> pathlib.Path:
  """`report.html` in eval.py's `output`: each split's scores, Figs. 4, 5 and
  7 (`figures`), and a row per evaluated video (`videos`: split, video,
  speaker, true and predicted emotion, correct, and the folder of its page)."""
  output = pathlib.Path(output)
  rows = "".join(
    "<tr>"
    f'<td><img class="thumb" loading="lazy" alt="" '
    f'src="{_href(v["folder"] / thumbnail(0), output)}"></td>'
    f"<td>{html.escape(v['split'])}</td>"
    f'<td><a href="{_href(v["folder"] / PAGE, output)}">'
    f"{html.escape(v['video'])}</a></td>"
    f"<td>{html.escape(str(v['speaker']))}</td>"
    f"<td>{v['true']}</td><td>{v['predicted']}</td>"
    f"<td>{'yes' if v['correct'] else '<b>no</b>'}</td></tr>"
    for v in videos
  )
  scores = "".join(
    f"<tr><td>{html.escape(r.split)}</td><td>{r.metrics['videos']}</td>"
    + "".join(f"<td>{r.metrics[k]:.3f}</td>" for k in _SCORES)
    + "</tr>"
    for r in results
  )

  def images(chosen):
    return "".join(
      f'<figure><img src="{_href(f, output)}" alt="" loading="lazy" '
      f'style="max-width:560px"><figcaption>'
      f"{html.escape(f.relative_to(output).as_posix())}</figcaption></figure>"
      for f in figures
      if chosen(f)
    )

  page = (
    _EVAL.replace("__TITLE__", html.escape(str(model.path)))
    .replace("__SCORES__", scores)
    .replace(
      "__FIGURES__", images(lambda f: f.name.startswith(("fig4", "fig5")))
    )
    .replace("__FIG7__", images(lambda f: f.parent.parent.name == "fig7"))
    .replace("__ROWS__", rows)
    .replace("__FPS__", f"{model.config.data.fps:g}")
    .replace("__SPACE__", html.escape(", ".join(model.label_space.emotions)))
  )
  return _write_text(output / INDEX, page)


_SCORES = (
  "accuracy",
  "macro_precision",
  "macro_recall",
  "pn_accuracy",
  "frame_ccc_valence",
  "frame_ccc_arousal",
)


def write_gray_player(path, frames: np.ndarray, fps: float) -> None:
  """`frames` (T, S, S) uint8 gray face crops as a player, twice their size."""
  side = 2 * frames.shape[-1]
  player = PlayerWriter(path, (side, side), fps)
  try:
    for crop in frames:
      player.write(
        cv2.cvtColor(cv2.resize(crop, (side, side)), cv2.COLOR_GRAY2BGR)
      )
  finally:
    player.close()


def _href(path: pathlib.Path, root: pathlib.Path) -> str:
  return urllib.parse.quote(path.relative_to(root).as_posix())


def _json_for_script(data) -> str:
  # Inside <script>, "</" would end the element.
  return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def _write_text(path: pathlib.Path, text: str) -> pathlib.Path:
  """Writes a page whole, so a reader never sees half of it."""
  return files.write_whole(
    path, lambda partial: partial.write_text(text, encoding="utf-8")
  )


# In the page texts below, a backslash at the end of a line joins the next line
# to it (Python's line continuation): the pages keep their long lines.
_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 8px; }
table { border-collapse: collapse; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; \
vertical-align: middle; }
th { cursor: pointer; user-select: none; background: #f4f4f4; }
th.sorted-asc::after { content: " \\25B2"; } \
th.sorted-desc::after { content: " \\25BC"; }
img.thumb { width: 64px; height: 64px; object-fit: cover; border-radius: 4px; }
.positive { color: #1a7f37; } .negative { color: #c62828; } \
.neutral { color: #555; }
.row { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
video { max-width: 560px; width: 100%; background: #000; }
svg text { font: 11px system-ui, sans-serif; }
.timeline { width: 100%; max-width: 1100px; display: block; cursor: crosshair; }
"""


def _html(title: str, body: str, style: str = "") -> str:
  """A whole page: `body` after a head with the title and the shared style."""
  return (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
    f"<title>{title}</title>\n<style>{_STYLE}{style}</style></head>\n<body>\n"
    f"{body}</body></html>\n"
  )


_PAGE = _html(
  "__TITLE__ - varec",
  """<p><a id="index">all videos</a></p>
<h1 id="title"></h1>
<p id="caption"></p>
<div id="people"></div>
<div class="row">
  <video id="video" controls muted preload="auto"></video>
  <svg id="plane" width="340" height="340" viewBox="-1.25 -1.25 2.5 2.5"></svg>
</div>
<div id="timelines"></div>
<p id="legend"></p>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const W = 1000, LEFT = 40, RIGHT = 10, BAND = 14, H = 150;
const PLOT = W - LEFT - RIGHT;
const video = document.getElementById("video");
video.src = data.player;
document.getElementById("title").textContent = data.video;
document.getElementById("caption").textContent = data.caption;
document.getElementById("index").href = data.index;
function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
const x = (t) => LEFT + (t / data.duration) * PLOT;
const y = (value) => BAND + 8 + (1 - value) / 2 * (H - BAND - 24);
const personColours = data.person_colours;
const people = document.getElementById("people");
const cursors = [], dots = [];
data.people.forEach((p, k) => {
  const line = document.createElement("p");
  const colour = personColours[k % personColours.length];
  line.innerHTML = `<img class="thumb" src="${p.thumbnail}" alt=""> `
    + `<span style="color:${colour}">&#9679;</span> person #${p.person}: `
    + `<b>${p.expression}</b> \
(<span class="${p.pn_group}">${p.pn_group}</span>), most frequent `
    + `${p.dominant} (${Math.round(100 * p.dominant_share)}%), \
apex at ${p.apex.time_s.toFixed(1)} s`;
  line.querySelector("img").onerror = function () { this.remove(); };
  people.appendChild(line);
  const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, class: "timeline",
    "data-left": LEFT, "data-width": PLOT, "data-duration": data.duration},
    document.getElementById("timelines"));
  el("text", {x: 2, y: 11}, svg).textContent = `#${p.person}`;
  for (const [start, end, emotion] of p.segments)
    el("rect", {x: x(start), y: 0, \
width: Math.max(0.5, x(end) - x(start)), height: BAND,
      fill: data.colours[emotion]}, svg)\
.appendChild(el("title", {})).textContent = emotion;
  for (const value of [-1, 0, 1]) {
    el("line", {x1: LEFT, x2: W - RIGHT, y1: y(value), y2: y(value), \
stroke: "#ddd"}, svg);
    el("text", {x: 4, y: y(value) + 4}, svg).textContent = value;
  }
  const path = (values) => {
    let d = "", gap = true;
    p.t.forEach((t, i) => {
      const jump = i > 0 && t - p.t[i - 1] > 1.5 / data.fps;
      d += (gap || jump ? "M" : "L") + x(t).toFixed(1) + "," \
+ y(values[i]).toFixed(1);
      gap = false;
    });
    return d;
  };
  el("path", {d: path(p.v), fill: "none", stroke: "#000", \
"stroke-width": 1.2}, svg);
  el("path", {d: path(p.a), fill: "none", stroke: "#777", "stroke-width": 1.2,
    "stroke-dasharray": "4 3"}, svg);
  const cursor = el("line", {class: "cursor", x1: LEFT, x2: LEFT, y1: 0, y2: H,
    stroke: "#d00", "stroke-width": 1.5, "data-time": "0"}, svg);
  cursors.push(cursor);
  svg.addEventListener("click", (event) => {
    const box = svg.getBoundingClientRect();
    const unit = (event.clientX - box.left) * W / box.width;
    video.currentTime = Math.min(data.duration, \
Math.max(0, (unit - LEFT) / PLOT * data.duration));
    update();
  });
});
const plane = document.getElementById("plane");
el("rect", {x: -1, y: -1, width: 2, height: 2, fill: "#fafafa", \
stroke: "#bbb", "stroke-width": 0.01}, plane);
el("line", {x1: -1, x2: 1, y1: 0, y2: 0, stroke: "#ccc", \
"stroke-width": 0.008}, plane);
el("line", {x1: 0, x2: 0, y1: -1, y2: 1, stroke: "#ccc", \
"stroke-width": 0.008}, plane);
el("text", {x: 0.62, y: 1.15, style: "font-size:0.09px"}, plane)\
.textContent = "valence";
el("text", {x: -1.2, y: -1.08, style: "font-size:0.09px"}, plane)\
.textContent = "arousal";
for (const q of data.prototypes) {
  el("circle", {cx: q.v, cy: -q.a, r: 0.035, fill: q.colour}, plane);
  el("text", {x: q.v + 0.045, y: -q.a + 0.03, style: "font-size:0.08px"}, \
plane).textContent = q.emotion;
}
const used = new Set(data.people.flatMap((p) => p.segments.map((s) => s[2])));
document.getElementById("legend").innerHTML = "segments: " + data.prototypes
  .filter((q) => used.has(q.emotion))
  .map((q) => `<span style="color:${q.colour}">&#9632;</span> ${q.emotion}`)\
.join(" &nbsp; ")
  + " &nbsp; | valence: solid, arousal: dashed; click a timeline to seek";
data.people.forEach((p, k) => {
  const colour = personColours[k % personColours.length];
  el("polyline", {points: p.t.map((t, i) => `${p.v[i]},${-p.a[i]}`).join(" "), \
fill: "none",
    stroke: colour, "stroke-width": 0.006, opacity: 0.5}, plane);
  dots.push(el("circle", {class: "dot", r: 0.045, fill: colour, stroke: "#000",
    "stroke-width": 0.01, visibility: "hidden"}, plane));
});
function nearestIndex(times, t) {
  let lo = 0, hi = times.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; \
if (times[mid] < t) lo = mid + 1; else hi = mid; }
  if (lo > 0 && t - times[lo - 1] < times[lo] - t) lo -= 1;
  return lo;
}
function update() {
  const t = video.currentTime;
  for (const c of cursors) {
    c.setAttribute("x1", x(t)); c.setAttribute("x2", x(t)); \
c.dataset.time = t.toFixed(3);
  }
  data.people.forEach((p, k) => {
    const i = nearestIndex(p.t, t);
    const near = p.t.length && Math.abs(p.t[i] - t) <= 1 / data.fps;
    dots[k].setAttribute("visibility", near ? "visible" : "hidden");
    if (p.t.length) { dots[k].setAttribute("cx", p.v[i]); \
dots[k].setAttribute("cy", -p.a[i]); }
  });
}
function follow() { update(); \
if (!video.paused && !video.ended) requestAnimationFrame(follow); }
video.addEventListener("play", follow);
video.addEventListener("seeked", update);
video.addEventListener("timeupdate", update);
update();
</script>
""",
)

_INDEX = _html(
  "__TITLE__ - varec report",
  """<h1>varec: <span id="count"></span> video(s)</h1>
<p><label>emotion <select id="filter">\
<option value="">all</option></select></label></p>
<table><thead><tr>
<th data-key="thumbnail">apex face</th><th data-key="video">video</th>
<th data-key="expression">expression</th>\
<th data-key="people">people (most frequent)</th>
<th data-key="apex_s">apex (s)</th><th data-key="face_share">face share</th>
<th data-key="duration">duration (s)</th></tr></thead>\
<tbody id="rows"></tbody></table>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const rows = JSON.parse(document.getElementById("data").textContent);
const body = document.getElementById("rows");
const filter = document.getElementById("filter");
const emotionsSeen = new Set();
rows.forEach((r) => { emotionsSeen.add(r.expression); \
r.people.forEach((p) => emotionsSeen.add(p.dominant)); });
[...emotionsSeen].sort().forEach((e) => filter.add(new Option(e, e)));
let key = "video", ascending = true;
const escape = (s) => String(s).replace(/[&<>"]/g, (c) => \
({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
function render() {
  const wanted = filter.value;
  const shown = rows.filter((r) => !wanted || r.expression === wanted \
|| r.people.some((p) => p.dominant === wanted));
  const value = (r) => key === "people" \
? r.people.map((p) => p.dominant).join() : r[key];
  shown.sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0)\
 * (ascending ? 1 : -1));
  body.innerHTML = shown.map((r) => `<tr>
    <td><img class="thumb" loading="lazy" src="${r.thumbnail}" alt=""></td>
    <td><a href="${r.page}">${escape(r.video)}</a></td>
    <td>${r.expression} <span class="${r.pn_group}">(${r.pn_group})</span></td>
    <td>${r.people.map((p) => `#${p.person} ${p.dominant} \
<span class="${p.pn_group}">(${p.pn_group})</span>`).join("<br>")}</td>
    <td>${r.apex_s.toFixed(1)}</td><td>${Math.round(100 * r.face_share)}%</td>
    <td>${r.duration.toFixed(1)}</td></tr>`).join("");
  body.querySelectorAll("img").forEach((img) => \
{ img.onerror = function () { this.remove(); }; });
  document.getElementById("count").textContent = wanted \
? `${shown.length} of ${rows.length}` : rows.length;
  document.querySelectorAll("th").forEach((th) => {
    th.className = th.dataset.key === key \
? (ascending ? "sorted-asc" : "sorted-desc") : "";
  });
}
document.querySelectorAll("th").forEach((th) => \
th.addEventListener("click", () => {
  ascending = th.dataset.key === key ? !ascending : true; \
key = th.dataset.key; render();
}));
filter.addEventListener("change", render);
render();
</script>
""",
)

_EVAL = _html(
  "__TITLE__ - varec evaluation",
  """<h1>varec evaluation: __TITLE__</h1>
<p>Video decisions over each video's labelled frames; \
frame scores against Table 2's
prototypes. Emotions: __SPACE__; __FPS__ frames/s.</p>
<table><thead><tr><th>split</th><th>videos</th><th>accuracy</th>\
<th>macro precision</th>
<th>macro recall</th><th>PN accuracy</th><th>CCC valence</th>\
<th>CCC arousal</th></tr></thead>
<tbody>__SCORES__</tbody></table>
<h2>Fig. 4 (confusion matrices) and Fig. 5 (output distributions)</h2>
__FIGURES__
<h2>Videos (each with its player and trajectory)</h2>
<table><thead><tr><th>apex face</th><th>split</th><th>video</th><th>speaker</th>
<th>true</th><th>predicted</th><th>correct</th></tr></thead><tbody>__ROWS__</tbody></table>
<h2>Fig. 7 (all speakers' trajectories per emotion)</h2>
__FIG7__
""",
  style=" figure { display: inline-block; margin: 8px; }",
)
