"""Regression: TransferRegressor from scratch and transferred, against classical models.

Two real tasks, both scored with :func:`sktransfer.compare` on rows never trained on:

- scikit-learn's embedded diabetes data (442 rows, 10 features), 5-fold CV: a small MLP
  from scratch against ridge regression, as a sanity check of the regressor;
- a virtual gas sensor: predict sensor 1's steady-state response (log of its resistance
  change, feature 1 of 128) from the 15 other sensors' 120 features, as one would to
  replace a failed sensor. A source model is pretrained on gas batches 1-3; for each
  later, drifted batch (4, 5, 6) a model learns from 20% of its rows (5 repeats) and is
  scored on the other 80%. Scratch, fine-tuning, feature extraction, the source model
  alone (no target labels) and standardised ridge regression are compared.

Run: ``python benchmarks/bench_regression.py [--repeats 5]``; writes
``benchmarks/results/regression.json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write
from sklearn.datasets import load_diabetes
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, ShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import TransferRegressor, compare
from sktransfer.datasets import load_gas_drift

MLP = {"max_epochs": 40, "lr": 1e-3, "device": "cpu"}


def ridge():
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


def summary(result) -> dict:
    frame = result.scores.groupby("model")[result.metrics].agg(["mean", "std"])
    return {model: {f"{m}_{stat}": float(frame.loc[model, (m, stat)])
                    for m in result.metrics for stat in ("mean", "std")}
            for model in frame.index}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()

    X, y = load_diabetes(return_X_y=True)
    diabetes = compare(
        {"mlp-scratch": TransferRegressor(backbone_kwargs={"hidden": (32,)}, max_epochs=30,
                                          lr=3e-3, random_state=0, device="cpu"),
         "ridge": ridge()},
        X, y, cv=KFold(5, shuffle=True, random_state=0), progress=False,
        experiment="diabetes",
    )

    gas = load_gas_drift()
    inputs, response = gas.data[:, 8:], np.log(np.abs(gas.data[:, 0]) + 1.0)
    source = gas.batch <= 3
    pretrained = TransferRegressor(random_state=0, **MLP).fit(inputs[source], response[source])
    backbone = pretrained.export_backbone()
    per_batch = {}
    for batch in (4, 5, 6):
        rows = gas.batch == batch
        Xb, yb = inputs[rows], response[rows]
        splits = list(ShuffleSplit(args.repeats, train_size=0.2, random_state=batch)
                      .split(Xb))
        result = compare(
            {"mlp-scratch": TransferRegressor(random_state=0, **MLP),
             "mlp-fine-tune": TransferRegressor(backbone, random_state=0, **MLP),
             "mlp-feature-extraction": TransferRegressor(
                 backbone, freeze="backbone", random_state=0, **{**MLP, "lr": 1e-2}),
             "mlp-source-only": FrozenEstimator(pretrained),
             "ridge": ridge()},
            Xb, yb, cv=splits, progress=False, target=f"batch {batch}",
            experiment="virtual gas sensor",
        )
        per_batch[f"batch {batch}"] = summary(result)
        print(result.table.to_string(index=False))
    payload = {
        "diabetes_5fold": summary(diabetes),
        "virtual_sensor": {"source_batches": [1, 2, 3], "label_fraction": 0.2,
                           "repeats": args.repeats, "targets": per_batch},
        "seconds": time.perf_counter() - start,
    }
    print(diabetes.table.to_string(index=False))
    write("regression", payload)
    return payload


if __name__ == "__main__":
    main()
