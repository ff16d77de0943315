#!/usr/bin/env bash
# How long `make demo` takes from a fresh clone with no pip cache, phase by phase.
#
#     bash benchmarks/demo_time.sh
#
# Clones this checkout's HEAD into a temporary folder, then times `make install`,
# train.py (building the embedded dataset, then its stages: timings.json) and eval.py
# (with its report, then again without it), each with an empty pip cache and TFDS data
# folder of its own. Writes benchmarks/results/demo_time.{json,md}.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
cd "$work/clone"
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
import json, os, pathlib, platform, subprocess, sys
t0, t1, t2, t3, t4 = map(float, sys.argv[1:6])
repo = pathlib.Path(sys.argv[6])
timings = json.loads(pathlib.Path("workdir/demo/timings.json").read_text())
stages = {k: v["total_s"] for k, v in timings.items() if isinstance(v, dict) and "total_s" in v}
metrics = json.loads(pathlib.Path("workdir/demo/eval/metrics.json").read_text())["splits"]
results = {
  "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
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
lines = [
  "# `make demo` from a fresh clone, phase by phase",
  "",
  f"Commit {results['commit']}, {results['machine']}, empty pip cache and TFDS folder "
  "(`benchmarks/demo_time.sh`). Seconds.",
  "",
  "| install | build + setup | " + " | ".join(f"{k} stage" for k in stages)
  + " | eval (with report; without) | make demo | validation / test accuracy |",
  "|---|---|" + "---|" * len(stages) + "---|---|---|",
  f"| {results['install_s']:.0f} | {results['build_and_setup_s']:.0f} | "
  + " | ".join(f"{v:.0f}" for v in stages.values())
  + f" | {results['eval_s']:.0f}; {results['eval_without_report_s']:.0f} | "
  f"{results['make_demo_s']:.0f} | {results['validation_accuracy']:.3f} / "
  f"{results['test_accuracy']:.3f} |",
]
out = repo / "benchmarks" / "results"
(out / "demo_time.json").write_text(json.dumps(results, indent=2) + "\n")
(out / "demo_time.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
