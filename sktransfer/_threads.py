"""How many CPU threads torch may use during one fit or predict, and scoping that choice.

Measured on a busy 2-core machine (``benchmarks/bench_threads.py``): torch's default of one
thread per core makes the small networks of tabular data 10-30x slower than one thread,
because every tiny matrix product waits at an OpenMP barrier for a thread the operating
system has descheduled. Intra-op threads only pay when each operation is large. So the
``"auto"`` policy is:

- networks under :data:`SMALL_NETWORK_PARAMS` parameters (the tabular MLPs, small CNNs):
  one thread;
- larger networks: the CPUs this process may use, i.e. the smallest of loky's CPU count
  (affinity mask and cgroup quota aware), the caller's torch setting (which already
  honours ``OMP_NUM_THREADS``: joblib's inner thread limit in ``GridSearchCV(n_jobs=k)``
  workers and the ``OMP_NUM_THREADS=1`` Dask gives its worker processes), shared between
  the fits running at the same time in this process (joblib's threading backend, Dask
  threads).

A rule read off the network cannot know the machine's load. A small CNN has few
parameters but large operations: on two threads the 0.3M-parameter CIFAR CNN trains in
0.57 of one thread's time when the machine is idle, and in 4.5 times it when the other
core is busy (``benchmarks/bench_threads_cnn.py``). ``"auto"`` keeps one thread there:
robust, and a seeded fit is repeatable (convolutions summed on another number of threads
round differently, and training amplifies that: the benchmark's two fits on one and two
threads end with predicted probabilities up to 0.5 apart). ``"tune"`` measures
instead, as ``torch.backends.cudnn.benchmark`` times convolution algorithms: where a pass
over the data is long enough, :class:`ThreadTuner` times a few batches on one thread and
on the budget and keeps the faster (one thread unless the budget is clearly faster), and
shorter passes follow ``"auto"``. It is as fast as the better of the two on an idle and
on a busy machine; the price is that the threads, and with them the trained weights, can
differ between two runs with the same ``random_state``.

The estimator's ``fit``, ``predict_proba`` and ``transform`` are wrapped in
:func:`scoped_threads` and call :func:`use_threads` once the network is known; the caller's
``torch.set_num_threads`` setting is restored when they return, errors included.
"""

from __future__ import annotations

import functools
import numbers
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Below this many parameters a network runs on one thread under ``n_threads="auto"``.
SMALL_NETWORK_PARAMS = 1_000_000

_lock = threading.Lock()
_active = 0  # fits/predicts of this library running now in this process
_local = threading.local()  # per thread: nesting depth of the scopes


def cpu_budget() -> int:
    """CPUs this process may use: affinity, cgroup quotas and thread limits honoured.

    Inside a :func:`scoped_threads` method the limit is the caller's torch setting, not
    the one the method has set since.
    """
    from joblib import cpu_count

    caller = getattr(_local, "caller_threads", None)
    return max(1, min(int(cpu_count()), caller or torch.get_num_threads()))


