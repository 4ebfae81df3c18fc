"""Training-time augmentation as estimator parameters: image policies and label mixing.

Image policies come from ``torchvision.transforms.v2`` and run inside the network on whole
batches already on the device, after resizing and in training mode only:

- ``True``: the light built-in flip and shift (:class:`sktransfer.network.RandomFlipCrop`);
- ``"flip_crop"``: random horizontal flip and a random crop of the reflect-padded image
  (padding 1/8 of the side), the standard CIFAR recipe (He et al. 2016);
- ``"trivialaugment"``: ``v2.TrivialAugmentWide`` (Mueller & Hutter, ICCV 2021), one random
  operation of random strength per image, no hyperparameter to tune;
- ``"randaugment"``: ``v2.RandAugment`` (Cubuk et al., NeurIPS 2020), two operations;
- any ``v2`` transform object (or a callable on a CHW float image in [0, 1]).

Photometric operations expect images in [0, 1], so the policy sees the batch with the
backbone's normalisation undone and the result is normalised again. Random parameters are
drawn per group of ``group_size`` images (one image by default), so a batch is not all
transformed alike.

Label mixing (``mixup``: Zhang et al., ICLR 2018; ``cutmix``: Yun et al., ICCV 2019) runs in
the training step through ``v2.MixUp`` / ``v2.CutMix``: the images are mixed, and the loss
uses the same mixing of the (weighted, optionally smoothed) one-hot targets.
"""

from __future__ import annotations

import torch
from torch import nn

POLICIES = ("flip_crop", "trivialaugment", "randaugment")
#: Test-time augmentation modes of the estimators' ``tta`` (``True`` is ``"flip"``).
TTA_MODES = ("flip", "flip_translate")


