"""sktransfer: transfer learning as an ordinary scikit-learn hyperparameter.

The estimator, the plugin registries and the freeze policies are public here; data sets
are in :mod:`sktransfer.datasets`, comparisons in :func:`sktransfer.compare`.

The public names are imported on first use (PEP 562), so ``import sktransfer`` and the
``sktransfer --help`` command do not pay for importing torch and scikit-learn.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "ComparisonResult": ".results",
    "ExportedBackbone": ".backbones.exported",
    "FreezeBackbone": ".freeze",
    "FreezeLast": ".freeze",
    "FreezeNone": ".freeze",
    "FreezePolicy": ".freeze",
    "GradualUnfreeze": ".freeze",
    "PretrainedEncoder": ".encoder",
    "TransferClassifier": ".estimator",
    "TransferRegressor": ".regressor",
    "available_backbones": ".registry",
    "available_freeze_policies": ".registry",
    "compare": ".compare",
    "load": ".persist",
    "register_backbone": ".registry",
    "register_freeze_policy": ".registry",
    "save": ".persist",
}

__all__ = [
    "ComparisonResult",
    "ExportedBackbone",
    "FreezeBackbone",
    "FreezeLast",
    "FreezeNone",
    "FreezePolicy",
    "GradualUnfreeze",
    "PretrainedEncoder",
    "TransferClassifier",
    "TransferRegressor",
    "available_backbones",
    "available_freeze_policies",
    "compare",
    "load",
    "register_backbone",
    "register_freeze_policy",
    "save",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """The package module: ``sktransfer.compare`` stays the function.

    Importing the submodule :mod:`sktransfer.compare` makes Python bind it on the package
    under the same name; with lazy imports that could happen after the function was
    looked up, and ``from sktransfer import compare`` would then give the module.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "compare" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # static analysers and IDEs see the real imports
    from .backbones.exported import ExportedBackbone
    from .compare import compare
    from .encoder import PretrainedEncoder
    from .estimator import TransferClassifier
    from .freeze import FreezeBackbone, FreezeLast, FreezeNone, FreezePolicy, GradualUnfreeze
    from .persist import load, save
    from .registry import (
        available_backbones,
        available_freeze_policies,
        register_backbone,
        register_freeze_policy,
    )
    from .regressor import TransferRegressor
    from .results import ComparisonResult
