"""Frozen features shared by the processes of a Dask cluster.

Why: under ``joblib.parallel_backend("dask")`` every grid candidate and fold runs in some
worker process, each with its own in-memory :class:`~sktransfer.cache.FeatureCache`, and
the final refit runs in the client's process. Without sharing, each of them computes the
features of the rows it sees, so a search on two workers ran the backbone 1.24x as often as
the same search in one process, and more workers meant more copies.

How: :meth:`FeatureCache.get_many <sktransfer.cache.FeatureCache.get_many>` calls
:func:`shared_store` when rows are missing from its own memory and directory. On a Dask
worker (or in the client's process while joblib's active backend is Dask's) it returns a
:class:`SharedFeatures` for the backbone key, which

1. looks the missing rows up in the cluster: an index on the scheduler (its metadata,
   16 bytes per row) says which published chunk holds each row; the chunks themselves are
   scattered into worker memory and kept alive by ``Client.publish_dataset``, so they move
   worker to worker, not through the scheduler;
2. takes a ``distributed.Lock`` named after the backbone key, looks again (another process
   may have just computed them), computes only what is still missing and publishes it as a
   new chunk before releasing the lock. Processes that need the same rows wait for the
   lock and then fetch instead of computing: in a frozen-backbone search they need those
   features before they can train anyway.

Rows read from the cluster are validated like entries read from a cache directory (length,
dtype and shape of the backbone's embeddings, finite values); invalid ones are recomputed.
A chunk lost with its worker is dropped from the index and its rows computed again, once.
Any other failure of the cluster (scheduler gone, lock lost) falls back to computing in this
process with one warning: a cache never makes ``fit`` fail.

Nothing here runs, and ``distributed`` is never imported, in a process that has not
imported it itself. ``SKTRANSFER_CLUSTER_CACHE=0`` in the environment (of the workers and
the client) turns the sharing off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator

import torch

logger = logging.getLogger("sktransfer")

PREFIX = "sktransfer-features"
_KEY_BYTES = 16  # sample digests (sktransfer.cache.sample_digests)
#: Seconds to wait for chunks the scheduler says a worker holds before giving up on them.
GATHER_TIMEOUT = 60.0
_DTYPES = {str(d): d for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}
_warned = False
_warned_lock = threading.Lock()


class ClusterCacheWarning(UserWarning):
    """The Dask cluster's feature store could not be used; features were computed here."""


def _enabled() -> bool:
    return os.environ.get("SKTRANSFER_CLUSTER_CACHE", "1").strip().lower() not in (
        "0", "false", "no", "off")


def active_client():
    """The Dask client whose cluster shares features with this process, or None.

    A worker's own client inside a task; in the client's process, the client of joblib's
    active Dask backend (the final refit of a search runs there). None, without importing
    anything, when ``distributed`` has not been imported by this process.
    """
    if "distributed" not in sys.modules or not _enabled():
        return None
    import distributed

    try:
        distributed.get_worker()
    except ValueError:  # not in a task on a worker
        return _joblib_dask_client()
    try:
        return distributed.get_client()
    except ValueError:  # pragma: no cover - a worker always has a scheduler
        return None


def _joblib_dask_client():
    if "joblib" not in sys.modules:
        return None
    from joblib.parallel import get_active_backend

    try:
        backend, _ = get_active_backend()
    except Exception:  # pragma: no cover - joblib internals moved
        return None
    if type(backend).__name__ != "DaskDistributedBackend":
        return None
    client = getattr(backend, "client", None)
    return None if client is None or client.status != "running" else client


def shared_store(backbone_key: str) -> SharedFeatures | None:
    """The cluster's store of this backbone's features, or None outside a Dask cluster."""
    client = active_client()
    return None if client is None else SharedFeatures(client, backbone_key)


def _warn_once(exc: BaseException) -> None:
    global _warned
    message = (f"feature cache: the Dask cluster's feature store failed "
               f"({type(exc).__name__}: {exc}); features are computed in this process")
    with _warned_lock:
        first, _warned = not _warned, True
    if first:
        warnings.warn(message, ClusterCacheWarning, stacklevel=4)
    else:
        logger.info(message)


