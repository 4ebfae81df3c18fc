"""A frozen-backbone search on a Dask cluster embeds each row no more often than locally."""

from __future__ import annotations

import logging

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from joblib import parallel_backend  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from sktransfer import TransferClassifier  # noqa: E402
from sktransfer._cluster import clear_cluster_features  # noqa: E402
from sktransfer.cache import clear_cache, get_cache  # noqa: E402


def _misses():
    from sktransfer.cache import get_cache

    return get_cache().misses


def _search(backbone, X, y):
    clf = TransferClassifier(backbone, freeze="backbone", max_epochs=2, batch_size=32,
                             validation_fraction=None, random_state=0)
    return GridSearchCV(clf, {"lr": [1e-3, 1e-2], "head": ["linear", (8,)]}, cv=3).fit(X, y)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_search_on_two_workers_embeds_each_row_once(client, blobs):
    X, y = blobs
    src = TransferClassifier("mlp", max_epochs=2, random_state=0).fit(X, y).export_backbone()
    clear_cluster_features(client)
    client.run(clear_cache)
    clear_cache()
    with parallel_backend("dask"):
        on_cluster = _search(src, X, y)
    embedded = sum(client.run(_misses).values()) + get_cache().misses
    per_worker = client.run(_misses)

    clear_cluster_features(client)
    clear_cache()
    import os

    os.environ["SKTRANSFER_DASK_CACHE"] = "0"  # the same search with no client in play
    try:
        local = _search(src, X, y)
    finally:
        del os.environ["SKTRANSFER_DASK_CACHE"]
    assert get_cache().misses == len(X)  # locally: every row once
    assert embedded <= get_cache().misses, per_worker
    assert all(n > 0 for n in per_worker.values())  # both workers did work
    np.testing.assert_allclose(on_cluster.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"])
