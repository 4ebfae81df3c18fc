"""Every torchvision classification model as a backbone, its weights' preprocessing attached.

Pretrained weights load through torchvision's own cache, ``$TORCH_HOME/hub/checkpoints/``
(``torch.hub.get_dir()``), always with ``weights_only=True``. Where the file is absent a
download is tried; offline, the error names the file and the folder to put it in.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
from torch import nn

from ._base import Backbone, BackboneInfo, ImagePreprocess, sequential_layer_groups
from ._weights import is_pretrained_request, load_state_dict_file, load_weights_into

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DOWNLOAD_TIMEOUT_S = 20


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    name, layer = None, None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            name, layer = n, m
    if layer is None:
        raise ValueError(
            f"{type(model).__name__} has no final nn.Linear classifier to replace; "
            "wrap it as a feature extractor and pass it as backbone=<module>"
        )
    return name, layer


def _replace(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def checkpoint_path(weights_enum) -> Path:
    """Where torchvision's cache keeps the file of ``weights_enum``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_enum.url)


def _pretrained_state_dict(name: str, weights: str):
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    key = weights.upper()
    member = enum.DEFAULT if key in ("IMAGENET", "DEFAULT") else getattr(enum, key, None)
    if member is None:
        raise ValueError(
            f"{name} has no weights {weights!r}; known: default, imagenet, "
            + ", ".join(m.name for m in enum)
        )
    path = checkpoint_path(member)
    if not path.is_file():
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.load_state_dict_from_url(member.url, progress=True, weights_only=True)
        except Exception as exc:
            raise FileNotFoundError(
                f"pretrained weights for {name} ({member}) are not in torchvision's cache and "
                f"could not be downloaded ({type(exc).__name__}: {exc}). Put the file "
                f"{path.name} (from {member.url}) in {path.parent} (set TORCH_HOME to use "
                "another folder), or pass weights=<path to a state dict>."
            ) from exc
        finally:
            socket.setdefaulttimeout(old)
    return load_state_dict_file(path), member, str(path)


class TorchvisionFamily:
    """The registry's view of ``torchvision.models``: one backbone per classification model."""

    def names(self) -> list[str]:
        import torchvision

        return sorted(torchvision.models.list_models(module=torchvision.models))

    def create(
        self,
        name: str,
        *,
        input_shape: tuple[int, ...] | None = None,
        weights: str | None = None,
        **kwargs,
    ) -> Backbone:
        """Build torchvision model ``name`` without its last linear layer.

        Examples
        --------
        >>> from sktransfer.backbones.torchvision import FAMILY
        >>> FAMILY.create("resnet18").num_features
        512
        """
        import torchvision

        model = torchvision.models.get_model(name, weights=None, **kwargs)
        head_name, head = _last_linear(model)
        mean, std, size = IMAGENET_MEAN, IMAGENET_STD, 224
        if weights is not None:
            if is_pretrained_request(weights) or (
                isinstance(weights, str) and not Path(weights).suffix
            ):
                state, member, source = _pretrained_state_dict(name, weights)
                transforms = member.transforms()
                mean, std = tuple(transforms.mean), tuple(transforms.std)
                size = int(transforms.crop_size[0])
            else:
                state, source = load_state_dict_file(weights), str(weights)
            load_weights_into(model, state, source=source, allow_missing=(head_name + ".",))
        _replace(model, head_name, nn.Identity())
        in_channels = int(input_shape[0]) if input_shape else 3
        if in_channels not in (1, 3):
            raise ValueError(
                f"torchvision backbones take 1- or 3-channel images, got {in_channels}"
            )
        return Backbone(
            model,
            num_features=head.in_features,
            kind="image",
            input_shape=(3, size, size),
            preprocess=ImagePreprocess(size, mean, std),
            info=BackboneInfo(name, dict(kwargs)),
            layer_groups=sequential_layer_groups(model),  # stem, blocks, ... in forward order
        )


FAMILY = TorchvisionFamily()
