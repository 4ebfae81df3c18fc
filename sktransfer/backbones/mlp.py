"""A multilayer perceptron for tabular data (the gas sensor experiment's network)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral

from torch import nn

from ._base import Backbone, BackboneInfo, Standardize
from ._weights import load_state_dict_file, load_weights_into


def mlp(
    *,
    input_shape: tuple[int, ...] | None = None,
    weights: str | None = None,
    hidden: int | Sequence[int] = (256, 128),
    dropout: float = 0.1,
) -> Backbone:
    """Build an MLP backbone: standardisation, then ``Linear -> ReLU -> Dropout`` blocks.

    Parameters
    ----------
    input_shape : tuple of int
        ``(n_features,)``; the estimator passes the shape of the training data.
    weights : None or path
        ``None`` trains from scratch; a path loads a state dict saved from this backbone.
        There are no published pretrained weights for a tabular MLP: pretrain one on your
        source data and use :meth:`TransferClassifier.export_backbone`.
    hidden : int or sequence of int
        Sizes of the hidden layers; the last one is the embedding size. An int is one
        layer, as in scikit-learn's ``MLPClassifier``.
    dropout : float
        Dropout after each hidden layer.

    Examples
    --------
    >>> from sktransfer.backbones.mlp import mlp
    >>> mlp(input_shape=(128,), hidden=(64, 32)).num_features
    32
    """
    if input_shape is not None and len(input_shape) == 3:
        raise ValueError(
            f"the mlp backbone takes tabular data, a 2-D X of shape (n_samples, n_features), "
            f"but X holds images of shape {tuple(input_shape)} (C, H, W); use an image "
            "backbone (e.g. 'cnn', 'efficientnet_lite0' or a torchvision model), or flatten "
            "image arrays with X.reshape(len(X), -1)"
        )
    if input_shape is None or len(input_shape) != 1:
        raise ValueError(f"the mlp backbone needs input_shape=(n_features,), got {input_shape}")
    hidden = _layer_widths(hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must be a non-empty sequence of positive sizes, got {hidden}")
    layers: list[nn.Module] = []
    width = int(input_shape[0])
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    backbone = Backbone(
        nn.Sequential(*layers),
        num_features=width,
        kind="tabular",
        input_shape=tuple(input_shape),
        preprocess=Standardize(int(input_shape[0])),
        info=BackboneInfo("mlp", {"hidden": hidden, "dropout": dropout}),
        layer_groups=[[str(i)] for i, m in enumerate(layers) if isinstance(m, nn.Linear)],
    )
    if weights is not None:
        if isinstance(weights, os.PathLike):
            weights = os.fspath(weights)
        if not isinstance(weights, (str, bytes)) or weights.lower() in ("imagenet", "default"):
            raise ValueError(
                "the mlp backbone has no published pretrained weights: use weights=None, a "
                "path to a state dict, or backbone=<fitted>.export_backbone()"
            )
        load_weights_into(backbone, load_state_dict_file(weights), source=str(weights))
    return backbone


def _layer_widths(hidden) -> tuple[int, ...]:
    """``hidden`` as a tuple of layer widths: an int is one layer (as in scikit-learn's
    ``MLPClassifier``), a sequence of ints one per layer; anything else is refused."""
    if isinstance(hidden, Integral) and not isinstance(hidden, bool):
        return (int(hidden),)
    if not isinstance(hidden, (str, bytes, bool)):
        try:
            if all(isinstance(h, Integral) and not isinstance(h, bool) for h in hidden):
                return tuple(int(h) for h in hidden)
        except TypeError:  # not iterable
            pass
    raise ValueError(
        f"hidden must be an int or a sequence of ints (layer widths, e.g. (256, 128)), got "
        f"{hidden!r}"
    )
