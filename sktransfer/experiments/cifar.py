"""CIFAR-10 A/B: a small CNN trained on 8 classes (A), transferred to the other 2 (B).

The recipes are fixed here, the same for every split. Task B's were chosen on a
validation pool of B training images that the reported score never uses
(``benchmarks/bench_cifar_b_variants.py``, 5 draws of 100 images; every variant tried and
its score are in ``benchmarks/results/cifar_b_variants.json``):

- task A trains the residual ``"cnn"`` with SGD, a one-cycle learning rate (Smith & Topin
  2019, super-convergence), label smoothing 0.2 (Szegedy et al. 2016), random flips and
  crops of the reflect-padded image (He et al. 2016) and weight decay 5e-4, the short
  CIFAR schedule of airbench (Jordan 2024), 14 epochs: 86.9% on held-out A images in
  about 8 CPU minutes on one core (12 epochs 86.3%; 14 lifted every transferred B model
  about half a point on the validation pool). Without label smoothing
  (Kornblith et al. 2021 find it hurts linear transfer on ImageNet) A scored 85.4%
  instead of 86.0% and the head-only B model 0.930 instead of 0.939
  (``benchmarks/results/cifar_a_variants.json``), so it stays;
- every B model predicts with test-time flips (``tta=True``): airplanes and horses are
  mirror-symmetric, and averaging each image with its mirror image added 0.2-0.4 points
  to every transferred model on the validation pool;
- the transferred models train their trainable part at a small rate so they stay near
  the A weights: ``last-2`` (head and last residual convolution, the best) for 60 epochs
  at lr 0.005 (0.940 on validation, against 0.931 for the earlier 30 epochs at 0.01);
  ``fine-tune`` (all layers) for 60 epochs. What did not help there: L2-SP toward the A
  weights (Li et al. 2018), layer-wise rate decay 0.6, BatchNorm kept frozen, a third
  trainable layer, LP-FT (``gradual``, Kumar et al. 2022: on par with ``last-2``, not
  above it), augmenting the head-only model's images;
- scratch gets the same augmentation and test-time flips, and a longer schedule at a
  larger rate (160 epochs, which gained it 3 points over 80): the comparison is not won
  by starving it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..compare import ComparisonResult, compare
from ..datasets import CIFAR10_CLASSES, fetch_cifar10
from ..estimator import TransferClassifier
from ._common import network_threads, say, select_strategies, torch_threads

__all__ = ["A_RECIPE", "B_RECIPES", "CIFAR_STRATEGIES", "run_cifar"]

#: Strategy names of the CIFAR experiment.
CIFAR_STRATEGIES = ("scratch", "last-1", "last-2", "fine-tune")

_FREEZE = {"scratch": "none", "last-1": "last:1", "last-2": "last:2", "fine-tune": "none"}

#: TransferClassifier parameters of the task A network (``max_epochs`` is ``a_epochs``).
A_RECIPE: dict[str, Any] = {
    "optimizer": "sgd", "lr": 0.2, "lr_schedule": "onecycle", "warmup": 0.2,
    "weight_decay": 5e-4, "label_smoothing": 0.2, "augment": "flip_crop", "batch_size": 256,
}

#: TransferClassifier parameters of each task B strategy (``max_epochs`` included).
B_RECIPES: dict[str, dict[str, Any]] = {
    "scratch": {"optimizer": "sgd", "lr": 0.05, "lr_schedule": "onecycle", "warmup": 0.2,
                "weight_decay": 5e-4, "label_smoothing": 0.1, "augment": "flip_crop",
                "batch_size": 32, "max_epochs": 160, "tta": True},
    "last-1": {"optimizer": "adamw", "lr": 1e-2, "lr_schedule": "cosine", "warmup": 0.0,
               "weight_decay": 1e-2, "batch_size": 32, "max_epochs": 60, "tta": True},
    "last-2": {"optimizer": "sgd", "lr": 0.005, "lr_schedule": "onecycle", "warmup": 0.2,
               "weight_decay": 5e-4, "label_smoothing": 0.1, "augment": "flip_crop",
               "batch_size": 32, "max_epochs": 60, "tta": True},
    "fine-tune": {"optimizer": "sgd", "lr": 0.01, "lr_schedule": "onecycle", "warmup": 0.2,
                  "layer_decay": None, "weight_decay": 5e-4, "label_smoothing": 0.1,
                  "augment": "flip_crop", "batch_size": 32, "max_epochs": 60, "tta": True},
}


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


def _rows(target: np.ndarray, classes: Sequence[int], start: int, stop: int) -> np.ndarray:
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
    rows = _rows(test.target, b_classes, 0, per_class)
    return test.images[rows], test.target[rows]


def _cpu_amp() -> str | bool:
    """bfloat16 autocast on CPUs that compute it natively (oneDNN, AVX512-BF16/AMX): about
    twice as fast as float32 for this network; float32 elsewhere."""
    import torch

    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else False
    except (AttributeError, RuntimeError):  # pragma: no cover - torch without oneDNN
        return False


def run_cifar(
    data_home: Any = None,
    *,
    a_train_size: int = 36000,
    a_test_size: int = 4000,
    b_train_size: int = 100,
    b_test_size: int = 2000,
    b_classes: Sequence[int | str] = (0, 7),
    strategies: str | Iterable[str] | None = None,
    epochs: int | None = None,
    a_epochs: int = 14,
    repeats: int = 5,
    batch_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    download: bool = False,
    progress: bool = False,
    verbose: int = 0,
    threads: int | str | None = 1,
    n_jobs: int | None = None,
    a_backbone: Any = None,
    a_checkpoint: Any = None,
) -> ComparisonResult:
    """The CIFAR-10 A/B transfer experiment: scratch vs ``last:1`` vs ``last:2`` vs all layers.

    Task A is the 8 classes not in ``b_classes``: the residual CNN backbone (``"cnn"``) is
    trained on ``a_train_size`` of their images with :data:`A_RECIPE` and scored on
    ``a_test_size`` others (``settings["a_model"]``). Task B is ``b_classes`` with only
    ``b_train_size`` labelled images: a CNN from scratch, the A network with only its new
    head trained (``last-1``), with the head and the convolution below it trained
    (``last-2``), and with all layers fine-tuned (``fine-tune``), each with its recipe in
    :data:`B_RECIPES`. B is scored on the CIFAR-10 test images of its classes; when the
    test split is absent (a note says so), on ``b_test_size`` training images of the B
    classes that neither A nor B trained on.

    Parameters
    ----------
    data_home : str or path, default=None
        Data home holding ``cifar10/`` (see :func:`~sktransfer.datasets.fetch_cifar10`).
    a_train_size : int, default=36000
        Training images of task A (equal per class; 4,500 of each class's 5,000).
    a_test_size : int, default=4000
        Held-out task A images the A network is scored on (equal per class).
    b_train_size : int, default=100
        Labelled images of task B (equal per class).
    b_test_size : int, default=2000
        Test images of task B (equal per class).
    b_classes : sequence of int or str, default=(0, 7)
        The B classes (airplane and horse), by index or name.
    strategies : str or iterable of str, default=None
        Subset of :data:`CIFAR_STRATEGIES`; default all.
    epochs : int, default=None
        Training epochs of every B model; None uses each recipe's own.
    a_epochs : int, default=14
        Training epochs of the A model (see ``benchmarks/bench_cifar.py`` for times:
        about 450 s on one CPU thread). 14 rather than 12: a better source network
        transfers better (Kornblith et al., CVPR 2019), and on the validation pool of B
        images every transferred B model gained about half a point
        (``benchmarks/results/cifar_b_a14.json`` against ``cifar_b_translate.json``).
    repeats : int, default=5
        B training sets drawn (stratified) from a pool twice their size; one when 1.
    batch_size : int, default=None
        Mini-batch size of every model; None uses the recipes' (256 for A, 32 for B).
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
    threads : int, "tune" or None, default=1
        Torch CPU threads while running; None leaves torch's setting. One thread is
        robust on a shared machine: with busy cores, two threads of this network took
        10 times the CPU time of one (OpenMP threads spin waiting for each other).
        ``"tune"``: every network times one thread against the CPUs at the start of
        its long epochs and keeps the faster (``n_threads="tune"``; fast on an idle
        machine and a busy one, but not repeatable number for number).
    n_jobs : int, default=None
        Parallel fits, see :func:`~sktransfer.compare.compare`.
    a_backbone : ExportedBackbone or path, default=None
        A task A network from an earlier run (its ``a_checkpoint``): task A is not
        trained again, so B can be rerun alone. It must come from the same ``b_classes``
        and ``a_train_size`` for the comparison to mean the same.
    a_checkpoint : path, default=None
        Save the trained task A backbone there (:meth:`ExportedBackbone.save`).

    Returns
    -------
    ComparisonResult
        One row per B strategy, target ``"B: airplane vs horse"``; ``settings`` holds the
        recipes, the A network's held-out accuracy and its training time.

    Examples
    --------
    >>> from sktransfer.experiments import run_cifar
    >>> result = run_cifar("/data", a_train_size=800, a_test_size=80, a_epochs=2,
    ...                    epochs=2, repeats=1)  # doctest: +SKIP
    """
    selected = select_strategies(strategies, CIFAR_STRATEGIES, "cifar")
    b = list(dict.fromkeys(_class_index(c) for c in b_classes))
    if len(b) < 2:
        raise ValueError(f"task B needs at least two distinct classes, got {list(b_classes)}")
    a = [c for c in range(len(CIFAR10_CLASSES)) if c not in b]
    if not a:
        raise ValueError("task B takes every class: leave at least one for task A")
    for name, value in (("a_train_size", a_train_size), ("a_test_size", a_test_size),
                        ("b_train_size", b_train_size), ("b_test_size", b_test_size),
                        ("repeats", repeats), ("a_epochs", a_epochs)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    per_a = math.ceil(a_train_size / len(a))
    per_a_test = math.ceil(a_test_size / len(a))
    per_b = math.ceil(b_train_size / len(b))
    pool_b = per_b * (2 if repeats > 1 else 1)
    per_b_test = math.ceil(b_test_size / len(b))
    notes: list[str] = []
    b_names = [CIFAR10_CLASSES[c] for c in b]
    target = f"B: {' vs '.join(b_names)}"
    amp = _cpu_amp()
    common = dict(device=device, random_state=seed, mixed_precision="auto" if
                  str(device).startswith("cuda") else amp, **network_threads(threads))
    override = {} if batch_size is None else {"batch_size": int(batch_size)}
    a_params = {**A_RECIPE, **override, "max_epochs": int(a_epochs)}
    b_params = {s: {**B_RECIPES[s], **override,
                    **({} if epochs is None else {"max_epochs": int(epochs)})}
                for s in selected}

    with torch_threads(threads):
        test = _load_test(data_home, download, b, per_b_test, progress, notes)
        held_out = test is None
        say("loading CIFAR-10 training images", progress)
        per_class = max(per_a + per_a_test, pool_b + (per_b_test if held_out else 0))
        train = _load(data_home, download, per_class, progress)
        counts = np.bincount(train.target, minlength=len(CIFAR10_CLASSES))
        if counts[a].min() < per_a + per_a_test:
            raise ValueError(
                f"task A needs {per_a} training + {per_a_test} held-out images per class "
                f"but some A classes have only {int(counts[a].min())}; lower a_train_size "
                "or a_test_size")
        if held_out and counts[b].min() < pool_b + per_b_test:
            raise ValueError(
                f"task B needs {pool_b} pool + {per_b_test} test images per class but some "
                f"B classes have only {int(counts[b].min())}; lower b_train_size or "
                "b_test_size")
        if held_out:
            test_rows = _rows(train.target, b, pool_b, pool_b + per_b_test)
            test = train.images[test_rows], train.target[test_rows]
        a_rows = _rows(train.target, a, 0, per_a)
        a_test_rows = _rows(train.target, a, per_a, per_a + per_a_test)
        pool_rows = _rows(train.target, b, 0, pool_b)
        if held_out and np.intersect1d(pool_rows, test_rows).size:
            raise RuntimeError("B training and test rows overlap")  # pragma: no cover
        if min(int(np.sum(test[1] == c)) for c in b) == 0:
            raise ValueError(f"no test images for some B classes ({b_names})")

        settings: dict[str, Any] = {
            "experiment": "cifar", "a_classes": [CIFAR10_CLASSES[c] for c in a],
            "b_classes": b_names, "a_train_size": int(len(a_rows)),
            "a_test_size": int(len(a_test_rows)),
            "b_train_size": per_b * len(b), "b_pool_size": int(len(pool_rows)),
            "b_test_size": int(len(test[1])),
            "b_test_source": "held-out CIFAR-10 training images" if held_out
            else "CIFAR-10 test split",
            "strategies": selected, "a_epochs": int(a_epochs), "epochs": epochs,
            "repeats": repeats, "a_recipe": a_params, "b_recipes": b_params,
            "mixed_precision": common["mixed_precision"], "backbone": "cnn", "seed": seed,
            "device": device, "torch_threads": threads, "data_home": data_home,
        }
        backbone = None
        if a_backbone is not None:
            backbone = _as_backbone(a_backbone)
            settings["a_model"] = {"source": "given (a_backbone)", **{
                k[len("task_a_"):]: v for k, v in backbone.meta.items()
                if k.startswith("task_a_")}}
        elif set(selected) - {"scratch"}:
            say(f"training the CNN on task A ({len(a_rows)} images of {len(a)} classes, "
                f"{a_epochs} epochs)", progress)
            model_a, settings["a_model"] = _fit_a(
                train.images, train.target, a_rows, a_test_rows, a_params, common,
                max(verbose, 2 * progress))
            say(f"task A: {settings['a_model']['test_acc']:.1%} on {len(a_test_rows)} "
                f"held-out A images ({settings['a_model']['fit_seconds']:.0f} s)", progress)
            backbone = model_a.export_backbone()
            if a_checkpoint is not None:
                backbone.meta.update({f"task_a_{k}": v for k, v in settings["a_model"].items()
                                      if isinstance(v, float)})
                backbone.save(a_checkpoint)

        models = {}
        for strategy in selected:
            spec = "cnn" if strategy == "scratch" else backbone
            models[f"cnn-{strategy}"] = TransferClassifier(
                spec, freeze=_FREEZE[strategy], **b_params[strategy], **common)
        X = np.concatenate([train.images[pool_rows], test[0]])
        y = np.concatenate([train.target[pool_rows], test[1]])
        splits = _b_splits(y[: len(pool_rows)], len(y), per_b * len(b), repeats, seed)
        say(f"task B: {len(selected)} model(s) x {repeats} repeat(s)", progress)
        result = compare(models, X, y, cv=splits, target=target,
                         class_names={c: CIFAR10_CLASSES[c] for c in b},
                         n_jobs=n_jobs, progress=progress, experiment="cifar")
    settings["notes"] = notes
    settings["description"] = (
        f"A residual CNN is trained on task A ({len(a)} CIFAR-10 classes, {len(a_rows)} "
        f"images, scored on {len(a_test_rows)} held-out ones) and transferred to task B "
        f"({', '.join(b_names)}) with {per_b * len(b)} labelled images; B is scored on "
        f"{len(test[1])} {'held-out training' if held_out else 'test'} images "
        f"({repeats} repeat(s))."
    )
    return ComparisonResult.concat(
        [result], experiment=f"CIFAR-10 A/B transfer: {target}", settings=settings
    )


def _fit_a(images, target, rows, test_rows, params, common, verbose):
    """Train the task A network; its held-out accuracy and time (wall and CPU)."""
    wall, cpu = time.perf_counter(), time.process_time()
    model = TransferClassifier("cnn", verbose=verbose, **params, **common).fit(
        images[rows], target[rows])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    last = model.history_.iloc[-1]
    return model, {
        "train_acc": float(last["train_acc"]) if "train_acc" in last else None,
        "test_acc": float(model.score(images[test_rows], target[test_rows])),
        "fit_seconds": wall, "fit_cpu_seconds": cpu,
    }


def _as_backbone(spec):
    from ..backbones.exported import ExportedBackbone

    if isinstance(spec, ExportedBackbone):
        return spec
    return ExportedBackbone.load(spec)


def _b_splits(y_pool, n_total, n_train, repeats, seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training rows drawn from the pool (all of it when one repeat), test rows fixed."""
    from sklearn.model_selection import StratifiedShuffleSplit

    test = np.arange(len(y_pool), n_total)
    if repeats == 1:
        return [(np.arange(len(y_pool)), test)]
    sss = StratifiedShuffleSplit(repeats, train_size=n_train, random_state=seed)
    return [(np.sort(tr), test) for tr, _ in sss.split(np.zeros(len(y_pool)), y_pool)]
