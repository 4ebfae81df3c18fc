"""sktransfer: transfer learning as an ordinary scikit-learn hyperparameter.

The estimator, the plugin registries and the freeze policies are public here; data sets
are in :mod:`sktransfer.datasets`, comparisons in :func:`sktransfer.compare`.
"""

from .backbones.exported import ExportedBackbone
from .compare import ComparisonResult, compare
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

__version__ = "0.1.0"

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
