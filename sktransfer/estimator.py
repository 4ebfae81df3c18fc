"""TransferClassifier: a pretrained backbone and a freeze policy as scikit-learn parameters."""

from __future__ import annotations

import copy
import logging
import numbers
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d
from skorch.callbacks import EarlyStopping, ProgressBar

from ._threads import check_n_threads, scoped_threads, use_threads
from ._training import (
    OPTIMIZERS,
    HoldOut,
    TrainAccuracy,
    WeightedNet,
    autocast,
    history_frame,
    release_device_memory,
    resolve_amp,
    resolve_device,
)
from .backbones._base import Backbone
from .backbones.exported import ExportedBackbone
from .cache import backbone_digest
from .inputs import ArrayDataset, BatchLoader, ImagePathDataset, Inputs, to_inputs
from .network import RandomFlipCrop, TransferNetwork, make_head
from .registry import create_backbone, resolve_freeze_policy

logger = logging.getLogger("sktransfer")


class TransferClassifier(
    ClassNamePrefixFeaturesOutMixin, ClassifierMixin, TransformerMixin, BaseEstimator
):
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
        rate), or a policy object such as ``GradualUnfreeze(head_epochs=5)``.
    head : "linear" or tuple of int, default="linear"
        The new classifier on the embeddings: linear, or an MLP with these hidden sizes.
    backbone_kwargs : dict, default=None
        Architecture options for a registry backbone (``{"hidden": (64, 32)}`` for mlp).
    optimizer : {"adam", "adamw", "sgd"} or torch optimizer class, default="adam"
        ``"sgd"`` uses momentum 0.9.
    lr : float, default=1e-3
        Learning rate of the head (and of the backbone, times ``backbone_lr_mult``).
    backbone_lr_mult : float, default=None
        Learning-rate multiplier for trainable backbone parameters; ``None`` takes the freeze
        policy's default (1.0, or 0.1 for ``"gradual"``).
    weight_decay : float, default=0.0
        Passed to the optimizer.
    max_epochs : int, default=20
        Training epochs (fewer with early stopping).
    batch_size : int, default=64
        Mini-batch size for training and prediction.
    validation_fraction : float or None, default=0.1
        Share of the training data held out (stratified) for the per-epoch validation
        metrics in ``history_`` and for early stopping. ``None`` trains on all of it.
    early_stopping : int or None, default=None
        Patience in epochs; stops when the validation loss (training loss without
        validation) has not improved, and restores the best weights.
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the loss, as in scikit-learn.
    input_shape : tuple of int, default=None
        Shape of one sample, ``(C, H, W)`` for images. Needed for 2-D arrays of flattened
        images (what imbalanced-learn samplers produce); checked against image arrays.
    image_size : int, default=None
        Resolution images are resized to; ``None`` uses the backbone's own.
    augment : bool, default=False
        Random horizontal flips and small shifts of training images.
    cache_features : {"auto", True, False}, default="auto"
        Reuse a frozen backbone's embeddings across epochs, folds, grid candidates and
        predictions (see :mod:`sktransfer.cache`). ``"auto"`` caches wherever it is exact:
        the whole backbone frozen for the whole fit and no augmentation; elsewhere it is
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
        changed after fitting with ``set_params(device="cpu")``.
    num_workers : int, default=4
        Threads decoding image files when ``X`` holds paths.
    n_threads : "auto", int or None, default="auto"
        torch CPU threads during ``fit``, ``predict`` and ``transform`` (the caller's
        setting is restored after). ``"auto"``: one thread for networks under a million
        parameters, where more threads only wait on each other (10-30x slower on a busy
        machine, see ``benchmarks/bench_threads.py``), else the CPUs this process may use,
        within joblib's and Dask's inner thread limits. ``None`` leaves torch's setting.
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
        One row per epoch: ``train_loss``, ``train_acc``, ``valid_loss``, ``valid_acc``
        (validation columns when ``validation_fraction`` is set), ``dur``.
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

    def __init__(
        self,
        backbone: Any = "mlp",
        *,
        weights: str | None = None,
        freeze: Any = "none",
        head: str | Sequence[int] = "linear",
        backbone_kwargs: dict | None = None,
        optimizer: Any = "adam",
        lr: float = 1e-3,
        backbone_lr_mult: float | None = None,
        weight_decay: float = 0.0,
        max_epochs: int = 20,
        batch_size: int = 64,
        validation_fraction: float | None = 0.1,
        early_stopping: int | None = None,
        class_weight: Any = None,
        input_shape: tuple[int, ...] | None = None,
        image_size: int | None = None,
        augment: bool = False,
        cache_features: bool | str = "auto",
        cache_dir: Any = None,
        mixed_precision: bool | str = "auto",
        compile: bool = False,
        device: str = "auto",
        num_workers: int = 4,
        n_threads: int | str | None = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.freeze = freeze
        self.head = head
        self.backbone_kwargs = backbone_kwargs
        self.optimizer = optimizer
        self.lr = lr
        self.backbone_lr_mult = backbone_lr_mult
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.class_weight = class_weight
        self.input_shape = input_shape
        self.image_size = image_size
        self.augment = augment
        self.cache_features = cache_features
        self.cache_dir = cache_dir
        self.mixed_precision = mixed_precision
        self.compile = compile
        self.device = device
        self.num_workers = num_workers
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ validation helpers
    def _check_params(self) -> None:
        def positive_int(name, value, allow_none=False):
            if allow_none and value is None:
                return
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

        positive_int("max_epochs", self.max_epochs)
        positive_int("batch_size", self.batch_size)
        positive_int("early_stopping", self.early_stopping, allow_none=True)
        positive_int("image_size", self.image_size, allow_none=True)
        if not isinstance(self.lr, numbers.Real) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.backbone_lr_mult is not None and (
            not isinstance(self.backbone_lr_mult, numbers.Real) or self.backbone_lr_mult < 0
        ):
            raise ValueError(
                f"backbone_lr_mult must be >= 0 or None, got {self.backbone_lr_mult!r}"
            )
        vf = self.validation_fraction
        if vf is not None and (not isinstance(vf, numbers.Real) or not 0 < vf < 1):
            raise ValueError(f"validation_fraction must be in (0, 1) or None, got {vf!r}")
        if isinstance(self.optimizer, str) and self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; use one of {sorted(OPTIMIZERS)} or a "
                "torch.optim.Optimizer subclass"
            )
        if not isinstance(self.optimizer, str) and not (
            isinstance(self.optimizer, type) and issubclass(self.optimizer, torch.optim.Optimizer)
        ):
            raise ValueError(
                f"optimizer must be a name or an Optimizer class, got {self.optimizer!r}"
            )
        check_n_threads(self.n_threads)
        if self.cache_features not in ("auto", True, False):
            raise ValueError(
                f"cache_features must be 'auto', True or False, got {self.cache_features!r}"
            )
        if self.early_stopping is not None and self.validation_fraction is None:
            warnings.warn(
                "early_stopping without validation_fraction monitors the training loss",
                UserWarning,
                stacklevel=3,
            )

    def _validate_y(self, y, n_samples: int) -> np.ndarray:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if len(y) != n_samples:
            raise ValueError(f"X has {n_samples} samples but y has {len(y)}")
        self._label_encoder = LabelEncoder().fit(y)
        self.classes_ = self._label_encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has only one class ({self.classes_[0]!r}); a classifier needs at least "
                "two classes to train"
            )
        return self._label_encoder.transform(y)

    def _sample_weights(self, sample_weight, y_enc: np.ndarray) -> torch.Tensor | None:
        """Per-sample loss weights (class weights folded in), or None when all are equal."""
        w = _check_sample_weight(sample_weight, np.empty((len(y_enc), 0)), dtype=np.float64)
        if np.any(w < 0):
            raise ValueError("sample_weight must be non-negative")
        if self.class_weight is not None:
            labels = self._label_encoder.inverse_transform(y_enc)
            cw = compute_class_weight(self.class_weight, classes=self.classes_, y=labels)
            w = w * cw[y_enc]
        if not np.any(w > 0):
            raise ValueError("sample_weight is zero for every sample; nothing to train on")
        if np.all(w == w[0]):
            return None  # the weighted mean is the plain mean
        return torch.as_tensor(w, dtype=torch.float32)

    # ------------------------------------------------------------------ building blocks
    def _make_backbone(self, inputs: Inputs) -> Backbone:
        spec = self.backbone
        if isinstance(spec, BaseEstimator):
            raise TypeError(
                f"backbone is a {type(spec).__name__} estimator; pass "
                "fitted_classifier.export_backbone() instead (scikit-learn's clone would "
                "reset an estimator-valued parameter and lose its trained weights)"
            )
        shape = inputs.sample_shape
        if shape is None:  # image paths: the size comes from the backbone
            shape = (3, self.image_size or 224, self.image_size or 224)
        backbone = create_backbone(
            spec, weights=self.weights, input_shape=shape, **(self.backbone_kwargs or {})
        )
        name = spec if isinstance(spec, str) else type(spec).__name__
        data_kind = "tabular" if inputs.kind == "tabular" else "image"
        if backbone.kind != data_kind:
            hint = (
                "; for flattened images pass input_shape=(C, H, W)"
                if data_kind == "tabular" else "; flatten the images for a tabular backbone"
            )
            raise ValueError(
                f"backbone {name!r} takes {backbone.kind} inputs but X holds {data_kind} "
                f"data{hint}"
            )
        if data_kind == "tabular" and backbone.input_shape != inputs.sample_shape:
            raise ValueError(
                f"backbone {name!r} expects {backbone.input_shape[0]} features but X has "
                f"{inputs.sample_shape[0]}; a transferred backbone needs the same features "
                "as its source data"
            )
        if self.image_size is not None and hasattr(backbone.preprocess, "image_size"):
            backbone.preprocess.image_size = (self.image_size, self.image_size)
        if inputs.kind == "tabular":
            backbone.prepare(inputs.data)
        return backbone

    def _dataset(self, inputs: Inputs, image_size=None, y=None, sample_weight=None,
                 device: str = "cpu"):
        if inputs.kind == "paths":
            if image_size is not None and image_size[0] == image_size[1]:
                image_size = image_size[0]  # shorter side to size, centre crop: no distortion
            return ImagePathDataset(inputs.data, image_size, y, sample_weight,
                                    n_threads=self.num_workers)
        return _on_device_if_it_fits(ArrayDataset(inputs.data, y, sample_weight), device)

    # ------------------------------------------------------------------ feature cache
    def _cache_plan(self, network, policy) -> bool:
        from .cache import bypass_reason

        if self.cache_features is False:
            return False
        reason = bypass_reason(network, policy, bool(self.augment))
        if reason is None:
            return True
        message = f"feature cache bypassed: {reason}"
        if self.cache_features is True:
            warnings.warn(message, UserWarning, stacklevel=3)
        logger.info(message)
        return False

    def _cached_features(self, backbone: Backbone, weights_digest: str, inputs: Inputs,
                         device: str, amp_dtype) -> torch.Tensor:
        from .cache import feature_key, get_cache, sample_digests

        key = feature_key(weights_digest, device, amp_dtype)
        directory = getattr(self.cache_dir, "location", self.cache_dir)
        if directory is not None:
            directory = os.path.expanduser(os.fspath(directory))

        def compute(indices):
            subset = Inputs(inputs.kind, inputs.data[indices], inputs.sample_shape)
            dataset = self._dataset(subset, backbone.image_size, device=device)
            return _embed(backbone.forward_features, dataset, self.batch_size, device,
                          amp_dtype, progress=self.verbose >= 1)

        cache = get_cache()
        before = cache.hits
        features = cache.get_many(key, sample_digests(inputs.data), compute, directory)
        logger.info("feature cache: %d of %d samples found", cache.hits - before, len(inputs))
        return features

    def _optimizer_args(self, policy) -> tuple[type, dict]:
        opt = self.optimizer
        kwargs: dict[str, Any] = {"weight_decay": self.weight_decay}
        if isinstance(opt, str):
            if opt.lower() == "sgd":
                kwargs["momentum"] = 0.9
            opt = OPTIMIZERS[opt.lower()]
        mult = self.backbone_lr_mult
        if mult is None:
            mult = policy.default_backbone_lr_mult
        if mult != 1.0:
            kwargs["param_groups"] = [("backbone.*", {"lr": self.lr * mult})]
        return opt, kwargs

    def _make_net(self, network, policy, seed: int, device: str, amp_dtype) -> WeightedNet:
        optimizer, opt_kwargs = self._optimizer_args(policy)
        callbacks: list = [("train_acc", TrainAccuracy())]
        if self.early_stopping is not None:
            monitor = "valid_loss" if self.validation_fraction is not None else "train_loss"
            callbacks.append(("early_stopping", EarlyStopping(
                monitor=monitor, patience=int(self.early_stopping), load_best=True)))
        callbacks += [(f"freeze_{i}", cb) for i, cb in enumerate(policy.callbacks())]
        if self.verbose >= 2:
            callbacks.append(("progress", ProgressBar()))
        generator = torch.Generator().manual_seed(seed)
        split = HoldOut(self.validation_fraction, seed) if self.validation_fraction else None
        return WeightedNet(
            module=network,
            criterion=torch.nn.CrossEntropyLoss,
            optimizer=optimizer,
            lr=self.lr,
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            train_split=split,
            iterator_train=BatchLoader,
            iterator_valid=BatchLoader,
            iterator_train__shuffle=True,
            iterator_train__generator=generator,
            iterator_train__pin_memory=device.startswith("cuda"),
            iterator_valid__pin_memory=device.startswith("cuda"),
            iterator_valid__batch_size=inference_batch_size(
                network.backbone.kind, int(self.batch_size), device),
            callbacks=callbacks,
            device=device,
            verbose=int(self.verbose >= 1),
            classes=list(range(len(self.classes_))),
            amp_dtype=amp_dtype,
            compile=bool(self.compile),
            **{f"optimizer__{k}": v for k, v in opt_kwargs.items()},
        )

    # ------------------------------------------------------------------ fit
    @scoped_threads
    def fit(self, X, y, sample_weight=None) -> TransferClassifier:
        """Build the network for this data and train it.

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
        """
        self._check_params()
        inputs = to_inputs(self, X, input_shape=self.input_shape, reset=True)
        y_enc = self._validate_y(y, len(inputs))
        weights = self._sample_weights(sample_weight, y_enc)
        device = resolve_device(self.device)
        amp_dtype = resolve_amp(self.mixed_precision, device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        release_device_memory(device)

        cuda_devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(seed)
            backbone = self._make_backbone(inputs)
            head = make_head(backbone.num_features, len(self.classes_), self.head)
            augment = RandomFlipCrop() if self.augment and backbone.kind == "image" else None
            network = TransferNetwork(backbone, head, augment)
            use_threads(self.n_threads, network)
            policy = resolve_freeze_policy(self.freeze)
            policy.apply(network)
            if device.startswith("cuda") and backbone.kind == "image":
                network = network.to(memory_format=torch.channels_last)
            net = self._make_net(network, policy, seed, device, amp_dtype)
            y_t = torch.as_tensor(y_enc, dtype=torch.long)
            use_cache = self._cache_plan(network, policy)
            weights_digest = backbone_digest(backbone) if use_cache else None
            if use_cache:
                features = self._cached_features(backbone, weights_digest, inputs, device,
                                                 amp_dtype)
                dataset = _on_device_if_it_fits(
                    ArrayDataset(features, y_t, weights, key="features"), device)
            else:
                dataset = self._dataset(inputs, backbone.image_size, y_t, weights, device)
            net.fit(dataset, y_enc)
        if net.optimizer_ is not None:
            net.optimizer_.state.clear()  # optimizer moments are not needed to predict
        release_device_memory(device)

        self.net_ = net
        self.feature_cache_used_ = use_cache
        self.backbone_digest_ = weights_digest
        self.freeze_policy_ = policy
        self.input_kind_ = inputs.kind
        self.input_shape_ = inputs.sample_shape
        self.history_ = history_frame(net.history)
        return self

    # ------------------------------------------------------------------ predict
    def _inputs_for_predict(self, X) -> Inputs:
        check_is_fitted(self, "net_")
        inputs = to_inputs(self, X, input_shape=self.input_shape, reset=False)
        expected = "tabular" if self.input_kind_ == "tabular" else "image"
        got = "tabular" if inputs.kind == "tabular" else "image"
        if expected != got:
            raise ValueError(f"the model was fitted on {expected} data but X holds {got} data")
        if (inputs.kind == "image" and self.input_kind_ == "image"
                and inputs.sample_shape[0] != self.input_shape_[0]):
            raise ValueError(
                f"the model was fitted on {self.input_shape_[0]}-channel images, X has "
                f"{inputs.sample_shape[0]} channels"
            )
        self._sync_device()
        return inputs

    def _sync_device(self) -> None:
        device = resolve_device(self.device)
        if str(self.net_.device) != device:
            self.net_.device = device
            self.net_.module_.to(device)
            self.net_.criterion_.to(device)

    @scoped_threads
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
        inputs = self._inputs_for_predict(X)
        use_threads(self.n_threads, self.net_.module_)
        features = self._predict_features(inputs)
        if features is not None:
            dataset = ArrayDataset(features, key="features")
        else:
            dataset = self._dataset(inputs, self.net_.module_.backbone.image_size)
        proba = np.asarray(self.net_.predict_proba(dataset), dtype=np.float64)
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
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    @scoped_threads
    def transform(self, X) -> np.ndarray:
        """The backbone's embeddings of ``X``, so the estimator can be a feature step.

        Parameters
        ----------
        X : array-like, image array or array of image paths
            Inputs of the same form as at fit.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, n_features_out)
        """
        inputs = self._inputs_for_predict(X)
        use_threads(self.n_threads, self.net_.module_)
        features = self._predict_features(inputs)
        if features is not None:
            return features.float().numpy()
        backbone = self.net_.module_.backbone
        dataset = self._dataset(inputs, backbone.image_size)
        return _embed(backbone.forward_features, dataset, self.batch_size, self.net_.device,
                      self.net_.amp_dtype).numpy()

    def _predict_features(self, inputs: Inputs) -> torch.Tensor | None:
        """Embeddings from the cache for a model fitted on cached features, else None."""
        if not getattr(self, "feature_cache_used_", False) or self.cache_features is False:
            return None
        return self._cached_features(self.net_.module_.backbone, self.backbone_digest_, inputs,
                                     str(self.net_.device), self.net_.amp_dtype)

    @property
    def _n_features_out(self) -> int:
        return self.net_.module_.backbone.num_features

    # ------------------------------------------------------------------ transfer
    def export_backbone(self) -> ExportedBackbone:
        """The trained backbone, to pass as ``backbone=`` of another estimator.

        The result survives ``clone``, ``GridSearchCV`` grids and pickling with its weights,
        and :meth:`ExportedBackbone.save` writes it to a checkpoint file.

        Returns
        -------
        ExportedBackbone

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import TransferClassifier
        >>> X, y = np.random.rand(50, 5), np.arange(50) % 2
        >>> clf = TransferClassifier("mlp", max_epochs=2).fit(X, y)
        >>> clf.export_backbone()  # doctest: +ELLIPSIS
        ExportedBackbone('mlp', input_shape=(5,), ...)
        """
        check_is_fitted(self, "net_")
        backbone = self.net_.module_.backbone
        info = backbone.info
        module = None
        if info is None or info.name == "<module>":
            module = copy.deepcopy(backbone).cpu()
        return ExportedBackbone(
            name=info.name if info else "<module>",
            kwargs=info.kwargs if info else {},
            input_shape=backbone.input_shape,
            state_dict=backbone.state_dict(),
            image_size=backbone.image_size,
            meta={"n_classes": len(self.classes_), "source": type(self).__name__},
            module=module,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Embeddings are computed in float32 whatever the input's dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags


@torch.no_grad()
def _embed(forward, dataset, batch_size: int, device, amp_dtype=None,
           progress: bool = False) -> torch.Tensor:
    """Run ``forward`` (a backbone's ``forward_features``) over ``dataset`` in eval mode."""
    module = forward.__self__
    was_training = module.training
    module.eval()
    out = []
    cuda = str(device).startswith("cuda")
    batch_size = inference_batch_size(getattr(module, "kind", "image"), batch_size, device)
    loader = BatchLoader(dataset, batch_size=batch_size, pin_memory=cuda)
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="extracting features", unit="batch", leave=False)
    try:
        with autocast(device, amp_dtype):
            for xb, _ in loader:
                out.append(forward(xb["x"].to(device, non_blocking=True)).float().cpu())
    finally:
        module.train(was_training)
    return torch.cat(out)


def inference_batch_size(kind: str, batch_size: int, device) -> int:
    """Batch size for forward passes without gradients (validation, prediction, features).

    Large batches pay on a GPU and for small tabular networks; on a CPU, large image
    batches only cost memory.
    """
    if str(device).startswith("cuda"):
        return max(batch_size, 256)
    return batch_size if kind == "image" else max(batch_size, 4096)


def _on_device_if_it_fits(dataset: ArrayDataset, device: str) -> ArrayDataset:
    """Keep the whole dataset on the GPU when it takes under a quarter of the free memory:
    batches are then sliced there, with no host-to-device copy per batch."""
    if not device.startswith("cuda"):
        return dataset
    tensors = [t for t in (dataset.x, dataset.y, dataset.sample_weight) if t is not None]
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    if nbytes < free // 4:
        dataset.x, dataset.y = dataset.x.to(device), dataset.y.to(device)
        if dataset.sample_weight is not None:
            dataset.sample_weight = dataset.sample_weight.to(device)
    return dataset
