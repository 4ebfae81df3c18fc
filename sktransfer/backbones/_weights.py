"""Reading weight files safely, shared by every backbone family."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

PRETRAINED_NAMES = ("imagenet", "default")


def is_pretrained_request(weights: object) -> bool:
    """True for the strings that ask for a backbone's published pretrained weights."""
    return isinstance(weights, str) and weights.lower() in PRETRAINED_NAMES


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict with ``weights_only=True``: no code from the file runs.

    Accepts a plain state dict or a dict holding one under ``"state_dict"`` or ``"model"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(
            f"could not read weights from {path}: {exc}. The file must be a PyTorch state "
            "dict saved with torch.save (loaded with weights_only=True)."
        ) from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return obj


def load_weights_into(
    module: nn.Module, state_dict: dict[str, torch.Tensor], source: str, allow_missing=()
) -> None:
    """Load ``state_dict`` into ``module``; mismatched keys raise an error naming ``source``.

    ``allow_missing`` lists key prefixes that may be absent or extra (a classifier head that
    the backbone drops anyway).
    """
    def _unexpected(keys):
        return [k for k in keys if not any(k.startswith(p) for p in allow_missing)]

    def _shown(items):
        return f"{items[:5]}{f' ... ({len(items)} in all)' if len(items) > 5 else ''}"

    if not isinstance(state_dict, dict):
        raise ValueError(f"weights from {source} are a {type(state_dict).__name__}, not a "
                         "state dict (a mapping of names to tensors)")
    own = module.state_dict()
    wrong_shape = [
        f"{k}: {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model"
        for k, v in state_dict.items()
        if k in own and isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(own[k].shape)
        and not any(k.startswith(p) for p in allow_missing)
    ]
    if wrong_shape:
        raise ValueError(
            f"weights from {source} do not fit this architecture: {len(wrong_shape)} "
            f"tensors have another shape ({'; '.join(wrong_shape[:3])}"
            f"{' ...' if len(wrong_shape) > 3 else ''}). They come from another "
            "architecture or other architecture options (backbone_kwargs, input_shape)."
        )
    state_dict = {k: v for k, v in state_dict.items()
                  if not (k in own and tuple(v.shape) != tuple(own[k].shape))}
    result = module.load_state_dict(state_dict, strict=False)
    missing, unexpected = _unexpected(result.missing_keys), _unexpected(result.unexpected_keys)
    if missing or unexpected:
        raise ValueError(
            f"weights from {source} do not fit this architecture: missing keys "
            f"{_shown(missing)}, unexpected keys {_shown(unexpected)}"
        )
