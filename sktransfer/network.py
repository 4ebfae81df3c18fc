"""Backbone + new head as one module, with frozen layers kept out of training mode.

skorch switches the whole module to train mode before every batch. ``TransferNetwork.train``
is where that call lands, so it is also where frozen BatchNorm layers (and a wholly frozen
backbone, dropout included) are put back in eval mode: their statistics stay those of the
pretrained weights and a frozen backbone is a fixed function of its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .backbones._base import Backbone

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def make_head(num_features: int, n_classes: int, head: str | Sequence[int] = "linear",
              dropout: float = 0.0) -> nn.Module:
    """The new classifier: ``"linear"`` or hidden sizes like ``(128,)``; output from ``y``."""
    if isinstance(head, str):
        if head != "linear":
            raise ValueError(f"head must be 'linear' or a tuple of hidden sizes, got {head!r}")
        hidden: tuple[int, ...] = ()
    else:
        try:
            hidden = tuple(int(h) for h in head)
        except (TypeError, ValueError):
            raise ValueError(
                f"head must be 'linear' or a tuple of hidden sizes, got {head!r}"
            ) from None
        if any(h < 1 for h in hidden):
            raise ValueError(f"head sizes must be positive, got {head!r}")
    layers: list[nn.Module] = []
    width = num_features
    if dropout:
        layers.append(nn.Dropout(dropout))
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


class RandomFlipCrop(nn.Module):
    """Light image augmentation on the device: horizontal flips and small translations."""

    def __init__(self, max_shift: float = 0.1):
        super().__init__()
        self.max_shift = max_shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, h, w = x.shape
        flip = torch.rand(n, device=x.device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        pad_h, pad_w = int(h * self.max_shift), int(w * self.max_shift)
        if pad_h or pad_w:
            padded = nn.functional.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
            dy = int(torch.randint(0, 2 * pad_h + 1, ()))
            dx = int(torch.randint(0, 2 * pad_w + 1, ()))
            x = padded[:, :, dy:dy + h, dx:dx + w]
        return x


class TransferNetwork(nn.Module):
    """``forward_head(forward_features(x))`` with the bookkeeping freeze policies need.

    The head's output size comes from the task (classes of a classifier, targets of a
    regressor); the network does not know which task it serves.

    Parameters
    ----------
    backbone : Backbone
        Feature extractor with its preprocessing.
    head : torch.nn.Module
        New classifier on the backbone's embeddings.
    augment : torch.nn.Module, optional
        Applied to preprocessed images in training mode only.

    Examples
    --------
    >>> from sktransfer.network import TransferNetwork, make_head
    >>> from sktransfer.registry import create_backbone, resolve_freeze_policy
    >>> backbone = create_backbone("mlp", input_shape=(10,), hidden=(16,))
    >>> net = TransferNetwork(backbone, make_head(backbone.num_features, 3))
    >>> resolve_freeze_policy("backbone").apply(net)
    >>> net.backbone_frozen(), len(net.layer_groups())
    (True, 2)

    Cached embeddings of a frozen backbone enter through :meth:`forward_head`:

    >>> import torch
    >>> x = torch.rand(4, 10)
    >>> z = net.eval().forward_features(x)
    >>> torch.allclose(net.forward_head(z), net(x))
    True
    """

    def __init__(self, backbone: Backbone, head: nn.Module, augment: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.augment = augment
        self._eval_modules: list[nn.Module] = []

    # -- forward -------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of raw inputs: preprocessing, augmentation (training only), backbone.

        This is the part a frozen backbone computes identically at every epoch, so the
        feature cache stores its output and feeds it to :meth:`forward_head`.
        """
        z = self.backbone.preprocess(x)
        if self.augment is not None:
            z = self.augment(z)
        return self.backbone.forward_body(z)

    def forward_head(self, features: torch.Tensor, sample_weight=None) -> torch.Tensor:
        """Outputs (logits, or predictions of a regressor) from the backbone's embeddings.

        ``sample_weight`` is accepted so batches that carry weights for the loss can be
        passed as keyword arguments; it is not used here.
        """
        return self.head(features.float())

    def forward(self, x: torch.Tensor, sample_weight=None) -> torch.Tensor:
        """Outputs of raw inputs: ``forward_head(forward_features(x))``.

        ``sample_weight`` is used by the loss, not here.
        """
        return self.forward_head(self.forward_features(x))

    # -- freezing ------------------------------------------------------------------------
    def set_trainable(self, params: Iterable[nn.Parameter], flag: bool) -> None:
        """Set ``requires_grad`` of ``params`` and refresh which layers stay in eval mode.

        Freeze policies change trainability through this method (or call it with no
        parameters after changing it themselves), so frozen BatchNorm layers are known.
        """
        for p in params:
            p.requires_grad_(flag)
        self._refresh_eval_modules()

    def trainable_flags(self) -> list[bool]:
        """``requires_grad`` of every parameter, in order: what :meth:`set_trainable_flags`
        puts back (a failed continued fit, a saved model)."""
        return [p.requires_grad for p in self.parameters()]

    def set_trainable_flags(self, flags: Sequence[bool]) -> None:
        """Set ``requires_grad`` of every parameter, in order, from
        :meth:`trainable_flags`."""
        for p, flag in zip(self.parameters(), flags):
            p.requires_grad_(bool(flag))
        self._refresh_eval_modules()

    def backbone_frozen(self) -> bool:
        """True when no backbone parameter is trainable."""
        return not any(p.requires_grad for p in self.backbone.parameters())

    def layer_groups(self) -> list[list[nn.Module]]:
        """Parameterised layers from input to output; the head is the last group.

        A normalisation layer joins the group of the layer before it, so ``last:k`` counts
        a convolution and its BatchNorm as one layer. Order is registration order, which is
        forward order for sequential networks like every built-in backbone.
        """
        groups: list[list[nn.Module]] = []
        for module in self.backbone.body.modules():
            if not any(True for _ in module.parameters(recurse=False)):
                continue
            if isinstance(module, _NORM_TYPES) and groups:
                groups[-1].append(module)
            else:
                groups.append([module])
        groups.append([self.head])
        return groups

    def runs_in_training_mode(self, module: nn.Module) -> bool:
        """Whether ``module`` (a submodule) is in train mode while the network trains.

        Answered from the network's own bookkeeping, without switching any mode: a frozen
        backbone, and frozen BatchNorm layers, stay in eval mode whatever skorch sets.
        """
        return id(module) not in self._kept_in_eval()

    def _kept_in_eval(self) -> set[int]:
        return {id(sub) for frozen in self._eval_modules for sub in frozen.modules()}

    def backbone_varies_in_training(self) -> str | None:
        """Why the backbone's output would differ between training and inference, or None.

        BatchNorm layers in training mode normalise with batch statistics and update their
        running ones, which makes cached features inexact.
        """
        kept = self._kept_in_eval()  # once, not once per BatchNorm layer
        for m in self.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in kept:
                return "BatchNorm layers in the backbone would update their statistics"
        return None

    def _refresh_eval_modules(self) -> None:
        if self.backbone_frozen():
            self._eval_modules = [self.backbone]
        else:
            self._eval_modules = [
                m for m in self.backbone.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)
                and m.affine
                and not any(p.requires_grad for p in m.parameters(recurse=False))
            ]
        self.train(self.training)

    def train(self, mode: bool = True) -> TransferNetwork:
        """Set train/eval mode, keeping frozen BatchNorm (or a frozen backbone) in eval."""
        super().train(mode)
        if mode:
            for m in self._eval_modules:
                m.eval()
        return self