class SharedFeatures:
    """One backbone key's features in cluster memory: look up, lock, publish.

    Parameters
    ----------
    client : distributed.Client
        The client of this process (a worker's own client on a worker).
    backbone_key : str
        The feature key (:func:`sktransfer.cache.feature_key`).
    """

    def __init__(self, client, backbone_key: str):
        self.client = client
        self.backbone_key = backbone_key
        self.failed = False
        self._read: set[str] = set()  # chunks already read by this lookup

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        _warn_once(exc)

    # ------------------------------------------------------------------ read
    def fetch(self, keys: list[bytes], fmt) -> tuple[dict[bytes, bytes], object, Counter]:
        """The rows of ``keys`` the cluster holds, validated.

        Parameters
        ----------
        keys : list of bytes
            Sample digests wanted.
        fmt : (torch.dtype, shape) or None
            The embeddings' format when this process knows it.

        Chunks read by an earlier call on this object are not read again: their valid rows
        were taken then, and the others are still invalid.

        Returns
        -------
        rows : dict
            Sample digest -> the row's bytes, for the valid rows found.
        fmt : (torch.dtype, shape) or None
            Their format (``fmt`` itself when it was given).
        problems : Counter
            What was wrong with the rows found but not usable.
        """
        problems: Counter[str] = Counter()
        if self.failed or not keys:
            return {}, fmt, problems
        try:
            index = self.client.get_metadata([PREFIX, self.backbone_key], default=None) or {}
            wanted = set(keys)
            names = [name for name, chunk_keys in index.items()
                     if name not in self._read and _holds_any(chunk_keys, wanted)]
            if not names:
                return {}, fmt, problems
            chunks = self._gather(names)
        except Exception as exc:
            self._fail(exc)
            return {}, fmt, problems
        self._read.update(names)
        rows: dict[bytes, bytes] = {}
        for chunk in chunks:
            fmt = _read_chunk(chunk, fmt, wanted, rows, problems)
        return rows, fmt, problems

    def _gather(self, names: list[str]) -> list:
        """The chunks still held by some worker; lost ones are dropped from the index.

        A chunk lives on the worker that published it: when that worker dies its data is
        gone, and waiting for it would wait forever. Such chunks are unpublished and their
        index entries tombstoned, so their rows are computed again, once.
        """
        from distributed import wait

        futures, lost = {}, []
        for name in names:
            try:
                futures[name] = self.client.get_dataset(name)
            except Exception:  # unpublished (KeyError), or its data cancelled meanwhile
                lost.append(name)
        try:
            holders = self.client.who_has(list(futures.values())) if futures else {}
        except Exception:  # a key cancelled meanwhile: ask for each alone
            holders = {}
            for future in futures.values():
                with contextlib.suppress(Exception):
                    holders.update(self.client.who_has([future]))
        alive = {}
        for name, future in futures.items():
            if holders.get(future.key):
                alive[name] = future
            else:
                lost.append(name)
        if alive:
            with contextlib.suppress(Exception):  # timed out, cancelled: told by the status
                wait(list(alive.values()), timeout=GATHER_TIMEOUT)
            for name, future in list(alive.items()):
                if future.status != "finished":
                    lost.append(name)
                    del alive[name]
        self._forget(lost)
        if not alive:
            return []
        try:
            return self.client.gather(list(alive.values()), errors="skip")
        except Exception:  # cancelled or lost between the checks above and the gather
            chunks, lost = [], []
            for name, future in alive.items():
                try:
                    chunks.append(self.client.gather(future))
                except Exception:
                    lost.append(name)
            self._forget(lost)
            return chunks

    def _forget(self, lost: list[str]) -> None:
        """Unpublish lost chunks and tombstone their index entries."""
        for name in lost:
            with contextlib.suppress(Exception):
                self.client.unpublish_dataset(name)
            self.client.set_metadata([PREFIX, self.backbone_key, name], None)
        if lost:
            logger.info("feature cache: %d chunks lost by the cluster (a worker left); "
                        "their rows are recomputed", len(lost))

    # ------------------------------------------------------------------ write
    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        """Hold the backbone key's cluster-wide lock (best effort) while computing."""
        lock = None
        if not self.failed:
            try:
                import distributed

                lock = distributed.Lock(f"sktransfer-{self.backbone_key}",
                                        scheduler_rpc=self.client.scheduler,
                                        loop=self.client.loop)
                lock.acquire()
            except Exception as exc:
                lock = None
                self._fail(exc)
        try:
            yield
        finally:
            if lock is not None:
                try:
                    lock.release()
                except Exception as exc:  # a lease that timed out: others went on already
                    logger.info("feature cache: releasing the cluster lock failed: %s", exc)

    def publish(self, fmt, entries: dict[bytes, bytes]) -> None:
        """Make freshly computed rows available to every process of the cluster."""
        if self.failed or not entries:
            return
        dtype, shape = fmt
        keys = b"".join(entries)
        chunk = (str(dtype), tuple(int(s) for s in shape), keys, b"".join(entries.values()))
        name = f"{PREFIX}-{self.backbone_key}-{uuid.uuid4().hex}"
        try:
            [future] = self.client.scatter([chunk], hash=False)
            self.client.publish_dataset(future, name=name)
            # the index last: whoever finds a chunk in it can fetch the chunk
            self.client.set_metadata([PREFIX, self.backbone_key, name], keys)
        except Exception as exc:
            self._fail(exc)


