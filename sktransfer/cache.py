"""The frozen-feature cache: a frozen backbone's output for an input never changes.

Feature extraction trains only a head on top of a frozen backbone, yet a plain training
loop runs the backbone again on every epoch, fold and grid candidate. When nothing random
touches the backbone's input (no augmentation) and nothing in it trains (BatchNorm
included), its embeddings are a fixed function of the sample. This cache computes each once.

Keys are contents, not object identities:

- the backbone (:func:`backbone_digest`): for every submodule, its class (module, qualified
  name and the bytecode of its methods, with the plain functions and constants they read
  from their module), its non-tensor attributes, and every weight and buffer; then its
  input resolution, and how it computes (:func:`feature_key`: device type, mixed precision).
  Two modules with equal weights whose ``forward`` differs, in code or through a plain
  attribute such as ``self.scale = 2.0``, get different keys. A module holding an attribute
  that can be neither pickled nor inspected is not cached (:func:`bypass_reason` says so);
- each sample (:func:`sample_digests`): a digest of its bytes, dtype and shape; for image
  files, of the file's content (not its name, size or modification time, which can stay
  the same while the picture changes).

What is read back is checked before it is used: an entry on disk that is a symbolic link
(entries are plain files), cannot be read, is empty, has another shape or dtype than the
backbone's embeddings, or holds a non-finite number is recomputed (with a warning) and
rewritten. A cache directory that cannot be
written falls back to memory with one warning, before anything is computed: a cache is an
optimisation and never makes ``fit`` or ``predict`` fail.

So a cross-validation fold or a grid candidate that sees a subset of the same rows, through
a clone of the estimator, finds them. Entries live in a process-wide in-memory LRU bounded
in bytes (the bytes of the embedding plus the bookkeeping of each entry), and optionally in
a directory on disk that outlives the process.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import pickle
import re
import sys
import tempfile
import threading
import types
import warnings
from collections import Counter, OrderedDict
from pathlib import Path

import numpy as np
import torch

from . import _cluster
from ._cluster import ClusterCacheWarning, clear_cluster_cache
from ._io import atomic_write

__all__ = [
    "DEFAULT_MAX_BYTES", "ENTRY_OVERHEAD", "CacheDirWarning", "ClusterCacheWarning",
    "FeatureCache", "UnkeyableModule",
    "backbone_digest", "bypass_reason", "clear_cache", "clear_cluster_cache", "feature_key",
    "file_digest", "get_cache", "module_fingerprint", "sample_digests",
]

logger = logging.getLogger("sktransfer")



def _max_bytes_from_env(default_mb: float = 2048.0) -> int:
    """``SKTRANSFER_CACHE_MB`` in bytes; a value that is not a size warns and gives the
    default (a cache never stops sktransfer from working)."""
    text = os.environ.get("SKTRANSFER_CACHE_MB")
    if text is None:
        return int(default_mb * 2**20)
    try:
        mb = float(text)
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and 0 <= mb <= 2**40):
        warnings.warn(f"SKTRANSFER_CACHE_MB={text!r} is not a size in MiB (a number >= 0); "
                      f"the feature cache uses the default, {default_mb:g} MiB", stacklevel=2)
        return int(default_mb * 2**20)
    return int(mb * 2**20)


DEFAULT_MAX_BYTES = _max_bytes_from_env()

#: Memory taken by one entry beyond its embedding's bytes: the ``bytes`` header, the key
#: tuple, the 16-byte sample digest and the ordered dict's node (about 210 bytes by
#: tracemalloc on CPython 3.11; 320 with the allocator's own, by resident memory in
#: ``benchmarks/bench_cache_memory.py``).
ENTRY_OVERHEAD = 320

_FORMAT_FILE = "_format.json"
_warned_dirs: set[str] = set()
_warned_lock = threading.Lock()


class CacheDirWarning(UserWarning):
    """A cache directory could not be used as expected; the cache carried on without it."""


class FeatureCache:
    """Embeddings keyed by (backbone digest, sample digest), least recently used out.

    Each entry is kept as one compact ``bytes`` object (not a tensor, whose Python and
    storage bookkeeping costs about 900 bytes on its own), and the bound counts that
    bookkeeping: ``nbytes`` is close to the memory the cache really holds.

    Parameters
    ----------
    max_bytes : int
        Bound on the memory held by cached embeddings, bookkeeping included
        (:data:`ENTRY_OVERHEAD` bytes per entry).

    Attributes
    ----------
    hits, misses : int
        Counters since creation (or :meth:`clear`), for logs and benchmarks. ``misses``
        counts the embeddings this process computed (rows run through the backbone).
    cluster_hits : int
        Of the hits, rows fetched from a Dask cluster's memory (:mod:`sktransfer._cluster`)
        that another process had computed.
    rejected : int
        Entries read from a cache directory or a cluster that failed validation and were
        recomputed.

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
        self._entries: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        # backbone key -> (dtype, shape of one embedding): all entries of a key share it
        self._formats: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.cluster_hits = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Memory held by the entries, :data:`ENTRY_OVERHEAD` per entry included."""
        return self._bytes

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._formats.clear()
            self._bytes = 0
            self.hits = self.misses = self.cluster_hits = self.rejected = 0

    # -------------------------------------------------------------- memory (lock held)
    @staticmethod
    def _cost(value: bytes) -> int:
        return len(value) + ENTRY_OVERHEAD

    def _put(self, key: tuple[str, bytes], value: bytes) -> None:
        size = self._cost(value)
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= self._cost(old)
        self._entries[key] = value
        self._bytes += size
        while self._bytes > self.max_bytes:
            (backbone_key, _), evicted = self._entries.popitem(last=False)
            self._bytes -= self._cost(evicted)

    def _set_format(self, backbone_key: str, fmt: tuple[torch.dtype, tuple[int, ...]]) -> None:
        if self._formats.get(backbone_key, fmt) != fmt:  # cannot happen for one backbone
            stale = [k for k in self._entries if k[0] == backbone_key]
            for k in stale:
                self._bytes -= self._cost(self._entries.pop(k))
        self._formats[backbone_key] = fmt

    # -------------------------------------------------------------- lookup
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
            positions in ``sample_keys`` that are not cached. It may be called twice in
            one lookup (once more for entries on disk found invalid).
        directory : path, optional
            Also look up and store entries here, one ``.npy`` file per sample. When it
            cannot be written, entries stay in memory only and a :class:`CacheDirWarning`
            is raised once per directory and process.

        Notes
        -----
        Rows missing from this process's memory and directory are looked up in the Dask
        cluster when this runs on a Dask worker, or in the client's process under
        ``joblib.parallel_backend("dask")``; the rows still missing are computed under a
        cluster-wide lock for ``backbone_key`` and published for the other processes, so
        a search on a cluster computes each row once (see :mod:`sktransfer._cluster`).
        Elsewhere nothing of Dask is imported or called.

        Returns
        -------
        torch.Tensor of shape (n_samples, n_features), on the CPU.
        """
        first: dict[bytes, int] = {}  # each key's first position
        for i, key in enumerate(sample_keys):
            first.setdefault(key, i)
        if len(first) < len(sample_keys):  # repeated rows (an oversampler's copies):
            unique = list(first)           # looked up and computed once each
            rows = self.get_many(backbone_key, unique,
                                 lambda idx: compute([first[unique[j]] for j in idx]),
                                 directory)
            with self._lock:  # the copies were served without computing: hits
                self.hits += len(sample_keys) - len(unique)
            position = {key: j for j, key in enumerate(unique)}
            return rows[[position[key] for key in sample_keys]]
        n = len(sample_keys)
        found: dict[int, bytes] = {}
        with self._lock:
            fmt = self._formats.get(backbone_key)
            for i, key in enumerate(sample_keys):
                value = self._entries.get((backbone_key, key))
                if value is not None:
                    self._entries.move_to_end((backbone_key, key))
                    found[i] = value
        disk = _DiskStore(directory, backbone_key) if directory is not None else None

        # Entries on disk: read, then validate against the known format.
        candidates: dict[int, np.ndarray] = {}
        problems: Counter[str] = Counter()
        if disk is not None:
            for i, key in enumerate(sample_keys):
                if i not in found:
                    array, problem = disk.read(key)
                    if problem is not None:
                        problems[problem] += 1
                    elif array is not None:
                        candidates[i] = array
            if fmt is None:
                fmt = disk.read_format()
        if fmt is None and candidates and len(candidates) == n - len(found):
            # everything is on disk and nothing says what it should look like: trust the
            # format most entries share, recompute the others
            shape, dtype = Counter(
                (a.shape, str(a.dtype)) for a in candidates.values()
            ).most_common(1)[0][0]
            fmt = (_torch_dtype(dtype), shape)
        to_compute = [i for i in range(n) if i not in found and i not in candidates]

        # Rows another process of a Dask cluster computed (None elsewhere, at no cost).
        shared = _cluster.shared_store(backbone_key) if to_compute else None
        from_cluster: dict[int, bytes] = {}
        cluster_fmt = None
        cluster_problems: Counter[str] = Counter()

        def take_from_cluster(missing: list[int]) -> list[int]:
            nonlocal fmt, cluster_fmt
            rows, got, bad = shared.fetch([sample_keys[i] for i in missing], fmt)
            cluster_problems.update(bad)
            if rows:
                fmt = cluster_fmt = got
                for i in missing:
                    if sample_keys[i] in rows:
                        from_cluster[i] = rows[sample_keys[i]]
            return [i for i in missing if i not in from_cluster]

        if shared is not None:
            to_compute = take_from_cluster(to_compute)
        # Computing for a cluster: one process per backbone at a time, then publish.
        guard = (shared.computing() if shared is not None and to_compute
                 else contextlib.nullcontext())
        with guard:
            if shared is not None and to_compute:  # others may have computed them meanwhile
                to_compute = take_from_cluster(to_compute)
            if disk is not None and to_compute:
                disk.check_writable()  # before computing: warn now, not after the work
            computed = _as_rows(compute(to_compute)) if to_compute else None
            if computed is not None:
                fmt = _format_of(computed)
            rejected = []
            if fmt is not None:
                for i, array in list(candidates.items()):
                    problem = _invalid(array, fmt)
                    if problem is not None:
                        problems[problem] += 1
                        rejected.append(i)
                        del candidates[i]
                if from_cluster and cluster_fmt != fmt:  # what this process computes wins
                    cluster_problems["wrong shape" if cluster_fmt[1] != fmt[1]
                                     else "wrong dtype"] += len(from_cluster)
                    rejected += list(from_cluster)
                    from_cluster.clear()
            if rejected:
                extra = _as_rows(compute(rejected))
                fmt = _format_of(extra)
                to_compute += rejected
                computed = extra if computed is None else torch.cat([computed, extra])
            new: dict[int, bytes] = {}
            if computed is not None:
                for row, i in enumerate(to_compute):
                    new[i] = _to_bytes(computed[row])
            if shared is not None and new:
                shared.publish(fmt, {sample_keys[i]: new[i] for i in new})
        if problems and disk is not None:
            warnings.warn(
                f"feature cache: {sum(problems.values())} entries in {disk.folder} could not "
                f"be used ({_describe(problems)}); recomputed and rewritten",
                CacheDirWarning, stacklevel=3,
            )
        if cluster_problems:
            warnings.warn(
                f"feature cache: {sum(cluster_problems.values())} entries in the Dask "
                f"cluster's memory could not be used ({_describe(cluster_problems)}); "
                "recomputed", _cluster.ClusterCacheWarning, stacklevel=3,
            )

        for i, array in candidates.items():
            found[i] = _to_bytes(torch.from_numpy(array).to(fmt[0]))
        found.update(from_cluster)
        with self._lock:
            self.hits += n - len(to_compute)
            self.misses += len(to_compute)
            self.cluster_hits += len(from_cluster)
            self.rejected += sum(problems.values()) + sum(cluster_problems.values())
            if fmt is not None:
                self._set_format(backbone_key, fmt)
            for i in (*candidates, *from_cluster):
                self._put((backbone_key, sample_keys[i]), found[i])
            for i, value in new.items():
                self._put((backbone_key, sample_keys[i]), value)
        found.update(new)
        if disk is not None and new:
            disk.write(fmt, {sample_keys[i]: new[i] for i in new})
        if not found:
            return torch.empty(0, 0)
        dtype, shape = fmt
        buffer = bytearray(b"".join(found[i] for i in range(n)))
        return torch.frombuffer(buffer, dtype=dtype).reshape(n, *shape)


