"""TransferClassifier: a pretrained backbone and a freeze policy as scikit-learn parameters.

The task-independent machinery (parameters, validation, network, cache, training) lives in
:mod:`sktransfer._base_estimator`; this module adds what makes it a classifier: labels,
class weights, a cross-entropy loss and probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._base_estimator import (  # noqa: F401  (inference_batch_size: public before the split)
    TrainingDivergedError,
    _TransferEstimatorBase,
    inference_batch_size,
)
from ._training import TrainAccuracy, WeightedNet
from .augment import make_mixer

__all__ = ["TrainingDivergedError", "TransferClassifier"]


class TransferClassifier(ClassifierMixin, _TransferEstimatorBase):
    """A neural classifier whose backbone and freeze policy are ordinary hyperparameters.

    Training from scratch, feature extraction and fine-tuning become values of ``weights``
    and ``freeze``, so ``GridSearchCV`` or ``cross_val_score`` compare them on the same folds.
    The network is ``head(backbone(x))``: a backbone (from the registry, a checkpoint, an
    exported backbone or your module) and a new head sized from ``y``. Training runs through
    skorch; ``history_`` keeps the per-epoch curves.

    Parameters
    ----------
    backbone : str, path, ExportedBackbone or torch.nn.Module, default="mlp"
        A registry name (see :func:`sktransfer.available_backbones`: ``"mlp"``, ``"cnn"``,
        ``"efficientnet_lite0"``, torchvision models such as ``"resnet18"``), a checkpoint
        written by :meth:`ExportedBackbone.save`, the result of :meth:`export_backbone`, or a
        feature-extracting module (copied at fit, never modified).
    weights : None, "imagenet", "default" or path, default=None
        Starting weights for a registry backbone: ``None`` trains from scratch,
        ``"imagenet"``/``"default"`` loads the published pretrained weights, a path loads a
        state dict. Exported backbones and checkpoints carry their own weights.
    freeze : str or FreezePolicy, default="none"
        ``"none"`` (fine-tune everything), ``"backbone"`` (feature extraction: only the head
        trains), ``"last:k"`` (the last k parameterised layers train, the head counting as
        one), ``"gradual"`` (head first, then everything at a smaller backbone learning
        rate), or a policy object such as ``GradualUnfreeze(head_epochs=5)``. Freezing
        layers of a registry backbone with ``weights=None`` (random weights) warns.
    head : "linear" or tuple of int, default="linear"
        The new classifier on the embeddings: linear, or an MLP with these hidden sizes.
    backbone_kwargs : dict, default=None
        Architecture options for a registry backbone (``{"hidden": (64, 32)}`` for mlp).
    optimizer : {"auto", "adam", "adamw", "sgd"} or torch optimizer class, default="auto"
        ``"sgd"`` uses momentum 0.9. A class is any ``torch.optim.Optimizer`` subclass whose
        ``step`` needs no closure (``LBFGS`` is refused: mini-batch training gives none).
    lr : float, default=1e-3
        Learning rate of the head (and of the backbone, times ``backbone_lr_mult``);
        finite and > 0.
    backbone_lr_mult : float, default=None
        Learning-rate multiplier for trainable backbone parameters, finite and >= 0;
        ``None`` takes the freeze policy's default (1.0, or 0.1 for ``"gradual"``).
    lr_schedule : {"auto", "constant", "cosine", "onecycle"}, default="auto"
        Learning-rate schedule stepped after every batch (:mod:`sktransfer.schedules`);
        each training stage gets its own.
    warmup : float in [0, 1) or "auto", default="auto"
        Share of the steps of linear warmup at the start of each stage.
    layer_decay : float in (0, 1], None or "auto", default="auto"
        Layer-wise learning-rate decay: the backbone's layer group ``k`` below the head
        trains at ``lr * backbone_lr_mult * layer_decay ** k`` (ULMFiT, BEiT). ``"auto"``
        in these four parameters resolves to a measured recipe (``training_recipe_``, see
        the user guide's fine-tuning page).
    weight_decay : float, default=0.0
        Passed to the optimizer; finite and >= 0.
    l2sp : float, default=0.0
        L2-SP strength (Li et al. 2018): ``l2sp / 2 * ||w - w0||^2`` pulls the trainable
        backbone toward its starting weights; with it, ``weight_decay`` applies to the
        head only.
    weight_interpolation : float in [0, 1] or None, default=None
        WiSE-FT (Wortsman et al., CVPR 2022) after LP-FT (``freeze="gradual"``): the
        fitted weights are ``(1 - a) * w_probe + a * w_finetuned``, where ``w_probe``
        are the weights when the backbone is unfrozen (pretrained body, trained head).
        Averaging the two ends of fine-tuning keeps the probe's robustness and gains
        fine-tuning's fit; the paper recommends 0.5 without tuning. ``None`` (or 1.0)
        keeps the fine-tuned weights. Other freeze policies have no probe to average
        with: an error.
    max_epochs : int, default=20
        Training epochs (fewer with early stopping).
    batch_size : int, default=64
        Mini-batch size for training and prediction.
    validation_fraction : float in (0, 1) or None, default=None
        Share of the training rows held out (stratified) for the per-epoch validation
        metrics in ``history_`` and for early stopping. ``None``, as in scikit-learn,
        holds out nothing unless ``early_stopping`` asks for it (then 0.1): every row
        trains. A fraction that leaves no validation row, or fewer than two training
        rows, is an error.
    early_stopping : int or None, default=None
        Patience in epochs: stop when the validation loss has not improved for this many
        epochs, and restore the best weights. Validates on ``validation_fraction`` of the
        rows, or 0.1 when that is None.
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the loss, as in scikit-learn; dict values must be finite
        and >= 0. ``partial_fit`` takes a dict, not ``"balanced"`` (one chunk's counts are
        not the data's).
    input_shape : tuple of int, default=None
        Shape of one sample, ``(C, H, W)`` for images. Needed for 2-D arrays of flattened
        images (NCHW order, what imbalanced-learn samplers produce) and for image arrays
        whose channel axis the shape cannot tell (``(n, 4, 4, 3)``: both end axes could be
        channels); checked against image arrays. Image values are uint8 (0-255) or floats
        in [0, 1] in every form; others are refused with the conversion to make.
    image_size : int, default=None
        Resolution images are resized to; ``None`` uses the backbone's own. Non-square
        images are resized by their shorter side and centre-cropped, as arrays and as
        files alike.
    augment : bool, {"flip_crop", "trivialaugment", "randaugment"} or v2 transform, \
default=False
        Training-image augmentation on the device (:mod:`sktransfer.augment`): ``True``
        flips and small shifts; the names are torchvision ``v2`` policies; a v2 transform
        object is applied per image in [0, 1] (in a parameter grid, wrap it in
        ``v2.Compose([...])``, which scikit-learn's grid cloning takes as a value). On
        tabular data ``True`` does nothing: a warning says so, and the feature cache
        stays available.
    mixup, cutmix : float, default=0.0
        Beta concentrations of MixUp / CutMix of training images (0: off). MixUp also
        mixes rows of tabular data; CutMix is for images only.
    label_smoothing : float in [0, 1), default=0.0
        As in ``torch.nn.CrossEntropyLoss``; works with sample weights and mixing.
    head_solver : {"minibatch", "lbfgs"}, default="minibatch"
        How the head trains. ``"minibatch"``: ``max_epochs`` epochs of ``optimizer``.
        ``"lbfgs"``: a linear probe, for a linear head on a frozen backbone's cached
        embeddings (``freeze="backbone"``, no augmentation): the head is multinomial
        logistic regression on the embeddings, a convex problem, solved to convergence in
        one full-batch L-BFGS run on standardised embeddings with an L2 penalty (as
        scikit-learn's ``LogisticRegression`` on standardised features; Kornblith et al.
        2019, Kumar et al. 2022). ``lr``, ``optimizer``, ``max_epochs``, ``batch_size``
        and the schedule are then unused, ``callbacks`` do not run and ``history_`` has
        one row. With ``freeze="gradual"`` (LP-FT) it solves the head stage instead of
        its ``head_epochs`` epochs, as Kumar et al. fit the LP of LP-FT, then fine-tunes
        ``max_epochs - head_epochs`` epochs (``history_``: one row for the solve, then
        the epochs); the probe is solved on the embeddings of the images as given, and
        ``augment``, ``mixup`` and ``cutmix`` act in the fine-tuning epochs only. Any
        other setting (fine-tuning from the start, ``warm_start``,
        ``partial_fit``, a validation hold-out, an MLP head, bypassed cache) is a
        ValueError.
    head_C : float, default=1.0
        Inverse L2 strength of ``head_solver="lbfgs"``, as ``C`` of ``LogisticRegression``
        on the standardised embeddings; finite and > 0.
    cache_features : {"auto", True, False}, default="auto"
        Reuse a frozen backbone's embeddings across epochs, folds, grid candidates and
        predictions (see :mod:`sktransfer.cache`). ``"auto"`` caches wherever it is exact:
        the whole backbone frozen for the whole fit and no augmentation, or the head
        stage of ``freeze="gradual"`` (LP-FT; with ``head_solver="lbfgs"`` even when
        augmenting, the probe being solved on the clean images); elsewhere it is
        bypassed with the reason logged on the ``"sktransfer"`` logger. ``True`` does the
        same but warns when it must bypass; ``False`` never caches.
    cache_dir : str, path or joblib.Memory, default=None
        Also keep cached embeddings in this directory, across processes and sessions.
    mixed_precision : {"auto", "bf16", "fp16", True, False}, default="auto"
        Autocast dtype. ``"auto"``: bfloat16 on CUDA where supported, else float16 with a
        gradient scaler; float32 on the CPU. ``"bf16"`` also works on the CPU.
    compile : bool, default=False
        Compile the network with ``torch.compile`` (worth it for long GPU runs).
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:1"``. Can be
        changed after fitting with ``set_params(device="cpu")``. With an ``accelerator``
        the device is the accelerator's (leave ``"auto"``).
    accelerator : None, "auto" or accelerate.Accelerator, default=None
        Spread one fit over the processes (GPUs, or CPU processes) of a launch with
        Hugging Face Accelerate (``pip install "sktransfer[accelerate]"``; see
        :ref:`scaling_accelerate`): start the script with ``accelerate launch`` or ``torchrun``
        and pass ``Accelerator(...)`` or ``"auto"`` (one built from the launch). Each
        process trains on its share of every epoch's batches, so ``batch_size`` is per
        process; validation and predictions run in full on every process, which all end
        with the same model. Mixed precision is then the accelerator's
        (``Accelerator(mixed_precision="bf16")``): leave ``mixed_precision="auto"``.
        ``clone`` keeps the same accelerator; a pickled estimator stores ``"auto"``
        and :func:`sktransfer.save` stores None (a plain model).
    num_workers : int, default=4
        Threads decoding image files when ``X`` holds paths.
    n_threads : "auto", "tune", int or None, default="auto"
        torch CPU threads during ``fit``, ``predict`` and ``transform`` (the caller's
        setting is restored after). ``"auto"``: one thread for networks under a million
        parameters, where more threads only wait on each other (38x slower on a busy
        2-core machine, ``benchmarks/bench_threads.py``), else the CPUs this process may
        use, within joblib's and Dask's inner thread limits; a rule, so fits are
        repeatable. ``"tune"``: each long pass times its first batches on one thread
        and on those CPUs and keeps the faster (a small CNN: 1.8x faster than ``"auto"``
        on an idle 2-core machine, as fast on a busy one, ``bench_threads_cnn.py``),
        but a seeded fit is then not exactly repeatable: another thread count rounds
        differently, and training amplifies it. ``None`` leaves torch's setting.
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Extra skorch callbacks (``Checkpoint``, ``GradientNormClipping``, ``LRScheduler``
        or your own), run beside the estimator's own (``train_acc``, ``early_stopping``,
        ``freeze_*``, ``progress``, names you cannot reuse). They are deep-copied at each
        fit, so the parameter itself is never mutated and ``clone`` gives fresh ones.
    warm_start : bool, default=False
        When True and the model is fitted, ``fit`` trains the fitted network for
        ``max_epochs`` more epochs (``history_`` goes on) instead of building a new one;
        ``y`` must have the same classes and ``X`` the same form. Settings changed by
        ``set_params`` since the last fit take effect (the freeze policy is applied
        again, the optimizer and schedule are built anew): e.g. fit the head with
        ``freeze="backbone"``, then ``set_params(freeze="none", lr=1e-4,
        warm_start=True).fit(X, y)``. Those that make the network (``backbone``,
        ``weights``, ``head``, ``backbone_kwargs``, ``input_shape``, ``image_size``)
        cannot change. Each continued fit runs its whole learning-rate schedule; L2-SP
        pulls toward the weights the first fit started from when ``warm_start`` was
        already True then (they are kept, in pickles too), else toward those the
        continued fit starts from. A model read by :func:`sktransfer.load` holds weights
        only: it continues with a new optimizer (no moments) and L2-SP toward its loaded
        weights. A fit that fails leaves the model as it was. See also
        :meth:`partial_fit`.
    tta : bool or {"flip", "flip_translate"}, default=False
        Test-time augmentation for images: predictions average those of each image and
        of its mirror image (``True`` or ``"flip"``: horizontal flip, as in Krizhevsky et
        al. 2012 and Simonyan & Zisserman 2015). It doubles prediction cost and suits data
        whose classes are mirror-symmetric (photos, not digits or text); tabular data
        ignores it (a warning says so at fit). ``"flip_translate"`` also averages the
        images moved diagonally by 1/32 of the side (reflect-padded), both ways, and
        their mirrors: six views, for networks trained with random crops (airbench's
        test-time augmentation on CIFAR-10, Jordan 2024).
    random_state : int, RandomState or None, default=None
        Seeds initialisation, shuffling, dropout and the validation split: the same value
        gives the same predictions on the CPU.
    verbose : int, default=0
        0 silent, 1 a table of per-epoch metrics, 2 also a progress bar per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    history_ : pandas.DataFrame
        One row per epoch: ``epoch``, ``train_loss``, ``train_acc``, ``valid_loss``,
        ``valid_acc`` (validation columns when rows are held out), ``lr``, ``dur``,
        ``threads`` when ``n_threads="tune"`` had more than one CPU thread to give
        (what each epoch ended on; ``<NA>`` for epochs of a continued fit run
        otherwise), the metrics of ``callbacks`` (an ``EpochScoring("roc_auc")``'s
        ``roc_auc``), and ``unfrozen`` (True at the epoch a staged policy unfroze the
        backbone).
    net_ : skorch.NeuralNetClassifier
        The trained skorch net; ``net_.module_`` is the :class:`TransferNetwork`.
    freeze_policy_ : FreezePolicy
        The policy the fit used.
    n_features_in_ : int
        Number of columns of 2-D training data.
    input_kind_ : {"tabular", "image", "paths"}
        What form of ``X`` the estimator was fitted on.
    feature_cache_used_ : bool
        Whether the fit trained the head on cached frozen-backbone features (see
        ``cache_features``); predictions then use the cache too.
    backbone_digest_ : str or None
        Digest of the frozen backbone's weights, computed once at fit, that keys its cached
        features; None when the cache was not used.
    training_recipe_ : dict
        ``optimizer``, ``lr_schedule``, ``warmup`` and ``layer_decay`` as this fit used
        them (``"auto"`` resolved).
    stages_ : list of dict
        The training stages run: one ``"train"`` stage, or ``"head"`` then
        ``"fine-tune"`` for ``freeze="gradual"`` (and ``"interpolate"`` with
        ``weight_interpolation``), each with its planned ``epochs``, ``epochs_run`` and
        whether it trained on ``cached_features``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier
    >>> rng = np.random.RandomState(0)
    >>> X_src, y_src = rng.rand(200, 8), rng.randint(0, 3, 200)
    >>> src = TransferClassifier("mlp", max_epochs=5, random_state=0).fit(X_src, y_src)
    >>> X_tgt, y_tgt = rng.rand(40, 8), rng.randint(0, 2, 40)
    >>> clf = TransferClassifier(src.export_backbone(), freeze="last:2", max_epochs=5)
    >>> clf.fit(X_tgt, y_tgt).predict(X_tgt[:3]).shape
    (3,)
    """


    _parameter_constraints: dict = {
        **_TransferEstimatorBase._parameter_constraints,
        "class_weight": [None, StrOptions({"balanced"}), dict],
        "mixup": [Interval(Real, 0, math.inf, closed="left")],
        "cutmix": [Interval(Real, 0, math.inf, closed="left")],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "head_solver": [StrOptions({"minibatch", "lbfgs"})],
        "head_C": [Interval(Real, 0, math.inf, closed="neither")],
    }
    _net_class = WeightedNet
    _stratify = True

    def __init__(
        self,
        backbone: Any = "mlp",
        *,
        weights: str | None = None,
        freeze: Any = "none",
        head: str | Sequence[int] = "linear",
        backbone_kwargs: dict | None = None,
        optimizer: Any = "auto",
        lr: float = 1e-3,
        backbone_lr_mult: float | None = None,
        lr_schedule: str = "auto",
        warmup: float | str = "auto",
        layer_decay: float | str | None = "auto",
        weight_decay: float = 0.0,
        l2sp: float = 0.0,
        weight_interpolation: float | None = None,
        max_epochs: int = 20,
        batch_size: int = 64,
        validation_fraction: float | None = None,
        early_stopping: int | None = None,
        class_weight: Any = None,
        input_shape: tuple[int, ...] | None = None,
        image_size: int | None = None,
        augment: Any = False,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        label_smoothing: float = 0.0,
        head_solver: str = "minibatch",
        head_C: float = 1.0,
        cache_features: bool | str = "auto",
        cache_dir: Any = None,
        mixed_precision: bool | str = "auto",
        compile: bool = False,
        device: str = "auto",
        accelerator: Any = None,
        num_workers: int = 4,
        n_threads: int | str | None = "auto",
        callbacks: Sequence | None = None,
        warm_start: bool = False,
        tta: bool | str = False,
        random_state: Any = None,
        verbose: int = 0,
    ):
        super().__init__(
            backbone, weights=weights, freeze=freeze, head=head,
            backbone_kwargs=backbone_kwargs, optimizer=optimizer, lr=lr,
            backbone_lr_mult=backbone_lr_mult, lr_schedule=lr_schedule, warmup=warmup,
            layer_decay=layer_decay, weight_decay=weight_decay, l2sp=l2sp,
            weight_interpolation=weight_interpolation,
            max_epochs=max_epochs, batch_size=batch_size,
            validation_fraction=validation_fraction, early_stopping=early_stopping,
            input_shape=input_shape, image_size=image_size, augment=augment,
            cache_features=cache_features, cache_dir=cache_dir,
            mixed_precision=mixed_precision, compile=compile, device=device,
            accelerator=accelerator, num_workers=num_workers, n_threads=n_threads,
            callbacks=callbacks,
            warm_start=warm_start, tta=tta,
            random_state=random_state, verbose=verbose,
        )
        self.class_weight = class_weight
        self.mixup = mixup
        self.cutmix = cutmix
        self.label_smoothing = label_smoothing
        self.head_solver = head_solver
        self.head_C = head_C

    # ------------------------------------------------------------------ task hooks
    def _validate_more(self) -> None:
        super()._validate_more()
        if isinstance(self.class_weight, dict):
            bad = {k: v for k, v in self.class_weight.items()
                   if not isinstance(v, Real) or isinstance(v, bool) or not math.isfinite(v)
                   or v < 0}
            if bad:
                raise InvalidParameterError(
                    f"class_weight values must be finite numbers >= 0, got {bad!r}"
                )

    def _encode_target(self, y, *, reset: bool, classes=None,
                       partial: bool = False) -> np.ndarray:
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            labels = y if classes is None else np.asarray(classes)
            self._label_encoder = LabelEncoder().fit(labels)
            self.classes_ = self._label_encoder.classes_
            if len(self.classes_) < 2:
                raise ValueError(
                    f"y has only one class ({self.classes_[0]!r}); a classifier needs at "
                    "least two classes to train"
                )
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={np.unique(classes).tolist()} differs from classes_ "
                f"{self.classes_.tolist()} of the first call"
            )
        elif not partial and set(np.unique(y)) != set(self.classes_):
            raise ValueError(
                f"warm_start=True needs y to have the same classes as the previous fit, "
                f"{self.classes_.tolist()}; y has {np.unique(y).tolist()}. Set warm_start=False "
                "to fit afresh"
            )
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y has labels {unseen.tolist()} that are not in classes_ "
                f"{self.classes_.tolist()}; pass every class of the task as classes= on "
                "the first partial_fit"
            )
        return self._label_encoder.transform(y)

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _criterion(self) -> type:
        return torch.nn.CrossEntropyLoss

    def _net_kwargs(self) -> dict:
        return {"classes": list(range(len(self.classes_)))}

    def _task_callbacks(self) -> list:
        return [("train_acc", TrainAccuracy())]

    def _loss_net_kwargs(self, network) -> dict:
        mixer = make_mixer(self.mixup, self.cutmix, network.backbone.kind)
        kwargs: dict = {"mixer": mixer} if mixer is not None else {}
        if self.label_smoothing:
            kwargs["label_smoothing"] = float(self.label_smoothing)
        return kwargs

    def _mixes_inputs(self) -> bool:
        return bool(self.mixup or self.cutmix)

    def _head_stage_is_exact(self) -> bool:
        return self.head_solver == "lbfgs"

    def _fit_head_exactly(self, net, dataset, use_cache: bool, stage: str = "train") -> bool:
        if self.head_solver != "lbfgs":
            return False
        why = None
        if stage == "continue":
            why = ("it fits a new linear head on a frozen backbone in one solve (no "
                   "warm_start or partial_fit)")
        elif not use_cache or dataset is None:
            why = ("it needs the frozen backbone's cached embeddings: use "
                   "freeze='backbone' without augmentation or mixing (or 'gradual': "
                   "LP-FT, the head solved on the clean images before fine-tuning), and "
                   "cache_features='auto' or True")
        elif not isinstance(self.head, str):
            why = "it fits a linear head only (head='linear')"
        elif net.train_split is not None:
            why = ("it has no epochs to validate: set validation_fraction=None and "
                   "early_stopping=None")
        if why is not None:
            raise ValueError(f"head_solver='lbfgs' does not apply to this fit: {why}; "
                             "or use head_solver='minibatch'")
        from ._linear_probe import fit_linear_probe

        net.initialize()
        linear = net.module_.head[-1]
        stats = fit_linear_probe(linear, dataset.x, dataset.y, dataset.sample_weight,
                                 C=float(self.head_C),
                                 label_smoothing=float(self.label_smoothing))
        net.history.new_epoch()
        net.history.record("epoch", 1)
        for key, value in stats.items():
            net.history.record(key, value)
        return True

    def _target_sample_weights(self, y_enc: np.ndarray) -> np.ndarray | None:
        if self.class_weight is None:
            return None
        labels = self._label_encoder.inverse_transform(y_enc)
        # a dict weighs the task's classes, whichever of them this y holds (a partial_fit
        # chunk may lack some); "balanced" is computed from the rows given
        classes = self.classes_ if isinstance(self.class_weight, dict) else np.unique(labels)
        cw = compute_class_weight(self.class_weight, classes=classes, y=labels)
        by_class = dict(zip(classes.tolist(), cw))
        return np.array([by_class[label] for label in labels.tolist()], dtype=np.float64)

    def _export_meta(self) -> dict:
        return {"n_classes": len(self.classes_)}

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None) -> TransferClassifier:
        """Build the network for this data and train it.

        With ``warm_start=True`` and a fitted model, train the fitted network
        ``max_epochs`` more epochs instead (same classes required); ``history_`` goes on.

        Parameters
        ----------
        X : array-like, DataFrame, image array or array of image paths
            Training inputs (see the module docs of :mod:`sktransfer.inputs`).
        y : array-like of shape (n_samples,)
            Class labels (any type scikit-learn accepts).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights in the loss.

        Returns
        -------
        self : TransferClassifier
            The fitted estimator.

        Raises
        ------
        TrainingDivergedError
            When the loss becomes NaN or infinite (too large ``lr``, extreme inputs): no
            model is reported; the error's ``history`` has the curves up to that epoch.
        """
        return self._fit(X, y, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None) -> TransferClassifier:
        """Train one epoch on this batch of data, continuing the fitted network if any.

        For data that arrives in chunks or does not fit in memory at once. The first call
        builds the network and needs every class in ``classes`` (as in scikit-learn's
        ``SGDClassifier.partial_fit``); later calls continue it. Nothing is held out and
        ``early_stopping`` does not apply: each call trains on every row it gets. Under a
        learning-rate schedule, call ``k`` trains at the rates of epoch ``k`` of one
        schedule of ``max_epochs`` epochs (whatever the chunk's size); the calls after
        those start another.

        Parameters
        ----------
        X : array-like, DataFrame, image array or array of image paths
            Training inputs of one chunk.
        y : array-like of shape (n_samples,)
            Class labels of the chunk.
        classes : array-like of shape (n_classes,), default=None
            All the classes of the task. Required on the first call; when given later it
            must equal ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights in the loss.

        Returns
        -------
        self : TransferClassifier

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import TransferClassifier
        >>> rng = np.random.RandomState(0)
        >>> clf = TransferClassifier("mlp", random_state=0)
        >>> for _ in range(3):
        ...     X, y = rng.rand(20, 4), rng.randint(0, 2, 20)
        ...     clf = clf.partial_fit(X, y, classes=[0, 1])
        >>> len(clf.history_)
        3
        """
        if not hasattr(self, "net_") and classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit: the network's "
                "output layer is sized from all the classes of the task"
            )
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # as SGDClassifier.partial_fit: balanced over one chunk is not balanced over
            # the data, and would change from call to call
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: one chunk's class "
                "counts are not the data's. Compute the weights over all the labels, "
                "sklearn.utils.class_weight.compute_class_weight('balanced', classes=classes, "
                "y=y_all), and pass them as a dict: class_weight=dict(zip(classes, weights))"
            )
        return self._fit(X, y, sample_weight, partial=True, classes=classes)

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like, image array or array of image paths
            Inputs of the same form as at fit.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        views = self._predict_views(X)
        proba = torch.stack([torch.softmax(v.double(), dim=1) for v in views]).mean(0).numpy()
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Predicted class labels.

        Parameters
        ----------
        X : array-like, image array or array of image paths
            Inputs of the same form as at fit.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "net_")
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
