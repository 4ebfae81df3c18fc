"""Freeze policies: which parts of a transferred network train, and when.

A policy is a small scikit-learn-style object (``get_params``/``set_params``), so its own
parameters can sit in a grid: ``{"transferclassifier__freeze": [GradualUnfreeze(head_epochs=2),
GradualUnfreeze(head_epochs=5)]}``. Strings name the built-ins: ``"none"``, ``"backbone"``,
``"last:k"`` and ``"gradual"``. They are found through the ``sktransfer.freeze_policies`` entry
points, like third-party policies.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval
from skorch.callbacks import Callback, EarlyStopping


class FreezePolicy(BaseEstimator):
    """Base class: decides ``requires_grad`` of each parameter of a ``TransferNetwork``.

    Subclasses implement :meth:`apply`; those that change the frozen set during training
    return skorch callbacks from :meth:`callbacks`. Frozen BatchNorm layers are kept in
    eval mode by the network itself, whatever mode skorch sets. A subclass takes its own
    parameters in ``__init__`` (stored under the same names, as in scikit-learn), so that
    ``clone`` and parameter grids work with it, and may declare them in
    ``_parameter_constraints`` (scikit-learn's ``Interval``, ``StrOptions``...), merged with
    the parent's as imbalanced-learn does: the estimator checks them before applying.

    Parameters
    ----------
    (none)
        The base class has no parameters; subclasses define theirs.

    Examples
    --------
    >>> from sktransfer import FreezePolicy, TransferClassifier
    >>> class TrainBiasesOnly(FreezePolicy):
    ...     def apply(self, network):
    ...         for name, p in network.named_parameters():
    ...             p.requires_grad_(name.endswith("bias") or name.startswith("head."))
    ...         network.set_trainable([], True)  # refresh which layers stay in eval mode
    >>> clf = TransferClassifier("mlp", freeze=TrainBiasesOnly())
    """

    #: backbone learning-rate multiplier used when the estimator's ``backbone_lr_mult`` is None
    default_backbone_lr_mult: float = 1.0

    #: scikit-learn parameter constraints, checked by :meth:`validate` before :meth:`apply`
    _parameter_constraints: dict = {}

    def validate(self) -> FreezePolicy:
        """Check the parameters against ``_parameter_constraints``; returns ``self``.

        Raises scikit-learn's ``InvalidParameterError`` (a ``ValueError``) naming the
        parameter, as estimators do at ``fit``.
        """
        self._validate_params()
        return self

    @classmethod
    def from_string(cls, arg: str) -> FreezePolicy:
        """Build from the part after ``:`` in a name like ``"last:2"``."""
        raise ValueError(f"freeze policy {cls.__name__} takes no argument, got {arg!r}")

    def apply(self, network) -> None:
        """Set the trainable parameters of ``network`` before training starts."""
        raise NotImplementedError

    def callbacks(self) -> list[Callback]:
        """skorch callbacks that change the frozen set while training (none by default)."""
        return []

    @staticmethod
    def _freeze_batchnorm(network) -> None:
        """Keep every BatchNorm layer frozen: parameters fixed and statistics in eval mode.

        The usual advice for fine-tuning a pretrained network on little data: batch
        statistics of small batches are noisy, and the pretrained ones describe the inputs
        the later layers were trained on.
        """
        bns = [m for m in network.backbone.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        network.set_trainable((p for m in bns for p in m.parameters()), False)

    def keeps_backbone_frozen(self) -> bool:
        """True if no backbone parameter trains at any point of the fit.

        Then the backbone's output for an input never changes during training, which is what
        lets frozen features be computed once and reused.
        """
        return False


class FreezeNone(FreezePolicy):
    """Fine-tune everything: all layers train (the backbone at ``lr * backbone_lr_mult``).

    Parameters
    ----------
    train_batchnorm : bool, default=True
        Whether BatchNorm layers train too. ``False`` keeps their pretrained parameters and
        statistics (eval mode), often better when fine-tuning on little data.

    Examples
    --------
    >>> from sktransfer import TransferClassifier
    >>> TransferClassifier("mlp", freeze="none")  # doctest: +ELLIPSIS
    TransferClassifier(...)
    """

    _parameter_constraints: dict = {
        **FreezePolicy._parameter_constraints,
        "train_batchnorm": ["boolean"],
    }

    def __init__(self, train_batchnorm: bool = True):
        self.train_batchnorm = train_batchnorm

    def apply(self, network) -> None:
        network.set_trainable(network.parameters(), True)
        if not self.train_batchnorm:
            self._freeze_batchnorm(network)


class FreezeBackbone(FreezePolicy):
    """Feature extraction: the backbone is frozen, only the new head trains.

    Examples
    --------
    >>> from sktransfer.freeze import FreezeBackbone
    >>> FreezeBackbone().keeps_backbone_frozen()
    True
    """

    def apply(self, network) -> None:
        network.set_trainable(network.backbone.parameters(), False)
        network.set_trainable(network.head.parameters(), True)

    def keeps_backbone_frozen(self) -> bool:
        return True


class FreezeLast(FreezePolicy):
    """Train only the last ``k`` parameterised layers of the whole network.

    The new head counts as one layer, so ``k=1`` trains the head alone (like "backbone")
    and ``k=2`` the head and the backbone's top layer. A normalisation layer belongs to the
    layer before it (a convolution and its BatchNorm are one layer).

    Parameters
    ----------
    k : int
        Number of layers, counted from the output, that train.

    Examples
    --------
    >>> from sktransfer.freeze import FreezeLast
    >>> FreezeLast.from_string("2")
    FreezeLast(k=2)
    """

    _parameter_constraints: dict = {
        **FreezePolicy._parameter_constraints,
        "k": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, k: int = 1):
        self.k = k

    @classmethod
    def from_string(cls, arg: str) -> FreezeLast:
        try:
            k = int(arg)
        except ValueError:
            raise ValueError(
                f"'last:{arg}' needs a whole number of layers, like 'last:2'"
            ) from None
        return cls(k)

    def apply(self, network) -> None:
        self.validate()
        k = int(self.k)  # numpy integers from np.arange grids are welcome
        groups = network.layer_groups()
        if k > len(groups):
            warnings.warn(
                f"freeze='last:{self.k}' asks for more layers than the network has "
                f"({len(groups)}, the head included): everything trains",
                UserWarning,
                stacklevel=3,
            )
        network.set_trainable(network.parameters(), False)
        for group in groups[-k:]:
            for module in group:
                network.set_trainable(module.parameters(), True)

    def keeps_backbone_frozen(self) -> bool:
        return self.k == 1


class GradualUnfreeze(FreezePolicy):
    """Head first, then the whole network with a smaller backbone learning rate.

    This is what users do by hand in two ``fit`` calls: train the new head on a frozen
    backbone until it is sensible, then unfreeze and fine-tune everything gently, so large
    gradients from a random head do not wreck the pretrained features.

    Parameters
    ----------
    head_epochs : int, default=3
        Epochs of head-only training before the backbone is unfrozen.
    train_batchnorm : bool, default=True
        Whether BatchNorm layers train once unfrozen; ``False`` keeps them frozen in eval
        mode throughout.

    Examples
    --------
    >>> from sktransfer import TransferClassifier
    >>> from sktransfer.freeze import GradualUnfreeze
    >>> clf = TransferClassifier("mlp", freeze=GradualUnfreeze(head_epochs=3))
    """

    default_backbone_lr_mult = 0.1

    def __init__(self, head_epochs: int = 3, train_batchnorm: bool = True):
        self.head_epochs = head_epochs
        self.train_batchnorm = train_batchnorm

    @classmethod
    def from_string(cls, arg: str) -> GradualUnfreeze:
        try:
            return cls(int(arg))
        except ValueError:
            raise ValueError(f"'gradual:{arg}' needs a whole number of head epochs") from None

    def apply(self, network) -> None:
        if not isinstance(self.head_epochs, int) or self.head_epochs < 0:
            raise ValueError(f"head_epochs must be an int >= 0, got {self.head_epochs!r}")
        FreezeBackbone().apply(network)
        if self.head_epochs == 0:
            FreezeNone(self.train_batchnorm).apply(network)

    def callbacks(self) -> list[Callback]:
        return [_UnfreezeAt(self.head_epochs, self.train_batchnorm)]


class _UnfreezeAt(Callback):
    """Unfreeze the backbone at the start of epoch ``head_epochs + 1``."""

    def __init__(self, head_epochs: int, train_batchnorm: bool = True):
        self.head_epochs = head_epochs
        self.train_batchnorm = train_batchnorm

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)  # skorch has already opened this epoch's row
        if epoch == self.head_epochs + 1 and self.head_epochs > 0:
            FreezeNone(self.train_batchnorm).apply(net.module_)
            net.history.record("unfrozen", True)
            # Patience restarts: the fine-tuning stage deserves its own chances.
            for _, cb in net.callbacks_:
                if isinstance(cb, EarlyStopping):
                    cb.misses_ = 0
