"""A small, fast residual CNN for 32x32 images, like the CIFAR-10 A/B experiment's network.

The design follows Keller Jordan's airbench (``airbench94``, 2024), the fastest known
CIFAR-10 trainer: a convolutional stem, then per stage a convolution, a 2x2 max-pool,
BatchNorm (Ioffe & Szegedy 2015) and GELU, plus a residual convolution (He et al. 2016)
at the pooled resolution; global max-pooling gives the embedding. Pooling right after
each stage's first convolution keeps most of the compute at low resolution, which is
what makes the network train to high accuracy in minutes on a CPU
(``benchmarks/bench_cifar.py``).

An optional fully connected embedding layer (``num_features``) sits on top. Without it
``freeze="last:1"`` fine-tunes the new head alone and ``"last:2"`` the head and the last
residual convolution.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from ._base import Backbone, BackboneInfo, ImagePreprocess
from ._weights import load_state_dict_file, load_weights_into

# Per-channel statistics of CIFAR-10's training images; close enough for any natural photo.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class ChannelsLast(nn.Module):
    """Put images in channels-last memory layout: oneDNN's (CPU) and cuDNN's fast path.

    On the CPU it makes the convolutions of this network about 1.5x faster.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)


class ConvBNAct(nn.Sequential):
    """3x3 convolution (no bias), BatchNorm, GELU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()
        )


class ResidualStage(nn.Module):
    """Convolution, 2x2 max-pool, BatchNorm, GELU, then ``x + conv_bn_gelu(x)``.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels; the resolution halves.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones.cnn import ResidualStage
    >>> ResidualStage(3, 8)(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 8, 8, 8])
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm = nn.BatchNorm2d(c_out)
        self.act = nn.GELU()
        self.residual = ConvBNAct(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(self.pool(self.conv(x))))
        return x + self.residual(x)


def cnn(
    *,
    input_shape: tuple[int, ...] | None = None,
    weights: str | None = None,
    channels: Sequence[int] = (32, 64, 128),
    num_features: int | None = None,
    dropout: float = 0.0,
    image_size: int = 32,
) -> Backbone:
    """Build the small residual CNN backbone.

    Parameters
    ----------
    input_shape : tuple of int, optional
        ``(C, H, W)`` of the data; only ``C`` matters, images are resized to ``image_size``.
    weights : None or path
        ``None`` trains from scratch; a path loads a state dict saved from this backbone.
    channels : sequence of int, default=(32, 64, 128)
        Output channels of the residual stages (each halves the resolution); the stem
        has as many channels as the first stage. The default trains CIFAR's 40,000 images
        an epoch in under a CPU minute.
    num_features : int, default=None
        Size of an extra fully connected embedding layer (with GELU) on the pooled
        features; ``None`` has none, and the embedding is the last stage's channels.
    dropout : float, default=0.0
        Dropout before the embedding layer (only with ``num_features``).
    image_size : int, default=32
        Resolution the network runs at.

    Examples
    --------
    >>> from sktransfer.backbones.cnn import cnn
    >>> cnn(input_shape=(3, 32, 32)).num_features
    128
    >>> cnn(input_shape=(3, 8, 8), channels=(4, 8), num_features=16).num_features
    16
    """
    in_channels = int(input_shape[0]) if input_shape else 3
    channels = tuple(int(c) for c in channels)
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be a non-empty sequence of positive ints, got "
                         f"{channels!r}")
    if num_features is not None and int(num_features) < 1:
        raise ValueError(f"num_features must be a positive int or None, got {num_features!r}")
    layers: dict[str, nn.Module] = {"layout": ChannelsLast(), "stem": ConvBNAct(in_channels,
                                                                               channels[0])}
    groups = [["stem"]]
    c = channels[0]
    for i, c_out in enumerate(channels, start=1):
        layers[f"stage{i}"] = ResidualStage(c, c_out)
        groups += [[f"stage{i}.conv", f"stage{i}.norm"], [f"stage{i}.residual"]]
        c = c_out
    layers["pool"] = nn.AdaptiveMaxPool2d(1)
    layers["flatten"] = nn.Flatten()
    features = c
    if num_features is not None:
        features = int(num_features)
        if dropout:
            layers["dropout"] = nn.Dropout(dropout)
        layers["embedding"] = nn.Linear(c, features)
        layers["embedding_act"] = nn.GELU()
        groups.append(["embedding"])
    mean, std = (CIFAR_MEAN, CIFAR_STD) if in_channels == 3 else ((0.5,), (0.25,))
    backbone = Backbone(
        nn.Sequential(_ordered(layers)),
        num_features=features,
        kind="image",
        input_shape=(in_channels, image_size, image_size),
        preprocess=ImagePreprocess(image_size, mean, std),
        info=BackboneInfo(
            "cnn",
            {
                "channels": channels,
                "num_features": None if num_features is None else features,
                "dropout": dropout,
                "image_size": image_size,
            },
        ),
        # layers from input to output (layer-wise LR decay, ``last:k``): the stem, then
        # each stage's pooled convolution with its BatchNorm, and its residual branch
        layer_groups=groups,
        min_image_size=2 ** len(channels),  # each stage halves the resolution
    )
    if weights is not None:
        if isinstance(weights, os.PathLike):
            weights = os.fspath(weights)
        if isinstance(weights, str) and weights.lower() in ("imagenet", "default"):
            raise ValueError(
                "the small cnn has no published pretrained weights: use weights=None, a path "
                "to a state dict, or backbone=<fitted>.export_backbone()"
            )
        load_weights_into(backbone, load_state_dict_file(weights), source=str(weights))
    return backbone


def _ordered(layers: dict[str, nn.Module]) -> OrderedDict:
    return OrderedDict(layers)