def _holds_any(chunk_keys, wanted: set[bytes]) -> bool:
    if chunk_keys is None:  # a chunk the cluster lost
        return False
    if not isinstance(chunk_keys, bytes):
        return True  # a damaged index entry: fetched, then rejected by validation
    return any(chunk_keys[i:i + _KEY_BYTES] in wanted
               for i in range(0, len(chunk_keys), _KEY_BYTES))


def _read_chunk(chunk, fmt, wanted: set[bytes], rows: dict, problems: Counter):
    """Add the valid wanted rows of one chunk to ``rows``; returns the format."""
    try:
        dtype_name, shape, keys, data = chunk
        dtype = _DTYPES[dtype_name]
        shape = tuple(int(s) for s in shape)
        if not (isinstance(keys, bytes) and isinstance(data, bytes)):
            raise TypeError("not bytes")
    except Exception:
        problems["foreign entries"] += 1
        return fmt
    n = len(keys) // _KEY_BYTES
    row_bytes = dtype.itemsize * int(torch.Size(shape).numel())
    if fmt is not None and (shape != tuple(fmt[1]) or dtype != fmt[0]):
        problems["wrong shape" if shape != tuple(fmt[1]) else "wrong dtype"] += n
        return fmt
    if len(keys) % _KEY_BYTES or row_bytes == 0 or len(data) != n * row_bytes:
        problems["wrong size"] += max(n, 1)
        return fmt
    values = torch.frombuffer(bytearray(data), dtype=dtype).reshape(n, -1) if n else None
    finite = torch.isfinite(values).all(dim=1).tolist() if n else []
    for r in range(n):
        key = keys[r * _KEY_BYTES:(r + 1) * _KEY_BYTES]
        if key not in wanted or key in rows:
            continue
        if not finite[r]:
            problems["non-finite values"] += 1
            continue
        rows[key] = data[r * row_bytes:(r + 1) * row_bytes]
    return (dtype, shape)


def clear_cluster_cache(client=None) -> int:
    """Drop the features this library published on a Dask cluster.

    They stay in the workers' memory for the cluster's lifetime otherwise (a few chunks per
    backbone and data set; their size is the embeddings').

    Parameters
    ----------
    client : distributed.Client, optional
        Defaults to ``distributed.get_client()``.

    Returns
    -------
    int
        The number of chunks dropped.

    Examples
    --------
    >>> from distributed import Client  # doctest: +SKIP
    >>> from sktransfer.cache import clear_cluster_cache
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> clear_cluster_cache(client)  # doctest: +SKIP
    3
    """
    import distributed

    client = client or distributed.get_client()
    index = client.get_metadata([PREFIX], default=None) or {}
    names = [name for chunks in index.values() for name, keys in chunks.items()
             if keys is not None]
    if names:
        client.unpublish_dataset(names)
    client.set_metadata([PREFIX], {})
    return len(names)