def _as_rows(values: torch.Tensor) -> torch.Tensor:
    return values.detach().cpu().contiguous()


def _format_of(rows: torch.Tensor) -> tuple[torch.dtype, tuple[int, ...]]:
    return rows.dtype, tuple(rows.shape[1:])


def _to_bytes(row: torch.Tensor) -> bytes:
    return row.contiguous().view(torch.uint8).numpy().tobytes()


def _torch_dtype(name: str) -> torch.dtype:
    return {"float16": torch.float16, "float32": torch.float32,
            "float64": torch.float64}.get(name, torch.float32)


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    # numpy has no bfloat16: such embeddings are stored as float32 (exact) on disk
    return np.dtype({torch.float16: "float16", torch.float64: "float64"}.get(dtype, "float32"))


def _invalid(array: np.ndarray, fmt: tuple[torch.dtype, tuple[int, ...]]) -> str | None:
    """Why an array read from disk is not a valid entry of this format, or None."""
    dtype, shape = fmt
    if array.shape != tuple(shape):
        return "wrong shape"
    if array.dtype != _numpy_dtype(dtype):
        return "wrong dtype"
    if not np.isfinite(array).all():
        return "non-finite values"
    return None


def _describe(problems: Counter) -> str:
    return ", ".join(f"{count} {what}" for what, count in sorted(problems.items()))


