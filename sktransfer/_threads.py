"""How many CPU threads torch may use during one fit or predict, and scoping that choice.

Measured on a busy 2-core machine (``benchmarks/bench_threads.py``): torch's default of one
thread per core makes the small networks of tabular data 10-30x slower than one thread,
because every tiny matrix product waits at an OpenMP barrier for a thread the operating
system has descheduled. Intra-op threads only pay when each operation is large. So the
``"auto"`` policy is:

- networks under :data:`SMALL_NETWORK_PARAMS` parameters (the tabular MLPs, small CNNs):
  one thread;
- larger networks: the CPUs this process may use, i.e. the smallest of loky's CPU count
  (affinity mask and cgroup quota aware), torch's current setting (which already honours
  ``OMP_NUM_THREADS``: joblib's inner thread limit in ``GridSearchCV(n_jobs=k)`` workers and
  the ``OMP_NUM_THREADS=1`` Dask gives its worker processes), shared between the fits
  running at the same time in this process (joblib's threading backend, Dask threads).

The estimator's ``fit``, ``predict_proba`` and ``transform`` are wrapped in
:func:`scoped_threads` and call :func:`use_threads` once the network is known; the caller's
``torch.set_num_threads`` setting is restored when they return, errors included.
"""

from __future__ import annotations

import functools
import numbers
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Below this many parameters a network runs on one thread under ``n_threads="auto"``.
SMALL_NETWORK_PARAMS = 1_000_000

_lock = threading.Lock()
_active = 0  # fits/predicts of this library running now in this process
_local = threading.local()  # per thread: nesting depth of the scopes


def cpu_budget() -> int:
    """CPUs this process may use: affinity, cgroup quotas and thread limits honoured."""
    from joblib import cpu_count

    return max(1, min(int(cpu_count()), torch.get_num_threads()))


def check_n_threads(n_threads) -> None:
    """Raise a clear ValueError for a bad ``n_threads`` value."""
    if n_threads in ("auto", None):
        return
    if (not isinstance(n_threads, numbers.Integral) or isinstance(n_threads, bool)
            or n_threads < 1):
        raise ValueError(
            f"n_threads must be 'auto', None or a positive int, got {n_threads!r}; 'auto' "
            "picks one thread for small networks and the free CPUs for large ones"
        )


def resolve_n_threads(n_threads, module: torch.nn.Module | None, concurrent: int = 1) -> int | None:
    """The thread count for a fit of ``module``; None leaves torch's setting alone.

    Parameters
    ----------
    n_threads : "auto", None or int
        The estimator's parameter.
    module : torch.nn.Module or None
        The network (its parameter count decides under ``"auto"``).
    concurrent : int, default=1
        Fits running at once in this process, this one included; they share the CPUs.

    Examples
    --------
    >>> import torch
    >>> from sktransfer._threads import resolve_n_threads
    >>> resolve_n_threads("auto", torch.nn.Linear(128, 64))
    1
    >>> resolve_n_threads(3, None)
    3
    """
    check_n_threads(n_threads)
    if n_threads is None:
        return None
    if n_threads != "auto":
        return int(n_threads)
    n_params = sum(p.numel() for p in module.parameters()) if module is not None else 0
    if n_params < SMALL_NETWORK_PARAMS:
        return 1
    return max(1, cpu_budget() // max(1, concurrent))


def _enter() -> tuple[int, int]:
    """Count this thread's outermost call as one more running fit; return (before, concurrent)."""
    global _active
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    with _lock:
        if depth == 0:
            _active += 1
        concurrent = _active
    return torch.get_num_threads(), concurrent


def _exit(before: int) -> None:
    global _active
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
    _local.depth -= 1
    if _local.depth == 0:
        with _lock:
            _active -= 1


def scoped_threads(method):
    """Decorate an estimator method so the torch thread setting is restored when it returns.

    Inside, :func:`use_threads` sets the count for the network at hand.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        before, _ = _enter()
        try:
            return method(*args, **kwargs)
        finally:
            _exit(before)

    return wrapper


def use_threads(n_threads, module: torch.nn.Module | None) -> int:
    """Set torch's threads for ``module`` inside a :func:`scoped_threads` method; return them."""
    n = resolve_n_threads(n_threads, module, max(1, _active))
    if n is None:
        return torch.get_num_threads()
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


@contextmanager
def torch_threads(n_threads, module: torch.nn.Module | None = None) -> Iterator[int]:
    """Run the block with the threads :func:`resolve_n_threads` picks, then restore them.

    ``torch.set_num_threads`` acts on the calling thread's OpenMP pool, so concurrent fits
    in other threads keep their own setting; restoring it in ``finally`` leaves the
    caller's setting as it found it, errors included.

    Examples
    --------
    >>> import torch
    >>> from sktransfer._threads import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads("auto", torch.nn.Linear(4, 2)) as n:
    ...     torch.get_num_threads() == n == 1
    True
    >>> torch.get_num_threads() == before
    True
    """
    before, _ = _enter()
    try:
        yield use_threads(n_threads, module)
    finally:
        _exit(before)
