"""Benchmark: gas transfer from fewer, older source batches, and to large target batches.

``bench_gas.py`` pretrains on batches 1-3. The acceptance batches (7-10) are further from
any source and some are large (thousands of rows, so 10% labels is hundreds), where a
model trained from scratch is strong. This stands in for that regime with the batches we
have: sources 1, 1-2 or 1-3, targets 3 and 6 (1,586 and 2,300 rows) beside the small
targets 4 and 5 as a check. The same splits, target recipe and preprocessing as
:func:`~sktransfer.experiments.run_gas` (``seed=0``, 10% labels, 5 repeats, per-batch
standardised inputs, accuracy), and three candidate remedies for negative transfer:

- ``fine-tune-lr1e-3``: a larger target rate, to move further from the source weights;
- ``vote-fine-tune+scratch``: the soft vote of the fine-tune and the scratch MLP;
- ``stack-raw+embedding``: an MLP trained from scratch on the inputs beside the frozen
  source embedding (standardised on the labelled rows), the lateral connection of
  progressive networks (Rusu et al. 2016) in its simplest form.

Writes ``benchmarks/results/gas_sources.json``.

    python benchmarks/bench_gas_sources.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write
from sklearn.ensemble import VotingClassifier
from sklearn.metrics import accuracy_score

from sktransfer import TransferClassifier
from sktransfer.baselines import make_baseline
from sktransfer.datasets import load_gas_drift, split_gas_batches
from sktransfer.experiments._common import few_label_splits
from sktransfer.experiments.gas import GAS_FINE_TUNE, pretrain_source
from sktransfer.preprocessing import preprocess_gas

#: (source batches, target batch)
CASES = (((1,), 6), ((1, 2), 6), ((1, 2, 3), 6), ((1,), 3), ((1, 2), 3), ((1, 2, 3), 4),
         ((1, 2, 3), 5))
HIDDEN = (256, 128)
SEED = 0


def _mlp(backbone, lr):
    params = {**GAS_FINE_TUNE, "lr": lr, "backbone_kwargs": {"hidden": HIDDEN},
              "random_state": SEED, "device": "cpu", "n_threads": 1}
    return TransferClassifier(backbone, freeze="none", **params)


class _StackRawEmbedding:
    """An MLP from scratch on ``[inputs, standardised frozen source embedding]``."""

    def __init__(self, source, lr):
        self.source, self.lr = source, lr

    def _inputs(self, X):
        emb = self.source.transform(X)
        return np.hstack([X, (emb - self.mean_) / self.scale_])

    def fit(self, X, y):
        emb = self.source.transform(X)
        self.mean_, self.scale_ = emb.mean(0), emb.std(0) + 1e-6
        self.mlp_ = _mlp("mlp", self.lr).fit(self._inputs(X), y)
        return self

    def predict(self, X):
        return self.mlp_.predict(self._inputs(X))


def models(source, lr):
    backbone = source.export_backbone()
    return {
        "scratch": lambda: _mlp("mlp", lr),
        "fine-tune": lambda: _mlp(backbone, lr),
        "fine-tune-lr1e-3": lambda: _mlp(backbone, 1e-3),
        "logistic_regression": lambda: make_baseline("logistic_regression",
                                                     random_state=SEED),
        "vote-fine-tune+scratch": lambda: VotingClassifier(
            [("fine-tune", _mlp(backbone, lr)), ("scratch", _mlp("mlp", lr))],
            voting="soft"),
        "stack-raw+embedding": lambda: _StackRawEmbedding(source, lr),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    torch.set_num_threads(1)
    gas = load_gas_drift()
    X = preprocess_gas(gas.data, gas.batch, "batch")
    lr = GAS_FINE_TUNE["lr"]
    results, t0 = {}, time.perf_counter()
    for sources, target in CASES:
        X_src, y_src, targets = split_gas_batches(X, gas.target, gas.batch, sources, [target])
        source = pretrain_source(X_src, y_src, seed=SEED)
        X_t, y_t = targets[target]
        splits = few_label_splits(y_t, 0.1, 5, SEED + target, where=f"batch {target}")
        case = f"batches {'-'.join(map(str, sources))} -> {target}"
        results[case] = {"n_labelled": len(splits[0][0]), "n_scored": len(splits[0][1])}
        for name, make in models(source, lr).items():
            t = time.perf_counter()
            scores = [accuracy_score(y_t[te], make().fit(X_t[tr], y_t[tr]).predict(X_t[te]))
                      for tr, te in splits]
            results[case][name] = {"mean": round(float(np.mean(scores)), 4),
                                   "std": round(float(np.std(scores)), 4),
                                   "seconds": round(time.perf_counter() - t, 1)}
            print(f"{case:20s} {name:24s} {np.mean(scores):.4f} +- {np.std(scores):.4f}",
                  flush=True)
    write("gas_sources", {
        "task": "gas multiclass, 10% labels, 5 repeats, per-batch standardised inputs, "
                "the run_gas splits and recipe (seed 0)",
        "metric": "accuracy", "threads": 1, "seconds": round(time.perf_counter() - t0, 1),
        "results": results,
    })


if __name__ == "__main__":
    main()
