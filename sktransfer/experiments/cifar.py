"""CIFAR-10 A/B: a small CNN trained on 8 classes (A), transferred to the other 2 (B)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..compare import ComparisonResult, compare
from ..datasets import CIFAR10_CLASSES, fetch_cifar10
from ..estimator import TransferClassifier
from ._common import say, select_strategies, torch_threads

__all__ = ["CIFAR_STRATEGIES", "run_cifar"]

#: Strategy names of the CIFAR experiment.
CIFAR_STRATEGIES = ("scratch", "last-1", "last-2", "fine-tune")

_FREEZE = {"last-1": "last:1", "last-2": "last:2", "fine-tune": "none"}


def _class_index(value: int | str) -> int:
    if isinstance(value, str) and not value.isdigit():
        if value.lower() not in CIFAR10_CLASSES:
            raise ValueError(f"unknown CIFAR-10 class {value!r}; classes: "
                             f"{', '.join(CIFAR10_CLASSES)} (or 0-9)")
        return CIFAR10_CLASSES.index(value.lower())
    index = int(value)
    if not 0 <= index < len(CIFAR10_CLASSES):
        raise ValueError(f"CIFAR-10 classes are 0 to 9, got {value!r}")
    return index


def _first_rows(target: np.ndarray, classes: Sequence[int], start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` (in file order) of each class."""
    return np.sort(np.concatenate([np.flatnonzero(target == c)[start:stop] for c in classes]))


def _load(data_home, download, per_class, progress):
    return fetch_cifar10("train", data_home=data_home, download=download,
                         max_per_class=per_class, verbose=int(progress))


def _load_test(data_home, download, b_classes, per_class, progress, notes):
    try:
        test = fetch_cifar10("test", data_home=data_home, download=download,
                             verbose=int(progress))
    except (FileNotFoundError, OSError) as exc:
        why = "not found" if isinstance(exc, FileNotFoundError) else f"not loaded ({exc})"
        notes.append(
            f"The CIFAR-10 test split was {why}: task B is scored on held-out training "
            "images of the B classes, used neither for A nor for B training."
        )
        return None
    rows = _first_rows(test.target, b_classes, 0, per_class)
    return test.images[rows], test.target[rows]


