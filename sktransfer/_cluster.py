"""Frozen features shared across a Dask cluster, so each row is embedded once cluster-wide.

Under ``joblib.parallel_backend("dask")`` every worker process has its own in-memory
feature cache, so a grid search embedded the same rows once per worker (and once more in
the client for the refit). Measured in ``benchmarks/bench_dask.py``, three ways to share:

- a shared ``cache_dir``: needs a file system every worker mounts: set-up beyond the
  cluster, so it stays an option (it still works, and survives the session);
- embedding everything up front and scattering it: embeds rows no fold asks for, and needs
  a separate step before the search;
- the cluster's own memory (chosen): on a cache miss, a process that talks to a cluster
  takes a cluster-wide :class:`distributed.Lock` for the backbone, reads the embeddings the
  other processes have published, computes only the rows still missing and publishes them
  as one more chunk (kept on a worker, referenced by a published dataset on the scheduler).
  Nothing to configure; rows are embedded no more often than by the same search run
  locally, whatever the number of workers.

It is active wherever :func:`distributed.get_client` finds a client: in a task on a worker,
and in a process that created a ``Client`` (the search's final refit). Set the environment
variable ``SKTRANSFER_DASK_CACHE=0`` to turn it off; :func:`clear_cluster_features` drops
what was published.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

_PREFIX = "sktransfer-features-"


def _client():
    """The Dask client of this process or task, or None (without importing dask)."""
    if "distributed" not in sys.modules or os.environ.get("SKTRANSFER_DASK_CACHE") == "0":
        return None
    from distributed import get_client

    try:
        return get_client()
    except ValueError:  # no worker, no default client
        return None


class SharedFeatures:
    """The embeddings published on a cluster for one backbone key (under its lock)."""

    def __init__(self, client, backbone_key: str):
        self.client = client
        self.name = _PREFIX + backbone_key
        self._chunks = None

    def _futures(self) -> list:
        return list(self.client.get_dataset(self.name, default=None) or [])

    def get(self, sample_keys: list[bytes]) -> dict[int, torch.Tensor]:
        """Positions in ``sample_keys`` -> embedding, for the rows published so far."""
        futures = self._futures()
        self._chunks = futures
        if not futures:
            return {}
        table: dict[bytes, np.ndarray] = {}
        for chunk in self.client.gather(futures):
            table.update(chunk)
        return {i: torch.from_numpy(table[k]) for i, k in enumerate(sample_keys) if k in table}

    def put(self, rows: dict[bytes, torch.Tensor]) -> None:
        """Publish newly computed rows as one more chunk."""
        if not rows:
            return
        chunk = {k: v.numpy() for k, v in rows.items()}
        [future] = self.client.scatter([chunk], direct=False)  # a list: a dict means keys
        futures = (self._chunks if self._chunks is not None else self._futures()) + [future]
        self.client.publish_dataset(futures, name=self.name, override=True)


@contextmanager
def cluster_features(backbone_key: str) -> Iterator[SharedFeatures | None]:
    """Hold the cluster-wide lock of ``backbone_key`` and give its shared features.

    Yields None (and takes no lock) where no Dask client is found.
    """
    client = _client()
    if client is None:
        yield None
        return
    from distributed import Lock

    with Lock(_PREFIX + backbone_key):
        yield SharedFeatures(client, backbone_key)


def clear_cluster_features(client) -> list[str]:
    """Drop every embedding this library published on ``client``'s cluster.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    list of str
        The names of the datasets dropped.
    """
    names = [n for n in client.list_datasets() if str(n).startswith(_PREFIX)]
    for name in names:
        client.unpublish_dataset(name)
    return names
