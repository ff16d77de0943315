"""benchmarks/face_mesh.py's results as Markdown: a section per part that
ran and, when all did, what they show."""

from varec import blendshape_emotions
from varec import face_mesh

import face_mesh_common as common  # benchmarks/face_mesh_common.py

PREDICT_BAR = 100  # The frames/s for one face at 640x480, 2 cores.


def _sequence(seconds: list, key: str) -> str:
  """Per-second `key` as runs: "sadness (0-5 s), joy (6-9 s)"."""
  runs = []
  for row in seconds:
    label = row.get(key, "no face")
    if runs and runs[-1][0] == label:
      runs[-1][2] = row["second"]
    else:
      runs.append([label, row["second"], row["second"]])
  return ", ".join(
    f"{label} ({a} s)" if a == b else f"{label} ({a}-{b} s)"
    for label, a, b in runs
  )


def _link(figure: str) -> str:
  """A figure's link from benchmarks/results/."""
  return figure if figure.startswith("/") else f"../../{figure}"


# Each part's results key and section, in the file's order (`--parts`).
SECTIONS = {
  "chain": ("chain", lambda r: _speed_section(r["chain"])),
  "networks": ("networks", lambda r: _networks_section(r["networks"])),
  "variants": (
    "landmark_variants",
    lambda r: _variants_section(r["landmark_variants"]),
  ),
  "predict": ("predict", lambda r: _predict_section(r["predict"])),
  "zero_shot": ("zero_shot", lambda r: _zero_shot_section(r["zero_shot"])),
  "group": ("group_photo", lambda r: _group_section(r["group_photo"])),
}


def markdown(results: dict) -> str:
  """The results as benchmarks/results/<name>.md, one section after another:
  the parts that ran, and what they show when all did."""
  sections = [_machine_section(results)]
  sections += [
    section(results) for key, section in SECTIONS.values() if key in results
  ]
  if all(key in results for key, _ in SECTIONS.values()):
    sections.append(_summary_section(results))
  return "\n\n".join("\n".join(lines) for lines in sections)


def _machine_section(results: dict) -> list[str]:
  m = results["machine"]
  return [
    "# MediaPipe's Face Landmarker in JAX on real faces",
    "",
    f"Machine: {m['nproc']} CPU cores (`nproc`; {m['cpu']}), jax {m['jax']} "
    f"({m['backend']}), {m['date']}; load average (1, 5, 15 min) "
    f"{_load(m['load_at_start'])} at the start. Median of "
    f"{results['passes']} timed passes after a warm-up pass (jit compiled). "
    "On a machine shared with other work, compare rows of one run rather "
    "than runs.",
  ]


def _load(load: list) -> str:
  return ", ".join(f"{x:.2f}" for x in load)


def _speed_section(chain: dict) -> list[str]:
  a, b = chain["a"], chain["b"]
  lines = [
    f"## Speed, one face ({common.SPEED_VIDEO}, {a['frames']} frames "
    f"resized to {common.SPEED_SIZE[0]}x{common.SPEED_SIZE[1]})",
    "",
    "| chain | frames/s | ms per frame | peak RSS (MiB) after warm-up, "
    "then each pass |",
    "|---|---|---|---|",
  ]
  for key, row in (("a", a), ("b", b)):
    rss = ", ".join(
      f"{r:.0f}" for r in row["peak_rss_mib_after_warmup_then_each_pass"]
    )
    lines.append(
      f"| ({key}) {row['mode']} | "
      f"{row['frames_per_s']:.1f} | {row['ms_per_frame']:.2f} | {rss} |"
    )
  diff = chain["b_vs_a"]
  return lines + [
    "",
    f"(b) against (a) on the {diff['frames_with_face_in_both']} frames both "
    "read: blendshapes differ by "
    f"{diff['mean_abs_blendshape_difference']:.4f} on average (at most "
    f"{diff['max_abs_blendshape_difference']:.3f}); the zero-shot label is "
    f"the same on {diff['same_zero_shot_label']:.0%} of them. The batched "
    "landmark call of (b) matches `landmarks` on one frame to "
    f"{chain['batched_helper_max_abs_px']:.1e} px.",
  ]


