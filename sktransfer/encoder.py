"""PretrainedEncoder: a frozen backbone as an unsupervised scikit-learn transformer.

Often the best use of a pretrained network is the plainest: embeddings in, any
scikit-learn model on top (logistic regression, k-NN, a gradient-boosted forest, a
clustering). :class:`PretrainedEncoder` is that step, as embetter's encoders are: ``fit``
needs no ``y`` and trains nothing; ``transform`` returns the backbone's embeddings, through
the same feature cache the estimators use, so a grid search over the model on top computes
each row's embedding once.
"""

from __future__ import annotations

import os
import warnings
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base_estimator import (
    _run_batches,
    _TransferEstimatorBase,
    check_fitted_channels,
    unchanged_on_error,
)
from ._training import resolve_amp, resolve_device
from .cache import backbone_digest

__all__ = ["PretrainedEncoder"]

_SHARED = ("backbone", "weights", "backbone_kwargs", "input_shape", "image_size",
           "batch_size", "cache_dir", "mixed_precision", "device", "num_workers",
           "random_state", "verbose")


class PretrainedEncoder(_TransferEstimatorBase):
    """Embeddings of a pretrained backbone, as a transformer for any scikit-learn model.

    ``fit`` builds the backbone (and, for a tabular backbone that has none yet, learns its
    input standardisation); it needs no ``y`` and trains no weight. ``transform`` maps
    images, image files or tables to ``(n_samples, n_features_out)`` embeddings, in eval
    mode, through the process-wide feature cache (see :mod:`sktransfer.cache`), so the
    same rows are never embedded twice by the same backbone.

    Parameters
    ----------
    backbone : str, path, ExportedBackbone or torch.nn.Module, default="efficientnet_lite0"
        A registry name, a checkpoint, a backbone exported from a fitted estimator
        (:meth:`TransferClassifier.export_backbone`), or a feature-extracting module.
    weights : "auto", None, "imagenet", "default" or path, default="auto"
        Weights of a registry backbone. ``"auto"``: the published pretrained weights of a
        registry name, and the backbone's own for an exported backbone, a checkpoint or a
        module (which carry theirs). ``None`` gives random features, which is almost
        never what an encoder is for: it warns.
    backbone_kwargs : dict, default=None
        Architecture options of a registry backbone.
    input_shape : tuple of int, default=None
        ``(C, H, W)`` for 2-D arrays of flattened images.
    image_size : int, default=None
        Resolution images are resized to; ``None`` uses the backbone's own. Non-square
        images are resized by their shorter side and centre-cropped, as arrays and as
        files alike.
    batch_size : int, default=64
        Images or rows per forward pass.
    cache_features : bool, default=True
        Keep embeddings in the feature cache (memory, and ``cache_dir`` when set).
    cache_dir : str, path or joblib.Memory, default=None
        Also keep them in this directory, across processes and sessions.
    mixed_precision : {"auto", "bf16", "fp16", True, False}, default="auto"
        Autocast dtype of the forward passes (float32 on the CPU with ``"auto"``).
    device : str, default="auto"
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
    num_workers : int, default=4
        Threads decoding image files.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights of a backbone built without pretrained weights (the
        global torch generator is left as it was).
    verbose : int, default=0
        1 shows a progress bar while embeddings are computed.

    Attributes
    ----------
    backbone_ : Backbone
        The frozen feature extractor, in eval mode.
    backbone_digest_ : str
        Digest of its architecture and weights: the key of its cached embeddings.
    n_features_in_ : int
        Number of columns of 2-D ``X`` seen at fit.
    input_kind_ : {"tabular", "image", "paths"}
        The form of ``X`` seen at fit.

    See Also
    --------
    TransferClassifier : trains a head (and optionally the backbone) instead.

    Examples
    --------
    A backbone pretrained on source data, as the first step of a pipeline:

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktransfer import PretrainedEncoder, TransferClassifier
    >>> rng = np.random.RandomState(0)
    >>> X_src, y_src = rng.rand(200, 8), rng.randint(0, 3, 200)
    >>> src = TransferClassifier("mlp", max_epochs=3, random_state=0).fit(X_src, y_src)
    >>> encoder = PretrainedEncoder(src.export_backbone())
    >>> pipe = make_pipeline(encoder, LogisticRegression())
    >>> pipe.fit(rng.rand(40, 8), np.arange(40) % 2).predict(rng.rand(3, 8)).shape
    (3,)
    >>> encoder.set_output(transform="pandas").fit_transform(X_src[:2]).shape
    (2, 128)
    """

    _parameter_constraints: dict = {
        **{k: _TransferEstimatorBase._parameter_constraints[k] for k in _SHARED},
        "cache_features": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "mixed_precision": [
            StrOptions({"auto", "bf16", "fp16", "bfloat16", "float16"}), "boolean"
        ],
    }

    def __init__(
        self,
        backbone: Any = "efficientnet_lite0",
        *,
        weights: str | os.PathLike | None = "auto",
        backbone_kwargs: dict | None = None,
        input_shape: tuple[int, ...] | None = None,
        image_size: int | None = None,
        batch_size: int = 64,
        cache_features: bool = True,
        cache_dir: Any = None,
        mixed_precision: bool | str = "auto",
        device: str = "auto",
        num_workers: int = 4,
        random_state: Any = None,
        verbose: int = 0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.backbone_kwargs = backbone_kwargs
        self.input_shape = input_shape
        self.image_size = image_size
        self.batch_size = batch_size
        self.cache_features = cache_features
        self.cache_dir = cache_dir
        self.mixed_precision = mixed_precision
        self.device = device
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose

    def _backbone_weights(self):
        if self.weights != "auto":
            return self.weights
        from .registry import _is_explicit_path

        by_name = isinstance(self.backbone, str) and not _is_explicit_path(self.backbone)
        return "default" if by_name else None

    @_fit_context(prefer_skip_nested_validation=True)
    @unchanged_on_error
    def fit(self, X, y=None) -> PretrainedEncoder:
        """Build the frozen backbone for inputs like ``X``; ``y`` is ignored.

        Parameters
        ----------
        X : array-like, DataFrame, image array or array of image paths
            Inputs of the form ``transform`` will get. A tabular backbone without input
            statistics learns its standardisation from them; nothing else is learnt.
        y : None
            Ignored: the encoder is unsupervised.

        Returns
        -------
        self : PretrainedEncoder
        """
        inputs = self._to_inputs(X, reset=True)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = self._make_backbone(inputs)
        if self._is_untrained_registry_backbone(backbone):
            warnings.warn(
                f"PretrainedEncoder({self.backbone!r}, weights=None) gives the embeddings of "
                "randomly initialised weights; pass weights='imagenet' (or 'default'), or a "
                "backbone exported from a model trained on source data",
                UserWarning,
                stacklevel=3,
            )
        backbone.requires_grad_(False)
        backbone.eval()
        self.backbone_ = backbone.to(resolve_device(self.device))
        self.backbone_digest_ = backbone_digest(backbone)
        self.input_kind_ = inputs.kind
        self.input_shape_ = inputs.sample_shape
        return self

    def transform(self, X) -> np.ndarray:
        """The backbone's embeddings of ``X``.

        Parameters
        ----------
        X : array-like, DataFrame, image array or array of image paths
            Inputs of the same form as at fit.

        Returns
        -------
        embeddings : ndarray of shape (n_samples, n_features_out)
            float32.
        """
        check_is_fitted(self, "backbone_")
        inputs = self._to_inputs(X, reset=False)
        fitted_tabular = self.input_kind_ == "tabular"
        if (inputs.kind == "tabular") != fitted_tabular:
            raise ValueError(
                f"the encoder was fitted on {self.input_kind_} data but X holds "
                f"{inputs.kind} data"
            )
        if inputs.kind != "paths" and self.input_kind_ != "paths":
            self._check_columns(X, inputs, reset=False)
        if inputs.kind != "tabular":
            check_fitted_channels(self.backbone_, inputs, self.input_kind_,
                                  self.input_shape_, "encoder")
        device = resolve_device(self.device)
        backbone = self.backbone_.to(device)
        amp_dtype = resolve_amp(self.mixed_precision, device)
        if self.cache_features:
            features = self._cached_features(backbone, self.backbone_digest_, inputs, device,
                                             amp_dtype)
        else:
            dataset = self._dataset(inputs, backbone.image_size, device=device)
            features = _run_batches(backbone, backbone.forward_features, dataset,
                                    self.batch_size, device, amp_dtype,
                                    progress=self.verbose >= 1)
        return features.float().numpy()

    @property
    def _n_features_out(self) -> int:
        return self.backbone_.num_features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.target_tags.required = False
        return tags
