"""What every sktransfer estimator shares: parameters, their validation, the fit machinery.

:class:`_TransferEstimatorBase` holds everything that does not depend on the task:
turning ``X`` into tensors, building ``head(backbone(x))``, the freeze policy, the feature
cache, the skorch net and its callbacks, warm starts, predictions of raw network outputs,
embeddings and export. A task (classification in :mod:`sktransfer.estimator`, regression
elsewhere) subclasses it and fills in the hooks:

- ``_encode_target(y, *, reset, classes=None, partial=False)``: ``y`` -> the array the
  loss reads (class indices; float targets), recording ``classes_`` or the like when
  ``reset`` and checking ``y`` against them when a fit continues (``partial`` says
  whether by ``partial_fit`` or by ``warm_start``);
- ``_n_outputs()``: size of the head's output layer;
- ``_criterion()``: the torch loss class; ``_net_class``: the skorch net class;
- ``_net_kwargs()``: extra keyword arguments of the net (``classes`` for a classifier);
- ``_task_callbacks()``: skorch callbacks of the task (training accuracy);
- ``_stratify``: whether the validation hold-out is stratified by ``y``;
- ``_target_sample_weights(y_enc)``: per-sample loss factors from the target (class
  weights), or None;
- ``_export_meta()``: what an exported backbone records about its source task.

Predictions of a subclass start from :meth:`_predict_views` (the network's raw outputs, and
those of mirrored images under test-time augmentation).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    StrOptions,
)
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from skorch.callbacks import Callback, EarlyStopping, ProgressBar

from ._threads import scoped_threads, set_threads, thread_tuner, torch_threads, use_threads
from ._training import (
    OPTIMIZERS,
    HoldOut,
    WeightedNet,
    autocast,
    float_state,
    history_frame,
    interpolate_weights,
    release_device_memory,
    resolve_amp,
    resolve_device,
    run_stages,
)
from .augment import POLICIES, TTA_MODES, make_augment, tta_views
from .backbones._base import Backbone
from .backbones.exported import ExportedBackbone
from .cache import backbone_digest
from .freeze import FreezeBackbone, FreezePolicy
from .inputs import (
    KIND_NAMES,
    ArrayDataset,
    BatchLoader,
    ImagePathDataset,
    Inputs,
    SeededGenerator,
    to_inputs,
)
from .network import TransferNetwork, make_head
from .registry import create_backbone, resolve_freeze_policy
from .schedules import (
    SCHEDULES,
    RecordLR,
    layerwise_param_groups,
    make_schedule,
    resolve_recipe,
)

logger = logging.getLogger("sktransfer")

#: validation hold-out used by ``early_stopping`` when ``validation_fraction`` is None
DEFAULT_EARLY_STOPPING_FRACTION = 0.1
#: device types a network can train on (``"meta"`` tensors have no data, for one)
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
#: names of the callbacks the estimator adds itself
_OWN_CALLBACKS = ("finite_loss", "train_acc", "early_stopping", "progress", "lr_schedule")


def unchanged_on_error(method):
    """A fitting method that raises leaves the estimator as it was, its fitted attributes
    included: a refused refit must not pair the old network with new classes, columns or
    target scaling, and a failed first fit leaves it unfitted. (A continued fit's
    network, changed in place, is put back by ``_restorer``.)"""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        attributes = dict(vars(self))
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            vars(self).clear()
            vars(self).update(attributes)
            raise

    return wrapper


class _TransferEstimatorBase(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared parameters and fit machinery of the sktransfer estimators (private).

    See :class:`sktransfer.TransferClassifier` for the parameters. Subclasses implement the
    task hooks listed in this module's docstring.
    """

    _parameter_constraints: dict = {
        # checked where it is resolved (registry.create_backbone), whose errors say what
        # each accepted form is and explain export_backbone() for a fitted estimator
        "backbone": "no_validation",
        "weights": [None, str, os.PathLike],
        "freeze": [None, str, FreezePolicy],
        "head": [StrOptions({"linear"}), tuple, list],
        "backbone_kwargs": [None, dict],
        "optimizer": [StrOptions({"auto", *OPTIMIZERS}), HasMethods(["step", "zero_grad"])],
        "lr": [Interval(Real, 0, math.inf, closed="neither")],
        "backbone_lr_mult": [None, Interval(Real, 0, math.inf, closed="left")],
        "lr_schedule": [StrOptions({"auto", *SCHEDULES})],
        "warmup": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="left")],
        "layer_decay": [None, StrOptions({"auto"}), Interval(Real, 0, 1, closed="right")],
        "weight_decay": [Interval(Real, 0, math.inf, closed="left")],
        "l2sp": [Interval(Real, 0, math.inf, closed="left")],
        "weight_interpolation": [None, Interval(Real, 0, 1, closed="both")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [None, Interval(Real, 0, 1, closed="neither")],
        "early_stopping": [None, Interval(Integral, 1, None, closed="left")],
        "input_shape": [None, tuple, list],
        "image_size": [None, Interval(Integral, 1, None, closed="left")],
        "augment": ["boolean", StrOptions(set(POLICIES)), callable],
        "cache_features": [StrOptions({"auto"}), "boolean"],
        "cache_dir": [None, str, os.PathLike, HasMethods(["cache"])],
        "mixed_precision": [
            StrOptions({"auto", "bf16", "fp16", "bfloat16", "float16"}), "boolean"
        ],
        "compile": ["boolean"],
        "device": [str, torch.device],
        # an accelerate.Accelerator (duck-typed: accelerate is an optional extra)
        "accelerator": [None, StrOptions({"auto"}),
                        HasMethods(["prepare_model", "backward", "autocast"])],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "n_threads": [StrOptions({"auto", "tune"}), Interval(Integral, 1, None, closed="left"),
                      None],
        "callbacks": [None, list, tuple],
        "warm_start": ["boolean"],
        "tta": ["boolean", StrOptions(set(TTA_MODES))],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # -- task hooks (a subclass overrides these) ----------------------------------------
    _net_class: type = WeightedNet
    _stratify: bool = False

    def _encode_target(self, y, *, reset: bool, classes=None,
                       partial: bool = False) -> np.ndarray:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _criterion(self) -> type:
        raise NotImplementedError

    def _net_kwargs(self) -> dict:
        return {}

    def _task_callbacks(self) -> list:
        return []

    def _target_sample_weights(self, y_enc: np.ndarray) -> np.ndarray | None:
        return None

    def _export_meta(self) -> dict:
        return {}

    def _loss_net_kwargs(self, network) -> dict:
        """Net keyword arguments of the task's loss options (label smoothing, mixing)."""
        return {}

    def _mixes_inputs(self) -> bool:
        """Whether training batches are mixed (MixUp/CutMix): the cache is then inexact."""
        return False

    def _check_weight_interpolation(self, head_epochs: int, continued: bool) -> None:
        """WiSE-FT needs LP-FT's two ends: a clear error for a fit without a head stage
        or a continued fit (``partial_fit``, ``warm_start=True``)."""
        if self.weight_interpolation in (None, 1):
            return
        if continued:
            raise ValueError(
                f"weight_interpolation={self.weight_interpolation} averages the "
                "weights of one LP-FT fit (freeze='gradual') with its probe; a "
                "continued fit (partial_fit, warm_start=True) has no probe stage. "
                "Use weight_interpolation=None to continue training"
            )
        if head_epochs:
            return
        raise ValueError(
            f"weight_interpolation={self.weight_interpolation} averages the fine-tuned "
            "weights with those at the end of LP-FT's head stage, and freeze="
            f"{self.freeze!r} has no such stage. Use freeze='gradual' (or a "
            "GradualUnfreeze policy with head_epochs >= 1), or weight_interpolation=None"
        )

    def _head_stage_is_exact(self) -> bool:
        """Whether LP-FT's head stage is one exact solve on clean embeddings (the
        classifier's ``head_solver="lbfgs"``), so augmentation waits for fine-tuning."""
        return False

    def _fit_head_exactly(self, net, dataset, use_cache: bool, stage: str = "train") -> bool:
        """Fit the head in one solve instead of training epochs (a linear probe); whether
        done, or a ValueError where the estimator asks for a solve that cannot apply.

        ``stage``: ``"train"``, a new fit's single training stage; ``"head"``, the head
        stage of LP-FT (:class:`~sktransfer.freeze.GradualUnfreeze`); ``"continue"``,
        ``warm_start`` or ``partial_fit``. ``dataset`` holds cached embeddings when
        ``use_cache``.
        """
        return False

    # -- parameters ----------------------------------------------------------------------
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
        input_shape: tuple[int, ...] | None = None,
        image_size: int | None = None,
        augment: Any = False,
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
        self.backbone = backbone
        self.weights = weights
        self.freeze = freeze
        self.head = head
        self.backbone_kwargs = backbone_kwargs
        self.optimizer = optimizer
        self.lr = lr
        self.backbone_lr_mult = backbone_lr_mult
        self.lr_schedule = lr_schedule
        self.warmup = warmup
        self.layer_decay = layer_decay
        self.weight_decay = weight_decay
        self.l2sp = l2sp
        self.weight_interpolation = weight_interpolation
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.input_shape = input_shape
        self.image_size = image_size
        self.augment = augment
        self.cache_features = cache_features
        self.cache_dir = cache_dir
        self.mixed_precision = mixed_precision
        self.compile = compile
        self.device = device
        self.accelerator = accelerator
        self.num_workers = num_workers
        self.n_threads = n_threads
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.tta = tta
        self.random_state = random_state
        self.verbose = verbose

    # Backbones and policies added with register_backbone / register_freeze_policy travel
    # inside the pickle, so n_jobs>1 worker processes (joblib's loky) know their names.
    def __getstate__(self):
        from .registry import _registrations_for

        state = dict(super().__getstate__())
        accelerator = getattr(self, "accelerator", None)  # PretrainedEncoder has none
        if accelerator is not None and not isinstance(accelerator, str):
            # an Accelerator is this launch's handle on its processes, not part of the
            # model: a pickled estimator builds one from wherever it is loaded
            state["accelerator"] = "auto"
        registrations = _registrations_for(self.backbone, getattr(self, "freeze", None))
        if registrations:
            state["_sktransfer_registrations"] = registrations
        return state

    def __setstate__(self, state):
        from .registry import _restore_registrations

        state = dict(state)
        _restore_registrations(state.pop("_sktransfer_registrations", None))
        super().__setstate__(state)

    def _validate_more(self) -> None:
        """What ``_parameter_constraints`` cannot say: values inside containers, classes
        that cannot work, devices that hold no data. Runs after ``_validate_params``."""
        name = type(self).__name__
        opt = self.optimizer
        if not isinstance(opt, str):
            if not (isinstance(opt, type) and issubclass(opt, torch.optim.Optimizer)):
                raise InvalidParameterError(
                    f"The 'optimizer' parameter of {name} must be one of "
                    f"{sorted(OPTIMIZERS)} or a torch.optim.Optimizer subclass (the class, "
                    f"not an instance); got {opt!r}."
                )
            closure = inspect.signature(opt.step).parameters.get("closure")
            if closure is not None and closure.default is inspect.Parameter.empty:
                raise InvalidParameterError(
                    f"optimizer={opt.__name__} needs a closure that re-evaluates the loss at "
                    "every step, which mini-batch training does not provide: it is not "
                    "supported. Use 'adam', 'adamw', 'sgd' or another first-order optimizer."
                )
        if self.device != "auto":
            try:
                device_type = torch.device(self.device).type
            except (RuntimeError, TypeError, ValueError):
                device_type = None
            if device_type == "meta":
                raise InvalidParameterError(
                    "device='meta' makes tensors without data: nothing can be trained or "
                    "predicted on it. Use device='auto', 'cpu' or 'cuda'."
                )
            if device_type not in _DEVICE_TYPES:
                raise InvalidParameterError(
                    f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got "
                    f"{self.device!r}"
                )
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            if (len(shape) not in (1, 3)
                    or not all(isinstance(s, Integral) and not isinstance(s, bool)
                               for s in shape)
                    or min(shape) < 1):
                raise InvalidParameterError(
                    f"input_shape must be (n_features,) or (C, H, W) of positive ints, got "
                    f"{self.input_shape!r}"
                )
        if not isinstance(self.head, str) and not all(
            isinstance(h, Integral) and not isinstance(h, bool) and h >= 1 for h in self.head
        ):
            raise InvalidParameterError(
                f"head must be 'linear' or a tuple of positive hidden sizes, got {self.head!r}"
            )
        self._check_callbacks()

    def _check_callbacks(self) -> None:
        for entry in self.callbacks or ():
            cb = entry
            if isinstance(entry, tuple):
                if len(entry) != 2 or not isinstance(entry[0], str):
                    raise InvalidParameterError(
                        f"callbacks entries are skorch callbacks or (name, callback) pairs, "
                        f"got {entry!r}"
                    )
                if entry[0] in _OWN_CALLBACKS or entry[0].startswith("freeze_"):
                    raise InvalidParameterError(
                        f"callback name {entry[0]!r} is used by {type(self).__name__} "
                        f"itself; choose another name"
                    )
                cb = entry[1]
            if not isinstance(cb, Callback) and not (
                isinstance(cb, type) and issubclass(cb, Callback)
            ):
                raise InvalidParameterError(
                    f"callbacks entries must be skorch.callbacks.Callback instances or "
                    f"(name, callback) pairs, got {cb!r}"
                )

    # -- distributed fits (accelerator=) --------------------------------------------------
    def _make_accelerator(self):
        """The ``Accelerator`` of this fit, or None; device and precision checked against it.

        Accelerate places the network and runs mixed precision, so ``device`` and
        ``mixed_precision`` may only say the same as the accelerator (or ``"auto"``).
        """
        if getattr(self, "accelerator", None) is None:
            return None
        from ._distributed import check_accelerate_installed, make_accelerator

        check_accelerate_installed()
        acc = make_accelerator(self.accelerator)
        if self.device != "auto" and torch.device(self.device) != torch.device(acc.device):
            raise ValueError(
                f"device={self.device!r} but the accelerator runs this process on "
                f"{acc.device}: with accelerator= leave device='auto' (Accelerate gives "
                "each process its device)"
            )
        mp = self.mixed_precision
        if mp != "auto":
            names = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16"}
            theirs = str(getattr(acc, "mixed_precision", "no"))
            same = (theirs == "no") if mp is False else (
                theirs != "no" if mp is True else names.get(mp) == theirs)
            if not same:
                raise ValueError(
                    f"mixed_precision={mp!r} but the accelerator's mixed precision is "
                    f"{theirs!r}: with accelerator= it is the accelerator's setting; pass "
                    "Accelerator(mixed_precision='bf16' / 'fp16' / 'no') and leave "
                    "mixed_precision='auto'"
                )
        return acc

    def _main_process(self) -> bool:
        """Whether this process writes progress (the main one of a distributed fit)."""
        acc = getattr(self, "accelerator", None)  # PretrainedEncoder has none
        if acc is None:
            return True
        if isinstance(acc, str):
            from accelerate import PartialState

            return bool(PartialState().is_main_process)
        return bool(acc.is_main_process)

    def _resolved_validation_fraction(self, partial: bool) -> float | None:
        """The hold-out of this fit: the parameter, else 0.1 when early stopping asks.

        As in scikit-learn, nothing is held out unless asked for; ``partial_fit`` trains on
        every row it is given.
        """
        if partial:
            return None
        if self.validation_fraction is not None:
            return float(self.validation_fraction)
        if self.early_stopping is not None:
            return DEFAULT_EARLY_STOPPING_FRACTION
        return None

    # -- data ------------------------------------------------------------------------------
    def _to_inputs(self, X, *, reset: bool) -> Inputs:
        """``X`` -> :class:`Inputs`; at fit (``reset``) the columns of 2-D X are recorded."""
        inputs = to_inputs(X, input_shape=self.input_shape)
        if reset:
            self._check_columns(X, inputs, reset=True)
        return inputs

    def _check_columns(self, X, inputs: Inputs, *, reset: bool) -> None:
        """Record (``reset``) or check ``n_features_in_`` and feature names of 2-D X."""
        if inputs.kind == "paths":
            if reset:
                self.n_features_in_ = 1
                self.__dict__.pop("feature_names_in_", None)
        elif inputs.n_columns is not None:
            validate_data(self, X, reset=reset, skip_check_array=True)
        elif reset:
            self.__dict__.pop("n_features_in_", None)
            self.__dict__.pop("feature_names_in_", None)

    def _sample_weights(self, sample_weight, y_enc: np.ndarray) -> torch.Tensor | None:
        """Per-sample loss weights (the task's factors folded in), or None when all equal."""
        w = _check_sample_weight(sample_weight, np.empty((len(y_enc), 0)), dtype=np.float64)
        if np.any(w < 0):
            raise ValueError("sample_weight must be non-negative")
        factors = self._target_sample_weights(y_enc)
        if factors is not None:
            w = w * factors
        if not np.any(w > 0):
            raise ValueError("sample_weight is zero for every sample; nothing to train on")
        if np.all(w == w[0]):
            return None  # the weighted mean is the plain mean
        # The loss is sum(w * l) / sum(w): scaling every weight changes nothing, so scale
        # them to a largest weight of 1 in float64 first. Otherwise weights beyond float32's
        # range become inf (a NaN loss), and uniformly tiny ones (1e-20) fall below the
        # loss's guard against a zero sum and silently stop training.
        w = w / w.max()
        return torch.as_tensor(w, dtype=torch.float32)

    def _dataset(self, inputs: Inputs, image_size=None, y=None, sample_weight=None,
                 device: str = "cpu"):
        if inputs.kind == "paths":
            if image_size is not None and image_size[0] == image_size[1]:
                image_size = image_size[0]  # shorter side to size, centre crop: no distortion
            return ImagePathDataset(inputs.data, image_size, y, sample_weight,
                                    n_threads=self.num_workers)
        return _on_device_if_it_fits(ArrayDataset(inputs.data, y, sample_weight), device)

    # -- building blocks -----------------------------------------------------------------
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
        # One thread: building is random initialisation (serial anyway) and copying the
        # weights in, hundreds of tensors each a parallel region that, on a busy machine,
        # waits at its barrier for a descheduled thread; one thread builds 2-4x faster
        # there, and the same numbers (benchmarks/bench_frozen_gridsearch.py builds 13).
        with torch_threads(1):
            backbone = create_backbone(
                spec, weights=self._backbone_weights(), input_shape=shape,
                **(self.backbone_kwargs or {})
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
        if data_kind == "image":
            paths = inputs.kind == "paths"
            backbone.check_channels(3 if paths else inputs.sample_shape[0], "X holds",
                                    from_files=paths)
        if data_kind == "tabular" and backbone.input_shape != inputs.sample_shape:
            raise ValueError(
                f"backbone {name!r} expects {backbone.input_shape[0]} features but X has "
                f"{inputs.sample_shape[0]}; a transferred backbone needs the same features "
                "as its source data"
            )
        if self.image_size is not None and hasattr(backbone.preprocess, "image_size"):
            backbone.preprocess.image_size = (self.image_size, self.image_size)
        if data_kind == "image":
            backbone.check_image_size()
        if inputs.kind == "tabular":
            backbone.prepare(inputs.data)
        return backbone

    def _backbone_weights(self):
        """The ``weights=`` handed to the registry (the parameter; the encoder resolves
        its ``"auto"`` here)."""
        return self.weights

    def _is_untrained_registry_backbone(self, backbone: Backbone) -> bool:
        spec = self.backbone
        return (isinstance(spec, str) and self._backbone_weights() is None
                and backbone.info is not None and backbone.info.name == spec)

    def _warn_if_freezing_random_weights(self, network: TransferNetwork) -> None:
        """Freezing a backbone nobody trained keeps random features: almost surely a slip."""
        backbone = network.backbone
        if not self._is_untrained_registry_backbone(backbone):
            return
        if all(p.requires_grad for p in backbone.parameters()):
            return
        warnings.warn(
            f"freeze={self.freeze!r} keeps layers of backbone {self.backbone!r} frozen, but "
            "weights=None: those layers keep their random initial weights. Pass "
            "pretrained weights (weights='imagenet', or a backbone exported from a model "
            "trained on source data), or use freeze='none'.",
            UserWarning,
            stacklevel=6,
        )

    def _cache_plan(self, network: TransferNetwork, policy, clean_inputs: bool = False) -> bool:
        """Whether this stage trains on cached embeddings (logged when it cannot).

        ``clean_inputs``: the stage is defined on the unaugmented, unmixed images (the
        exact linear probe of LP-FT), so augmentation and mixing do not bypass the cache.
        """
        from .cache import bypass_reason

        if self.cache_features is False:
            return False
        reason = ("mixup/cutmix mix the training images"
                  if self._mixes_inputs() and not clean_inputs
                  else bypass_reason(network, policy,
                                     network.augment is not None and not clean_inputs))
        if reason is None:
            return True
        message = f"feature cache bypassed: {reason}"
        if self.cache_features is True:
            warnings.warn(message, UserWarning, stacklevel=5)
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
            return _run_batches(backbone, backbone.forward_features, dataset, self.batch_size,
                                device, amp_dtype,
                                progress=self.verbose >= 1 and self._main_process(),
                                tuner=thread_tuner(getattr(self, "n_threads", None), device))

        cache = get_cache()
        before = cache.hits
        features = cache.get_many(key, sample_digests(inputs.data), compute, directory)
        logger.info("feature cache: %d of %d samples found", cache.hits - before, len(inputs))
        return features

    def _training_recipe(self, network: TransferNetwork, policy) -> dict:
        """Optimizer, schedule, warmup and layer decay of this fit, ``"auto"`` resolved:
        the fine-tuning recipe when a pretrained backbone trains, else the plain one."""
        pretrained = not self._is_untrained_registry_backbone(network.backbone)
        trains = not policy.keeps_backbone_frozen()
        return resolve_recipe(
            {"optimizer": self.optimizer, "lr_schedule": self.lr_schedule,
             "warmup": self.warmup, "layer_decay": self.layer_decay},
            fine_tuning=pretrained and trains)

    def _feature_dataset(self, network, inputs, y_t, weights, net, device) -> ArrayDataset:
        """The frozen backbone's embeddings of ``inputs``, through the feature cache."""
        digest = backbone_digest(network.backbone)
        features = self._cached_features(network.backbone, digest, inputs, str(net.device),
                                         net.amp_dtype)
        return _on_device_if_it_fits(ArrayDataset(features, y_t, weights), device)

    def _optimizer_args(self, policy, network, recipe) -> tuple[type, dict]:
        opt = recipe["optimizer"]
        kwargs: dict[str, Any] = {"weight_decay": float(self.weight_decay)}
        if isinstance(opt, str):
            if opt == "sgd":
                kwargs["momentum"] = 0.9
            opt = OPTIMIZERS[opt]
        mult = self.backbone_lr_mult
        if mult is None:
            mult = policy.default_backbone_lr_mult
        groups = layerwise_param_groups(  # L2-SP replaces weight decay on the backbone
            network, float(self.lr), float(mult), recipe["layer_decay"],
            backbone_weight_decay=0.0 if self.l2sp else None)
        if groups:
            kwargs["param_groups"] = groups
        return opt, kwargs

    def _user_callbacks(self) -> list:
        """The ``callbacks`` parameter, deep-copied: fitting never mutates the parameter."""
        return copy.deepcopy(list(self.callbacks or ()))

    def _callbacks(self, policy, validation: bool, recipe: dict, main: bool = True) -> list:
        callbacks: list = [("finite_loss", _FiniteLoss()), *self._task_callbacks()]
        schedule = make_schedule(recipe["lr_schedule"], float(recipe["warmup"]))
        callbacks.append(("lr_schedule", RecordLR() if schedule is None else schedule))
        if self.early_stopping is not None:
            monitor = "valid_loss" if validation else "train_loss"
            callbacks.append(("early_stopping", _PausableEarlyStopping(
                monitor=monitor, patience=int(self.early_stopping), load_best=True)))
        callbacks += [(f"freeze_{i}", cb) for i, cb in enumerate(policy.callbacks())]
        if self.verbose >= 2 and main:  # one progress bar, the main process's
            callbacks.append(("progress", ProgressBar()))
        return callbacks + self._user_callbacks()

    def _make_net(self, network, policy, seed: int, device: str, amp_dtype,
                  fraction: float | None, recipe: dict, accelerator=None):
        optimizer, opt_kwargs = self._optimizer_args(policy, network, recipe)
        net_class, distributed = self._net_class, {}
        if accelerator is not None:
            from skorch.utils import noop

            from ._distributed import accelerated_net_class

            net_class = accelerated_net_class(net_class)
            distributed = {
                "accelerator": accelerator,
                "callbacks__print_log__sink": print if accelerator.is_main_process else noop,
                "iterator_train__num_shards": int(accelerator.num_processes),
                "iterator_train__shard": int(accelerator.process_index),
            }
        generator = SeededGenerator(seed)
        split = HoldOut(fraction, seed, stratify=self._stratify) if fraction else None
        return net_class(
            module=network,
            criterion=self._criterion(),
            optimizer=optimizer,
            lr=float(self.lr),
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
            callbacks=self._callbacks(policy, validation=split is not None, recipe=recipe,
                                      main=accelerator is None or accelerator.is_main_process),
            device=device,
            verbose=int(self.verbose >= 1),
            amp_dtype=amp_dtype,
            compile=bool(self.compile),
            **self._net_kwargs(),
            **({"l2sp": float(self.l2sp)} if self.l2sp else {}),
            **self._loss_net_kwargs(network),
            **{f"optimizer__{k}": v for k, v in opt_kwargs.items()},
            **distributed,
        )

    # -- fit -------------------------------------------------------------------------------
    def _continues(self, partial: bool) -> bool:
        """Whether this call trains the fitted network further instead of a new one."""
        return hasattr(self, "net_") and (partial or bool(self.warm_start))

    @scoped_threads
    @unchanged_on_error
    def _fit(self, X, y, sample_weight=None, *, partial: bool = False, classes=None):
        """Fit (``partial=False``) or train one more epoch (``partial=True``)."""
        self._validate_more()
        continuing = self._continues(partial)
        if continuing:
            check_is_fitted(self, "net_")
        if partial or continuing:  # what a continued fit cannot do, refused before any work
            self._fit_head_exactly(None, None, False, "continue")
            self._check_weight_interpolation(0, continued=True)
        inputs = self._to_inputs(X, reset=not continuing)
        if continuing:
            if inputs.kind != "paths" and self.input_kind_ != "paths":
                self._check_columns(X, inputs, reset=False)
            self._check_same_input_form(inputs)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        y_enc = self._encode_target(y, reset=not continuing, classes=classes,
                                    partial=partial)
        if len(y_enc) != len(inputs):
            raise ValueError(f"X has {len(inputs)} samples but y has {len(y_enc)}")
        weights = self._sample_weights(sample_weight, y_enc)
        fraction = self._resolved_validation_fraction(partial)
        if fraction is not None:  # a clear error now, not mid-training
            try:
                HoldOut.sizes(len(inputs), fraction)
            except ValueError as exc:
                if self.validation_fraction is None:
                    raise ValueError(
                        f"early_stopping={self.early_stopping} validates on a hold-out of "
                        f"{fraction} of the rows, which does not work here: {exc}. Pass a "
                        "validation_fraction that suits the data, or early_stopping=None"
                    ) from None
                raise
        accelerator = self._make_accelerator()
        if accelerator is None:
            device = resolve_device(self.device)
            amp_dtype = resolve_amp(self.mixed_precision, device)
        else:  # Accelerate places the network and runs mixed precision
            device, amp_dtype = str(accelerator.device), None
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if accelerator is not None:
            from ._distributed import broadcast_seed

            seed = broadcast_seed(accelerator, seed)  # one split and shuffle for all
        release_device_memory(device)

        cuda_devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
        # a continued fit that fails after its settings were applied to the fitted network
        # puts them back, so the model stays the one its parameters describe
        with contextlib.ExitStack() as on_error, torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(seed)
            head_epochs = 0
            if continuing:
                self._sync_device()
                net, policy = self.net_, self.freeze_policy_
                self._attach_accelerator(net, accelerator)
                recipe = self.training_recipe_
                changed = self._changed_since_fit()
                on_error.callback(self._restorer())  # before anything changes
                if changed:  # settings changed since the last fit: they take effect now
                    net, policy, recipe = self._rebuilt_net(
                        changed, seed, device, amp_dtype, fraction, accelerator)
                else:
                    self._sync_verbosity(net, accelerator)
                    if net.l2sp and getattr(net, "l2sp_reference_", None) is None:
                        net.set_l2sp_reference()  # dropped after a fit without warm_start
                network = net.module_
            else:
                policy = self._freeze_policy()
                if hasattr(policy, "head_stage_epochs"):  # LP-FT: head first, then all
                    head_epochs = policy.head_stage_epochs(int(self.max_epochs))
                if partial and head_epochs:
                    raise self._staged_policy_error("partial_fit")
                self._check_weight_interpolation(head_epochs, continued=False)
                network = self._build_network(inputs, policy, device)
                recipe = self._training_recipe(network, policy)
                net = self._make_net(network, policy, seed, device, amp_dtype, fraction,
                                     recipe, accelerator)
            use_threads(self.n_threads, network)
            # long epochs time their first batches to choose the threads (ThreadTuner); a
            # continued fit (partial_fit, warm_start) keeps the choice made so far
            tuner = thread_tuner(self.n_threads, device)
            kept = net.__dict__.get("thread_tuner") if continuing else None
            if tuner is not None and kept is not None and kept.n_threads == tuner.n_threads:
                tuner = kept
            net.__dict__["thread_tuner"] = tuner
            on_error.callback(net.__dict__.pop, "thread_tuner", None)
            y_t = torch.as_tensor(y_enc)
            stages_ = []
            if head_epochs:
                # The exact probe is fitted on the clean images' embeddings, as Kornblith
                # et al. and Kumar et al. fit linear probes; augmentation and mixing are
                # for the fine-tuning stage.
                head_cache = self._cache_plan(network, FreezeBackbone(),
                                              clean_inputs=self._head_stage_is_exact())
                head_data = (self._feature_dataset(network, inputs, y_t, weights, net, device)
                             if head_cache else None)
                # LP-FT as Kumar et al. fit the LP: one exact solve on the cached embeddings
                # (head_solver="lbfgs"), else head_epochs epochs of the optimizer
                exact_head = self._fit_head_exactly(net, head_data, head_cache, "head")
                use_cache, digest = False, None
                dataset = self._dataset(inputs, network.backbone.image_size, y_t, weights,
                                        device)
                marks = {}
                alpha = self.weight_interpolation
                probe_state = {}

                def unfreeze(net):
                    marks["first"] = len(net.history)
                    if alpha is not None and alpha != 1:  # WiSE-FT's starting end
                        probe_state.update(float_state(net.module_))
                    policy.unfreeze(net.module_)
                    net.initialize_optimizer()  # a fresh optimizer for the new stage
                    if net.__dict__.get("thread_tuner") is not None:
                        net.thread_tuner.reset()  # the whole network trains now: time it
                    use_threads(self.n_threads, net.module_)  # the rule, for short epochs

                stages = [(head_epochs, head_data or dataset, head_cache, None),
                          (int(self.max_epochs) - head_epochs, dataset, False, unfreeze)]
                run_stages(net, y_enc, stages[1:] if exact_head else stages,
                           initialized=exact_head)
                if "first" in marks and marks["first"] < len(net.history):
                    net.history[marks["first"]]["unfrozen"] = True
                stages_ = [
                    {"stage": "head", "epochs": head_epochs, "cached_features": head_cache,
                     "epochs_run": marks.get("first", len(net.history))},
                    {"stage": "fine-tune", "epochs": int(self.max_epochs) - head_epochs,
                     "cached_features": False,
                     "epochs_run": len(net.history) - marks.get("first", len(net.history))},
                ]
                if probe_state:
                    interpolate_weights(net.module_, probe_state, float(alpha))
                    stages_.append({"stage": "interpolate", "weight_interpolation":
                                    float(alpha), "epochs": 0, "cached_features": False,
                                    "epochs_run": 0})
            else:
                use_cache = self._cache_plan(network, policy)
                digest = None
                if use_cache:
                    digest = getattr(self, "backbone_digest_", None) if continuing else None
                    digest = digest or backbone_digest(network.backbone)
                    features = self._cached_features(network.backbone, digest, inputs,
                                                     str(net.device), net.amp_dtype)
                    dataset = _on_device_if_it_fits(ArrayDataset(features, y_t, weights),
                                                    device)
                    # only the head trains now: the threads suit its size, not the backbone's
                    use_threads(self.n_threads, network.head)
                else:
                    dataset = self._dataset(inputs, network.backbone.image_size, y_t,
                                            weights, device)
                net.head_only = use_cache
                n_before = len(net.history) if continuing else 0
                net.continue_schedule_ = partial  # see BatchLRSchedule.on_train_begin
                net.max_epochs = int(self.max_epochs)  # the schedule's length, set_params too
                if partial:
                    net.train_split = None
                    with _early_stopping_paused(net):
                        net.partial_fit(dataset, y_enc, epochs=1)
                elif continuing:
                    net.train_split = (HoldOut(fraction, seed, stratify=self._stratify)
                                       if fraction else None)
                    for name, callback in net.callbacks_:  # a net first built without a
                        if name == "early_stopping":       # hold-out watched train_loss
                            callback.monitor = "valid_loss" if fraction else "train_loss"
                    net.partial_fit(dataset, y_enc)
                elif not self._fit_head_exactly(net, dataset, use_cache):
                    net.fit(dataset, y_enc)
                stages_ = [*getattr(self, "stages_", [])] if continuing else []
                stages_.append({"stage": "train", "epochs": 1 if partial else int(self.max_epochs),
                                "cached_features": use_cache,
                                "epochs_run": len(net.history) - n_before})
            on_error.pop_all()  # trained: nothing to put back
        if not (partial or self.warm_start) and net.optimizer_ is not None:
            net.optimizer_.state.clear()  # optimizer moments are not needed to predict
        release_device_memory(device)

        self.net_ = net
        self.feature_cache_used_ = use_cache
        self.training_recipe_ = recipe
        self.stages_ = stages_
        if not (partial or self.warm_start):  # a continued fit pulls toward them too
            net.l2sp_reference_ = None  # the starting weights are not needed to predict
        self.backbone_digest_ = digest
        self.freeze_policy_ = policy
        self.input_kind_ = inputs.kind
        self.input_shape_ = inputs.sample_shape
        self.history_ = history_frame(net.history)
        self._fit_params_ = self._params_snapshot()
        return self

    def _params_snapshot(self) -> dict:
        """The parameters a continued fit must compare, as this fit used them: dicts and
        lists copied and policy objects by their own parameters, so a later change in
        place (``set_params(freeze__k=3)``) is a change too."""
        params = {k: v for k, v in self.get_params(deep=False).items()
                  if k not in self._PER_FIT_PARAMS}
        if "freeze" in params:  # "gradual" and GradualUnfreeze(3) are one setting
            params["freeze"] = resolve_freeze_policy(params["freeze"])
        return {k: _snapshot_value(v) for k, v in params.items()}

    # -- continued fits ----------------------------------------------------------------
    #: Parameters that make the network itself: a continued fit cannot change them.
    _NETWORK_PARAMS = ("backbone", "weights", "head", "backbone_kwargs", "input_shape",
                       "image_size")
    #: Parameters a continued fit reads afresh anyway (or refuses on its own terms).
    _PER_FIT_PARAMS = ("max_epochs", "warm_start", "verbose", "tta", "n_threads",
                       "num_workers", "cache_features", "cache_dir", "random_state",
                       "validation_fraction", "weight_interpolation", "accelerator",
                       "head_solver", "head_C")

    def _changed_since_fit(self, saving: bool = False) -> list[str]:
        """Training parameters changed (``set_params``) since the network was last fitted.

        Raises for a changed network parameter: the fitted weights belong to the old one
        (``saving``: the message is that of :func:`sktransfer.save`).
        """
        before = getattr(self, "_fit_params_", None)
        if before is None:  # fitted by an older version, or loaded without it
            return []
        now = self._params_snapshot()
        changed = [k for k in now if k in before and not _same_value(now[k], before[k])]
        network = [k for k in changed if k in self._NETWORK_PARAMS]
        if network:
            params = self.get_params(deep=False)
            detail = "; ".join(f"{k} was {before[k]!r}, is now {params[k]!r}"
                               for k in network)
            if saving:  # (save puts "cannot save: " in front)
                raise ValueError(
                    f"{detail} since fit, and the file must rebuild the fitted network "
                    "from its parameters; set it back, or fit again first"
                )
            raise ValueError(
                f"warm_start/partial_fit continue the fitted network, but {detail}. The "
                "network's weights belong to the old setting: set it back, or set "
                "warm_start=False to build and train a new network"
            )
        return changed

    def _rebuilt_net(self, changed: list[str], seed: int, device: str, amp_dtype,
                     fraction, accelerator) -> tuple[Any, Any, dict]:
        """A new skorch net around the fitted network, built from the current parameters.

        How Keras users fine-tune by hand (fit the head with ``freeze="backbone"``, then
        ``set_params(freeze="none", lr=1e-4, warm_start=True).fit``): the freeze policy is
        applied again, the optimizer, schedule, loss and callbacks are built anew (the
        optimizer's moments start afresh, as scikit-learn's MLP starts a new optimizer at
        each ``fit``), and ``history_`` goes on.
        """
        if accelerator is not None:
            raise ValueError(
                f"{', '.join(changed)} changed since the last fit; a continued fit through "
                "an accelerator cannot rebuild its net: set them back, or warm_start=False"
            )
        policy = self._freeze_policy()
        # (asked with room to spare, so the count comes back, not max_epochs' own error)
        staged = hasattr(policy, "head_stage_epochs") and policy.head_stage_epochs(2**31)
        if staged and "freeze" in changed:
            raise self._staged_policy_error("a continued fit (warm_start, partial_fit)")
        old = self.net_
        network = _uncompiled(old.module_)
        network.augment = self._augment_module(network.backbone)
        network.set_trainable(network.parameters(), True)  # as a newly built network
        # a fitted LP-FT network is past its head stage: it goes on with everything trained
        if staged:
            policy.unfreeze(network)
        else:
            policy.apply(network)
        self._warn_if_freezing_random_weights(network)
        recipe = self._training_recipe(network, policy)
        net = self._make_net(network, policy, seed, device, amp_dtype, fraction, recipe)
        net.initialize()
        net.history = copy.deepcopy(old.history)
        if net.l2sp and getattr(old, "l2sp_reference_", None):
            net.l2sp_reference_ = old.l2sp_reference_  # L2-SP keeps pulling to the start
        logger.info("continued fit: %s changed since the last fit; the freeze policy, "
                    "optimizer and schedule are rebuilt around the fitted network",
                    ", ".join(changed))
        return net, policy, recipe

    def _freeze_policy(self):
        """The ``freeze`` parameter as a policy object, checked."""
        policy = resolve_freeze_policy(self.freeze)
        if hasattr(policy, "validate"):
            policy.validate()
        return policy

    def _staged_policy_error(self, what: str) -> ValueError:
        return ValueError(
            f"freeze={self.freeze!r} trains the head first, then unfreezes: two stages of "
            f"one fit, which {what} cannot run (it trains under one policy). Train the head "
            "with freeze='backbone', then set_params(freeze='none') and go on; or call fit "
            "with warm_start=False for LP-FT from the start"
        )

    def _sync_verbosity(self, net, accelerator) -> None:
        """A continued fit prints as ``verbose`` says now: the epoch log from 1, a progress
        bar from 2 (one callback, added or dropped)."""
        net.verbose = int(self.verbose >= 1)
        bar = self.verbose >= 2 and (accelerator is None or accelerator.is_main_process)
        has_bar = any(name == "progress" for name, _ in net.callbacks_)
        if bar and not has_bar:
            net.callbacks_.append(("progress", ProgressBar().initialize()))
        elif has_bar and not bar:
            net.callbacks_ = [(n, cb) for n, cb in net.callbacks_ if n != "progress"]

    def _restorer(self) -> Callable[[], None]:
        """A function that puts the fitted model back as it is now: a continued fit that
        raises (diverges, a callback fails, a setting is refused) leaves the model it
        continued. (skorch ends a fit on Ctrl-C as if it had finished: that keeps what
        was trained.) Copies are kept on the CPU, not in GPU memory."""
        net = self.net_
        network = _uncompiled(net.module_)
        weights = _cpu_copy(network.state_dict())
        trainable = network.trainable_flags()
        augment, n_epochs = network.augment, len(net.history)
        optimizer = (_cpu_copy(net.optimizer_.state_dict())
                     if getattr(net, "optimizer_", None) is not None else None)
        shuffler = getattr(net, "iterator_train__generator", None)
        shuffle_state = (shuffler.generator.get_state()
                         if isinstance(shuffler, SeededGenerator) else None)

        def restore() -> None:
            with torch.no_grad():
                network.load_state_dict(weights)
            network.set_trainable_flags(trainable)
            network.augment = augment
            del net.history[n_epochs:]
            if optimizer is not None:
                net.optimizer_.load_state_dict(optimizer)
            if shuffle_state is not None:  # the next call shuffles as this one would have
                shuffler.generator.set_state(shuffle_state)

        return restore

    def _augment_module(self, backbone: Backbone):
        """The training-time augmentation module of ``backbone``'s inputs, or None."""
        if self.augment is True and backbone.kind != "image":
            warnings.warn(
                "augment=True does nothing on tabular data (it flips and shifts images); "
                "it is ignored and the feature cache stays available",
                UserWarning,
                stacklevel=6,  # the caller of fit
            )
            return None
        return make_augment(self.augment, backbone)

    def _build_network(self, inputs: Inputs, policy, device: str) -> TransferNetwork:
        backbone = self._make_backbone(inputs)
        head = make_head(backbone.num_features, self._n_outputs(), self.head)
        if self.tta and backbone.kind != "image":
            warnings.warn(
                f"tta={self.tta!r} averages predictions over views of images (mirrored, "
                "moved); X holds tabular data, so it does nothing here",
                UserWarning,
                stacklevel=5,
            )
        if self.image_size is not None and backbone.kind != "image":
            warnings.warn(
                f"image_size={self.image_size} sets the side images are resized to; X holds "
                "tabular data, so it does nothing here",
                UserWarning,
                stacklevel=5,
            )
        network = TransferNetwork(backbone, head, self._augment_module(backbone))
        policy.apply(network)
        self._warn_if_freezing_random_weights(network)
        if device.startswith("cuda") and backbone.kind == "image":
            network = network.to(memory_format=torch.channels_last)
        return network

    def _check_same_input_form(self, inputs: Inputs) -> None:
        """A continued fit must see the data form the network was built for."""
        same_kind = (inputs.kind == "tabular") == (self.input_kind_ == "tabular")
        if not same_kind or (inputs.kind != "paths" and self.input_kind_ != "paths"
                             and inputs.sample_shape != self.input_shape_):
            raise ValueError(
                f"warm_start/partial_fit continue the fitted network, built for "
                f"{self.input_kind_} data of shape {self.input_shape_}, but X holds "
                f"{inputs.kind} data of shape {inputs.sample_shape}; set warm_start=False "
                "to fit a new network"
            )

    # -- predict ---------------------------------------------------------------------------
    def _inputs_for_predict(self, X) -> Inputs:
        check_is_fitted(self, "net_")
        inputs = self._to_inputs(X, reset=False)
        if (inputs.kind == "tabular") != (self.input_kind_ == "tabular"):
            raise ValueError(
                f"the model was fitted on {KIND_NAMES[self.input_kind_]} but X holds "
                f"{KIND_NAMES[inputs.kind]}; pass X in the form used at fit"
                + (" (a column of image file paths, or image arrays)"
                   if self.input_kind_ != "tabular" else "")
            )
        if inputs.kind != "paths" and self.input_kind_ != "paths":
            self._check_columns(X, inputs, reset=False)
        if inputs.kind != "tabular":
            self._check_channels(inputs)
        self._sync_device()
        return inputs

    def _check_channels(self, inputs: Inputs) -> None:
        """Images of a channel count the fitted network cannot take: a clear error."""
        check_fitted_channels(_uncompiled(self.net_.module_).backbone, inputs,
                              self.input_kind_, self.input_shape_, "model")

    def _attach_accelerator(self, net, accelerator) -> None:
        """A continued fit trains the fitted net with this fit's accelerator."""
        accelerated = hasattr(net, "_wrap_module")
        if accelerated != (accelerator is not None):
            was = "with" if accelerated else "without"
            raise ValueError(
                f"warm_start/partial_fit continue the fitted net, trained {was} an "
                f"accelerator, but accelerator={self.accelerator!r} now; set it back, or "
                "warm_start=False to fit a new network"
            )
        if accelerator is not None:
            net.accelerator = accelerator

    def _sync_device(self) -> None:
        if getattr(self, "accelerator", None) is not None and self.device == "auto":
            return  # the accelerator placed the network on this process's device
        device = resolve_device(self.device)
        if str(self.net_.device) != device:
            self.net_.device = device
            self.net_.module_.to(device)
            self.net_.criterion_.to(device)

    @scoped_threads
    def _predict_views(self, X) -> list[torch.Tensor]:
        """The network's raw outputs (logits of a classifier) for ``X``, float32 on the CPU:
        one tensor, or with ``tta`` on images also those of its views (mirrored, moved).

        A model fitted on cached features runs only its head on the cached embeddings of
        the images as given; mirrored images go through the whole (frozen) network.
        """
        inputs = self._inputs_for_predict(X)
        network = self.net_.module_
        device, amp_dtype = self.net_.device, self.net_.amp_dtype
        use_threads(self.n_threads, network)
        tuner = thread_tuner(self.n_threads, device)  # one for the whole network's views
        features = self._predict_features(inputs)
        dataset = None
        if features is not None:
            use_threads(self.n_threads, network.head)  # only the head runs here
            views = [_run_batches(network, network.forward_head, ArrayDataset(features),
                                  self.batch_size, device, amp_dtype, kind="tabular",
                                  tuner=thread_tuner(self.n_threads, device))]
        else:
            dataset = self._dataset(inputs, network.backbone.image_size)
            views = [_run_batches(network, network.forward, dataset, self.batch_size, device,
                                  amp_dtype, kind=network.backbone.kind, tuner=tuner)]
        if self.tta and network.backbone.kind == "image":
            if dataset is None:
                dataset = self._dataset(inputs, network.backbone.image_size)
                use_threads(self.n_threads, network)  # the whole network runs again
            for view in tta_views(self.tta):
                views.append(_run_batches(network, lambda x, v=view: network.forward(v(x)),
                                          dataset, self.batch_size, device, amp_dtype,
                                          kind="image", tuner=tuner))
        return views

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
        return _run_batches(backbone, backbone.forward_features, dataset, self.batch_size,
                            self.net_.device, self.net_.amp_dtype,
                            tuner=thread_tuner(self.n_threads, self.net_.device)).numpy()

    def _predict_features(self, inputs: Inputs) -> torch.Tensor | None:
        """Embeddings from the cache for a model fitted on cached features, else None."""
        if not getattr(self, "feature_cache_used_", False) or self.cache_features is False:
            return None
        return self._cached_features(self.net_.module_.backbone, self.backbone_digest_, inputs,
                                     str(self.net_.device), self.net_.amp_dtype)

    @property
    def _n_features_out(self) -> int:
        return self.net_.module_.backbone.num_features

    # -- transfer --------------------------------------------------------------------------
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
            meta={**self._export_meta(), "source": type(self).__name__},
            module=module,
        )

    # -- scikit-learn protocol: torchvision transforms are values -------------------------
    def get_params(self, deep: bool = True) -> dict:
        """Parameters of this estimator (and of nested estimators with ``deep=True``).

        A torch module (a torchvision ``v2`` transform given as ``augment``, a custom
        backbone) is a value, not a nested estimator: many transforms have a static
        ``get_params`` of their own, which scikit-learn would call as an estimator's.
        """
        out = super().get_params(deep=False)
        if deep:
            for key, value in list(out.items()):
                if (hasattr(value, "get_params") and not isinstance(value, type)
                        and not isinstance(value, torch.nn.Module)):
                    out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
        return out

    def __sklearn_clone__(self):
        """:func:`sklearn.base.clone`, with torch modules among the parameters deep-copied
        (``clone`` would take a transform with a static ``get_params`` for an estimator)."""
        from sklearn.base import clone

        params = self.get_params(deep=False)
        if not any(isinstance(v, torch.nn.Module) and hasattr(v, "get_params")
                   for v in params.values()):
            return super().__sklearn_clone__()
        new = type(self)(**{k: copy.deepcopy(v) if isinstance(v, torch.nn.Module)
                            else clone(v, safe=False) for k, v in params.items()})
        for attr in ("_metadata_request", "_sklearn_output_config"):
            if hasattr(self, attr):
                setattr(new, attr, copy.deepcopy(getattr(self, attr)))
        return new

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Embeddings are computed in float32 whatever the input's dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite: the fit is refused rather than reported.

    A NaN loss leaves NaN weights, whose predictions would all be the first class.

    Parameters
    ----------
    message : str
        What diverged, at which epoch, and what to change.
    history : pandas.DataFrame, optional
        The per-epoch curves up to the failure, loss columns included.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier
    >>> from sktransfer.estimator import TrainingDivergedError
    >>> X, y = np.random.RandomState(0).rand(40, 3), np.arange(40) % 2
    >>> try:
    ...     TransferClassifier(optimizer="sgd", lr=1e30, max_epochs=3).fit(X, y)
    ... except TrainingDivergedError as err:
    ...     print("train_loss" in err.history)
    True
    """

    def __init__(self, message: str, history=None):
        super().__init__(message)
        self.history = history


class _FiniteLoss(Callback):
    """Stop with a clear error at the first epoch whose loss is not finite.

    A NaN loss makes NaN weights: every prediction would then be the first class, which
    must not pass for a fitted model.
    """

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        for key in ("train_loss", "valid_loss"):
            value = row.get(key)
            if value is not None and not math.isfinite(value):
                raise TrainingDivergedError(
                    f"training diverged: {key} is {value} at epoch {row['epoch']} "
                    f"(lr={net.lr:g}). Lower lr, check X for extreme values (standardise "
                    "tabular features) or set mixed_precision=False; no new model was "
                    "fitted (a continued fit keeps the model it continued). "
                    "The curves so far are in this error's .history",
                    history=history_frame(net.history),
                )


class _PausableEarlyStopping(EarlyStopping):
    """skorch's EarlyStopping, silent while ``paused`` (the epochs of ``partial_fit``)."""

    paused = False

    def on_epoch_end(self, net, **kwargs):
        if not self.paused:
            super().on_epoch_end(net, **kwargs)

    def on_train_end(self, net, **kwargs):
        if not self.paused:
            super().on_train_end(net, **kwargs)


class _early_stopping_paused:
    """Context: no early stopping while ``partial_fit`` trains on every row it is given."""

    def __init__(self, net):
        self.stoppers = [cb for _, cb in getattr(net, "callbacks_", [])
                         if isinstance(cb, _PausableEarlyStopping)]
        if not getattr(net, "initialized_", False):
            net.initialize()
            self.stoppers = [cb for _, cb in net.callbacks_
                             if isinstance(cb, _PausableEarlyStopping)]

    def __enter__(self):
        for cb in self.stoppers:
            cb.paused = True

    def __exit__(self, *exc):
        for cb in self.stoppers:
            cb.paused = False


class _PolicyParams(tuple):
    """A freeze policy in a parameter snapshot: its type and its own parameters."""


def _snapshot_value(value):
    if isinstance(value, FreezePolicy):
        return _PolicyParams((type(value), _snapshot_value(value.get_params(deep=False))))
    if isinstance(value, dict):
        return {k: _snapshot_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snapshot_value(v) for v in value]
    return value


def check_fitted_channels(backbone: Backbone, inputs: Inputs, fitted_kind: str,
                          fitted_shape, what: str) -> None:
    """Images (arrays or files) of a channel count the fitted ``backbone`` cannot take,
    or other than the arrays it was fitted on: a clear error, not one from a layer."""
    paths = inputs.kind == "paths"
    channels = 3 if paths else inputs.sample_shape[0]
    backbone.check_channels(channels, "X holds", from_files=paths)  # with a hint
    if fitted_kind == "image" and not paths and channels != fitted_shape[0]:
        raise ValueError(f"the {what} was fitted on {fitted_shape[0]}-channel images, X has "
                         f"{channels} channels")


def _uncompiled(module: torch.nn.Module) -> torch.nn.Module:
    """The network itself when ``compile=True`` wrapped it (``torch.compile``)."""
    return getattr(module, "_orig_mod", module)


def _cpu_copy(state):
    """A copy of a (nested) state dict with its tensors on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _cpu_copy(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_cpu_copy(v) for v in state)
    return copy.deepcopy(state)


def _same_value(a, b) -> bool:
    """Whether two parameter values are the same setting: the same object, or equal
    (``8`` and ``np.int64(8)`` are; an array, whose truth is ambiguous, is not)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # an array's ambiguous truth, a comparison that raises
        return False


@torch.no_grad()
def _run_batches(module: torch.nn.Module, forward, dataset, batch_size: int, device,
                 amp_dtype=None, progress: bool = False, kind: str | None = None,
                 tuner=None) -> torch.Tensor:
    """``forward`` (a method of ``module``) over ``dataset`` in eval mode, batch by batch.

    ``module`` is put in eval mode for the pass (what inference means), and back after.
    A ``tuner`` (:class:`~sktransfer._threads.ThreadTuner`, for ``n_threads="tune"``)
    times the first batches of a long pass to choose its threads; the setting found is
    put back after the pass, so the choice does not leak into other work.
    """
    threads_found = torch.get_num_threads()
    was_training = module.training
    module.eval()
    out = []
    cuda = str(device).startswith("cuda")
    kind = kind or getattr(module, "kind", "image")
    batch_size = inference_batch_size(kind, batch_size, device)
    loader = BatchLoader(dataset, batch_size=batch_size, pin_memory=cuda)
    if tuner is not None:
        tuner.new_pass(len(loader))
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="extracting features", unit="batch", leave=False)
    try:
        with autocast(device, amp_dtype):
            for xb, _ in loader:
                probing = tuner is not None and tuner.probing
                if probing:
                    tuner.before_batch()
                out.append(forward(xb["x"].to(device, non_blocking=True)).float().cpu())
                if probing:
                    tuner.after_batch(len(out[-1]))
    finally:
        module.train(was_training)
        if tuner is not None:
            set_threads(threads_found)
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
