"""The learning-rate range test: train briefly while the rate grows exponentially.

Smith (WACV 2017, "Cyclical learning rates for training neural networks") and fastai's
``lr_find``: starting from a tiny rate, each mini-batch multiplies the rate by a constant
factor; the loss first stays flat, then falls, then explodes. A good rate lies where the
loss falls fastest (the steepest descent of the smoothed curve), or a tenth of the rate at
its minimum. The sweep trains a clone; the estimator passed in stays unfitted.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    validate_params,
)
from skorch.callbacks import Callback

from .compare import ModelParameterError
from .freeze import FreezeBackbone


class _SweepDone(KeyboardInterrupt):
    """Ends the sweep: skorch stops a fit cleanly on a KeyboardInterrupt."""


class _LRSweep(Callback):
    """Set every parameter group's rate before each training batch; record the losses.

    Ratios between groups (a backbone at a tenth of the head's rate, layer-wise decay) are
    kept: each group runs at ``its own base rate * lr_i / base_lr``.
    """

    def __deepcopy__(self, memo):
        # lr_find's own recorder: the estimator deep-copies its callbacks at fit, and the
        # copy must record here, where lr_find reads it even when the fit raised
        return self

    def __init__(self, start_lr, end_lr, num_iter, base_lr, smooth=0.05, diverge=4.0):
        self.start_lr = start_lr
        self.end_lr = end_lr
        self.num_iter = num_iter
        self.base_lr = base_lr
        self.smooth = smooth
        self.diverge = diverge

    def initialize(self):
        self.lrs_, self.losses_, self.smoothed_ = [], [], []
        self._avg = 0.0
        return self

    def _lr(self, i: int) -> float:
        ratio = self.end_lr / self.start_lr
        return self.start_lr * ratio ** (i / max(self.num_iter - 1, 1))

    def on_train_begin(self, net, **kwargs):
        self._base = [g["lr"] for g in net.optimizer_.param_groups]

    def on_batch_begin(self, net, training=False, **kwargs):
        if not training:
            return
        lr = self._lr(len(self.lrs_))
        for group, base in zip(net.optimizer_.param_groups, self._base):
            group["lr"] = base * lr / self.base_lr
        self.lrs_.append(lr)

    def on_batch_end(self, net, training=False, loss=None, **kwargs):
        if not training:
            return
        value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        self.losses_.append(value)
        i = len(self.losses_)
        self._avg = self.smooth * value + (1 - self.smooth) * self._avg
        smoothed = self._avg / (1 - (1 - self.smooth) ** i)  # bias-corrected EMA
        self.smoothed_.append(smoothed)
        best = min(self.smoothed_)
        if not math.isfinite(value) or smoothed > self.diverge * best or i >= self.num_iter:
            raise _SweepDone


@dataclass
class LRFinderResult:
    """What :func:`lr_find` measured, with the suggested rates and a plot.

    Parameters
    ----------
    lrs : ndarray
        The head's learning rate at each training batch of the sweep.
    losses : ndarray
        The training loss of each batch.
    smoothed : ndarray
        Their bias-corrected exponential moving average.
    suggestion : float
        The rate where the smoothed loss falls fastest per decade of rate.
    lr_min : float
        A tenth of the rate at the lowest smoothed loss (fastai's ``minimum / 10``).
    notes : list of str
        What to know about the sweep (it ended early without diverging, say).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import LRFinderResult
    >>> lrs = np.logspace(-5, 0, 20)
    >>> losses = np.r_[np.full(8, 1.0), np.linspace(1.0, 0.2, 8), [0.5, 1, 2, 4]]
    >>> result = LRFinderResult(lrs, losses, losses, *[1e-3, 1e-2])
    >>> result.plot().get_xscale()
    'log'
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    lr_min: float
    notes: list[str] = field(default_factory=list)

    def plot(self, ax=None):
        """Smoothed loss against the learning rate (log axis), the suggestions marked.

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(self.lrs, self.losses, color="0.8", lw=1, label="batch loss")
        ax.plot(self.lrs, self.smoothed, color="C0", label="smoothed")
        ax.axvline(self.suggestion, color="C3", ls="--",
                   label=f"steepest: {self.suggestion:.2g}")
        ax.axvline(self.lr_min, color="C2", ls=":", label=f"min/10: {self.lr_min:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (head)")
        ax.set_ylabel("training loss")
        finite = self.smoothed[np.isfinite(self.smoothed)]
        if finite.size:
            low, high = finite.min(), min(finite.max(), 2.0 * finite[0])
            ax.set_ylim(low - 0.05 * (high - low + 1e-12), high + 0.05 * (high - low + 1e-12))
        ax.legend(frameon=False, fontsize="small")
        return ax


def _suggest(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, float]:
    """(steepest descent, minimum / 10) of the smoothed curve, skipping its noisy ends."""
    n = len(lrs)
    if n < 3:
        return float(lrs[0]), float(lrs[0]) / 10
    skip_start, skip_end = min(n // 10, 10), min(n // 20, 5)
    best = int(np.nanargmin(smoothed))
    lr_min = float(lrs[best]) / 10
    # the steepest descent on the way down to the minimum, not in the noise after it
    stop = max(best + 1, skip_start + 3)
    idx = np.arange(skip_start, min(stop, n - skip_end))
    if len(idx) < 3:
        return lr_min, lr_min
    grad = np.gradient(smoothed[idx], np.log10(lrs[idx]))
    steepest = float(lrs[idx][int(np.nanargmin(grad))])
    return steepest, lr_min


@validate_params(
    {
        "estimator": [HasMethods(["fit", "get_params", "set_params"])],
        "X": "no_validation",  # whatever the estimator's fit takes
        "y": ["array-like"],
        "start_lr": [Interval(Real, 0, None, closed="neither")],
        "end_lr": [Interval(Real, 0, None, closed="neither")],
        "num_iter": [Interval(Integral, 3, None, closed="left")],
        "smooth": [Interval(Real, 0, 1, closed="right")],
        "diverge": [Interval(Real, 1, None, closed="neither")],
        "sample_weight": ["array-like", None],
    },
    # False: the estimators fitted inside check their parameters, as in cross_validate
    prefer_skip_nested_validation=False,
)
def lr_find(estimator, X, y, *, start_lr: float = 1e-7, end_lr: float = 10.0,
            num_iter: int = 100, smooth: float = 0.05, diverge: float = 4.0,
            sample_weight=None) -> LRFinderResult:
    """Sweep the learning rate exponentially over training batches and suggest one.

    A clone of ``estimator`` trains on ``(X, y)`` for at most ``num_iter`` batches (more
    epochs when the data has fewer batches), with every validation, early stopping and
    schedule off; the rate goes from ``start_lr`` to ``end_lr`` geometrically and the sweep
    stops early once the smoothed loss exceeds ``diverge`` times its minimum. The ratios
    between parameter groups (``backbone_lr_mult``, ``layer_decay``) are kept, and the
    rates reported are the head's. The sweep trains the network as its first epoch would:
    with ``freeze="gradual"``, the head alone, for every batch of the sweep. An estimator
    with ``head_solver="lbfgs"`` has no rate to sweep and is refused.

    Parameters
    ----------
    estimator : TransferClassifier
        The estimator to test, left unfitted.
    X, y : array-like
        Training data, as for ``fit``.
    start_lr, end_lr : float, default=1e-7, 10.0
        Range of the sweep.
    num_iter : int, default=100
        Batches in the sweep.
    smooth : float, default=0.05
        Weight of the newest loss in the exponential moving average.
    diverge : float, default=4.0
        Stop once the smoothed loss exceeds this multiple of its minimum.
    sample_weight : array-like, default=None
        Passed to ``fit``.

    Returns
    -------
    LRFinderResult
        ``lrs``, ``losses``, ``smoothed``, ``suggestion``, ``lr_min`` and ``plot()``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier, lr_find
    >>> rng = np.random.RandomState(0)
    >>> X, y = rng.rand(256, 6), rng.randint(0, 2, 256)
    >>> result = lr_find(TransferClassifier("mlp", batch_size=16), X, y, num_iter=30)
    >>> 1e-7 <= result.suggestion <= 10
    True
    """
    if not (0 < start_lr < end_lr and math.isfinite(end_lr)):
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr!r}, "
                         f"end_lr={end_lr!r}")
    if int(num_iter) < 3:
        raise ValueError(f"num_iter must be at least 3, got {num_iter!r}")
    if not 0 < smooth <= 1:
        raise ValueError(f"smooth must be in (0, 1], got {smooth!r}")
    num_iter = int(num_iter)
    est = clone(estimator)
    params = est.get_params(deep=False)
    missing = [k for k in ("lr", "callbacks", "max_epochs") if k not in params]
    if missing:
        raise TypeError(
            f"lr_find sweeps the learning rate of a TransferClassifier or TransferRegressor "
            f"(a network trained by batches, with lr, callbacks and max_epochs parameters); "
            f"{type(estimator).__name__} has no {', '.join(missing)} parameter"
        )
    try:  # before the sweep is sized from them (batch_size=0)
        if hasattr(est, "_validate_params"):
            est._validate_params()
    except InvalidParameterError as exc:
        raise ModelParameterError(f"the estimator: {exc}") from exc
    if params.get("head_solver") == "lbfgs":
        raise ValueError(
            "lr_find sweeps the rate of training by batches, but head_solver='lbfgs' solves "
            "the head in one L-BFGS run, with no learning rate to sweep. Sweep "
            "estimator.set_params(head_solver='minibatch') instead: the same network "
            "trained by the optimizer"
        )
    n = len(X)
    batches = max(1, math.ceil(n / int(params.get("batch_size", 64))))
    sweep = _LRSweep(start_lr, end_lr, num_iter, float(params["lr"]), smooth, diverge)
    updates = {"max_epochs": math.ceil(num_iter / batches), "validation_fraction": None,
               "early_stopping": None, "verbose": 0}
    callbacks = list(params.get("callbacks") or [])
    updates["callbacks"] = [*callbacks, ("lr_finder", sweep)]
    for name, value in (("lr_schedule", "constant"), ("warmup", 0.0),
                        ("cache_features", params.get("cache_features"))):
        if name in params:
            updates[name] = value
    policy = est._freeze_policy() if hasattr(est, "_freeze_policy") else None
    if hasattr(policy, "head_stage_epochs") and policy.head_stage_epochs(sys.maxsize):
        # a staged policy (LP-FT) trains the head alone first: every batch of the sweep
        # does so, whatever the number of epochs the sweep needs
        updates["freeze"] = FreezeBackbone()
        if params.get("weight_interpolation") is not None:  # WiSE-FT needs both stages
            updates["weight_interpolation"] = None
    est.set_params(**updates)
    try:
        est.fit(X, y, sample_weight=sample_weight)
    except InvalidParameterError as exc:  # the estimator's, not lr_find's (renamed
        raise ModelParameterError(f"the estimator: {exc}") from exc  # by the wrapper)
    except ValueError:
        # a diverged sweep may leave non-finite weights the estimator refuses to keep;
        # what the sweep recorded before that is the result
        if not getattr(sweep, "losses_", None):
            raise
    cb = _find_sweep(est) or sweep
    k = len(cb.losses_)
    if k == 0:
        raise RuntimeError("the learning-rate sweep ran no training batch")
    lrs = np.asarray(cb.lrs_[:k], dtype=float)
    losses = np.asarray(cb.losses_, dtype=float)
    smoothed = np.asarray(cb.smoothed_, dtype=float)
    notes = []
    if k < num_iter and np.isfinite(smoothed).all() and smoothed[-1] <= diverge * smoothed.min():
        notes.append(f"the sweep ended after {k} of {num_iter} batches")
    steepest, lr_min = _suggest(lrs, smoothed)
    return LRFinderResult(lrs, losses, smoothed, steepest, lr_min, notes)


def _find_sweep(est) -> _LRSweep | None:
    net = getattr(est, "net_", None)
    for _, cb in getattr(net, "callbacks_", []) or []:
        if isinstance(cb, _LRSweep):
            return cb
    return None