def _shared_budget(concurrent: int) -> int:
    """This fit's share of :func:`cpu_budget` when ``concurrent`` fits run at once."""
    return max(1, cpu_budget() // max(1, concurrent))


def set_threads(n: int) -> None:
    """``torch.set_num_threads(n)``, skipped when it is already ``n`` (the call is not free:
    it reconfigures the thread pools)."""
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def check_n_threads(n_threads) -> None:
    """Raise a clear ValueError for a bad ``n_threads`` value."""
    if n_threads in ("auto", "tune", None):
        return
    if (not isinstance(n_threads, numbers.Integral) or isinstance(n_threads, bool)
            or n_threads < 1):
        raise ValueError(
            f"n_threads must be 'auto', 'tune', None or a positive int, got {n_threads!r}; "
            "'auto' picks one thread for small networks and the free CPUs for large ones, "
            "'tune' times both on the first batches"
        )


def resolve_n_threads(n_threads, module: torch.nn.Module | None, concurrent: int = 1) -> int | None:
    """The thread count for a fit of ``module``; None leaves torch's setting alone.

    Parameters
    ----------
    n_threads : "auto", "tune", None or int
        The estimator's parameter (``"tune"`` starts where ``"auto"`` does).
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
    if n_threads not in ("auto", "tune"):
        return int(n_threads)
    n_params = sum(p.numel() for p in module.parameters()) if module is not None else 0
    if n_params < SMALL_NETWORK_PARAMS:
        return 1
    return _shared_budget(concurrent)


def _enter() -> tuple[int, int]:
    """Count this thread's outermost call as one more running fit; return (before, concurrent)."""
    global _active
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    before = torch.get_num_threads()
    if depth == 0:
        _local.caller_threads = before
    with _lock:
        if depth == 0:
            _active += 1
        concurrent = _active
    return before, concurrent


def _exit(before: int) -> None:
    global _active
    set_threads(before)
    _local.depth -= 1
    if _local.depth == 0:
        _local.caller_threads = None
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
    set_threads(n)
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


class ThreadTuner:
    """Choose between one thread and ``n_threads`` by timing batches of a pass.

    Called around the batches of a pass over the data (``before_batch`` /
    ``after_batch``), it sets torch's threads itself: a first batch to warm up and
    ``n_timed`` timed ones on one thread, then the same on ``n_threads``; the pass goes on
    with the faster. One thread is the start and the default because it is the robust
    choice: more threads are kept only when their batches take at most ``margin`` times as
    long. The probe stays on one thread when

    - its batches take under ``min_batch_seconds``: operations that small gain little from
      threads and lose 10-30x when a core is busy (the gas MLP's steps are well below it,
      and ``"tune"`` leaves it on one thread: ``benchmarks/bench_threads_cnn.py``);
    - a batch on ``n_threads`` takes over twice the one-thread time (a busy core): the
      probe stops there, so a wrong guess costs at most two batches.

    ``new_pass(n_batches)`` starts a probe when the pass has at least ``min_batches``
    batches (so most of it runs with the choice) and, once a probe has chosen, only when
    it has ``reprobe_batches`` or more: long epochs follow a load that comes or goes, short
    ones keep the first choice. Passes too short for any probe keep the setting they
    find (the rule of :func:`resolve_n_threads`). Batches are timed per sample, so a
    short last batch does not count against its setting.

    Examples
    --------
    >>> tuner = ThreadTuner(2)
    >>> tuner.new_pass(1)   # too short to measure: the setting is left as it is
    >>> tuner.threads is None and not tuner.probing
    True
    """

    def __init__(self, n_threads: int, *, n_timed: int = 3, min_batches: int = 16,
                 reprobe_batches: int = 100, min_batch_seconds: float = 0.005,
                 margin: float = 0.8):
        self.n_threads = int(n_threads)
        self.n_timed = n_timed
        self.min_batches = min_batches
        self.reprobe_batches = reprobe_batches
        self.min_batch_seconds = min_batch_seconds
        self.margin = margin
        self.threads: int | None = None  # the probe's choice, once it has one
        self._plan: list[int] = []  # thread counts of the batches still to probe
        self._times: dict[int, list[float]] = {}
        self._start = 0.0

    @property
    def probing(self) -> bool:
        return bool(self._plan)

    def reset(self) -> None:
        """Forget the choice (the network's work per batch changed): the next long pass
        probes again."""
        self._plan = []
        self.threads = None

    def new_pass(self, n_batches: int) -> None:
        """Begin a pass of ``n_batches`` batches: probe again if it is long enough."""
        first = self.threads is None  # no probe has chosen yet
        long_enough = n_batches >= (self.min_batches if first else
                                    max(self.min_batches, self.reprobe_batches))
        if self.n_threads > 1 and long_enough:
            # each setting: one batch to warm up (not timed), then n_timed timed ones
            self._plan = [1] * (self.n_timed + 1) + [self.n_threads] * (self.n_timed + 1)
            self._times = {1: [], self.n_threads: []}
            self._warm = {0, self.n_timed + 1}
            self._index = 0
        if self._plan:
            set_threads(self._plan[0])
        elif self.threads is not None:
            set_threads(self.threads)  # a short pass keeps the last probe's choice

    def before_batch(self) -> None:
        if self._plan:
            self._start = time.perf_counter()

    def after_batch(self, n_samples: int) -> None:
        if not self._plan:
            return
        seconds = (time.perf_counter() - self._start) / max(1, n_samples)
        threads = self._plan.pop(0)
        warm = self._index in self._warm
        self._index += 1
        if not warm:
            self._times[threads].append(seconds)
        one = self._times[1]
        if threads == 1 and len(one) == self.n_timed and not warm:
            if statistics.median(one) * n_samples < self.min_batch_seconds:
                return self._decide(1)  # small operations: stay on one thread
        elif threads != 1 and seconds > (3 if warm else 2) * statistics.median(one):
            return self._decide(1)  # a busy core (the warm-up also starts the threads)
        if not self._plan:
            many = statistics.median(self._times[self.n_threads])
            return self._decide(self.n_threads if many <= self.margin *
                                statistics.median(one) else 1)
        set_threads(self._plan[0])

    def _decide(self, threads: int) -> None:
        self._plan = []
        self.threads = threads
        set_threads(threads)


def thread_tuner(n_threads, device) -> ThreadTuner | None:
    """The tuner for a pass on ``device`` inside a :func:`scoped_threads` method, or None.

    Only ``n_threads="tune"`` on a CPU with more than one thread to give tunes.
    """
    if (n_threads != "tune" or torch.device(device).type != "cpu"
            or not getattr(_local, "depth", 0)):  # outside a scope nothing would restore it
        return None
    budget = _shared_budget(_active)
    return ThreadTuner(budget) if budget > 1 else None
