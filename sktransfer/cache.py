"""The frozen-feature cache: a frozen backbone's output for an input never changes.

Feature extraction trains only a head on top of a frozen backbone, yet a plain training
loop runs the backbone again on every epoch, fold and grid candidate. When nothing random
touches the backbone's input (no augmentation) and nothing in it trains (BatchNorm
included), its embeddings are a fixed function of the sample. This cache computes each once.

Keys are contents, not object identities:

- the backbone: a digest of its architecture name, its weights and preprocessing buffers,
  its input resolution, and how it computes (device type, mixed precision);
- each sample: a digest of its bytes, dtype and shape (for image files: the path, size and
  modification time, so a file is not read just to be hashed).

So a cross-validation fold or a grid candidate that sees a subset of the same rows, through
a clone of the estimator, finds them. Entries live in a process-wide in-memory LRU bounded
in bytes, and optionally in a directory on disk that outlives the process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger("sktransfer")

DEFAULT_MAX_BYTES = int(float(os.environ.get("SKTRANSFER_CACHE_MB", "2048")) * 2**20)


class FeatureCache:
    """Embeddings keyed by (backbone digest, sample digest), least recently used out.

    Parameters
    ----------
    max_bytes : int
        Bound on the memory held by cached embeddings.

    Attributes
    ----------
    hits, misses : int
        Counters since creation (or :meth:`clear`), for logs and benchmarks.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.cache import FeatureCache
    >>> cache = FeatureCache(max_bytes=2**20)
    >>> keys = [b"a", b"b"]
    >>> cache.get_many("net", keys, lambda idx: torch.ones(len(idx), 4)).shape
    torch.Size([2, 4])
    >>> cache.misses, cache.hits
    (2, 0)
    >>> _ = cache.get_many("net", keys, lambda idx: torch.zeros(len(idx), 4))
    >>> cache.hits
    2
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[str, bytes], torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def _put(self, key, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.numel() * old.element_size()
        self._entries[key] = value
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.numel() * evicted.element_size()

    def get_many(self, backbone_key: str, sample_keys: list[bytes], compute,
                 directory: str | os.PathLike | None = None) -> torch.Tensor:
        """Embeddings of the samples, computing only the missing ones.

        Parameters
        ----------
        backbone_key : str
            Key of the backbone and compute mode (see :func:`feature_key`).
        sample_keys : list of bytes
            One digest per sample (see :func:`sample_digests`).
        compute : callable
            ``compute(indices) -> Tensor`` of shape ``(len(indices), n_features)`` for the
            positions in ``sample_keys`` that are not cached.
        directory : path, optional
            Also look up and store entries here, one ``.npy`` file per sample.

        Returns
        -------
        torch.Tensor of shape (n_samples, n_features), on the CPU.
        """
        found: dict[int, torch.Tensor] = {}
        with self._lock:
            for i, key in enumerate(sample_keys):
                value = self._entries.get((backbone_key, key))
                if value is not None:
                    self._entries.move_to_end((backbone_key, key))
                    found[i] = value
        disk = Path(directory) / backbone_key if directory is not None else None
        if disk is not None:
            for i, key in enumerate(sample_keys):
                if i not in found:
                    path = disk / f"{key.hex()}.npy"
                    if path.is_file():
                        try:
                            found[i] = torch.from_numpy(np.load(path, allow_pickle=False))
                        except (OSError, ValueError):  # a torn or foreign file: recompute
                            continue
        missing = [i for i in range(len(sample_keys)) if i not in found]
        computed = None
        if missing:
            from ._cluster import cluster_features  # on a Dask cluster: share, see there

            with cluster_features(backbone_key) as shared:
                if shared is not None:
                    from_cluster = shared.get([sample_keys[i] for i in missing])
                    found.update({missing[j]: v for j, v in from_cluster.items()})
                    missing = [i for i in missing if i not in found]
                computed = compute(missing).detach().cpu() if missing else None
                if shared is not None and computed is not None:
                    shared.put({sample_keys[i]: computed[row] for row, i in enumerate(missing)})
        with self._lock:
            self.hits += len(sample_keys) - len(missing)
            self.misses += len(missing)
            for i in found:
                self._put((backbone_key, sample_keys[i]), found[i])
            if computed is not None:
                for row, i in enumerate(missing):
                    value = computed[row].clone()
                    found[i] = value
                    self._put((backbone_key, sample_keys[i]), value)
        if disk is not None and missing:
            disk.mkdir(parents=True, exist_ok=True)
            for i in missing:
                _atomic_save(disk / f"{sample_keys[i].hex()}.npy", found[i].numpy())
        if not found:
            return torch.empty(0, 0)
        return torch.stack([found[i] for i in range(len(sample_keys))])


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)


_CACHE = FeatureCache()


def get_cache() -> FeatureCache:
    """The process-wide cache shared by every estimator (and every clone of one).

    Examples
    --------
    >>> from sktransfer.cache import get_cache
    >>> get_cache().max_bytes > 0
    True
    """
    return _CACHE


def clear_cache() -> None:
    """Empty the process-wide cache (memory only; a cache directory is left as it is).

    Examples
    --------
    >>> from sktransfer.cache import clear_cache, get_cache
    >>> clear_cache(); len(get_cache())
    0
    """
    _CACHE.clear()


def backbone_digest(backbone: torch.nn.Module) -> str:
    """Digest of the architecture, weights and preprocessing of a backbone.

    It reads every weight, so a fitted estimator computes it once and keeps it: a backbone
    frozen for the whole fit does not change afterwards.
    """
    h = hashlib.blake2b(digest_size=16)
    info = getattr(backbone, "info", None)
    h.update(repr((info.name, sorted(info.kwargs.items())) if info else type(backbone)).encode())
    h.update(repr(getattr(backbone, "image_size", None)).encode())
    h.update(repr(backbone).encode())  # architecture, for modules the registry did not make
    for name, tensor in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def feature_key(weights_digest: str, device: str, amp_dtype) -> str:
    """Cache key of a backbone's embeddings: its digest and how they are computed.

    The same weights give slightly different numbers on another device or precision.
    """
    mode = f"{weights_digest}|{torch.device(device).type}|{amp_dtype}"
    return hashlib.blake2b(mode.encode(), digest_size=16).hexdigest()


def sample_digests(data) -> list[bytes]:
    """One digest per sample: its bytes, dtype and shape, or a file's path, size and mtime."""
    if isinstance(data, np.ndarray) and data.dtype == object:  # image paths
        out = []
        for p in data:
            st = os.stat(p)
            ident = f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode()
            out.append(hashlib.blake2b(ident, digest_size=16).digest())
        return out
    array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    array = np.ascontiguousarray(array)
    prefix = f"{array.dtype}|{array.shape[1:]}|".encode()
    rows = array.reshape(len(array), -1).view(np.uint8)
    return [hashlib.blake2b(prefix + row.tobytes(), digest_size=16).digest() for row in rows]


def bypass_reason(network, policy, augment: bool) -> str | None:
    """Why caching would not be exact for this fit, or None when it is."""
    if augment:
        return "augment=True makes the backbone's input random"
    if not policy.keeps_backbone_frozen():
        return f"freeze policy {policy!r} trains backbone layers"
    if not network.backbone_frozen():
        return "some backbone layers are trainable"
    # Asked of the network's bookkeeping: no mode is switched to find out.
    return network.backbone_varies_in_training()
