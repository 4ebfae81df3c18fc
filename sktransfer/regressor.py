"""TransferRegressor: the same backbones, freeze policies and feature cache, for continuous y.

Everything but the target lives in :mod:`sktransfer._base_estimator`, so a regressor gets
every backbone, every freeze policy, the cache, exports and warm starts unchanged. What
this module adds: float targets (one or several outputs), standardised for training so the
learning rate means the same whatever the target's unit, a mean squared error that honours
sample weights, and predictions mapped back to the target's scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils.validation import check_array, check_is_fitted
from skorch.utils import to_tensor

from ._base_estimator import _TransferEstimatorBase
from ._training import WeightedNet

__all__ = ["TransferRegressor"]


class RegressionNet(WeightedNet):
    """The estimator's skorch net with a (weighted) mean squared error.

    Targets arrive standardised, of shape ``(n, n_outputs)``; the loss of one sample is its
    squared error averaged over outputs, and batches with ``sample_weight`` take the
    weighted mean of those, as the classifier's cross-entropy does.
    """

    @property
    def _default_callbacks(self):
        # the classifier's defaults score validation accuracy, meaningless for regression
        return [(name, cb) for name, cb in super()._default_callbacks if name != "valid_acc"]

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = to_tensor(y_true, device=self.device).float()
        y_pred = y_pred.float()
        per_sample = (y_pred - y_true.view_as(y_pred)).pow(2).mean(dim=1)
        if isinstance(X, dict) and "sample_weight" in X:
            w = to_tensor(X["sample_weight"], device=self.device).to(per_sample.dtype)
            loss = (per_sample * w).sum() / w.sum().clamp_min(1e-12)
        else:
            loss = per_sample.mean()
        penalty = getattr(self, "l2sp_penalty", None)
        if training and getattr(self, "l2sp", None) and penalty is not None:
            loss = loss + penalty()
        return loss


class TransferRegressor(RegressorMixin, _TransferEstimatorBase):
    """A neural regressor whose backbone and freeze policy are ordinary hyperparameters.

    The regression twin of :class:`~sktransfer.TransferClassifier`: the same backbones
    (registry names, checkpoints, exported backbones, your modules), freeze policies,
    feature cache, warm starts and export, with a linear (or MLP) head sized from ``y``.
    ``y`` may have one column or several; each is standardised for training (its mean and
    standard deviation are kept in ``y_mean_`` and ``y_scale_``) and predictions come back
    in the original units. The loss is the mean squared error, weighted by
    ``sample_weight`` when given.

    Parameters
    ----------
    backbone, weights, freeze, head, backbone_kwargs, optimizer, lr, backbone_lr_mult, \
