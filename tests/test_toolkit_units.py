"""Unit tests of the fine-tuning toolkit's pieces: schedules, layer groups, augmentation, loss."""

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from sktransfer.augment import (
    BatchMixer,
    ImageAugment,
    make_augment,
    make_mixer,
    soft_target_loss,
)
from sktransfer.backbones._base import sequential_layer_groups
from sktransfer.network import RandomFlipCrop, TransferNetwork, make_head
from sktransfer.registry import create_backbone
from sktransfer.schedules import ScheduleFactor, layerwise_param_groups


# ---------------------------------------------------------------- schedules
@pytest.mark.parametrize("kind", ["constant", "cosine", "onecycle"])
def test_schedule_shapes(kind):
    f = ScheduleFactor(kind, total_steps=100, warmup_steps=10)
    values = np.array([f(s) for s in range(101)])
    assert np.all(values > 0) or kind != "constant"
    assert values.max() == pytest.approx(1.0)
    # warmup rises monotonically to the peak
    assert np.all(np.diff(values[:11]) > 0)
    if kind == "constant":
        assert np.all(values[10:] == 1.0)
    else:  # then decays monotonically, ending near zero
        assert np.all(np.diff(values[10:]) <= 1e-12)
        assert values[-1] < 1e-3


def test_onecycle_defaults_to_30_percent_warmup_from_lr_over_25():
    f = ScheduleFactor("onecycle", total_steps=100)
    assert f(0) == pytest.approx(1 / 25)
    assert f(30) == pytest.approx(1.0)
    assert f(100) == pytest.approx(1 / 25 / 1e4)


def test_schedule_rejects_unknown_kind():
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        ScheduleFactor("linear", 10)


# ---------------------------------------------------------------- layer groups
@pytest.mark.parametrize("name,kwargs,n_groups", [
    ("mlp", {"input_shape": (5,), "hidden": (8, 8, 4)}, 3),
    ("cnn", {"input_shape": (3, 32, 32)}, 7),  # stem, 3 x (conv, residual)
    ("resnet18", {}, 9),
])
def test_backbones_declare_layer_groups_covering_every_parameter(name, kwargs, n_groups):
    backbone = create_backbone(name, **kwargs)
    groups = backbone.layer_groups()
    assert len(groups) == n_groups
    covered = {id(p) for g in groups for m in g for p in m.parameters()}
    assert covered == {id(p) for p in backbone.parameters()}
    assert backbone.layer_group_names is not None  # declared by the factory, not guessed


def test_efficientnet_lite_layer_groups():
    pytest.importorskip("efficientnet_lite_pytorch")
    backbone = create_backbone("efficientnet_lite0")
    groups = backbone.layer_groups()
    assert len(groups) == 18  # stem, 16 MBConv blocks, head convolution
    covered = {id(p) for g in groups for m in g for p in m.parameters()}
    assert covered == {id(p) for p in backbone.parameters()}


def test_generic_walk_opens_stacks_and_keeps_blocks_whole():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = torch.nn.Parameter(torch.zeros(4))
            self.layers = torch.nn.Sequential(*[Block() for _ in range(4)])
            self.ln = torch.nn.LayerNorm(4)

    body = torch.nn.Sequential(torch.nn.Linear(4, 4), Encoder())
    assert sequential_layer_groups(body) == [
        ["0"], ["1.layers.0"], ["1.layers.1"], ["1.layers.2"], ["1.layers.3", "1.ln"]]


def test_layerwise_param_groups_decay_from_the_top():
    backbone = create_backbone("mlp", input_shape=(4,), hidden=(8, 8, 8))
    net = TransferNetwork(backbone, make_head(8, 2))
    groups = layerwise_param_groups(net, 1.0, backbone_lr_mult=0.5, layer_decay=0.5)
    lrs = {pattern: g["lr"] for pattern, g in groups}
    assert lrs == {"backbone.body.0.*": 0.0625, "backbone.body.3.*": 0.125,
                   "backbone.body.6.*": 0.25}
    assert layerwise_param_groups(net, 1.0, 0.1) == [("backbone.*", {"lr": 0.1})]
    assert layerwise_param_groups(net, 1.0, 1.0, None) == []