def _networks_section(networks: list) -> list[str]:
  lines = [
    "### Each network alone",
    "",
    "| network | batch | ms per call | ms per frame | frames/s |",
    "|---|---|---|---|---|",
  ]
  for row in networks:
    lines.append(
      f"| {row['network']} | {row['batch']} | {row['ms_per_call']:.2f} | "
      f"{row['ms_per_frame']:.2f} | {row['frames_per_s']:.0f} |"
    )
  return lines


def _variants_section(variants: dict) -> list[str]:
  lines = [
    "### Landmark network: weights, depthwise convolutions and YNNPACK",
    "",
    "Weights as constants: compiled into the function (`tflite_graph."
    "batched`); as arguments: handed over at each call, as `batched` did "
    f"before. The network has {variants['depthwise_convolutions']} depthwise "
    "convolutions. Shifted sums: `tflite_graph._depthwise`; grouped: "
    "`lax.conv_general_dilated(feature_group_count=C)`. YNNPACK off: "
    '`xla_cpu_experimental_ynn_fusion_type=""` (as `tflite_graph` compiles). '
    "Real crops (the frames' centres) in float32.",
    "",
    "| batch | weights | depthwise as | YNNPACK fusions | YNN fusions in the "
    "compiled HLO | compile (s) | ms per call | frames/s | times the "
    "batch's first row | max abs output difference from it (crop px) |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in variants["rows"]:
    lines.append(
      f"| {row['batch']} | {row['weights']} | {row['depthwise']} | "
      f"{row['ynn_fusions']} | {row['ynn_fusions_in_compiled_hlo']} | "
      f"{row['compile_s']:.1f} | {row['ms_per_call']:.2f} | "
      f"{row['frames_per_s']:.0f} | {row['times_the_batch_first_row']:.2f} | "
      f"{row['max_abs_landmark_difference_px']:.1e} |"
    )
  return lines


def _predict_section(predict: dict) -> list[str]:
  compared = predict.get("compared")
  lines = [
    "## predict.py speed (zero-shot face-mesh checkpoint)",
    "",
    "`python -m varec.pretrained face_mesh` (from "
    f"{predict['wheel']}) into a temporary folder, then "
    "`Predictor.from_checkpoint(...).predictions(video)`: decoding, "
    f"resampling to the checkpoint's {predict['fps']:g} fps, detection on "
    f"every {predict['detect_every']}th frame (faces >= "
    f"{predict['min_face']:g} px, in squares), landmarks following the "
    "faces in between (`mesh_reader.MeshReader`), blendshapes and the "
    f"zero-shot head in batches of {predict['batch_size']} frames. "
    f"{common.SPEED_VIDEO} re-encoded at 640x480 (each frame resized as above, "
    "mp4v, the source's frame rate) and the original file (H.264). The "
    "section ran first: the resident set before it was "
    f"{predict['rss_mib_before']} MiB; peak RSS is since a reset "
    "(`/proc/self/clear_refs`) before each input's warm-up pass."
    + (
      ""
      if compared is None
      else f" Rows `{compared['checkout']}`: the same with another checkout "
      "of varec (`--compare_with`), in a subprocess, its passes taken in "
      "turn with this checkout's."
    ),
    "",
    "| input | frames out (from decoded) | frames with a face | detections "
    "| warm-up (s) | frames/s (decoded frames/s) | ms per frame | load at "
    "timing start (1, 5, 15 min) | RSS (MiB) after warm-up, then each pass "
    "| peak RSS (MiB) after warm-up, then each pass |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  rows = [(key, row) for key, row in predict["inputs"].items()]
  if compared is not None:
    rows = [
      item
      for key, row in rows
      for item in (
        (f"{key}, `{compared['checkout']}`", compared["inputs"][key]),
        (key, row),
      )
    ]
  for key, row in rows:
    rss = ", ".join(map(str, row["rss_mib_after_warmup_then_each_pass"]))
    peak = ", ".join(map(str, row["peak_rss_mib_after_warmup_then_each_pass"]))
    lines.append(
      f"| {key} | {row['frames']} ({row['source_frames']} at "
      f"{row['source_fps']:.3f} fps) | {row['frames_with_face']} | "
      f"{row['detections']} | {row['warm_up_s']:.1f} | "
      f"{row['frames_per_s']:.1f} ({row['source_frames_per_s']:.1f}) | "
      f"{row['ms_per_frame']:.2f} | {_load(row['load_at_timing_start'])} | "
      f"{rss} | {peak} |"
    )
  return lines


def _zero_shot_section(zero_shot: dict) -> list[str]:
  read = "; ".join(
    f"{e} {' + '.join(units)}" for e, units in blendshape_emotions.READ.items()
  )
  lines = [
    "## Zero-shot readings (`blendshape_emotions`)",
    "",
    "Each frame's largest face in IMAGE mode; its blendshapes read as FACS "
    "units and the units as EMFACS prototypes. The blendshapes MediaPipe's "
    "network never produces (`UNMEASURED`: "
    f"{', '.join(sorted(blendshape_emotions.UNMEASURED))}) are left out, "
    "and with them the units only they show (AU 5, 6, 9), so the "
    f"prototypes read: {read}. An emotion is the label where it is more "
    "probable than neutral (1 - the strongest intensity): alone, at "
    "intensity above 0.5.",
  ]
  for video, z in zero_shot.items():
    lines += ["", *_video_section(video, z)]
  return lines


def _video_section(video: str, z: dict) -> list[str]:
  lines = [
    f"### {video} ({z['frames']} frames, {z['fps']:g} fps)",
    "",
    f"Face in {z['face_share']:.0%} of frames; valence "
    f"[{z['valence_range'][0]:+.2f}, {z['valence_range'][1]:+.2f}], arousal "
    f"[{z['arousal_range'][0]:+.2f}, {z['arousal_range'][1]:+.2f}]; frames "
    "per label: "
    + ", ".join(f"{k} {v}" for k, v in z["label_counts"].items())
    + ". Largest activation of each unit (AU) over the video: "
    + ", ".join(f"{k} {v:.2f}" for k, v in z["unit_max"].items())
    + ".",
    "",
    f"![{video} zero-shot timeline]({_link(z['figure'])})",
    "",
    "| second | frames with a face | most frequent label (share) | most "
    "frequent emotion other than neutral (its mean probability) | mean "
    "valence | mean arousal |",
    "|---|---|---|---|---|---|",
  ]
  for row in z["seconds"]:
    if row["face"]:
      lines.append(
        f"| {row['second']} | {row['face']} of {row['frames']} | "
        f"{row['label']} ({row['label_share']:.0%}) | {row['expressed']} "
        f"({row['expressed_probability']:.2f}) | "
        f"{row['valence']:+.2f} | {row['arousal']:+.2f} |"
      )
    else:
      lines.append(
        f"| {row['second']} | 0 of {row['frames']} | - | - | - | - |"
      )
  return lines


def _group_section(group: dict) -> list[str]:
  lines = [
    f"## Faces on {common.GROUP_PHOTO} "
    f"({group['image'][0]}x{group['image'][1]}, 5 people)",
    "",
    f"`landmarker(image)`: {group['detections']} detections, "
    f"{len(group['faces'])} faces kept (presence > "
    f"{face_mesh.MIN_PRESENCE}).",
    "",
    "| face | box (x0, y0, x1, y1) | size (px) | detection score | presence "
    "| zero-shot label | valence | arousal |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for k, f in enumerate(group["faces"]):
    lines.append(
      f"| {k} | {', '.join(f'{c:.0f}' for c in f['box'])} | "
      f"{f['width']:.0f} x {f['height']:.0f} | {f['score']:.2f} | "
      f"{f['presence']:.2f} | {f['label']} | {f['valence']:+.2f} | "
      f"{f['arousal']:+.2f} |"
    )
  return lines


def _summary_section(results: dict) -> list[str]:
  return [
    "## What it shows",
    "",
    " ".join(
      (
        _chain_summary(results),
        _predict_summary(results),
        _zero_shot_summary(results["zero_shot"][common.SPEED_VIDEO]),
      )
    ),
  ]


def _chain_summary(results: dict) -> str:
  m, chain = results["machine"], results["chain"]
  a, b = chain["a"], chain["b"]
  rows = results["landmark_variants"]["rows"]

  def ratio(batch, weights, depthwise="shifted sums", ynn="off"):
    row = next(
      r
      for r in rows
      if (r["batch"], r["weights"], r["depthwise"], r["ynn_fusions"])
      == (batch, weights, depthwise, ynn)
    )
    return row["times_the_batch_first_row"]

  grouped = ratio(common.BATCH.value, "constants", "grouped convolution")
  ynn = ratio(common.BATCH.value, "constants", ynn="on (XLA default)")
  arguments = [ratio(b, "arguments") for b in (1, common.BATCH.value)]
  rss = [
    r for c in (a, b) for r in c["peak_rss_mib_after_warmup_then_each_pass"]
  ]
  landmark_ms = next(
    r["ms_per_call"]
    for r in results["networks"]
    if r["network"] == "landmarks" and r["batch"] == 1
  )
  return (
    f"On {m['nproc']} CPU cores the whole chain reads "
    f"{a['frames_per_s']:.0f} frames/s in IMAGE mode and "
    f"{b['frames_per_s']:.0f} frames/s with the detector on every "
    f"{common.DETECT_EVERY.value}th frame and {common.BATCH.value} frames "
    "per call; the "
    f"landmark network alone (batch 1) takes {landmark_ms:.1f} of IMAGE "
    f"mode's {a['ms_per_frame']:.1f} ms per frame. Peak RSS goes from "
    f"{rss[0]:.0f} to {max(rss):.0f} MiB over "
    f"{2 * results['passes']} passes of the video. Depthwise convolutions "
    f"as XLA grouped convolutions make the landmark network {grouped:.1f}x "
    f"the time of the shifted sums, and turning YNNPACK fusions on {ynn:.2f}x "
    "(tflite_graph's docstrings give the range over runs: 7-14x, 0.9-2.3x); "
    "handing the weights over at each call instead of compiling them in "
    f"takes {arguments[0]:.2f}x the time at batch 1, {arguments[1]:.2f}x at "
    f"batch {common.BATCH.value}."
  )


def _predict_summary(results: dict) -> str:
  inputs = results["predict"]["inputs"]
  vga, original = inputs["640x480"], inputs["640x360"]
  growth = ", ".join(
    f"{row['rss_mib_after_warmup_then_each_pass'][-1] - rss[0]:+d} MiB "
    f"({rss[0]} to {rss[-1]}) at {key}"
    for key, row in inputs.items()
    for rss in [row["rss_mib_after_warmup_then_each_pass"]]
  )
  verdict = "meets" if vga["frames_per_s"] >= PREDICT_BAR else "misses"
  compared = results["predict"].get("compared")
  beside = (
    ""
    if compared is None
    else " ("
    + ", ".join(
      f"{compared['inputs'][key]['frames_per_s']:.0f} at {key}"
      for key in inputs
    )
    + f" with `{compared['checkout']}`, timed in turn)"
  )
  return (
    f"predict.py's whole chain with the zero-shot checkpoint{beside} reads "
    f"{vga['frames_per_s']:.0f} frames/s at 640x480 (load average "
    f"{vga['load_at_timing_start'][0]:.2f} on "
    f"{results['machine']['nproc']} cores when timing started), so it "
    f"{verdict} the issue's {PREDICT_BAR} frames/s for one face there, and "
    f"{original['frames_per_s']:.0f} frames/s on the original 640x360 file "
    f"(load {original['load_at_timing_start'][0]:.2f}). At 640x480 (the "
    "16:9 frames stretched to 4:3) the face is followed on "
    f"{vga['frames_with_face']} of {vga['frames']} frames with "
    f"{vga['detections']} detector runs, against "
    f"{original['frames_with_face']} with {original['detections']} on the "
    "original. Its resident set changes by "
    f"{growth} from the end of the warm-up to the last timed pass."
  )


def _zero_shot_summary(pexels: dict) -> str:
  joy = " + ".join(blendshape_emotions.READ["joy"])
  return (
    "Zero-shot, the Pexels video's per-second labels are: "
    f"{_sequence(pexels['seconds'], 'label')}; its most probable emotions "
    "other than neutral: "
    f"{_sequence(pexels['seconds'], 'expressed')}. Joy's prototype is read "
    f"as AU {joy} (AU6, cheekSquint, is never produced), and on this video "
    f"AU12 (mouthSmile) reaches {pexels['unit_max']['12']:.2f}."
  )