lr_schedule, warmup, layer_decay, weight_decay, l2sp, weight_interpolation, \
max_epochs, batch_size, \
validation_fraction, early_stopping, input_shape, image_size, augment, cache_features, \
cache_dir, mixed_precision, compile, device, accelerator, num_workers, n_threads, \
callbacks, warm_start, tta, \
random_state, verbose
        As for :class:`~sktransfer.TransferClassifier` (the validation hold-out is a
        plain random split, not stratified). MixUp, CutMix and label smoothing are
        classification techniques and are not parameters here.

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        The targets' mean and standard deviation on the training data, weighted by
        ``sample_weight`` (a constant target
        gets a scale of 1).
    history_ : pandas.DataFrame
        One row per epoch: ``train_loss`` (mean squared error of the standardised
        targets), ``valid_loss`` when rows are held out, ``lr``, ``dur``, and
        ``threads`` when ``n_threads="tune"`` had more than one CPU thread to give
        (what each epoch ended on; ``<NA>`` for epochs of a continued fit run
        otherwise).
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the :class:`TransferNetwork`.
    freeze_policy_ : FreezePolicy
        The policy the fit used.
    n_features_in_ : int
        Number of columns of 2-D training data.
    feature_cache_used_ : bool
        Whether the fit trained the head on cached frozen-backbone embeddings.

    See Also
    --------
    TransferClassifier : the same estimator for class labels.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(200, 5)
    >>> y = 300.0 * X[:, 0] + 20.0
    >>> reg = TransferRegressor("mlp", max_epochs=30, lr=1e-2, random_state=0).fit(X, y)
    >>> bool(reg.score(X, y) > 0.9)
    True
    >>> src = reg.export_backbone()                      # transfer it to a related target
    >>> TransferRegressor(src, freeze="backbone", max_epochs=5).fit(X[:40], y[:40]).n_outputs_
    1
    """

    _parameter_constraints: dict = dict(_TransferEstimatorBase._parameter_constraints)
    _net_class = RegressionNet
    _stratify = False

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

    # ------------------------------------------------------------------ task hooks
    def _encode_target(self, y, *, reset: bool, classes=None,
                       partial: bool = False) -> np.ndarray:
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        y2 = y.reshape(len(y), -1)
        if reset:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = y2.shape[1]
            # weighted statistics: rows of weight 0 must not shape the scaling either
            w = self._fit_weights
            w = np.ones(len(y2)) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
            if len(w) != len(y2) or not np.all(np.isfinite(w)) or w.sum() <= 0:
                w = np.ones(len(y2))  # the base class reports bad weights with their reason
            self.y_mean_ = np.average(y2, axis=0, weights=w)
            scale = np.sqrt(np.average((y2 - self.y_mean_) ** 2, axis=0, weights=w))
            # constant (to rounding) relative to its own size, as StandardScaler's test is;
            # an absolute floor left targets of scale 1e-13 unscaled, under the network's
            # initial outputs
            constant = (scale == 0) | (scale <= 1e-12 * np.abs(self.y_mean_))
            self.y_scale_ = np.where(constant, 1.0, scale)
        elif y2.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y2.shape[1]} columns but the fitted model predicts "
                f"{self.n_outputs_}; set warm_start=False to fit afresh"
            )
        scaled = ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32)
        if not np.all(np.isfinite(scaled)):
            raise ValueError(
                "y is too large for float32 training once standardised; rescale the target"
            )
        return scaled

    def _n_outputs(self) -> int:
        return int(self.n_outputs_)

    def _criterion(self) -> type:
        return torch.nn.MSELoss

    def _export_meta(self) -> dict:
        return {"n_outputs": int(self.n_outputs_), "task": "regression"}

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None) -> TransferRegressor:
        """Build the network for this data and train it.

        With ``warm_start=True`` and a fitted model, train the fitted network
        ``max_epochs`` more epochs instead; ``history_`` goes on, and the target is scaled
        with the first fit's ``y_mean_`` and ``y_scale_``.

        Parameters
        ----------
        X : array-like, DataFrame, image array or array of image paths
            Training inputs (see :mod:`sktransfer.inputs`).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Continuous targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights in the loss.

        Returns
        -------
        self : TransferRegressor
            The fitted estimator.
        """
        return self._fit_weighted(X, y, sample_weight)

    def _fit_weighted(self, X, y, sample_weight, **kwargs):
        self._fit_weights = sample_weight
        try:
            return self._fit(X, y, sample_weight, **kwargs)
        finally:
            self._fit_weights = None

    _fit_weights = None

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None) -> TransferRegressor:
        """Train one epoch on this chunk, continuing the fitted network if there is one.

        The first call builds the network and fixes the target's scaling from its chunk
        (``y_mean_``, ``y_scale_``); nothing is held out and ``early_stopping`` does not
        apply.

        Parameters
        ----------
        X : array-like, DataFrame, image array or array of image paths
            Training inputs of one chunk.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Continuous targets of the chunk.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights in the loss.

        Returns
        -------
        self : TransferRegressor

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import TransferRegressor
        >>> rng = np.random.RandomState(0)
        >>> reg = TransferRegressor("mlp", random_state=0)
        >>> for _ in range(3):
        ...     X = rng.rand(30, 4)
        ...     reg = reg.partial_fit(X, X.sum(axis=1))
        >>> len(reg.history_)
        3
        """
        return self._fit_weighted(X, y, sample_weight, partial=True)

    # ------------------------------------------------------------------ predict
    def predict(self, X) -> np.ndarray:
        """Predicted targets, in the units of the training ``y``.

        Parameters
        ----------
        X : array-like, image array or array of image paths
            Inputs of the same form as at fit.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when the model was fitted on a 1-D ``y``.
        """
        check_is_fitted(self, "net_")
        out = torch.stack([v.double() for v in self._predict_views(X)]).mean(0).numpy()
        pred = out * self.y_scale_ + self.y_mean_
        return pred.ravel() if self._y_1d else pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