def run_cifar(
    data_home: Any = None,
    *,
    a_train_size: int = 8000,
    b_train_size: int = 200,
    b_test_size: int = 2000,
    b_classes: Sequence[int | str] = (0, 7),
    strategies: str | Iterable[str] | None = None,
    epochs: int = 20,
    a_epochs: int = 10,
    repeats: int = 3,
    lr: float = 1e-3,
    batch_size: int = 64,
    augment: bool = False,
    seed: int = 0,
    device: str = "auto",
    download: bool = False,
    progress: bool = False,
    verbose: int = 0,
    threads: int | None = 1,
    n_jobs: int | None = None,
) -> ComparisonResult:
    """The CIFAR-10 A/B transfer experiment: scratch vs ``last:1`` vs ``last:2`` vs all layers.

    Task A is the 8 classes not in ``b_classes``: the small CNN backbone (``"cnn"``) is
    trained on ``a_train_size`` of their images. Task B is ``b_classes`` with only
    ``b_train_size`` training images: a CNN from scratch, the A network with only its new
    head trained (``last-1``), with the head and the layer below it trained (``last-2``),
    and with all layers fine-tuned (``fine-tune``). B is scored on the CIFAR-10 test
    images of its classes; when the test split is absent (a note says so), on
    ``b_test_size`` training images of the B classes that neither A nor B trained on.

    Parameters
    ----------
    data_home : str or path, default=None
        Data home holding ``cifar10/`` (see :func:`~sktransfer.datasets.fetch_cifar10`).
    a_train_size : int, default=8000
        Training images of task A (equal per class).
    b_train_size : int, default=200
        Training images of task B (equal per class).
    b_test_size : int, default=2000
        Test images of task B (equal per class).
    b_classes : sequence of int or str, default=(0, 7)
        The B classes (airplane and horse), by index or name.
    strategies : str or iterable of str, default=None
        Subset of :data:`CIFAR_STRATEGIES`; default all.
    epochs : int, default=20
        Training epochs of the B models.
    a_epochs : int, default=10
        Training epochs of the A model.
    repeats : int, default=3
        B training sets drawn (stratified) from a pool twice their size; one when 1.
    lr : float, default=1e-3
        Adam learning rate.
    batch_size : int, default=64
        Mini-batch size.
    augment : bool, default=False
        Random flips and shifts while training.
    seed : int, default=0
        Seeds the draws and the models.
    device : str, default="auto"
        Torch device.
    download : bool, default=False
        Download missing data through torchvision.
    progress : bool, default=False
        Progress bars on stderr.
    verbose : int, default=0
        Verbosity of the networks (the A model shows its epochs when ``progress``).
    threads : int or None, default=1
        Torch CPU threads while running; None leaves torch's setting. One thread is
        robust on a shared machine (several threads slow down badly when cores are busy).
    n_jobs : int, default=None
        Parallel fits, see :func:`~sktransfer.compare.compare`.

    Returns
    -------
    ComparisonResult
        One row per B strategy, target ``"B: airplane vs horse"``.

    Examples
    --------
    >>> from sktransfer.experiments import run_cifar
    >>> result = run_cifar("/data", a_train_size=800, b_train_size=100,
    ...                    a_epochs=2, epochs=2, repeats=1)  # doctest: +SKIP
    """
    selected = select_strategies(strategies, CIFAR_STRATEGIES, "cifar")
    b = list(dict.fromkeys(_class_index(c) for c in b_classes))
    if len(b) < 2:
        raise ValueError(f"task B needs at least two distinct classes, got {list(b_classes)}")
    a = [c for c in range(len(CIFAR10_CLASSES)) if c not in b]
    for name, value in (("a_train_size", a_train_size), ("b_train_size", b_train_size),
                        ("b_test_size", b_test_size), ("repeats", repeats)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    per_a = math.ceil(a_train_size / len(a))
    per_b = math.ceil(b_train_size / len(b))
    pool_b = per_b * (2 if repeats > 1 else 1)
    per_b_test = math.ceil(b_test_size / len(b))
    notes: list[str] = []
    b_names = [CIFAR10_CLASSES[c] for c in b]
    target = f"B: {' vs '.join(b_names)}"

    with torch_threads(threads):
        test = _load_test(data_home, download, b, per_b_test, progress, notes)
        held_out = test is None
        say("loading CIFAR-10 training images", progress)
        per_class = max(per_a, pool_b + (per_b_test if held_out else 0))
        train = _load(data_home, download, per_class, progress)
        if held_out:
            test_rows = _first_rows(train.target, b, pool_b, pool_b + per_b_test)
            test = train.images[test_rows], train.target[test_rows]
        a_rows = _first_rows(train.target, a, 0, per_a)
        pool_rows = _first_rows(train.target, b, 0, pool_b)
        if held_out and np.intersect1d(pool_rows, test_rows).size:
            raise RuntimeError("B training and test rows overlap")  # pragma: no cover
        if min(int(np.sum(test[1] == c)) for c in b) == 0:
            raise ValueError(f"no test images for some B classes ({b_names})")

        common = dict(lr=lr, batch_size=batch_size, augment=augment, device=device,
                      random_state=seed)
        settings: dict[str, Any] = {
            "experiment": "cifar", "a_classes": [CIFAR10_CLASSES[c] for c in a],
            "b_classes": b_names, "a_train_size": int(len(a_rows)),
            "b_train_size": per_b * len(b), "b_pool_size": int(len(pool_rows)),
            "b_test_size": int(len(test[1])),
            "b_test_source": "held-out CIFAR-10 training images" if held_out
            else "CIFAR-10 test split",
            "strategies": selected, "epochs": epochs, "a_epochs": a_epochs,
            "repeats": repeats, "lr": lr, "batch_size": batch_size, "augment": augment,
            "optimizer": "adam", "backbone": "cnn", "seed": seed, "device": device,
            "torch_threads": threads, "data_home": data_home,
        }
        backbone = None
        if set(selected) - {"scratch"}:
            say(f"training the CNN on task A ({len(a_rows)} images of "
                f"{len(a)} classes, {a_epochs} epochs)", progress)
            model_a = TransferClassifier(
                "cnn", max_epochs=a_epochs, verbose=max(verbose, 2 * progress), **common
            ).fit(train.images[a_rows], train.target[a_rows])
            last = model_a.history_.iloc[-1]
            settings["a_model"] = {k: float(last[k]) for k in ("train_acc", "valid_acc")
                                   if k in last}
            backbone = model_a.export_backbone()

        models = {}
        for strategy in selected:
            if strategy == "scratch":
                models["cnn-scratch"] = TransferClassifier("cnn", max_epochs=epochs, **common)
            else:
                models[f"cnn-{strategy}"] = TransferClassifier(
                    backbone, freeze=_FREEZE[strategy], max_epochs=epochs, **common)
        X = np.concatenate([train.images[pool_rows], test[0]])
        y = np.concatenate([train.target[pool_rows], test[1]])
        splits = _b_splits(y[: len(pool_rows)], len(y), per_b * len(b), repeats, seed)
        say(f"task B: {len(selected)} model(s) x {repeats} repeat(s)", progress)
        result = compare(models, X, y, cv=splits, target=target,
                         class_names={c: CIFAR10_CLASSES[c] for c in b},
                         n_jobs=n_jobs, progress=progress, experiment="cifar")
    settings["notes"] = notes
    settings["description"] = (
        f"A small CNN is trained on task A ({len(a)} CIFAR-10 classes, {len(a_rows)} images) "
        f"and transferred to task B ({', '.join(b_names)}) with {per_b * len(b)} training "
        f"images; B is scored on {len(test[1])} "
        f"{'held-out training' if held_out else 'test'} images ({repeats} repeat(s))."
    )
    return ComparisonResult.concat(
        [result], experiment=f"CIFAR-10 A/B transfer: {target}", settings=settings
    )


def _b_splits(y_pool, n_total, n_train, repeats, seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training rows drawn from the pool (all of it when one repeat), test rows fixed."""
    from sklearn.model_selection import StratifiedShuffleSplit

    test = np.arange(len(y_pool), n_total)
    if repeats == 1:
        return [(np.arange(len(y_pool)), test)]
    sss = StratifiedShuffleSplit(repeats, train_size=n_train, random_state=seed)
    return [(np.sort(tr), test) for tr, _ in sss.split(np.zeros(len(y_pool)), y_pool)]
