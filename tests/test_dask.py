"""A frozen-backbone search on a Dask cluster computes each row's features once.

One ``LocalCluster`` of two worker processes serves the whole module (starting one costs
several seconds); each test empties the caches of every process and the cluster's store.
"""

import logging
import os
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier, _cluster
from sktransfer.cache import (
    ClusterCacheWarning,
    FeatureCache,
    clear_cache,
    clear_cluster_cache,
    get_cache,
)

GRID = {"lr": [1e-3, 1e-2], "head": ["linear", (8,)]}


def _import_distributed():
    return pytest.importorskip(
        "distributed", reason="dask[distributed] is not installed: pip install 'sktransfer[dask]'"
    )


@pytest.fixture(scope="module")
def client():
    distributed = _import_distributed()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    client.run(_warm_up)  # the workers import torch and sktransfer once, before any test
    yield client
    client.close()
    cluster.close()


def _warm_up():
    import sktransfer.cache  # noqa: F401


def _worker_misses():
    from sktransfer.cache import get_cache

    return get_cache().misses


def _worker_cluster_hits():
    from sktransfer.cache import get_cache

    return get_cache().cluster_hits


@pytest.fixture
def fresh(client):
    """Every process's cache and the cluster's store empty, before and after the test."""
    def empty():
        clear_cache()
        client.run(clear_cache)
        clear_cluster_cache(client)

    empty()
    yield client
    empty()


@pytest.fixture(scope="module")
def exported(blobs):
    X, y = blobs
    return TransferClassifier(**FAST).fit(X, y).export_backbone()


def test_search_on_two_workers_computes_no_more_features_than_locally(fresh, blobs, exported):
    client = fresh
    X, y = blobs
    search = GridSearchCV(TransferClassifier(exported, freeze="backbone", max_epochs=2,
                                             random_state=0), GRID, cv=3)
    local = joblib.parallel_backend("sequential")
    with local:
        here = search.fit(X, y)
    local_computed = get_cache().misses
    assert local_computed == len(X)

    clear_cache()
    with joblib.parallel_backend("dask"):
        there = GridSearchCV(search.estimator, GRID, cv=3).fit(X, y)
    per_worker = client.run(_worker_misses)
    cluster_computed = sum(per_worker.values()) + get_cache().misses  # + the refit here
    assert cluster_computed <= local_computed
    # rows computed in one process were used in another
    fetched = sum(client.run(_worker_cluster_hits).values()) + get_cache().cluster_hits
    assert fetched > 0
    assert get_cache().misses == 0  # the refit found every row in the cluster

    assert there.best_params_ == here.best_params_
    np.testing.assert_allclose(there.cv_results_["mean_test_score"],
                               here.cv_results_["mean_test_score"], atol=1e-9)
    np.testing.assert_array_equal(there.predict(X), here.predict(X))


def _compute_on_worker(keys, width):
    from sktransfer.cache import get_cache

    rows = get_cache().get_many("k-worker", keys,
                                lambda idx: torch.arange(len(idx) * width, dtype=torch.float32)
                                .reshape(len(idx), width))
    return rows.numpy(), get_cache().misses


def test_rows_computed_on_a_worker_are_fetched_not_recomputed(fresh):
    client = fresh
    keys = [bytes([i]) * 16 for i in range(5)]
    rows, computed = client.submit(_compute_on_worker, keys, 3, pure=False).result()
    assert computed == 5

    def refuse(idx):
        raise AssertionError(f"recomputed {idx}")

    with joblib.parallel_backend("dask"):
        got = FeatureCache().get_many("k-worker", keys[1:4], refuse)
    np.testing.assert_array_equal(got.numpy(), rows[1:4])
    outside = FeatureCache()  # no Dask backend active here: the local path, computing
    np.testing.assert_array_equal(outside.get_many("k-worker", keys[:1],
                                                   lambda idx: torch.ones(len(idx), 3)), 1.0)
    assert outside.misses == 1 and outside.cluster_hits == 0


