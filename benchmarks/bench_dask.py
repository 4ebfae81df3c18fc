"""Frozen-backbone GridSearchCV on a Dask LocalCluster: how many rows get embedded.

The same search (an MLP pretrained on gas batches 1-3, frozen, heads tried on batch 4 over
a small grid, 5 folds) three ways, in one process:

- locally (no cluster): the reference, each row embedded once;
- on a ``--workers``-process LocalCluster under ``joblib.parallel_backend("dask")`` with the
  cluster sharing turned off (``SKTRANSFER_DASK_CACHE=0``: the behaviour before it);
- the same with sharing on (the default).

"Embedded" counts the rows each process computed with the backbone (feature-cache misses,
summed over the workers and the client). Goal: the cluster embeds no more rows than local.

    python benchmarks/bench_dask.py [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
from _common import write
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier
from sktransfer._cluster import clear_cluster_features
from sktransfer.cache import clear_cache, get_cache
from sktransfer.datasets import load_gas_drift


def _misses():
    from sktransfer.cache import get_cache

    return get_cache().misses


def _set_sharing(on: bool):
    if on:
        os.environ.pop("SKTRANSFER_DASK_CACHE", None)
    else:
        os.environ["SKTRANSFER_DASK_CACHE"] = "0"


def search(src, X, y):
    clf = TransferClassifier(src, freeze="backbone", max_epochs=10, validation_fraction=None,
                             random_state=0)
    grid = {"lr": [1e-3, 3e-3, 1e-2], "head": ["linear", (32,)]}
    return GridSearchCV(clf, grid, cv=5).fit(X, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    import distributed

    gas = load_gas_drift()
    source, target = gas.batch <= 3, gas.batch == 4
    src = TransferClassifier("mlp", max_epochs=20, random_state=0).fit(
        gas.data[source], gas.target[source]).export_backbone()
    X, y = gas.data[target], gas.target[target]

    runs = {}
    _set_sharing(False)
    clear_cache()
    start = time.perf_counter()
    local = search(src, X, y)
    runs["local"] = {"embedded": get_cache().misses, "seconds": time.perf_counter() - start,
                     "best_score": local.best_score_}
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        for name, sharing in (("dask_unshared", False), ("dask_shared", True)):
            client.run(_set_sharing, sharing)
            _set_sharing(sharing)
            client.run(clear_cache)
            clear_cluster_features(client)
            clear_cache()
            start = time.perf_counter()
            with parallel_backend("dask"):
                found = search(src, X, y)
            seconds = time.perf_counter() - start
            per_worker = client.run(_misses)
            runs[name] = {"embedded": sum(per_worker.values()) + get_cache().misses,
                          "embedded_per_worker": list(per_worker.values()),
                          "embedded_in_client_refit": get_cache().misses,
                          "seconds": seconds, "best_score": found.best_score_}
            print(name, runs[name])
    _set_sharing(True)
    ratios = {k: runs[k]["embedded"] / runs["local"]["embedded"]
              for k in ("dask_unshared", "dask_shared")}
    result = {
        "data": f"gas batch 4, {len(y)} rows; MLP pretrained on batches 1-3, frozen",
        "workers": args.workers, "grid_candidates": 6, "folds": 5, "runs": runs,
        "embedded_over_local": ratios,
        "same_scores": bool(np.isclose(runs["local"]["best_score"],
                                       runs["dask_shared"]["best_score"])),
        "goal": "no more embeddings on the cluster than locally",
        "met": bool(ratios["dask_shared"] <= 1.0),
    }
    print(f"embedded / local: unshared {ratios['dask_unshared']:.2f}, "
          f"shared {ratios['dask_shared']:.2f}")
    write(f"dask_{args.workers}_workers", result)
    return result


if __name__ == "__main__":
    main()
