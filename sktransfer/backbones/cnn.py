"""A small CNN for 32x32 images, like the CIFAR-10 A/B experiment's network.

Three convolution blocks, then a fully connected layer that gives the embedding; with the
classifier's new head that makes two fully connected layers at the top, so ``freeze="last:1"``
fine-tunes the head alone and ``"last:2"`` the head and the layer below it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ._base import Backbone, BackboneInfo, ImagePreprocess
from ._weights import load_state_dict_file, load_weights_into

# Per-channel statistics of CIFAR-10's training images; close enough for any natural photo.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]


def _layer_groups(layers: list[nn.Module]) -> list[list[str]]:
    """Each convolution with its BatchNorm, and the embedding layer (layer-wise LR decay)."""
    groups: list[list[str]] = []
    for i, m in enumerate(layers):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            groups.append([str(i)])
        elif isinstance(m, nn.BatchNorm2d) and groups:
            groups[-1].append(str(i))
    return groups


def cnn(
    *,
    input_shape: tuple[int, ...] | None = None,
    weights: str | None = None,
    channels: Sequence[int] = (32, 64, 128),
    num_features: int = 256,
    dropout: float = 0.3,
    image_size: int = 32,
) -> Backbone:
    """Build the small CNN backbone.

    Parameters
    ----------
    input_shape : tuple of int, optional
        ``(C, H, W)`` of the data; only ``C`` matters, images are resized to ``image_size``.
    weights : None or path
        ``None`` trains from scratch; a path loads a state dict saved from this backbone.
    channels : sequence of int
        Output channels of the convolution blocks (each halves the resolution).
    num_features : int
        Size of the fully connected embedding layer.
    dropout : float
        Dropout before the embedding layer.
    image_size : int
        Resolution the network runs at.

    Examples
    --------
    >>> from sktransfer.backbones.cnn import cnn
    >>> cnn(input_shape=(3, 32, 32)).num_features
    256
    """
    in_channels = int(input_shape[0]) if input_shape else 3
    layers: list[nn.Module] = []
    c = in_channels
    for c_out in channels:
        layers += _conv_block(c, int(c_out))
        c = int(c_out)
    layers += [
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(c * 16, num_features),
        nn.ReLU(),
    ]
    mean, std = (CIFAR_MEAN, CIFAR_STD) if in_channels == 3 else ((0.5,), (0.25,))
    backbone = Backbone(
        nn.Sequential(*layers),
        num_features=num_features,
        kind="image",
        input_shape=(in_channels, image_size, image_size),
        preprocess=ImagePreprocess(image_size, mean, std),
        info=BackboneInfo(
            "cnn",
            {
                "channels": tuple(int(x) for x in channels),
                "num_features": num_features,
                "dropout": dropout,
                "image_size": image_size,
            },
        ),
        layer_groups=_layer_groups(layers),
    )
    if weights is not None:
        if weights.lower() in ("imagenet", "default"):
            raise ValueError(
                "the small cnn has no published pretrained weights: use weights=None, a path "
                "to a state dict, or backbone=<fitted>.export_backbone()"
            )
        load_weights_into(backbone, load_state_dict_file(weights), source=str(weights))
    return backbone
