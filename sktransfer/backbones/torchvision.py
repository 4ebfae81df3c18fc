"""Every torchvision classification model as a backbone, its weights' preprocessing attached.

Pretrained weights load through torchvision's own cache, ``$TORCH_HOME/hub/checkpoints/``
(``torch.hub.get_dir()``), always with ``weights_only=True``. Where the file is absent a
download is tried; offline, the error names the file and the folder to put it in.

torchvision names each file after the first hex digits of its SHA-256
(``resnet18-f37072fd.pth``), and ``torch.hub.load_state_dict_from_url(check_hash=True)``
checks them, but only while downloading: a file already in the cache is used as it is.
sktransfer checks the prefix every time it reads a cached file (each file is hashed and
read once per process while it is unchanged: same inode, size, mtime and ctime), so a
corrupt, truncated or replaced checkpoint is an error naming the file, never silently
other weights.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
from torch import nn

from ._base import Backbone, BackboneInfo, ImagePreprocess, sequential_layer_groups
from ._weights import (
    check_hub_hash,
    is_pretrained_request,
    load_state_dict_file_once,
    load_weights_into,
)

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


def _weights_member(name: str, weights: str):
    import torchvision

    enum = torchvision.models.get_model_weights(name)
    key = weights.upper()
    member = enum.DEFAULT if key in ("IMAGENET", "DEFAULT") else getattr(enum, key, None)
    if member is None:
        hint = (
            f". A file {weights!r} exists: to load it pass weights=pathlib.Path({weights!r}) "
            f"or {'./' + weights!r}" if Path(weights).is_file() else ""
        )
        raise ValueError(
            f"{name} has no weights {weights!r}; known: default, imagenet, "
            + ", ".join(m.name for m in enum) + hint
        )
    return member


def _pretrained_state_dict(name: str, member):
    path = checkpoint_path(member)
    if not path.is_file():
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.load_state_dict_from_url(member.url, progress=True, check_hash=True,
                                               weights_only=True)
        except Exception as exc:
            raise FileNotFoundError(
                f"pretrained weights for {name} ({member}) are not in torchvision's cache and "
                f"could not be downloaded ({type(exc).__name__}: {exc}). Put the file "
                f"{path.name} (from {member.url}) in {path.parent} (set TORCH_HOME to use "
                "another folder), or pass weights=<path to a state dict>."
            ) from exc
        finally:
            socket.setdefaulttimeout(old)
    return load_state_dict_file_once(path, check=check_hub_hash), str(path)


def _is_weights_name(weights: object) -> bool:
    """``"imagenet"``, ``"default"`` or a torchvision weights name (``"IMAGENET1K_V2"``),
    as opposed to a path: a path has a separator or a suffix, or is a ``PathLike``."""
    if not isinstance(weights, str):
        return False
    if is_pretrained_request(weights):
        return True
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return not Path(weights).suffix and not any(sep in weights for sep in separators)


# Networks with auxiliary classifiers: their training-mode output is a tuple, and the aux
# branch of inception_v3 only fits 299-pixel images. The backbone keeps the main trunk.
_AUX_LOGITS = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
# Networks whose input size is fixed when they are built (position embeddings, windows).
_FIXED_SIZE_PREFIXES = ("vit_", "maxvit_")


class _InputSizeCheck:
    """Forward pre-hook: a clear error for an image size the network cannot take.

    Without it, ``vit_b_16`` at 32 pixels fails with a bare ``AssertionError`` and
    ``alexnet`` with an arithmetic error from deep inside.
    """

    def __init__(self, name: str, fixed: int | None, minimum: int):
        self.name, self.fixed, self.minimum = name, fixed, minimum

    def __call__(self, module, args):
        h, w = (int(s) for s in args[0].shape[-2:])
        if self.fixed is not None and (h, w) != (self.fixed, self.fixed):
            raise ValueError(
                f"backbone {self.name!r} only takes {self.fixed}x{self.fixed} images (its "
                f"input size is fixed when it is built), got {h}x{w}: set "
                f"image_size={self.fixed} or leave image_size=None"
            )
        if min(h, w) < self.minimum:
            raise ValueError(
                f"backbone {self.name!r} needs images of at least {self.minimum}x"
                f"{self.minimum} pixels, got {h}x{w}: set image_size to at least "
                f"{self.minimum} (or leave image_size=None for its own size)"
            )


def _size_limits(name: str, model: nn.Module, reference) -> tuple[int | None, int]:
    fixed = None
    if name.startswith(_FIXED_SIZE_PREFIXES):
        fixed = int(getattr(model, "image_size", 0) or reference.transforms().crop_size[0])
    minimum = int(reference.meta.get("min_size", (1, 1))[0])
    # torchvision's min_size is sometimes the training size (swin: 224) rather than what
    # the architecture needs; only the small ones, set by pooling, are limits
    return fixed, minimum if minimum <= 100 else 1


class TorchvisionFamily:
    """The registry's view of ``torchvision.models``: one backbone per classification model.

    Each is built at its own input size (the crop size of its default weights: 299 for
    inception_v3, 224 for most), without its final classifier: networks with auxiliary
    classifiers (googlenet, inception_v3) are built without them, and squeezenet's
    convolutional classifier is replaced by the global average pooling of its features.
    """

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

        in_channels = int(input_shape[0]) if input_shape else 3
        if in_channels not in (1, 3):
            raise ValueError(
                f"torchvision backbones take 1- or 3-channel images, got {in_channels}"
            )
        member = _weights_member(name, weights) if _is_weights_name(weights) else None
        reference = member or torchvision.models.get_model_weights(name).DEFAULT
        arch = dict(kwargs)
        if name.startswith("vit_"):
            arch.setdefault("image_size", int(reference.meta["min_size"][0]))
        skipped: tuple[str, ...] = ()
        if name in _AUX_LOGITS:
            if arch.get("aux_logits"):
                raise ValueError(
                    f"{name} as a backbone has no auxiliary classifiers (their output is "
                    "not an embedding): drop aux_logits from backbone_kwargs"
                )
            arch["aux_logits"] = False
            if member is not None:  # as torchvision does for these weights
                arch.setdefault("transform_input", True)
            skipped = _AUX_LOGITS[name]
        build = dict(arch)
        if name in _AUX_LOGITS:
            build.setdefault("init_weights", member is None)
        model = torchvision.models.get_model(name, weights=None, **build)
        if name.startswith("squeezenet"):
            head_name, num_features = "classifier", int(model.classifier[1].in_channels)
        else:
            head_name, head = _last_linear(model)
            num_features = head.in_features
        allow = (head_name + ".", *skipped)
        if member is not None:
            state, source = _pretrained_state_dict(name, member)
            load_weights_into(model, state, source=source, allow_missing=allow)
        elif weights is not None:
            state, source = load_state_dict_file_once(weights), str(weights)
            load_weights_into(model, state, source=source, allow_missing=allow)
        if name.startswith("squeezenet"):
            model.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        else:
            _replace(model, head_name, nn.Identity())
        transforms = reference.transforms()
        mean, std = tuple(transforms.mean), tuple(transforms.std)
        size = int(transforms.crop_size[0])
        fixed, minimum = _size_limits(name, model, reference)
        if fixed is not None:
            size = fixed
        model.register_forward_pre_hook(_InputSizeCheck(name, fixed, minimum))
        return Backbone(
            model,
            num_features=num_features,
            kind="image",
            input_shape=(3, size, size),
            preprocess=ImagePreprocess(size, mean, std),
            info=BackboneInfo(name, arch),
            layer_groups=sequential_layer_groups(model),  # stem, blocks, ... in forward order
        )


FAMILY = TorchvisionFamily()
