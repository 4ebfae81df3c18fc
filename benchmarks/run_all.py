"""Run every benchmark and write results/SUMMARY.md from their JSON files.

    python benchmarks/run_all.py          (make bench)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_frozen_gridsearch  # noqa: E402
import bench_scaling  # noqa: E402
import bench_throughput  # noqa: E402
import bench_training_loop  # noqa: E402
from _common import RESULTS  # noqa: E402


def summary() -> str:
    def load(name):
        path = RESULTS / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    lines = ["# Benchmark results", "",
             "Made by `python benchmarks/run_all.py` (`make bench`).", ""]
    g = load("frozen_gridsearch")
    if g:
        lines += [
            "## 1. Frozen-backbone GridSearchCV vs skorch + Freezer",
            f"{g['data']}; EfficientNet-Lite0 (ImageNet), grid {g['grid']}, "
            f"{g['n_folds']} folds, {g['epochs']} epochs, on {g['machine']['cpu_count']} CPUs "
            f"({g['machine']['cuda'] or 'no GPU'}).", "",
            "| | seconds | best CV accuracy | mean CV accuracy |", "|---|---|---|---|",
            *[f"| {k} | {g['seconds'][k]:.1f} | {g['best_cv_accuracy'][k]:.3f} | "
              f"{g['mean_cv_accuracy'][k]:.3f} |" for k in ("sktransfer", "skorch_freezer")],
            "", f"Speed-up: **{g['speedup']:.1f}x** (goal >= 10x).", "",
        ]
    t = load("training_loop")
    if t:
        lines += [
            "## 2. Estimator vs hand-written PyTorch loop (gas, CPU)",
            f"{t['data']}; {t['settings']['epochs']} epochs, batch {t['settings']['batch_size']}"
            f", median of {t['settings']['repeats']} epoch-interleaved pairs in "
            f"{t['settings']['processes']} processes.", "",
            f"Hand loop {t['median_seconds']['hand_loop']:.2f}s, estimator "
            f"{t['median_seconds']['estimator']:.2f}s: ratio **"
            f"{t['ratio_estimator_over_hand_loop']:.3f}** (goal <= 1.05).", "",
        ]
    p = load("throughput")
    if p:
        lines += [
            f"## 3. Throughput on {p['device']} (images/s)",
            f"{p['data']}; small CNN, batch {p['batch_size']}, mixed precision "
            f"{p['mixed_precision']}.", "",
            "| | train | inference |", "|---|---|---|",
            *[f"| {k} | {p['train_images_per_s'][k]:.0f} | {p['inference_images_per_s'][k]:.0f} |"
              for k in ("raw_loop", "estimator")], "",
        ]
    s = load("scaling")
    if s:
        lines += ["## 4. Fit time vs rows (gas, MLP, CPU)", "",
                  "| rows | seconds | relative |", "|---|---|---|",
                  *[f"| {r['rows']} | {r['fit_seconds']:.2f} | {r['relative_time']:.2f} |"
                    for r in s["results"].values()], ""]
    return "\n".join(lines)


def main():
    for module in (bench_training_loop, bench_scaling, bench_throughput,
                   bench_frozen_gridsearch):
        print(f"== {module.__name__}")
        module.main([])
    (RESULTS / "SUMMARY.md").write_text(summary())
    print(f"wrote {RESULTS / 'SUMMARY.md'}")


if __name__ == "__main__":
    main()