@pytest.mark.parametrize("bad, problem", [
    (torch.full((2, 3), float("nan")), "non-finite values"),
    (torch.zeros(2, 4), "wrong shape"),
    (torch.zeros(2, 3, dtype=torch.float64), "wrong dtype"),
])
def test_rows_read_from_the_cluster_are_validated(fresh, bad, problem):
    keys = [b"a" * 16, b"b" * 16]
    good = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with joblib.parallel_backend("dask"):
        _cluster.shared_store("k-bad").publish(
            (bad.dtype, tuple(bad.shape[1:])),
            {k: bad[i].contiguous().view(torch.uint8).numpy().tobytes()
             for i, k in enumerate(keys)})
        cache = FeatureCache()
        cache._formats["k-bad"] = (torch.float32, (3,))  # known from an earlier lookup
        with pytest.warns(ClusterCacheWarning, match=problem):
            got = cache.get_many("k-bad", keys, lambda idx: good[idx])
    torch.testing.assert_close(got, good)
    assert cache.misses == 2 and cache.rejected == 2 and cache.cluster_hits == 0


@pytest.mark.filterwarnings("ignore:.*desires key.*but key is unknown")
def test_a_chunk_the_cluster_lost_is_recomputed_not_waited_for(fresh):
    client = fresh
    keys = [b"a" * 16, b"b" * 16]
    with joblib.parallel_backend("dask"):
        FeatureCache().get_many("k-lost", keys, lambda idx: torch.ones(len(idx), 2))
        [name] = client.get_metadata([_cluster.PREFIX, "k-lost"])
        future = client.get_dataset(name)
        client.cancel(future, force=True)  # as when the worker holding it dies
        del future
        cache = FeatureCache()
        got = cache.get_many("k-lost", keys[:1], lambda idx: torch.zeros(len(idx), 2))
        assert cache.misses == 1 and cache.cluster_hits == 0
        torch.testing.assert_close(got, torch.zeros(1, 2))
        assert client.get_metadata([_cluster.PREFIX, "k-lost", name]) is None  # tombstoned
        again = FeatureCache()  # the recomputed row was published in its place
        again.get_many("k-lost", keys[:1], lambda idx: torch.full((len(idx), 2), 5.0))
        assert again.misses == 0 and again.cluster_hits == 1


def test_the_cluster_store_is_used_only_on_dask(fresh):
    assert _cluster.shared_store("k") is None  # a Client exists, but joblib runs locally
    with joblib.parallel_backend("dask"):
        assert _cluster.shared_store("k") is not None
    os.environ["SKTRANSFER_CLUSTER_CACHE"] = "0"
    try:
        with joblib.parallel_backend("dask"):
            assert _cluster.shared_store("k") is None
    finally:
        del os.environ["SKTRANSFER_CLUSTER_CACHE"]


class _BrokenClient:
    scheduler = loop = None

    def __getattr__(self, name):
        raise OSError("scheduler unreachable")


def test_a_failing_cluster_falls_back_to_computing_here(monkeypatch):
    monkeypatch.setattr(_cluster, "_warned", False)
    monkeypatch.setattr(_cluster, "shared_store",
                        lambda key: _cluster.SharedFeatures(_BrokenClient(), key))
    cache = FeatureCache()
    with pytest.warns(ClusterCacheWarning, match="scheduler unreachable"):
        got = cache.get_many("k", [b"x" * 16, b"y" * 16], lambda idx: torch.ones(len(idx), 2))
    torch.testing.assert_close(got, torch.ones(2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        cache.get_many("k", [b"z" * 16], lambda idx: torch.ones(len(idx), 2))
    assert cache.misses == 3


def test_the_local_path_never_imports_dask():
    code = ("import sys, numpy as np\n"
            "from sktransfer import TransferClassifier\n"
            "X, y = np.random.RandomState(0).rand(30, 4), np.arange(30) % 2\n"
            "bb = TransferClassifier(max_epochs=1).fit(X, y).export_backbone()\n"
            "TransferClassifier(bb, freeze='backbone', max_epochs=1).fit(X, y)\n"
            "bad = [m for m in ('dask', 'distributed') if m in sys.modules]\n"
            "assert not bad, bad\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
