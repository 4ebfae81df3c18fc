"""A trained backbone packed to travel: as a ``backbone=`` value, in a pickle, or in a file.

scikit-learn deep-copies parameter values when it clones an estimator (GridSearchCV,
cross_val_score), and re-creates anything that looks like an estimator *unfitted*. An
:class:`ExportedBackbone` is deliberately not an estimator, and it is immutable, so every
clone keeps the trained weights (copies share them: nothing ever writes to them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT_KEY = "sktransfer_backbone"
FORMAT_VERSION = 1


class ExportedBackbone:
    """Architecture, trained weights and preprocessing of a backbone.

    Made by :meth:`sktransfer.TransferClassifier.export_backbone`; pass it as
    ``TransferClassifier(backbone=...)`` to transfer it, or :meth:`save` it to a file whose
    path is accepted as ``backbone=`` too.

    Parameters
    ----------
    name : str
        Registry name of the architecture (``"mlp"``, ``"resnet18"``...), or ``"<module>"``
        for a backbone built from a user's ``torch.nn.Module``.
    kwargs : dict
        Keyword arguments that rebuild the architecture through the registry.
    input_shape : tuple of int
        Shape of one input sample the backbone was trained on.
    state_dict : dict of str to Tensor
        The weights (on the CPU), preprocessing statistics included.
    image_size : tuple of int or None
        Resolution images are resized to, for image backbones.
    meta : dict, optional
        Free-form facts about the training (classes, number of samples...).
    module : torch.nn.Module, optional
        The whole backbone module, for architectures the registry cannot rebuild.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier
    >>> X, y = np.random.rand(60, 4), np.arange(60) % 2
    >>> src = TransferClassifier("mlp", max_epochs=2, random_state=0).fit(X, y)
    >>> exported = src.export_backbone()
    >>> TransferClassifier(exported, freeze="backbone", max_epochs=2).fit(X, y).score(X, y) >= 0
    True
    """

    def __init__(
        self,
        name: str,
        kwargs: dict[str, Any],
        input_shape: tuple[int, ...],
        state_dict: dict[str, torch.Tensor],
        image_size: tuple[int, int] | None = None,
        meta: dict[str, Any] | None = None,
        module: nn.Module | None = None,
    ):
        self.name = name
        self.kwargs = dict(kwargs)
        self.input_shape = tuple(input_shape)
        self.state_dict = {k: v.detach().cpu().clone() for k, v in state_dict.items()}
        self.image_size = tuple(image_size) if image_size is not None else None
        self.meta = dict(meta or {})
        self.module = module

    # Immutable: copies may share it (see the module docstring).
    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self

    def __repr__(self) -> str:
        n_params = sum(v.numel() for v in self.state_dict.values())
        extra = "".join(f", {k}={v!r}" for k, v in self.meta.items() if k in ("n_classes",))
        return (
            f"ExportedBackbone({self.name!r}, input_shape={self.input_shape}, "
            f"n_weights={n_params}{extra})"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint that ``backbone=<path>`` loads back (with ``weights_only=True``).

        Parameters
        ----------
        path : str or path-like
            The file to write (by convention ``.pt``).

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> exported.save("source_backbone.pt")  # doctest: +SKIP
        """
        if self.module is not None:
            raise ValueError(
                "this backbone was built from a custom torch.nn.Module, which a weights-only "
                "checkpoint cannot rebuild: pickle the ExportedBackbone instead, or register "
                "the architecture as a backbone plugin (see the docs on plugins)"
            )
        path = Path(path)
        torch.save(
            {
                FORMAT_KEY: FORMAT_VERSION,
                "name": self.name,
                "kwargs": self.kwargs,
                "input_shape": list(self.input_shape),
                "image_size": list(self.image_size) if self.image_size else None,
                "state_dict": self.state_dict,
                "meta": {k: v for k, v in self.meta.items() if isinstance(v, (int, float, str))},
            },
            path,
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ExportedBackbone:
        """Read a checkpoint written by :meth:`save` (safely: ``weights_only=True``).

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save`.

        Returns
        -------
        ExportedBackbone

        Examples
        --------
        >>> ExportedBackbone.load("source_backbone.pt")  # doctest: +SKIP
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"backbone checkpoint not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"could not read backbone checkpoint {path}: {exc}") from exc
        if not isinstance(obj, dict) or obj.get(FORMAT_KEY) != FORMAT_VERSION:
            raise ValueError(
                f"{path} is not an sktransfer backbone checkpoint (made by "
                "ExportedBackbone.save). For a plain state dict use backbone=<name>, "
                "weights=<path>."
            )
        problems = _checkpoint_problems(obj)
        if problems:
            raise ValueError(
                f"{path} is a damaged sktransfer backbone checkpoint: {'; '.join(problems)}. "
                "Write it again with ExportedBackbone.save."
            )
        return cls(
            name=obj["name"],
            kwargs=obj["kwargs"],
            input_shape=tuple(int(s) for s in obj["input_shape"]),
            state_dict=obj["state_dict"],
            image_size=tuple(int(s) for s in obj["image_size"]) if obj["image_size"] else None,
            meta=obj.get("meta"),
        )


def _is_int_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    )


def _checkpoint_problems(obj: dict) -> list[str]:
    """What is missing or malformed in a checkpoint read by :meth:`ExportedBackbone.load`."""
    required = ("name", "kwargs", "input_shape", "state_dict", "image_size")
    missing = [k for k in required if k not in obj]
    problems = [f"missing fields {missing}"] if missing else []
    checks = {
        "name": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
        "kwargs": (lambda v: isinstance(v, dict), "a dict"),
        "input_shape": (lambda v: _is_int_sequence(v) and len(v) in (1, 3),
                        "a list of 1 or 3 positive ints"),
        "state_dict": (lambda v: isinstance(v, dict) and v != {} and all(
            isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items()),
            "a non-empty mapping of names to tensors"),
        "image_size": (lambda v: v is None or (_is_int_sequence(v) and len(v) == 2),
                       "None or a list of 2 positive ints"),
    }
    for key, (ok, expected) in checks.items():
        if key in obj and not ok(obj[key]):
            problems.append(f"field {key!r} must be {expected}, got {type(obj[key]).__name__}")
    return problems
