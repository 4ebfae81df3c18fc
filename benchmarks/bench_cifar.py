"""CIFAR-10 A/B transfer with the `sktransfer compare cifar` defaults.

Task A (8 classes, all but airplane and horse) trains the residual ``cnn`` on 36,000
images and is scored on 4,000 held-out A images; task B (airplane vs horse, 100 labelled
images, 5 draws) is scored on 2,000 B images that neither task trained on (held-out
training images here: the test split is kept aside for acceptance).

The A network's fit time is recorded as wall-clock and as process CPU time: on a shared
machine the wall clock measures the neighbours, while the CPU time of a one-thread run is
what it takes on an idle core. Writes ``benchmarks/results/cifar.json``.

Usage::

    python benchmarks/bench_cifar.py [--data-home ../shared/data] [--threads 1]
        [--reuse-a PATH]   # B only, with the A network a previous run saved at PATH
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's sktransfer
from _common import RESULTS, write  # noqa: E402

from sktransfer.experiments import run_cifar  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
A_CHECKPOINT = RESULTS / "cifar_a_backbone.pt"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse-a", type=Path, default=None,
                        help="A checkpoint of an earlier run: train B only")
    parser.add_argument("--out", default="cifar")
    parser.add_argument("--seed", type=int, default=0,
                        help="run_cifar's seed: task A's training and B's draws and models")
    parser.add_argument("--a-epochs", type=int, default=None,
                        help="task A epochs (default: run_cifar's)")
    args = parser.parse_args(argv)
    if args.reuse_a is not None and args.a_epochs is not None:
        parser.error("--a-epochs trains task A; with --reuse-a, A is not trained")

    RESULTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    start = time.perf_counter()
    result = run_cifar(
        args.data_home, threads=args.threads, progress=True, seed=args.seed,
        **({} if args.a_epochs is None else {"a_epochs": args.a_epochs}),
        a_backbone=args.reuse_a, a_checkpoint=None if args.reuse_a else A_CHECKPOINT,
    )
    elapsed = time.perf_counter() - start
    table = result.table
    rows = {
        row["model"]: {
            "strategy": row["strategy"],
            "balanced_accuracy_mean": float(row["balanced_accuracy_mean"]),
            "balanced_accuracy_std": float(row["balanced_accuracy_std"]),
            "fit_seconds_mean": float(row.get("fit_time_s_mean", float("nan"))),
        }
        for _, row in table.iterrows()
    }
    transferred = {k: v for k, v in rows.items() if v["strategy"] != "scratch"}
    best = max(transferred, key=lambda k: transferred[k]["balanced_accuracy_mean"])
    scratch = rows.get("cnn-scratch", {}).get("balanced_accuracy_mean")
    settings = json.loads(json.dumps(result.settings, default=str))
    a_model = settings.get("a_model")
    previous = RESULTS / f"{args.out}.json"
    if args.reuse_a is not None and previous.is_file():
        # B rerun alone: the A network and its numbers come from the run that saved it
        a_model = {**json.loads(previous.read_text()).get("a_model", {}),
                   "source": f"trained by the earlier run that saved {args.reuse_a.name}"}
    write(args.out, {
        "command": f"run_cifar(defaults, threads={args.threads})"
        + (f" reusing the task A network {args.reuse_a.name}" if args.reuse_a else ""),
        "a_model": a_model,
        "b": rows,
        "best_transferred": best,
        "best_minus_scratch": None if scratch is None
        else transferred[best]["balanced_accuracy_mean"] - scratch,
        "total_seconds": elapsed,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "torch_threads": args.threads,
        "settings": settings,
        "table_columns": list(table.columns),
    })
    print(table.to_string())


if __name__ == "__main__":
    main()
