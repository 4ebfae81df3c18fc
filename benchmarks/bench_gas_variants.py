"""Benchmark: which adaptation variants transfer across gas-sensor drift (batches 4-6).

Every variant tried for the gas defaults, measured on the same splits as
``benchmarks/bench_gas.py`` (source batches 1-3, per-batch standardised inputs, targets
4, 5, 6 with 10% labels, 5 repeats, the splits of :func:`~sktransfer.experiments.run_gas`
with ``seed=0``), so that the choice of defaults is made across all three targets and on
record. A variant is a source-pretraining recipe (``--sources``) x a target model
(``--variants``); the scratch MLP and the tuned logistic regression are recorded on the
same splits as references. Results accumulate in ``results/gas_variants.json`` (each run
adds or replaces its own entries).

    python benchmarks/bench_gas_variants.py --sources base --variants fine-tune fe-logistic
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import numpy as np
import torch
from _common import RESULTS, write
from sklearn.ensemble import VotingClassifier
from sklearn.pipeline import make_union
from sklearn.preprocessing import FunctionTransformer

from sktransfer import PretrainedEncoder, TransferClassifier
from sktransfer.baselines import make_baseline
from sktransfer.datasets import load_gas_drift
from sktransfer.experiments._common import few_label_splits
from sktransfer.experiments.gas import GAS_FINE_TUNE
from sktransfer.freeze import GradualUnfreeze
from sktransfer.preprocessing import PREPROCESSING, preprocess_gas

TARGETS = (4, 5, 6)
HIDDEN = (256, 128)

#: Source pretraining recipes: keyword arguments of the source TransferClassifier.
SOURCES = {
    "base": {},  # pretrain_source's defaults: 40 epochs, dropout 0.1, no weight decay
    "dropout0.3": {"backbone_kwargs": {"hidden": HIDDEN, "dropout": 0.3}},
    "mixup0.4": {"mixup": 0.4},
    "wd1e-3-80ep": {"weight_decay": 1e-3, "max_epochs": 80},
    "dropout0.3-mixup0.4": {"backbone_kwargs": {"hidden": HIDDEN, "dropout": 0.3},
                            "mixup": 0.4},
}


def _net(backbone, **kw):
    params = {**GAS_FINE_TUNE, "random_state": 0, "backbone_kwargs": {"hidden": HIDDEN}}
    params.update(kw)
    return TransferClassifier(backbone, **params)


#: Extra source networks of the same recipe with seeds 1, 2, ... (for the ensembles and the
#: seed spread), filled by :func:`main` when a variant asks for them.
_MORE_SOURCES: dict[int, object] = {}


def _source_backbone(bb, k: int):
    return bb if k == 0 else _MORE_SOURCES[k]


def _ensemble(bb, k: int, sources: bool, **kw):
    """Deep ensemble (Lakshminarayanan et al. 2017): soft vote of ``k`` fine-tunes, seeds
    0..k-1 of the target training, each from source seed 0 (``sources=False``) or from the
    source network of the same seed (``sources=True``)."""
    return VotingClassifier(
        [(f"m{i}", _net(_source_backbone(bb, i) if sources else bb, random_state=i, **kw))
         for i in range(k)], voting="soft")


def _seeded(bb, k: int, sources: bool):
    return _net(_source_backbone(bb, k) if sources else bb, random_state=k)


def _joint(bb, then_fine_tune: bool):
    """Joint source + target training: the source recipe on the source rows plus the
    labelled target rows, the target rows weighted so both parts weigh the same."""
    return _Joint(then_fine_tune)


class _Joint:
    def __init__(self, then_fine_tune):
        self.then_fine_tune = then_fine_tune

    def fit(self, X, y):
        Xs, ys = _SOURCE_ROWS
        w = np.concatenate([np.ones(len(ys)), np.full(len(y), len(ys) / len(y))])
        params = {"backbone_kwargs": {"hidden": HIDDEN, "dropout": 0.3}, "max_epochs": 40,
                  "lr": 1e-3, "batch_size": 64, "random_state": 0}
        self.model_ = TransferClassifier("mlp", **params).fit(
            np.vstack([Xs, X]), np.concatenate([ys, y]), sample_weight=w)
        if self.then_fine_tune:
            self.model_ = _net(self.model_.export_backbone()).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)


class _SelfTrained:
    """Self-training (pseudo-labels): fine-tune, label the unlabelled target rows predicted
    with probability >= 0.9, fine-tune afresh on both. Transductive: ``predict`` must get
    the unlabelled rows, as here."""

    def __init__(self, bb):
        self.bb = bb

    def fit(self, X, y):
        self.X_, self.y_ = X, y
        return self

    def predict(self, X):
        first = _net(self.bb).fit(self.X_, self.y_)
        proba = first.predict_proba(X)
        sure = proba.max(axis=1) >= 0.9
        second = _net(self.bb).fit(np.vstack([self.X_, X[sure]]), np.concatenate(
            [self.y_, first.classes_[proba.argmax(axis=1)][sure]]))
        return second.predict(X)


def _first_layers(k: int):
    """Surgical fine-tuning (Lee et al. 2023): only the first ``k`` linear layers of the
    backbone and the head train (input-level shifts are best met at the input layers)."""
    from sktransfer.freeze import FreezePolicy

    class FirstLayers(FreezePolicy):
        def __init__(self, k=1):
            self.k = k

        def apply(self, network):
            linear = [n for n, m in network.backbone.named_modules()
                      if isinstance(m, torch.nn.Linear)][:self.k]
            for name, p in network.named_parameters():
                p.requires_grad_(name.startswith("head.") or any(
                    name.startswith(f"backbone.{n}.") for n in linear))
            network.set_trainable([], True)

    return FirstLayers(k)


_SOURCE_ROWS: tuple = ()


def _encoder(backbone):
    return PretrainedEncoder(backbone, random_state=0)


#: Target models: name -> factory(backbone) of an unfitted estimator.
VARIANTS = {
    "scratch": lambda bb: _net("mlp"),
    "scratch-dropout0.3": lambda bb: _net("mlp", backbone_kwargs={"hidden": HIDDEN,
                                                                  "dropout": 0.3}),
    "logistic_regression": lambda bb: make_baseline("logistic_regression", random_state=0),
    "fine-tune": lambda bb: _net(bb),
    "fine-tune-l2sp0.01": lambda bb: _net(bb, l2sp=0.01),
    "fine-tune-l2sp0.1": lambda bb: _net(bb, l2sp=0.1),
    "fine-tune-l2sp1": lambda bb: _net(bb, l2sp=1.0),
    "fine-tune-ls0.1": lambda bb: _net(bb, label_smoothing=0.1),
    "fine-tune-mixup0.4": lambda bb: _net(bb, mixup=0.4),
    "fine-tune-300ep": lambda bb: _net(bb, max_epochs=300),
    "gradual": lambda bb: _net(bb, freeze=GradualUnfreeze(3)),
    "gradual-lr1e-3": lambda bb: _net(bb, freeze=GradualUnfreeze(3), lr=1e-3),
    "last-2": lambda bb: _net(bb, freeze="last:2"),
    "feature-extraction": lambda bb: _net(bb, freeze="backbone", lr=1e-2),
    "fe-logistic": lambda bb: make_baseline("logistic_regression", random_state=0,
                                            preprocessing=_encoder(bb)),
    "fe+raw-logistic": lambda bb: make_baseline(
        "logistic_regression", random_state=0,
        preprocessing=make_union(_encoder(bb), FunctionTransformer())),
    "fine-tune-lr1e-3": lambda bb: _net(bb, lr=1e-3),
    "fine-tune-constant-lr": lambda bb: _net(bb, lr_schedule="constant", warmup=0.0),
    "fe-svm": lambda bb: make_baseline("svm_rbf", random_state=0, preprocessing=_encoder(bb)),
    # the seed spread of plain fine-tuning: target-training seeds 1-4 from source seed 0,
    # and source seed k with target seed k
    **{f"fine-tune-seed{k}": partial(_seeded, k=k, sources=False) for k in range(1, 5)},
    **{f"fine-tune-source{k}": partial(_seeded, k=k, sources=True) for k in range(1, 5)},
    "ensemble5-seeds": lambda bb: _ensemble(bb, 5, sources=False),
    "ensemble5-sources": lambda bb: _ensemble(bb, 5, sources=True),
    "joint": lambda bb: _joint(bb, then_fine_tune=False),
    "joint-then-fine-tune": lambda bb: _joint(bb, then_fine_tune=True),
    "self-training": lambda bb: _SelfTrained(bb),
    "first-1": lambda bb: _net(bb, freeze=_first_layers(1)),
    "fine-tune-50ep": lambda bb: _net(bb, max_epochs=50),
    # LP-FT as Kumar et al. (ICLR 2022) fit it: the probe solved exactly (L-BFGS logistic
    # regression on the frozen source features), then all layers fine-tuned
    "gradual-lbfgs": lambda bb: _net(bb, freeze=GradualUnfreeze(3), head_solver="lbfgs"),
    "feature-extraction-lbfgs": lambda bb: _net(bb, freeze="backbone", head_solver="lbfgs"),
    # WiSE-FT (Wortsman et al., CVPR 2022): LP-FT's probe and fine-tuned weights averaged
    "gradual-wise0.5": lambda bb: _net(bb, freeze=GradualUnfreeze(3), weight_interpolation=0.5),
    "gradual-lbfgs-wise0.5": lambda bb: _net(bb, freeze=GradualUnfreeze(3), head_solver="lbfgs",
                                             weight_interpolation=0.5),
}

#: Variants that need source networks of seeds 1-4 besides seed 0.
_NEEDS_MORE_SOURCES = {"ensemble5-sources", *(f"fine-tune-source{k}" for k in range(1, 5))}


def pretrain(X, y, recipe: dict, seed: int = 0) -> TransferClassifier:
    params = {"backbone_kwargs": {"hidden": HIDDEN}, "max_epochs": 40, "lr": 1e-3,
              "batch_size": 64, "validation_fraction": 0.1, "random_state": seed}
    params.update(recipe)
    return TransferClassifier("mlp", **params).fit(X, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=["base"], choices=list(SOURCES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        choices=list(VARIANTS))
    parser.add_argument("--targets", nargs="+", type=int, default=list(TARGETS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="gas_variants")
    parser.add_argument("--preprocessing", default="batch", choices=PREPROCESSING,
                        help="input transform of every batch; results of another than "
                             "'batch' are stored under '<source>@<preprocessing>'")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = RESULTS / f"{args.out}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    results = old.get("results", {})
    gas = load_gas_drift()
    X = preprocess_gas(gas.data, gas.batch, args.preprocessing).astype(np.float32)
    src = gas.batch <= 3
    global _SOURCE_ROWS
    _SOURCE_ROWS = (X[src], gas.target[src])
    for sname in args.sources:
        key = sname if args.preprocessing == "batch" else f"{sname}@{args.preprocessing}"
        start = time.perf_counter()
        source = pretrain(X[src], gas.target[src], SOURCES[sname])
        backbone = source.export_backbone()
        _MORE_SOURCES.clear()
        if _NEEDS_MORE_SOURCES & set(args.variants):
            for k in range(1, 5):
                _MORE_SOURCES[k] = pretrain(X[src], gas.target[src], SOURCES[sname],
                                            seed=k).export_backbone()
        print(f"source {sname}: {time.perf_counter() - start:.0f}s "
              f"valid_acc {float(source.history_.iloc[-1]['valid_acc']):.4f}", flush=True)
        for number in args.targets:
            X_t, y_t = X[gas.batch == number], gas.target[gas.batch == number]
            splits = few_label_splits(y_t, 0.1, args.repeats, number)
            source_only = float(np.mean([(source.predict(X_t[te]) == y_t[te]).mean()
                                         for _, te in splits]))
            results.setdefault(key, {}).setdefault(f"batch {number}", {})[
                "source-only"] = {"mean": round(source_only, 4)}
            for vname in args.variants:
                start = time.perf_counter()
                scores = []
                for train, test in splits:
                    model = VARIANTS[vname](backbone).fit(X_t[train], y_t[train])
                    scores.append(float((model.predict(X_t[test]) == y_t[test]).mean()))
                rec = {"mean": round(float(np.mean(scores)), 4),
                       "std": round(float(np.std(scores)), 4),
                       "scores": [round(s, 4) for s in scores],
                       "seconds": round(time.perf_counter() - start, 1)}
                results[key][f"batch {number}"][vname] = rec
                print(f"{key:22s} batch {number} {vname:22s} {rec['mean']:.4f} "
                      f"+- {rec['std']:.4f} ({rec['seconds']}s)", flush=True)
            write(args.out, {"task": "gas multiclass, batches 1-3 -> 4, 5, 6, 10% labels, "
                                     "per-batch standardised inputs (after the transform "
                                     "named after '@' in a result key)",
                             "metric": "accuracy", "repeats": args.repeats,
                             "sources": {k: repr(v) for k, v in SOURCES.items()},
                             "results": results})


if __name__ == "__main__":
    main()
