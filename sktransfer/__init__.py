"""sktransfer: transfer learning as an ordinary scikit-learn hyperparameter.

The estimator, the plugin registries and the freeze policies are public here; data sets
are in :mod:`sktransfer.datasets`, comparisons in :func:`sktransfer.compare`.
"""

from .backbones.exported import ExportedBackbone
from .compare import ComparisonResult, compare
from .estimator import TransferClassifier
from .freeze import FreezeBackbone, FreezeLast, FreezeNone, FreezePolicy, GradualUnfreeze
from .lr_finder import LRFinderResult, lr_find
from .registry import (
    available_backbones,
    available_freeze_policies,
    register_backbone,
    register_freeze_policy,
)

__version__ = "0.1.0"

__all__ = [
    "ComparisonResult",
    "ExportedBackbone",
    "FreezeBackbone",
    "FreezeLast",
    "FreezeNone",
    "FreezePolicy",
    "GradualUnfreeze",
    "LRFinderResult",
    "TransferClassifier",
    "available_backbones",
    "available_freeze_policies",
    "compare",
    "lr_find",
    "register_backbone",
    "register_freeze_policy",
]
