#!/usr/bin/env bash
# How long `make demo` takes from a fresh clone with no pip cache, phase by phase.
#
#     bash benchmarks/demo_time.sh [REF]     # default: HEAD
#
# Clones this checkout at REF into a temporary folder, then times `make install`,
# train.py (building the embedded dataset, then its stages: timings.json) and eval.py
# (with its report, then again without it), each with an empty pip cache and TFDS data
# folder of its own. Adds a row (replacing one of the same commit and date) to
# benchmarks/results/demo_time.{json,md}, so that commits timed on one day compare.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
cd "$work/clone"
git checkout -q "${1:-HEAD}"
export PIP_CACHE_DIR="$work/pip-cache" TFDS_DATA_DIR="$work/tfds"
clock() { date +%s.%N; }
t0=$(clock)
make install > "$work/install.log" 2>&1
t1=$(clock)
.venv/bin/python train.py --config=configs/demo.py --workdir=workdir/demo > "$work/train.log" 2>&1
t2=$(clock)
.venv/bin/python eval.py --checkpoint=workdir/demo > "$work/eval.log" 2>&1
t3=$(clock)
.venv/bin/python eval.py --checkpoint=workdir/demo --noreport --output="$work/eval_noreport" \
  > "$work/eval_noreport.log" 2>&1
t4=$(clock)
.venv/bin/python - "$t0" "$t1" "$t2" "$t3" "$t4" "$repo" <<'EOF'
import datetime, json, os, pathlib, platform, subprocess, sys
t0, t1, t2, t3, t4 = map(float, sys.argv[1:6])
repo = pathlib.Path(sys.argv[6])
timings = json.loads(pathlib.Path("workdir/demo/timings.json").read_text())
stages = {k: v["total_s"] for k, v in timings.items() if isinstance(v, dict) and "total_s" in v}
metrics = json.loads(pathlib.Path("workdir/demo/eval/metrics.json").read_text())["splits"]
results = {
  "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
  "date": datetime.date.today().isoformat(),
  "machine": f"{platform.machine()}, {os.cpu_count()} cores",
  "install_s": t1 - t0,
  "train_py_s": t2 - t1,
  "stages_s": stages,
  "build_and_setup_s": t2 - t1 - sum(stages.values()),
  "eval_s": t3 - t2,
  "eval_without_report_s": t4 - t3,
  "make_demo_s": t3 - t0,
  "validation_accuracy": metrics["validation"]["accuracy"],
  "test_accuracy": metrics["test"]["accuracy"],
}
out = repo / "benchmarks" / "results"
try:
  runs = json.loads((out / "demo_time.json").read_text())["runs"]
except (FileNotFoundError, KeyError, TypeError):
  runs = []
runs = [r for r in runs if (r["commit"], r.get("date")) != (results["commit"], results["date"])]
runs.append(results)
lines = [
  "# `make demo` from a fresh clone, phase by phase",
  "",
  "Empty pip cache and TFDS folder (`bash benchmarks/demo_time.sh [REF]`). Seconds.",
  "",
  "| date | commit | machine | install | build + setup | cnn stage | rnn stage "
  "| eval (with report; without) | make demo | validation / test accuracy |",
  "|---|---|---|---|---|---|---|---|---|---|",
]
for r in runs:
  lines.append(
    f"| {r.get('date', '')} | {r['commit']} | {r['machine']} | {r['install_s']:.0f} | "
    f"{r['build_and_setup_s']:.0f} | {r['stages_s'].get('cnn', 0):.0f} | "
    f"{r['stages_s'].get('rnn', 0):.0f} | {r['eval_s']:.0f}; {r['eval_without_report_s']:.0f} | "
    f"{r['make_demo_s']:.0f} | {r['validation_accuracy']:.3f} / {r['test_accuracy']:.3f} |"
  )
lines += [
  "",
  "Where the time goes, what each change bought, and the demo's 5-seed Table 3: "
  "`demo_time_changes.md`.",
]
(out / "demo_time.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")
(out / "demo_time.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