def _warn_dir_once(folder: Path, message: str) -> None:
    with _warned_lock:
        first = str(folder.parent) not in _warned_dirs
        _warned_dirs.add(str(folder.parent))
    if first:
        warnings.warn(message, CacheDirWarning, stacklevel=4)
    else:
        logger.info(message)


class _DiskStore:
    """One backbone's folder of ``.npy`` entries; every failure degrades to memory only."""

    def __init__(self, directory: str | os.PathLike, backbone_key: str):
        self.folder = Path(directory) / backbone_key
        self.writable: bool | None = None  # unknown until needed

    def path(self, key: bytes) -> Path:
        return self.folder / f"{key.hex()}.npy"

    def read(self, key: bytes) -> tuple[np.ndarray | None, str | None]:
        """(array, None), (None, None) when absent, or (None, what was wrong)."""
        path = self.path(key)
        try:
            if path.is_symlink():  # entries are only ever plain files: not ours
                return None, "symbolic links"
            if not path.is_file():
                return None, None
            if path.stat().st_size == 0:
                return None, "empty files"
            array = np.load(path, allow_pickle=False)
        except PermissionError:
            return None, "unreadable files"
        except Exception:  # torn, truncated or foreign files raise many types
            return None, "unreadable files"
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f" or array.size == 0:
            return None, "foreign files"
        if not np.isfinite(array).all():
            return None, "non-finite values"
        return array, None

    def read_format(self) -> tuple[torch.dtype, tuple[int, ...]] | None:
        try:
            info = json.loads((self.folder / _FORMAT_FILE).read_text())
            return _torch_dtype(info["dtype"]), tuple(int(s) for s in info["shape"])
        except Exception:  # absent or damaged: formats are then inferred
            return None

    def check_writable(self) -> bool:
        if self.writable is None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd, probe = tempfile.mkstemp(dir=self.folder, prefix=".probe-")
                os.close(fd)
                os.unlink(probe)
                self.writable = True
            except OSError as exc:
                self.writable = False
                self._fallback(exc)
        return self.writable

    def _fallback(self, exc: OSError) -> None:
        _warn_dir_once(
            self.folder,
            f"feature cache directory {self.folder.parent} cannot be written "
            f"({type(exc).__name__}: {exc}); embeddings are cached in memory only. Pass a "
            "writable cache_dir, or cache_dir=None to silence this warning.",
        )

    def write(self, fmt, entries: dict[bytes, bytes]) -> None:
        if not self.check_writable():
            return
        dtype, shape = fmt
        try:
            fmt_path = self.folder / _FORMAT_FILE
            if not fmt_path.is_file():
                info = {"dtype": str(_numpy_dtype(dtype)), "shape": list(shape)}
                with atomic_write(fmt_path, "w") as f:
                    f.write(json.dumps(info))
            for key, value in entries.items():
                row = torch.frombuffer(bytearray(value), dtype=dtype).reshape(shape)
                array = row.to(torch.float32).numpy() if dtype == torch.bfloat16 else row.numpy()
                with atomic_write(self.path(key)) as f:
                    np.save(f, array, allow_pickle=False)
        except OSError as exc:  # a full disk, a folder made read-only meanwhile...
            self.writable = False
            self._fallback(exc)


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
    with _digest_memo_lock:
        _digest_memo.clear()