# ---------------------------------------------------------------- augmentation
def test_make_augment_policies():
    backbone = create_backbone("cnn", input_shape=(3, 32, 32))
    assert make_augment(False, backbone) is None
    assert isinstance(make_augment(True, backbone), RandomFlipCrop)
    for name in ("flip_crop", "trivialaugment", "randaugment"):
        aug = make_augment(name, backbone).train()
        x = backbone.preprocess(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8))
        out = aug(x)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert torch.equal(aug.eval()(x), x)  # inference is untouched
    custom = make_augment(v2.RandomVerticalFlip(p=1.0), backbone)
    x = torch.randn(2, 3, 32, 32).clamp(-1.5, 1.5)
    assert torch.allclose(custom.train()(x), _renorm_flip(x, backbone), atol=1e-5)
    with pytest.raises(ValueError, match="augment must be"):
        make_augment("colorjitter", backbone)
    with pytest.raises(ValueError, match="tabular"):
        make_augment("flip_crop", create_backbone("mlp", input_shape=(3,)))


def _renorm_flip(x, backbone):
    mean, std = backbone.preprocess.mean, backbone.preprocess.std
    images = (x * std + mean).clamp(0, 1).flip(-2)
    return (images - mean) / std


def test_image_augment_draws_per_image():
    torch.manual_seed(0)
    aug = ImageAugment(v2.RandomHorizontalFlip(), torch.zeros(1, 1, 1, 1),
                       torch.ones(1, 1, 1, 1)).train()
    x = torch.rand(64, 1, 4, 4)
    flipped = (aug(x) == x.flip(-1)).flatten(1).all(1)
    assert 10 < int(flipped.sum()) < 54


def test_mixer_matrix_reproduces_mixed_images():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8)
    mixed, mix = BatchMixer(mixup=1.0)(x)
    assert torch.allclose(mixed, torch.einsum("ij,jchw->ichw", mix, x), atol=1e-6)
    x_cut, mix_cut = BatchMixer(cutmix=1.0)(torch.randint(0, 255, (6, 3, 8, 8),
                                                          dtype=torch.uint8))
    assert x_cut.dtype == torch.float32 and torch.allclose(mix_cut.sum(1), torch.ones(6))
    assert make_mixer(0, 0, "tabular") is None
    with pytest.raises(ValueError, match="cutmix"):
        make_mixer(0, 0.2, "tabular")


def test_mixer_mixes_table_rows_with_its_matrix():
    # MixUp of rows (Zhang et al. 2018 also mix tabular data): x_mixed = M @ x, rows of M
    # summing to one, each a blend of at most two rows
    torch.manual_seed(0)
    x = torch.rand(7, 5)
    mixer = make_mixer(0.4, 0, "tabular")
    mixed, mix = mixer(x)
    assert torch.allclose(mixed, mix @ x, atol=1e-6)
    assert torch.allclose(mix.sum(1), torch.ones(7))
    assert ((mix > 0).sum(1) <= 2).all() and not torch.allclose(mix, torch.eye(7))


def test_soft_target_loss_matches_weighted_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    w = torch.rand(8) + 0.1
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(soft_target_loss(logits, y, w), (ce * w).sum() / w.sum())
    # mixing with weights: lam * w_i * ce(y_i) + (1 - lam) * w_j * ce(y_j), over sum(w)
    lam, perm = 0.7, torch.roll(torch.arange(8), 1)
    mix = lam * torch.eye(8) + (1 - lam) * torch.eye(8)[perm]
    expected = (lam * w * ce_for(logits, y) + (1 - lam) * w[perm] * ce_for(logits, y[perm]))
    assert torch.allclose(soft_target_loss(logits, y, w, mix), expected.sum() / w.sum(),
                          atol=1e-6)
    # a zero-weight sample contributes nothing, mixed or not
    w0 = w.clone()
    w0[3] = 0
    a = soft_target_loss(logits, y, w0, torch.eye(8), 0.1)
    keep = torch.arange(8) != 3
    b = soft_target_loss(logits[keep], y[keep], w0[keep], None, 0.1)
    assert torch.allclose(a, b, atol=1e-6)


def ce_for(logits, y):
    return torch.nn.functional.cross_entropy(logits, y, reduction="none")
