"""Helpers shared by the experiments: strategy selection, few-label splits, threads."""

from __future__ import annotations

import contextlib
import numbers
import sys
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from sklearn.model_selection import StratifiedShuffleSplit

from ..baselines import BASELINES


def select_strategies(
    requested: str | Iterable[str] | None, available: Sequence[str], experiment: str
) -> list[str]:
    """Validate ``requested`` (names or a comma-separated string) against ``available``.

    ``"baseline"`` stands for all classical baselines; a baseline's own name selects it
    alone. Returns the selection in the order of ``available`` (baselines last).
    """
    if requested is None:
        return list(available)
    if isinstance(requested, str):
        requested = [s.strip() for s in requested.split(",") if s.strip()]
    requested = list(requested)
    allowed = list(available) + (list(BASELINES) if "baseline" in available else [])
    unknown = [s for s in requested if s not in allowed]
    if unknown or not requested:
        what = f"unknown strategy name(s) {', '.join(map(repr, unknown))}" if unknown else (
            "no strategy selected")
        raise ValueError(f"{what} for the {experiment} experiment; choose from: "
                         f"{', '.join(allowed)}")
    order = {name: i for i, name in enumerate(allowed)}
    return sorted(dict.fromkeys(requested), key=order.__getitem__)


def baselines_in(selected: Sequence[str]) -> list[str]:
    """The classical baselines a selection asks for."""
    if "baseline" in selected:
        return list(BASELINES)
    return [name for name in BASELINES if name in selected]


def few_label_splits(
    y: np.ndarray,
    fraction: float,
    repeats: int,
    random_state: int,
    min_per_class: int = 2,
    where: str = "the target",
    names: dict | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``repeats`` stratified (labelled, scored) splits with ``fraction`` of each class
    labelled, and at least ``min_per_class`` labelled rows of every class.

    Raises ValueError when a class is too small to leave a row to score.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"label fraction must be in (0, 1), got {fraction!r}")
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    names = names or {}

    def name(c) -> str:
        c = c.item() if hasattr(c, "item") else c
        return str(names.get(c, c))

    if len(classes) < 2:
        raise ValueError(f"{where} has a single class ({name(classes[0])}); nothing to compare")
    take = np.maximum(min_per_class, np.round(fraction * counts).astype(int))
    small = [(c, n) for c, n, k in zip(classes, counts, take) if n - k < 1]
    if small:
        detail = ", ".join(f"class {name(c)} has {n}" for c, n in small)
        raise ValueError(
            f"{where}: {detail} row(s); each class needs at least {min_per_class} labelled "
            "rows plus one to score"
        )
    rng = np.random.RandomState(random_state)
    splits = []
    for _ in range(repeats):
        labelled = np.concatenate([
            rng.choice(np.flatnonzero(y == c), size=k, replace=False)
            for c, k in zip(classes, take)
        ])
        mask = np.zeros(len(y), dtype=bool)
        mask[labelled] = True
        splits.append((np.flatnonzero(mask), np.flatnonzero(~mask)))
    return splits


def held_out_split(
    y: np.ndarray, test_fraction: float, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified (train, test) split of row indices."""
    sss = StratifiedShuffleSplit(1, test_size=test_fraction, random_state=random_state)
    train, test = next(sss.split(np.zeros(len(y)), y))
    return np.sort(train), np.sort(test)


def check_epochs(**values) -> None:
    """A clear ValueError for an experiment's epoch counts that are not positive ints
    (``None`` allowed: the experiment's own default)."""
    for name, value in values.items():
        if value is not None and (not isinstance(value, numbers.Integral)
                                  or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_threads(threads) -> None:
    """A clear ValueError for an experiment's ``threads`` that is not None, "tune" or > 0."""
    if threads is None or threads == "tune":
        return
    if (not isinstance(threads, numbers.Integral) or isinstance(threads, bool)
            or threads < 1):
        raise ValueError(f"threads must be a positive int, 'tune' or None, got {threads!r}")


def network_threads(threads) -> dict:
    """The networks' parameters for an experiment's ``threads``: ``"tune"`` leaves torch's
    setting and lets each network time its threads (``n_threads="tune"``)."""
    return {"n_threads": "tune"} if threads == "tune" else {}


@contextlib.contextmanager
def torch_threads(n: int | str | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (``None`` or ``"tune"``: leave as is), restoring
    them after."""
    import torch

    check_threads(n)
    if n is None or n == "tune":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def say(message: str, progress: bool) -> None:
    """A status line on stderr (when progress output is wanted)."""
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)