# ---------------------------------------------------------------------- backbone keys
class UnkeyableModule(ValueError):
    """A backbone holds something the cache cannot turn into a key: it is not cached."""


# Code of these libraries is identified by their version, not hashed.
_LIBRARY_PREFIXES = ("torch.", "torchvision.", "sktransfer.", "efficientnet_lite_pytorch.")
_SKIPPED_ATTRIBUTES = {"training"}
#: what every ``torch.nn.Module`` holds (parameters, buffers, hooks...): walked apart or
#: not part of the computation. A user's own private attributes (``self._scale``) count.
_MODULE_INTERNALS = frozenset(vars(torch.nn.Module()))


@functools.cache
def _torchvision_version() -> str | None:
    """``torchvision.__version__``, read from its ``version.py`` when torchvision is not
    imported yet: importing it takes seconds (it imports ``torch._dynamo``), and a
    backbone outside torchvision (EfficientNet-Lite0, a plugin) has no other use for it."""
    module = sys.modules.get("torchvision")
    if module is None:
        try:
            spec = importlib.util.find_spec("torchvision")
        except (ImportError, ValueError):  # pragma: no cover - torchvision is a dependency
            spec = None
        for folder in (spec.submodule_search_locations or ()) if spec else ():
            try:
                text = Path(folder, "version.py").read_text(encoding="utf-8")
            except OSError:
                continue
            match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
            if match:
                return match.group(1)
        try:
            import torchvision as module
        except ImportError:  # pragma: no cover - torchvision is a dependency
            return None
    return module.__version__