def _mirror(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def _translate(x: torch.Tensor, sign: int) -> torch.Tensor:
    """``x`` (NCHW) moved diagonally by 1/32 of its shorter side (at least a pixel),
    reflect-padded: what a random crop of a padded training image also shows."""
    h, w = x.shape[-2:]
    shift = max(1, round(min(h, w) / 32))
    if min(h, w) <= shift:
        raise ValueError(f"tta='flip_translate' needs images of at least 2 x 2 pixels, "
                         f"got {h} x {w}; use tta=True")
    padded = nn.functional.pad(x.float(), (shift,) * 4, mode="reflect").to(x.dtype)
    start = 0 if sign < 0 else 2 * shift
    return padded[..., start:start + h, start:start + w]


def tta_views(tta) -> list:
    """The views ``tta`` adds to the images as given, as functions of an NCHW batch.

    ``True`` / ``"flip"``: the mirror image (Krizhevsky et al. 2012). ``"flip_translate"``:
    also the images moved diagonally by 1/32 of the side, one way and the other, and
    their mirrors (six views in all), as airbench's test-time augmentation on CIFAR-10
    (Jordan 2024: 1 px of 32), for networks trained with random crops.
    """
    if tta == "flip_translate":
        moved = [lambda x: _translate(x, -1), lambda x: _translate(x, 1)]
        return [_mirror, *moved, *[lambda x, m=m: _mirror(m(x)) for m in moved]]
    if tta == "flip" or (not isinstance(tta, str) and bool(tta)):  # True, numpy's too
        return [_mirror]
    raise ValueError(f"tta must be a bool or one of {TTA_MODES}, got {tta!r}")


class ImageAugment(nn.Module):
    """Apply an image transform to normalised training batches, image by image.

    Parameters
    ----------
    transform : callable
        A ``torchvision.transforms.v2`` transform (or any callable) on CHW or NCHW float
        images in [0, 1].
    mean, std : torch.Tensor
        The backbone's per-channel normalisation, shape (1, C, 1, 1).
    group_size : int, default=1
        Images that share one draw of the transform's random parameters. 1 is the usual
        per-image augmentation; larger groups cost fewer calls on a GPU.

    Examples
    --------
    >>> import torch
    >>> from torchvision.transforms import v2
    >>> from sktransfer.augment import ImageAugment
    >>> aug = ImageAugment(v2.RandomHorizontalFlip(), torch.zeros(1, 3, 1, 1),
    ...                    torch.ones(1, 3, 1, 1)).train()
    >>> aug(torch.rand(4, 3, 8, 8)).shape
    torch.Size([4, 3, 8, 8])
    """

    def __init__(self, transform, mean: torch.Tensor, std: torch.Tensor, group_size: int = 1):
        super().__init__()
        self.transform = transform
        self.group_size = int(group_size)
        self.register_buffer("mean", mean.detach().clone().float().view(1, -1, 1, 1))
        self.register_buffer("std", std.detach().clone().float().view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        images = (x * self.std + self.mean).clamp_(0.0, 1.0)
        parts = [self.transform(chunk) for chunk in images.split(self.group_size)]
        out = torch.cat([p if p.dim() == 4 else p.unsqueeze(0) for p in parts])
        return ((out - self.mean) / self.std).contiguous(memory_format=_memory_format(x))

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


def _memory_format(x: torch.Tensor):
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def policy_transform(name: str, image_size: tuple[int, int]):
    """The ``torchvision.transforms.v2`` transform behind an ``augment`` name."""
    from torchvision.transforms import v2

    if name == "flip_crop":
        pad = max(1, min(image_size) // 8)
        return v2.Compose([v2.RandomHorizontalFlip(),
                           v2.RandomCrop(image_size, padding=pad, padding_mode="reflect")])
    if name == "trivialaugment":
        return v2.Compose([v2.RandomHorizontalFlip(), v2.TrivialAugmentWide()])
    if name == "randaugment":
        return v2.Compose([v2.RandomHorizontalFlip(), v2.RandAugment()])
    raise ValueError(f"augment must be False, True, one of {POLICIES} or a v2 transform, "
                     f"got {name!r}")


def make_augment(augment, backbone) -> nn.Module | None:
    """The network's augmentation module for ``augment`` on ``backbone``, or None.

    Parameters
    ----------
    augment : bool, str or callable
        The estimator's ``augment`` parameter.
    backbone : Backbone
        Gives the input kind, the resolution and the normalisation to undo.

    Returns
    -------
    torch.nn.Module or None

    Examples
    --------
    >>> from sktransfer.augment import make_augment
    >>> from sktransfer.registry import create_backbone
    >>> aug = make_augment("flip_crop", create_backbone("cnn", input_shape=(3, 32, 32)))
    >>> [type(t).__name__ for t in aug.transform.transforms]
    ['RandomHorizontalFlip', 'RandomCrop']
    """
    if augment is False or augment is None:
        return None
    if backbone.kind != "image":
        raise ValueError(
            f"augment={augment!r} transforms images, but the backbone takes tabular data; "
            "use augment=False (or mixup, which also mixes tables)"
        )
    if augment is True:
        from .network import RandomFlipCrop

        return RandomFlipCrop()
    preprocess = backbone.preprocess
    mean = getattr(preprocess, "mean", None)
    std = getattr(preprocess, "std", None)
    channels = backbone.input_shape[0]
    if mean is None or std is None:
        mean, std = torch.zeros(1, channels, 1, 1), torch.ones(1, channels, 1, 1)
    size = backbone.image_size or tuple(backbone.input_shape[1:])
    if isinstance(augment, str):
        transform = policy_transform(augment, tuple(size))
    elif callable(augment):
        transform = augment
    else:
        raise ValueError(f"augment must be False, True, one of {POLICIES} or a v2 transform, "
                         f"got {augment!r}")
    return ImageAugment(transform, mean, std)


class BatchMixer:
    """MixUp and/or CutMix of a training batch, returning the mixing matrix for the loss.

    ``v2.MixUp`` / ``v2.CutMix`` are called with the batch positions as labels
    (``num_classes`` = batch size), so the soft labels they return are the matrix ``M``
    with ``mixed_i = sum_j M_ij * sample_j``; the loss then mixes weighted one-hot targets
    with the same ``M``. With both alphas set, each batch uses one of the two at random, as
    torchvision's reference recipes do.

    Parameters
    ----------
    mixup : float
        Beta(alpha, alpha) concentration of MixUp; 0 for none.
    cutmix : float
        Beta(alpha, alpha) concentration of CutMix; 0 for none.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augment import BatchMixer
    >>> x, mix = BatchMixer(mixup=0.4)(torch.rand(4, 3, 8, 8))
    >>> mix.shape, bool(torch.allclose(mix.sum(1), torch.ones(4)))
    (torch.Size([4, 4]), True)
    """

    def __init__(self, mixup: float = 0.0, cutmix: float = 0.0):
        self.mixup = float(mixup or 0.0)
        self.cutmix = float(cutmix or 0.0)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms import v2

        n = len(x)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        if n < 2:
            return x, torch.ones(n, n, device=x.device)
        if x.dim() == 2:  # a table: MixUp of whole rows (CutMix has no meaning here)
            return self._mix_rows(x)
        choices = []
        if self.mixup > 0:
            choices.append(v2.MixUp(alpha=self.mixup, num_classes=n))
        if self.cutmix > 0:
            choices.append(v2.CutMix(alpha=self.cutmix, num_classes=n))
        mixer = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)
        x, mix = mixer(x, torch.arange(n, device=x.device))
        return x, mix.to(x.dtype)

    def _mix_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # v2.MixUp wants image batches; for rows it is one Beta draw and a permutation
        n = len(x)
        lam = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
        perm = torch.randperm(n, device=x.device)
        eye = torch.eye(n, device=x.device, dtype=x.dtype)
        mix = lam * eye + (1.0 - lam) * eye[perm]
        return mix @ x, mix


def make_mixer(mixup: float, cutmix: float, kind: str) -> BatchMixer | None:
    """A :class:`BatchMixer` for the estimator's ``mixup``/``cutmix``, or None."""
    if not mixup and not cutmix:
        return None
    if kind != "image" and cutmix:
        raise ValueError(
            f"cutmix={cutmix!r} cuts and pastes image patches, but the backbone takes "
            "tabular data; set cutmix=0 (mixup mixes table rows)"
        )
    return BatchMixer(mixup, cutmix)


def soft_target_loss(logits: torch.Tensor, y: torch.Tensor, sample_weight=None,
                     mix: torch.Tensor | None = None,
                     label_smoothing: float = 0.0) -> torch.Tensor:
    """Weighted cross-entropy against mixed, smoothed one-hot targets.

    The target of sample ``i`` is ``sum_j M_ij * w_j * onehot(y_j)`` (``M`` the mixing
    matrix, identity without mixing; ``w`` the sample weights, ones without), smoothed as
    ``CrossEntropyLoss(label_smoothing=eps)`` does; the loss is the sum over samples
    divided by the total target mass (the sum of the weights). Without mixing this is
    exactly the weighted mean ``sum(w * ce) / sum(w)``.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augment import soft_target_loss
    >>> logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    >>> a = soft_target_loss(logits, y, label_smoothing=0.1)
    >>> b = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    >>> bool(torch.allclose(a, b))
    True
    """
    logits = logits.float()
    n, n_classes = logits.shape
    target = nn.functional.one_hot(y.long(), n_classes).to(logits.dtype)
    if sample_weight is not None:
        target = target * sample_weight.to(logits.dtype).view(-1, 1)
    if mix is not None:
        target = mix.to(logits.dtype) @ target
    mass = target.sum(1, keepdim=True)
    if label_smoothing:
        target = (1.0 - label_smoothing) * target + label_smoothing * mass / n_classes
    losses = -(target * torch.log_softmax(logits, dim=1)).sum(1)
    return losses.sum() / mass.sum().clamp_min(1e-12)
