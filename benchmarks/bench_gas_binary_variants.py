"""Benchmark: single models and options for gas binary acetaldehyde-vs-rest on batch 4.

The options the binary GridSearchCV of ``bench_gas_binary.py`` could search, each
measured alone on the same five stratified 20% draws of batch 4 (Cohen's kappa on the
other 80%), so the grid is built from what was measured: the freeze policies of the MLP
pretrained on batches 1-3 (in the imbalanced-learn pipeline with random oversampling),
embeddings of that MLP with a tuned logistic regression, the scratch MLP, the classical
baselines, and each of them with a decision threshold tuned by inner CV for kappa
(:class:`~sklearn.model_selection.TunedThresholdClassifierCV`). Writes
``results/gas_binary_variants.json`` (each run adds or replaces its own entries).

    python benchmarks/bench_gas_binary_variants.py [--source base] [--variants ...]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import RESULTS, write
from bench_gas_variants import SOURCES, pretrain
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import make_pipeline
from sklearn.metrics import cohen_kappa_score, make_scorer
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV

from sktransfer import PretrainedEncoder, TransferClassifier
from sktransfer.baselines import make_baseline
from sktransfer.datasets import load_gas_drift, make_gas_binary
from sktransfer.experiments._common import few_label_splits
from sktransfer.experiments.gas import GAS_FINE_TUNE
from sktransfer.preprocessing import preprocess_gas

TARGET, GAS, FRACTION = 4, "acetaldehyde", 0.2
KAPPA = make_scorer(cohen_kappa_score)


def _net(backbone, freeze="none", **kw):
    return make_pipeline(RandomOverSampler(random_state=0), TransferClassifier(
        backbone, freeze=freeze, random_state=0, **{**GAS_FINE_TUNE, **kw}))


VARIANTS = {
    "scratch": lambda bb: _net("mlp"),
    "fine-tune": lambda bb: _net(bb),
    "feature-extraction": lambda bb: _net(bb, "backbone", lr=1e-2),
    "feature-extraction-lr3e-4": lambda bb: _net(bb, "backbone"),
    "last-2": lambda bb: _net(bb, "last:2"),
    "gradual": lambda bb: _net(bb, "gradual"),
    "fe-logistic": lambda bb: make_baseline("logistic_regression", random_state=0,
                                            class_weight="balanced",
                                            preprocessing=PretrainedEncoder(bb)),
    "logistic_regression": lambda bb: make_baseline("logistic_regression", random_state=0,
                                                    class_weight="balanced"),
    "svm_rbf": lambda bb: make_baseline("svm_rbf", random_state=0, class_weight="balanced"),
    "random_forest": lambda bb: make_baseline("random_forest", random_state=0,
                                              class_weight="balanced"),
}


def tuned(model, seed):
    """The model with its decision threshold chosen by inner 3-fold CV for kappa."""
    return TunedThresholdClassifierCV(model, scoring=KAPPA, random_state=seed,
                                      cv=StratifiedKFold(3, shuffle=True, random_state=seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="base", choices=list(SOURCES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threshold", choices=["default", "tuned", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="gas_binary_variants")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = RESULTS / f"{args.out}.json"
    results = json.loads(path.read_text()).get("results", {}) if path.exists() else {}
    gas = load_gas_drift()
    X = preprocess_gas(gas.data, gas.batch, "batch").astype(np.float32)
    src = gas.batch <= 3
    backbone = pretrain(X[src], gas.target[src], SOURCES[args.source]).export_backbone()
    X_t, y_t = X[gas.batch == TARGET], make_gas_binary(gas.target[gas.batch == TARGET], GAS)
    splits = few_label_splits(y_t, FRACTION, args.repeats, TARGET + 100)
    modes = ["default", "tuned"] if args.threshold == "both" else [args.threshold]
    for vname in args.variants:
        for mode in modes:
            start = time.perf_counter()
            scores = []
            for r, (train, test) in enumerate(splits):
                model = VARIANTS[vname](backbone)
                if mode == "tuned":
                    model = tuned(model, r)
                model.fit(X_t[train], y_t[train])
                scores.append(float(cohen_kappa_score(y_t[test], model.predict(X_t[test]))))
            rec = {"mean": round(float(np.mean(scores)), 4),
                   "std": round(float(np.std(scores)), 4),
                   "scores": [round(s, 4) for s in scores],
                   "seconds": round(time.perf_counter() - start, 1)}
            results.setdefault(args.source, {}).setdefault(mode, {})[vname] = rec
            print(f"{args.source} {mode:8s} {vname:26s} kappa {rec['mean']:.4f} "
                  f"+- {rec['std']:.4f} {rec['scores']} ({rec['seconds']}s)", flush=True)
            write(args.out, {"task": f"gas binary {GAS} vs rest, batch {TARGET}, "
                                     f"{FRACTION:.0%} labels, per-batch standardised inputs",
                             "metric": "cohen_kappa", "repeats": args.repeats,
                             "results": results})


if __name__ == "__main__":
    main()
