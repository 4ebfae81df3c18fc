"""10 Monkey Species: a CNN from scratch vs an ImageNet backbone, frozen or fine-tuned."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..compare import ComparisonResult, compare
from ..datasets import fetch_monkeys
from ..estimator import TransferClassifier
from ..freeze import STRATEGY_FREEZE, GradualUnfreeze
from ._common import (
    check_epochs,
    held_out_split,
    network_threads,
    say,
    select_strategies,
    torch_threads,
)

__all__ = ["MONKEYS_STRATEGIES", "run_monkeys"]

#: Strategy names of the monkeys experiment.
MONKEYS_STRATEGIES = ("scratch", "feature-extraction", "fine-tune")


def _load(data_home, image_size, test_fraction, seed, progress, notes):
    train = fetch_monkeys("training", data_home=data_home, image_size=image_size,
                          verbose=int(progress))
    try:
        valid = fetch_monkeys("validation", data_home=data_home, image_size=image_size,
                              verbose=int(progress))
    except FileNotFoundError:
        notes.append(
            "The validation split is not available: the models are scored on a stratified "
            f"{test_fraction:.0%} of the training split, held out from training."
        )
        rows_train, rows_test = held_out_split(train.target, test_fraction, seed)
        return (train.images[rows_train], train.target[rows_train],
                train.images[rows_test], train.target[rows_test], train.target_names, True)
    return train.images, train.target, valid.images, valid.target, train.target_names, False


def _frozen_classifier(backbone, *, head_lr, lr_schedule, tta, head_solver, head_C,
                       max_epochs, **common) -> TransferClassifier:
    """``run_monkeys``'s feature-extraction model (its parameters by the same names), also
    built by ``benchmarks/bench_monkeys_errors.py``."""
    return TransferClassifier(
        backbone, weights="imagenet", freeze=STRATEGY_FREEZE["feature-extraction"],
        lr=head_lr, lr_schedule=lr_schedule, tta=tta, head_solver=head_solver,
        head_C=head_C, max_epochs=max_epochs, **common)


def _lp_ft_classifier(backbone, *, max_epochs, ft_head_epochs, ft_lr, backbone_lr_mult,
                      ft_augment, lr_schedule, ft_warmup, ft_l2sp, tta,
                      ft_weight_interpolation, head_solver, head_C,
                      policy_class=GradualUnfreeze, **common) -> TransferClassifier:
    """``run_monkeys``'s fine-tuned model (its parameters by the same names), also built
    by ``benchmarks/bench_monkeys_wise_ft.py`` with a ``policy_class`` of its own."""
    head_epochs = max(min(ft_head_epochs, max_epochs - 1), 0)
    # Fine-tuning here is LP-FT (head first, on cached features), with BatchNorm kept
    # frozen: a policy object with parameters, not the table's plain "none".
    return TransferClassifier(
        backbone, weights="imagenet",
        freeze=policy_class(head_epochs, train_batchnorm=False),
        lr=ft_lr, backbone_lr_mult=backbone_lr_mult, augment=ft_augment,
        lr_schedule=lr_schedule, warmup=ft_warmup, l2sp=ft_l2sp, tta=tta,
        # no head stage (a one-epoch run): no probe to solve or to average with
        weight_interpolation=ft_weight_interpolation if head_epochs else None,
        head_solver=head_solver if head_epochs else "minibatch",
        head_C=head_C, max_epochs=max_epochs, **common)


def run_monkeys(
    data_home: Any = None,
    *,
    backbone: str = "efficientnet_lite0",
    image_size: int = 256,
    scratch_image_size: int = 64,
    strategies: str | Iterable[str] | None = None,
    epochs: int | None = None,
    scratch_epochs: int = 15,
    fe_epochs: int = 50,
    ft_epochs: int = 33,
    ft_head_epochs: int = 30,
    lr: float = 1e-3,
    head_lr: float = 1e-3,
    ft_lr: float = 1e-3,
    backbone_lr_mult: float = 0.1,
    lr_schedule: str = "cosine",
    ft_warmup: float = 0.1,
    ft_l2sp: float = 0.0,
    ft_weight_interpolation: float | None = 0.5,
    ft_augment: Any = False,
    tta: bool = True,
    head_solver: str = "lbfgs",
    head_C: float = 1.0,
    batch_size: int = 32,
    test_fraction: float = 0.2,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    verbose: int = 0,
    threads: int | str | None = 1,
) -> ComparisonResult:
    """Monkey species: a small CNN from scratch vs a pretrained backbone, frozen or fine-tuned.

    The images are decoded once at ``image_size`` (uint8). Strategies:

    - ``scratch``: the small ``"cnn"`` trained from random weights at
      ``scratch_image_size`` pixels, with augmentation;
    - ``feature-extraction``: ``backbone`` with its ImageNet weights frozen, a new linear
      head fitted on the cached features: by default solved exactly (``head_solver``);
    - ``fine-tune``: LP-FT (Kumar et al., ICLR 2022: a converged linear probe first, so
      fine-tuning does not distort the features with a random head's gradients), as
      fastai's ``fine_tune``: the head alone on the cached features (cheap, exact;
      solved as Kumar et al. do by default, else ``ft_head_epochs`` epochs), then all
      layers for ``ft_epochs - ft_head_epochs`` epochs with a fresh optimizer and
      schedule (``ft_warmup``), the backbone at ``ft_lr * backbone_lr_mult``, optionally
      pulled toward its ImageNet weights (``ft_l2sp``, L2-SP: Li et al., ICML 2018),
      BatchNorm layers kept frozen with their ImageNet statistics
      (``train_batchnorm=False``: batch statistics of 32 monkey photos differ so much
      from ImageNet's that letting BatchNorm train wrecks the features at the moment of
      unfreezing; accuracy 94-96% instead of 99%). The fitted weights are then the
      average of the probe's and the fine-tuned ones (``ft_weight_interpolation``,
      WiSE-FT: Wortsman et al., CVPR 2022).

    Both pretrained models predict with flip test-time augmentation (``tta``) and use the
    ``lr_schedule`` (cosine: Loshchilov & Hutter 2017). The defaults were chosen on the
    training photos only, by cross-validation that leaves the held-out photos unseen
    (``benchmarks/bench_monkeys.py --part tune``).

    Models train on the training split and are scored on the validation split; when it is
    absent (a note says so), on a stratified ``test_fraction`` of the training split held
    out from training.

    Parameters
    ----------
    data_home : str or path, default=None
        Data home holding ``monkeys/`` (see :func:`~sktransfer.datasets.fetch_monkeys`).
    backbone : str, default="efficientnet_lite0"
        Pretrained backbone (a registry name with ImageNet weights).
    image_size : int, default=256
        Resolution the images are loaded at (and the pretrained backbone runs at): the
        short side of the photos as shipped, a little above the 224 px the ImageNet
        network was trained at, which suits a pretrained network (FixRes: Touvron et al.,
        NeurIPS 2019, objects look as large as in the random crops it trained on).
    scratch_image_size : int, default=64
        Resolution of the scratch CNN (kept small: it trains on two CPU cores).
    strategies : str or iterable of str, default=None
        Subset of :data:`MONKEYS_STRATEGIES`; default all.
    epochs : int, default=None
        Epochs of every model; None uses the per-strategy values below.
    scratch_epochs, fe_epochs, ft_epochs : int, default=15, 50, 33
        Epochs of the scratch CNN, of feature extraction (cheap: the frozen backbone's
        features are computed once and cached) and of fine-tuning, its head-only epochs
        included (33 = 30 head-only epochs + 3 epochs of the whole network).
    ft_head_epochs : int, default=30
        Head-only epochs at the start of fine-tuning, on cached features: enough for the
        head to converge (cross-validated log loss stops improving well before).
    lr : float, default=1e-3
        Learning rate of the scratch CNN.
    head_lr : float, default=1e-3
        Learning rate of the feature-extraction head.
    ft_lr : float, default=1e-3
        Learning rate of the fine-tuning head.
    backbone_lr_mult : float, default=0.1
        Backbone learning rate multiplier while fine-tuning (``ft_lr * 0.1 = 1e-4``).
    lr_schedule : {"cosine", "onecycle", "constant"}, default="cosine"
        Learning-rate schedule of the pretrained models (each fine-tuning stage has its own).
    ft_warmup : float, default=0.1
        Share of each fine-tuning stage spent warming the rate up linearly.
    ft_l2sp : float, default=0.0
        L2-SP strength of fine-tuning (0: none).
    ft_weight_interpolation : float or None, default=0.5
        WiSE-FT's share of the fine-tuned weights in the fitted model, the rest the
        probe's (``weight_interpolation`` of the estimator; the paper's 0.5). Over two
        folds of the training photos it had the lowest mean log loss of the curve, with
        one error more than plain LP-FT on one fold
        (``benchmarks/bench_monkeys_wise_ft.py``). ``None`` keeps the fine-tuned weights.
    ft_augment : bool, str or transform, default=False
        Augmentation while fine-tuning, any ``augment`` value of the estimator (``True``:
        random flips and shifts; a policy name such as ``"trivialaugment"``; a
        ``torchvision.transforms.v2`` object). The scratch CNN always augments.
    tta : bool, default=True
        Flip test-time augmentation of the pretrained models' predictions.
    head_solver : {"lbfgs", "minibatch"}, default="lbfgs"
        How the linear head on the frozen backbone is fitted, for feature extraction and
        for the LP stage of fine-tuning: ``"lbfgs"`` solves the L2 logistic regression on
        the cached embeddings exactly (the linear probe of Kornblith et al. 2019 and of
        Kumar et al.'s LP-FT; ``fe_epochs`` and ``ft_head_epochs`` then only say where
        the fine-tuning epochs start), ``"minibatch"`` trains it ``fe_epochs`` /
        ``ft_head_epochs`` epochs with Adam at ``head_lr`` / ``ft_lr``. A one-epoch
        fine-tune has no LP stage: its head trains with the rest.
    head_C : float, default=1.0
        Inverse L2 strength of the ``"lbfgs"`` head (on standardised embeddings).
    batch_size : int, default=32
        Mini-batch size.
    test_fraction : float, default=0.2
        Held-out share of the training split when there is no validation split.
    seed : int, default=0
        Seeds the held-out split and the models.
    device : str, default="auto"
        Torch device.
    progress : bool, default=False
        Progress bars (decoding, epochs, models) on stderr.
    verbose : int, default=0
        Verbosity of the networks (2 when ``progress``: a bar per epoch).
    threads : int, "tune" or None, default=1
        Torch CPU threads while running; None leaves torch's setting. One thread is
        robust on a shared machine (several threads slow down badly when cores are busy).
        ``"tune"``: every network times one thread against the CPUs at the start of its
        long passes and keeps the faster (``n_threads="tune"``; not repeatable number
        for number).

    Returns
    -------
    ComparisonResult
        One row per strategy.

    Examples
    --------
    >>> from sktransfer.experiments import run_monkeys
    >>> result = run_monkeys("/data", strategies="feature-extraction",
    ...                      epochs=1)  # doctest: +SKIP
    """
    selected = select_strategies(strategies, MONKEYS_STRATEGIES, "monkeys")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    notes: list[str] = []
    check_epochs(epochs=epochs, scratch_epochs=scratch_epochs, fe_epochs=fe_epochs,
                 ft_epochs=ft_epochs)
    n_epochs = {  # epochs=0 was taken for None (the defaults); now it is an error
        "scratch": scratch_epochs if epochs is None else epochs,
        "feature-extraction": fe_epochs if epochs is None else epochs,
        "fine-tune": ft_epochs if epochs is None else epochs,
    }
    with torch_threads(threads):
        say(f"loading the monkey images at {image_size} px", progress)
        X_train, y_train, X_test, y_test, names, held_out = _load(
            data_home, image_size, test_fraction, seed, progress, notes)
        net_verbose = max(verbose, 2 * progress)
        common = dict(batch_size=batch_size, device=device, random_state=seed,
                      verbose=net_verbose, **network_threads(threads))
        # the pretrained backbone runs at the images' resolution, not its own default
        pretrained = dict(common, image_size=image_size)
        models: dict[str, TransferClassifier] = {}
        strategy_of: dict[str, str] = {}  # model name -> strategy, set where it is built
        if "scratch" in selected:
            strategy_of["cnn-scratch"] = "scratch"
            models["cnn-scratch"] = TransferClassifier(
                "cnn", image_size=scratch_image_size, augment=True, lr=lr,
                freeze=STRATEGY_FREEZE["scratch"], max_epochs=n_epochs["scratch"], **common)
        if "feature-extraction" in selected:
            name = f"{backbone}-feature-extraction"
            strategy_of[name] = "feature-extraction"
            models[name] = _frozen_classifier(
                backbone, head_lr=head_lr, lr_schedule=lr_schedule, tta=tta,
                head_solver=head_solver, head_C=head_C,
                max_epochs=n_epochs["feature-extraction"], **pretrained)
        if "fine-tune" in selected:
            strategy_of[f"{backbone}-fine-tune"] = "fine-tune"
            models[f"{backbone}-fine-tune"] = _lp_ft_classifier(
                backbone, max_epochs=n_epochs["fine-tune"], ft_head_epochs=ft_head_epochs,
                ft_lr=ft_lr, backbone_lr_mult=backbone_lr_mult, ft_augment=ft_augment,
                lr_schedule=lr_schedule, ft_warmup=ft_warmup, ft_l2sp=ft_l2sp, tta=tta,
                ft_weight_interpolation=ft_weight_interpolation, head_solver=head_solver,
                head_C=head_C, **pretrained)
        result = compare(
            models, X_train, y_train, test=(X_test, y_test), strategies=strategy_of,
            class_names=dict(enumerate(names)), progress=progress, experiment="monkeys",
        )
    settings = {
        "experiment": "monkeys", "backbone": backbone, "weights": "imagenet",
        "image_size": image_size, "scratch_image_size": scratch_image_size,
        "strategies": selected,
        "epochs": {name: n_epochs[s] for name, s in strategy_of.items()},
        "ft_head_epochs": ft_head_epochs, "lr": lr, "head_lr": head_lr, "ft_lr": ft_lr,
        "backbone_lr_mult": backbone_lr_mult, "lr_schedule": lr_schedule,
        "ft_warmup": ft_warmup, "ft_l2sp": ft_l2sp,
        "ft_weight_interpolation": ft_weight_interpolation, "ft_augment": ft_augment,
        "tta": tta,
        "head_solver": head_solver, "head_C": head_C,
        "ft_batchnorm": "frozen (ImageNet running statistics)",
        "batch_size": batch_size, "optimizer": "adam",
        "validation_fraction": None, "n_train": int(len(y_train)), "n_test": int(len(y_test)),
        "test_source": f"held-out {test_fraction:.0%} of the training split" if held_out
        else "validation split",
        "seed": seed, "device": device, "torch_threads": threads, "data_home": data_home,
        "classes": list(names), "notes": notes,
        "description": (
            f"Ten monkey species, {len(y_train)} training images: a small CNN from scratch "
            f"vs {backbone} with ImageNet weights, frozen (feature extraction) or fine-tuned; "
            f"scored on {len(y_test)} {'held-out' if held_out else 'validation'} images."
        ),
    }
    return ComparisonResult.concat(
        [result], experiment="10 Monkey Species: scratch vs transfer", settings=settings
    )
