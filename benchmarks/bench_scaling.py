"""Benchmark 4: how fit time grows with the number of rows (gas data, MLP, CPU).

The embedded gas data tiled to 1x, 2x and 4x its rows; fixed epochs and batch size, so the
work per epoch is proportional to the rows and the time should be too.

    python benchmarks/bench_scaling.py [--epochs 5]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import timed, write

from sktransfer import TransferClassifier
from sktransfer.datasets import load_gas_drift


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--base-rows", type=int, default=4000)
    args = parser.parse_args(argv)
    X, y = load_gas_drift(return_X_y=True)
    rng = np.random.RandomState(0)
    rows = {}
    TransferClassifier(max_epochs=1, validation_fraction=None).fit(X[:300], y[:300])  # warm-up
    for factor in (1, 2, 4):
        idx = rng.choice(len(X), args.base_rows * factor, replace=True)
        clf = TransferClassifier(max_epochs=args.epochs, batch_size=128,
                                 validation_fraction=None, random_state=0)
        _, seconds = timed(clf.fit, X[idx], y[idx])
        rows[f"{factor}x"] = {"rows": len(idx), "fit_seconds": seconds}
        print(f"{factor}x ({len(idx)} rows): {seconds:.2f}s")
    base = rows["1x"]["fit_seconds"]
    for r in rows.values():
        r["relative_time"] = r["fit_seconds"] / base
    write("scaling", {"epochs": args.epochs, "batch_size": 128, "results": rows})
    return rows


if __name__ == "__main__":
    main()
