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
from skorch.callbacks import Callback


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
    """LP-FT: train the head on the frozen backbone first, then fine-tune everything.

    Kumar et al. (ICLR 2022, "Fine-tuning can distort pretrained features") show that a
    random head's large early gradients distort pretrained features, and that a linear
    probe first ("LP"), then full fine-tuning ("FT") avoids it; ULMFiT's gradual unfreezing
    (Howard & Ruder 2018) is the same idea. The estimator runs the two stages as two
    training runs of one history:

    1. ``head_epochs`` epochs of the head alone. The backbone is frozen (BatchNorm
       statistics included), so its embeddings are computed once through the feature
       cache, exactly, unless augmentation makes them random. With the estimator's
       ``head_solver="lbfgs"`` the head is instead solved exactly on those embeddings
       (L2 logistic regression, as Kumar et al. fit their linear probe);
    2. the remaining ``max_epochs - head_epochs`` epochs with the whole network unfrozen,
       a fresh optimizer and learning-rate schedule, and the backbone at
       ``lr * backbone_lr_mult`` (0.1 by default for this policy).

    Parameters
    ----------
    head_epochs : int, default=3
        Epochs of head-only training before the backbone is unfrozen; must be smaller than
        the estimator's ``max_epochs``. 0 fine-tunes everything from the start.
    train_batchnorm : bool, default=True
        Whether BatchNorm layers train once unfrozen; ``False`` keeps them frozen in eval
        mode throughout.

    Examples
    --------
    >>> from sktransfer import TransferClassifier
    >>> from sktransfer.freeze import GradualUnfreeze
    >>> clf = TransferClassifier("mlp", freeze=GradualUnfreeze(head_epochs=3))
    >>> GradualUnfreeze(head_epochs=3).head_stage_epochs(max_epochs=10)
    3
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

    def _epochs(self) -> int:
        from numbers import Integral

        h = self.head_epochs
        if isinstance(h, bool) or not isinstance(h, Integral) or h < 0:
            raise ValueError(f"head_epochs must be an int >= 0, got {h!r}")
        return int(h)

    def head_stage_epochs(self, max_epochs: int) -> int:
        """Epochs of the head-only stage for a fit of ``max_epochs``; an error when the
        backbone would never unfreeze."""
        head = self._epochs()
        if head and int(max_epochs) <= head:
            raise ValueError(
                f"freeze=GradualUnfreeze(head_epochs={head}) with max_epochs={max_epochs} "
                "would never unfreeze the backbone: raise max_epochs above head_epochs, "
                "lower head_epochs, or use freeze='backbone' for feature extraction"
            )
        return head

    def apply(self, network) -> None:
        if self._epochs() == 0:
            self.unfreeze(network)
        else:
            FreezeBackbone().apply(network)

    def unfreeze(self, network) -> None:
        """The second stage: everything trains (BatchNorm as ``train_batchnorm`` says)."""
        FreezeNone(self.train_batchnorm).apply(network)


# ---------------------------------------------------------------------- strategies
#: The one table of strategy names (rows of a comparison) and the ``freeze`` value that
#: builds each. ``"scratch"`` and ``"fine-tune"`` both train every layer: they differ by
#: the starting weights (random or pretrained), not by the policy.
STRATEGY_FREEZE: dict[str, str] = {
    "scratch": "none",
    "fine-tune": "none",
    "feature-extraction": "backbone",
    "last-1": "last:1",
    "last-2": "last:2",
    "gradual": "gradual",
}


def freeze_for_strategy(strategy: str) -> str:
    """The ``freeze`` argument of a :class:`~sktransfer.TransferClassifier` for a strategy.

    Parameters
    ----------
    strategy : str
        A key of :data:`STRATEGY_FREEZE`.

    Returns
    -------
    str
        A freeze policy name (``"none"``, ``"backbone"``, ``"last:2"``...).

    Examples
    --------
    >>> from sktransfer.freeze import freeze_for_strategy
    >>> freeze_for_strategy("last-2")
    'last:2'
    """
    try:
        return STRATEGY_FREEZE[strategy]
    except (KeyError, TypeError):
        raise ValueError(
            f"no freeze policy for strategy {strategy!r}; strategies with one: "
            f"{', '.join(STRATEGY_FREEZE)}"
        ) from None


def strategy_for_policy(policy: FreezePolicy, pretrained: bool) -> str:
    """The strategy name of a freeze policy object (the inverse of :data:`STRATEGY_FREEZE`).

    Parameters
    ----------
    policy : FreezePolicy
        A policy object (resolve names first, e.g. with
        :func:`sktransfer.registry.resolve_freeze_policy`).
    pretrained : bool
        Whether the network starts from pretrained weights: a policy that trains every
        layer is ``"fine-tune"`` then, ``"scratch"`` otherwise.

    Returns
    -------
    str

    Examples
    --------
    >>> from sktransfer.freeze import FreezeLast, strategy_for_policy
    >>> strategy_for_policy(FreezeLast(2), pretrained=True)
    'last-2'
    """
    if isinstance(policy, FreezeBackbone):
        return "feature-extraction"
    if isinstance(policy, FreezeLast):
        return {1: "last-1", 2: "last-2"}.get(int(policy.k), "fine-tune")
    if isinstance(policy, GradualUnfreeze) and policy.head_epochs != 0:  # checked at fit
        return "gradual"
    # a GradualUnfreeze without head epochs trains every layer from the start, as FreezeNone
    if isinstance(policy, FreezePolicy) and not isinstance(policy, FreezeNone | GradualUnfreeze):
        return "feature-extraction" if policy.keeps_backbone_frozen() else "fine-tune"
    return "fine-tune" if pretrained else "scratch"