def _library_versions() -> str:
    import sktransfer

    return repr((torch.__version__, _torchvision_version(),
                 getattr(sktransfer, "__version__", None)))


def _is_library(module_name: str | None) -> bool:
    return ((module_name or "") + ".").startswith(_LIBRARY_PREFIXES)


class _Fingerprint:
    """What a module computes, apart from its tensors: classes, code and plain attributes."""

    def __init__(self):
        self.h = hashlib.blake2b(digest_size=16)
        self._classes: dict[type, None] = {}
        self._code_seen: set[int] = set()

    def update(self, data: bytes | str) -> None:
        self.h.update(data.encode() if isinstance(data, str) else data)
        self.h.update(b"\x00")

    # ---- code
    def code(self, code: types.CodeType) -> None:
        if id(code) in self._code_seen:
            return
        self._code_seen.add(id(code))
        self.update(code.co_code)
        self.update(repr(code.co_names))
        self.update(repr(code.co_varnames))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const)
            else:
                self.value("const", const)

    def function(self, func, depth: int = 0) -> None:
        func = getattr(func, "__func__", func)
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is not None and wrapped is not func:
            # a decorated method: the function it wraps, and the wrapper itself below (its
            # closure holds the decorator's arguments: @scaled(2.0) is not @scaled(3.0))
            self.function(wrapped, depth)
        if not isinstance(func, types.FunctionType):
            self.update(f"callable:{getattr(func, '__qualname__', type(func).__name__)}")
            return
        # where the code was written, not ``__module__`` (functools.wraps copies the
        # wrapped function's: torch's own decorators would pass for user code)
        if _is_library(func.__globals__.get("__name__", func.__module__)):
            self.update(f"lib:{func.__module__}.{func.__qualname__}")
            return
        self.code(func.__code__)
        self.value("defaults", func.__defaults__, depth)
        self.value("kwdefaults", func.__kwdefaults__, depth)
        for cell in func.__closure__ or ():
            try:
                self.value("cell", cell.cell_contents, depth)
            except ValueError:  # an empty cell
                self.update("empty cell")
        if depth < 3:  # the plain helpers and constants the code reads from its module
            for name in _global_names(func.__code__):
                if name in func.__globals__:
                    obj = func.__globals__[name]
                    if isinstance(obj, (types.ModuleType, type)):
                        continue
                    try:
                        self.value(f"global:{name}", obj, depth + 1)
                    except UnkeyableModule:  # a lock, a logger...: not what forward computes
                        self.update(f"global:{name}:{type(obj).__qualname__}")

    def klass(self, cls: type) -> None:
        self.update(f"class:{cls.__module__}.{cls.__qualname__}")
        if cls in self._classes:
            return
        self._classes[cls] = None
        for base in cls.__mro__:
            if base is object or _is_library(base.__module__):
                continue
            for name, attr in sorted(vars(base).items()):
                if isinstance(attr, (staticmethod, classmethod)):
                    attr = attr.__func__
                if isinstance(attr, property):
                    for f in (attr.fget, attr.fset):
                        if f is not None:
                            self.function(f)
                elif isinstance(attr, types.FunctionType):
                    self.update(f"method:{name}")
                    self.function(attr)
                elif not name.startswith("__"):
                    self.value(f"classattr:{name}", attr, 1)

    # ---- values
    def value(self, name: str, v, depth: int = 0) -> None:
        self.update(name)
        if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
            self.update(f"{type(v).__name__}:{v!r}")
        elif isinstance(v, (torch.dtype, torch.device, torch.Size)):
            self.update(repr(v))
        elif isinstance(v, (tuple, list)):
            self.update(f"{type(v).__name__}[{len(v)}]")
            for i, item in enumerate(v):
                self.value(str(i), item, depth)
        elif isinstance(v, dict):
            self.update(f"dict[{len(v)}]")
            for k in sorted(v, key=repr):
                self.value(repr(k), v[k], depth)
        elif isinstance(v, (set, frozenset)):
            self.update(repr(sorted(repr(item) for item in v)))
        elif isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous().reshape(-1)
            self.update(f"tensor:{t.dtype}:{tuple(v.shape)}")
            self.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, np.ndarray) and v.dtype != object:
            self.update(f"array:{v.dtype}:{v.shape}")
            self.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, np.generic):
            self.update(f"{v.dtype}:{v!r}")
        elif isinstance(v, torch.nn.Module):
            self.update(f"module:{type(v).__module__}.{type(v).__qualname__}")  # walked apart
        elif isinstance(v, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
            self.function(v, depth)
        elif isinstance(v, type):
            self.update(f"type:{v.__module__}.{v.__qualname__}")
        else:
            try:
                self.update(pickle.dumps(v, protocol=4))
            except Exception as exc:
                raise UnkeyableModule(
                    f"attribute {name!r} ({type(v).__name__}) can be neither pickled nor "
                    f"inspected ({exc})"
                ) from exc

    def module(self, root: torch.nn.Module) -> None:
        self.update(_library_versions())
        for name, m in root.named_modules(remove_duplicate=False):
            self.update(f"submodule:{name}")
            self.klass(type(m))
            own = not _is_library(type(m).__module__)  # a library's class: its version
            for attr, v in sorted(vars(m).items()):
                if (attr in _SKIPPED_ATTRIBUTES or attr in _MODULE_INTERNALS
                        or (attr.startswith("_") and not own)):
                    continue
                try:
                    self.value(attr, v)
                except UnkeyableModule as exc:
                    if attr.startswith("_"):  # private state (a lock, a handle): its type
                        self.update(f"{attr}:{type(v).__module__}.{type(v).__qualname__}")
                        continue
                    where = f"{type(m).__qualname__} at {name or 'top'!r}"
                    raise UnkeyableModule(f"{where}: {exc}") from exc


def _global_names(code: types.CodeType) -> list[str]:
    names = []
    for instr in dis.get_instructions(code):
        if instr.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(instr.argval, str):
            names.append(instr.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return sorted(set(names))


def module_fingerprint(module: torch.nn.Module) -> str:
    """Digest of what a module computes apart from its weights.

    For every submodule: its class (module, qualified name, and the bytecode of the
    methods of every class in its MRO outside torch, torchvision and sktransfer, with the
    plain functions and constants that code reads from its module), and its non-tensor
    attributes (``self.scale = 2.0``; private ones too, for classes outside those
    libraries). Library classes are identified by the
    library's version.

    Raises
    ------
    UnkeyableModule
        When an attribute can be neither pickled nor inspected.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.cache import module_fingerprint
    >>> a, b = torch.nn.Dropout(0.1), torch.nn.Dropout(0.2)
    >>> module_fingerprint(a) == module_fingerprint(b)
    False
    """
    fp = _Fingerprint()
    fp.module(module)
    return fp.h.hexdigest()


#: Bytes of backbone weights :func:`backbone_digest` keeps copies of, to recognise them.
DIGEST_MEMO_BYTES = 256 * 2**20
_digest_memo: OrderedDict[bytes, tuple[dict[str, torch.Tensor], str]] = OrderedDict()
_digest_memo_lock = threading.Lock()
_SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes as integers, so ``torch.equal`` compares bits (``-0.0`` and
    ``0.0`` differ, ``NaN`` equals itself) at the speed of a value comparison."""
    t = tensor.detach().contiguous().reshape(-1)
    as_int = _SAME_SIZE_INT.get(t.element_size())
    return t.view(as_int) if as_int is not None else t.view(torch.uint8)


def _same_bits(state: dict[str, torch.Tensor], kept: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` holds bit for bit the tensors ``kept`` (copies on the CPU)."""
    # numpy: one thread, no OpenMP barrier waiting for a descheduled thread on a busy CPU
    return all(np.array_equal(_bits(state[name]).cpu().numpy(), ref.numpy())
               for name, ref in kept.items())


def backbone_digest(backbone: torch.nn.Module) -> str:
    """Digest of the architecture, code, attributes, weights and preprocessing of a backbone.

    It reads every weight, so a fitted estimator computes it once and keeps it: a backbone
    frozen for the whole fit does not change afterwards. A grid search builds the same
    backbone for every fit: the digests of recent backbones are kept with a copy of their
    weights on the CPU (up to :data:`DIGEST_MEMO_BYTES`), and a backbone whose
    architecture, code, attributes and weights are bit for bit those of a kept one gets
    its digest after a comparison, several times faster than hashing the weights again.

    Raises
    ------
    UnkeyableModule
        When the backbone holds an attribute that cannot be keyed (see
        :func:`bypass_reason`, which reports it before a fit uses the cache).

    Examples
    --------
    >>> import torch
    >>> from sktransfer.cache import backbone_digest
    >>> layer = torch.nn.Linear(2, 2)
    >>> backbone_digest(layer) == backbone_digest(torch.nn.Linear(2, 2))
    False
    """
    h = hashlib.blake2b(digest_size=16)
    info = getattr(backbone, "info", None)
    h.update(repr((info.name, sorted(info.kwargs.items())) if info else type(backbone)).encode())
    h.update(repr(getattr(backbone, "image_size", None)).encode())
    h.update(repr(backbone).encode())  # architecture, for modules the registry did not make
    h.update(module_fingerprint(backbone).encode())
    state = dict(sorted(backbone.state_dict().items()))
    # everything the digest reads but the weights' values: the key of the memo
    layout = h.copy()
    for name, tensor in state.items():
        layout.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    key = layout.digest()
    with _digest_memo_lock:
        kept = _digest_memo.get(key)
    if kept is not None and _same_bits(state, kept[0]):
        with _digest_memo_lock:
            if key in _digest_memo:
                _digest_memo.move_to_end(key)
        return kept[1]
    for name, tensor in state.items():
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest = h.hexdigest()
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    if nbytes <= DIGEST_MEMO_BYTES:
        copies = {name: _bits(t).to("cpu", copy=True) for name, t in state.items()}
        with _digest_memo_lock:
            _digest_memo[key] = (copies, digest)
            _digest_memo.move_to_end(key)
            total = sum(sum(c.numel() * c.element_size() for c in v[0].values())
                        for v in _digest_memo.values())
            while total > DIGEST_MEMO_BYTES:
                _, (dropped, _) = _digest_memo.popitem(last=False)
                total -= sum(c.numel() * c.element_size() for c in dropped.values())
    return digest


def feature_key(weights_digest: str, device: str, amp_dtype) -> str:
    """Cache key of a backbone's embeddings: its digest and how they are computed.

    The same weights give slightly different numbers on another device or precision.

    Examples
    --------
    >>> from sktransfer.cache import feature_key
    >>> feature_key("abc", "cpu", None) != feature_key("abc", "cuda:0", None)
    True
    """
    mode = f"{weights_digest}|{torch.device(device).type}|{amp_dtype}"
    return hashlib.blake2b(mode.encode(), digest_size=16).hexdigest()


def file_digest(path: str | os.PathLike) -> bytes:
    """Digest of a file's content (16 bytes), read in 1 MiB blocks.

    Examples
    --------
    >>> import tempfile
    >>> from sktransfer.cache import file_digest
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     len(file_digest(f.name))
    16
    """
    h = hashlib.blake2b(b"file|", digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(2**20):
            h.update(block)
    return h.digest()


def sample_digests(data) -> list[bytes]:
    """One digest per sample: its bytes, dtype and shape, or an image file's content.

    Files are keyed by content, not by path, size and modification time: a picture
    overwritten by another of the same size, its modification time restored, gets a new
    key. Reading the file costs little next to decoding it (see
    ``benchmarks/bench_cache_keys.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.cache import sample_digests
    >>> a, b = sample_digests(np.array([[1.0, 2.0], [1.0, 2.0]]))
    >>> a == b
    True
    """
    if isinstance(data, np.ndarray) and data.dtype == object:  # image paths
        return [file_digest(p) for p in data]
    array = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    array = np.ascontiguousarray(array)
    prefix = f"{array.dtype}|{array.shape[1:]}|".encode()
    rows = array.reshape(len(array), -1).view(np.uint8)
    return [hashlib.blake2b(prefix + row.tobytes(), digest_size=16).digest() for row in rows]


def bypass_reason(network, policy, augment: bool) -> str | None:
    """Why caching would not be exact for this fit, or None when it is.

    ``augment`` counts only where the network has an augmentation module: tabular data
    is never augmented, so ``augment=True`` there leaves the cache on.
    """
    if augment and getattr(network, "augment", True) is not None:
        return "augment=True makes the backbone's input random"
    if not policy.keeps_backbone_frozen():
        return f"freeze policy {policy!r} trains backbone layers"
    if not network.backbone_frozen():
        return "some backbone layers are trainable"
    # Asked of the network's bookkeeping: no mode is switched to find out.
    reason = network.backbone_varies_in_training()
    if reason is not None:
        return reason
    try:
        module_fingerprint(network.backbone)
    except UnkeyableModule as exc:
        return f"the backbone cannot be keyed: {exc}"
    return None
