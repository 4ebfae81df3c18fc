"""Frozen-backbone GridSearchCV on a Dask cluster: embeddings computed, wall time, results.

An MLP backbone trained on gas batch 1, frozen; a grid over the new head (4 candidates x 3
folds, then the refit) on batch 2. The same search runs in this process (joblib's
sequential backend), then under ``joblib.parallel_backend("dask")`` on a ``LocalCluster``
of 2 (and 3) single-threaded worker processes, with the cluster's feature store off
(``SKTRANSFER_CLUSTER_CACHE=0``: each process computes its own features, as before) and
on, after one warm-up search (the first tasks of a fresh worker are slower). Embeddings
are counted in every process (``FeatureCache.misses``), the client's included (the refit
runs there). Each cluster starts once, outside the timings; every process's cache and the
cluster's store are emptied before each search.

    python benchmarks/bench_dask.py [--workers 2 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import joblib
import numpy as np
from _common import timed, write
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sktransfer import TransferClassifier
from sktransfer.cache import clear_cache, clear_cluster_cache, get_cache
from sktransfer.datasets import load_gas_drift

GRID = {"lr": [3e-3, 1e-2], "head": ["linear", (32,)]}


def _set_sharing(on: bool) -> None:
    os.environ["SKTRANSFER_CLUSTER_CACHE"] = "1" if on else "0"


def _counters() -> tuple[int, int]:
    from sktransfer.cache import get_cache

    cache = get_cache()
    return cache.misses, cache.cluster_hits


def _warm_up() -> None:
    import sktransfer.cache  # noqa: F401


def search(estimator, X, y, folds):
    return GridSearchCV(estimator, GRID, cv=folds).fit(X, y)


def summary(result) -> dict:
    return {"best_params": {k: str(v) for k, v in result.best_params_.items()},
            "best_score": float(result.best_score_),
            "mean_test_score": [float(s) for s in result.cv_results_["mean_test_score"]]}


def on_cluster(client, estimator, X, y, folds, sharing: bool) -> dict:
    _set_sharing(sharing)
    client.run(_set_sharing, sharing)
    clear_cache()
    client.run(clear_cache)
    clear_cluster_cache(client)
    with joblib.parallel_backend("dask"):
        result, seconds = timed(search, estimator, X, y, folds)
    workers = client.run(_counters)
    computed = {"client": get_cache().misses, **{f"worker{i}": c[0]
                                                 for i, c in enumerate(workers.values())}}
    fetched = get_cache().cluster_hits + sum(c[1] for c in workers.values())
    return {"sharing": sharing, "seconds": seconds, "embeddings_computed": sum(computed.values()),
            "per_process": computed, "rows_fetched_from_cluster": fetched,
            **summary(result), "_result": result}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    X1, y1 = load_gas_drift(1, return_X_y=True)
    X2, y2 = load_gas_drift(2, return_X_y=True)
    backbone = TransferClassifier(backbone_kwargs={"hidden": (256, 128)}, max_epochs=20,
                                  random_state=0).fit(X1, y1).export_backbone()
    estimator = TransferClassifier(backbone, freeze="backbone", max_epochs=args.epochs,
                                   random_state=0)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X2, y2))

    clear_cache()
    with joblib.parallel_backend("sequential"):
        here, t_here = timed(search, estimator, X2, y2, folds)
    local = {"seconds": t_here, "embeddings_computed": get_cache().misses, **summary(here)}
    print(f"local: {local['embeddings_computed']} embeddings, {t_here:.1f}s, "
          f"best {here.best_params_} {here.best_score_:.4f}")

    runs = {}
    for n in args.workers:
        start = time.perf_counter()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        client.run(_warm_up)
        started = time.perf_counter() - start
        try:
            on_cluster(client, estimator, X2, y2, folds, True)  # warm-up: first tasks
            for sharing in (False, True):
                run = on_cluster(client, estimator, X2, y2, folds, sharing)
                there = run.pop("_result")
                run["same_results_as_local"] = bool(
                    there.best_params_ == here.best_params_
                    and np.allclose(there.cv_results_["mean_test_score"],
                                    here.cv_results_["mean_test_score"], rtol=0, atol=1e-9)
                    and (there.predict(X2) == here.predict(X2)).all())
                run["embeddings_vs_local"] = (run["embeddings_computed"]
                                              / local["embeddings_computed"])
                run["seconds_vs_local"] = run["seconds"] / t_here
                name = f"{n}_workers_{'shared' if sharing else 'per_process'}"
                runs[name] = {"cluster_start_seconds": started, **run}
                print(f"{name}: {run['embeddings_computed']} embeddings "
                      f"({run['embeddings_vs_local']:.2f}x local), {run['seconds']:.1f}s, "
                      f"same results: {run['same_results_as_local']}")
        finally:
            _set_sharing(True)
            clear_cluster_cache(client)
            client.close()
            cluster.close()

    shared = [r for r in runs.values() if r["sharing"]]
    met = all(r["embeddings_computed"] <= local["embeddings_computed"]
              and r["same_results_as_local"] for r in shared)
    result = {
        "data": f"gas drift: backbone trained on batch 1 ({len(y1)} rows), frozen; "
                f"head grid on batch 2 ({len(y2)} rows)",
        "backbone": "mlp hidden=(256, 128)", "grid": GRID, "n_folds": 3,
        "fits": len(GRID["lr"]) * len(GRID["head"]) * 3 + 1, "epochs": args.epochs,
        "local": local, "cluster": runs,
        "goal": "on a LocalCluster no more embeddings than the same search locally, "
                "same results",
        "met": bool(met),
    }
    write("dask", result)
    return result


if __name__ == "__main__":
    main()
