"""Freeze policies: what trains, what stays frozen, and frozen BatchNorm in eval mode."""

import numpy as np
import pytest
import torch
from conftest import FAST, TINY_CNN

from sktransfer import FreezeLast, GradualUnfreeze, TransferClassifier
from sktransfer.registry import create_backbone, resolve_freeze_policy


@pytest.fixture(scope="module")
def source_cnn(tiny_images):
    X, y = tiny_images
    return TransferClassifier("cnn", backbone_kwargs=TINY_CNN, max_epochs=3,
                              random_state=0).fit(X, y)


def _trainable(clf):
    return {n for n, p in clf.net_.module_.named_parameters() if p.requires_grad}


def _changed(before: dict, clf) -> set[str]:
    after = clf.net_.module_.backbone.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k].cpu())}


def test_none_trains_everything(blobs):
    X, y = blobs
    clf = TransferClassifier(**FAST, freeze="none").fit(X, y)
    assert _trainable(clf) == {n for n, _ in clf.net_.module_.named_parameters()}


def test_backbone_freezes_all_but_the_head_and_keeps_bn_statistics(source_cnn, tiny_images):
    X, y = tiny_images
    exported = source_cnn.export_backbone()
    clf = TransferClassifier(exported, freeze="backbone", max_epochs=3, lr=0.05,
                             random_state=0).fit(X, y)
    assert _trainable(clf) == {"head.0.weight", "head.0.bias"}
    # BatchNorm running statistics are buffers: they change only in train mode.
    assert _changed(exported.state_dict, clf) == set()


def test_last_k_counts_layers_from_the_output(source_cnn, tiny_images):
    X, y = tiny_images
    exported = source_cnn.export_backbone()
    clf = TransferClassifier(exported, freeze="last:2", max_epochs=2, lr=0.05,
                             random_state=0).fit(X, y)
    # the top fully connected layer of the cnn (its embedding) and the head train
    assert _trainable(clf) == {"backbone.body.embedding.weight",
                               "backbone.body.embedding.bias", "head.0.weight", "head.0.bias"}
    changed = _changed(exported.state_dict, clf)
    assert changed == {"body.embedding.weight", "body.embedding.bias"}
    clf3 = TransferClassifier(exported, freeze="last:3", max_epochs=2, lr=0.05,
                              random_state=0).fit(X, y)
    # the last residual conv + its BatchNorm count as one layer; that BatchNorm now trains
    assert "backbone.body.stage2.residual.0.weight" in _trainable(clf3)
    assert "backbone.body.stage2.residual.1.weight" in _trainable(clf3)
    assert "backbone.body.stem.0.weight" not in _trainable(clf3)


def test_frozen_batchnorm_stays_in_eval_mode_through_skorch(source_cnn, tiny_images):
    X, y = tiny_images
    clf = TransferClassifier(source_cnn.export_backbone(), freeze="last:2", max_epochs=1)
    clf.fit(X, y)
    network = clf.net_.module_
    network.train(True)  # what skorch calls before every batch
    bns = [m for m in network.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert network.head.training


def test_last_k_larger_than_the_network_warns(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="everything trains"):
        clf = TransferClassifier(**FAST, freeze="last:9").fit(X, y)
    assert _trainable(clf) == {n for n, _ in clf.net_.module_.named_parameters()}


def test_gradual_unfreezes_after_head_epochs_with_smaller_lr(source_cnn, tiny_images):
    X, y = tiny_images
    exported = source_cnn.export_backbone()
    clf = TransferClassifier(exported, freeze=GradualUnfreeze(head_epochs=2), max_epochs=4,
                             lr=0.01, lr_schedule="constant", random_state=0).fit(X, y)
    assert list(clf.history_["unfrozen"]) == [False, False, True, False]
    assert _changed(exported.state_dict, clf)  # the backbone trained after unfreezing
    groups = clf.net_.optimizer_.param_groups
    assert sorted(g["lr"] for g in groups) == pytest.approx([0.001, 0.01])
    # with head_epochs >= max_epochs the backbone would never train: an error
    with pytest.raises(ValueError, match="never unfreeze"):
        TransferClassifier(exported, freeze="gradual:5", max_epochs=2, lr=0.01).fit(X, y)


def test_backbone_lr_mult_sets_a_param_group(blobs):
    X, y = blobs
    clf = TransferClassifier(**FAST, backbone_lr_mult=0.5).fit(X, y)
    assert sorted(g["lr"] for g in clf.net_.optimizer_.param_groups) == pytest.approx(
        [0.005, 0.01]
    )


def test_policy_objects_have_params_for_grids():
    policy = resolve_freeze_policy(FreezeLast(k=3))
    assert policy.get_params() == {"k": 3}
    clf = TransferClassifier(freeze=FreezeLast(k=2))
    assert clf.get_params()["freeze__k"] == 2
    clf.set_params(freeze__k=4)
    assert clf.freeze.k == 4


def test_layer_groups_of_a_torchvision_backbone():
    from sktransfer.network import TransferNetwork, make_head

    backbone = create_backbone("resnet18")
    net = TransferNetwork(backbone, make_head(backbone.num_features, 2))
    groups = net.layer_groups()
    assert len(groups) == 21  # 20 convolutions (each with its BatchNorm) + the head
    assert all(len(g) == 2 for g in groups[:-1])
    resolve_freeze_policy("last:1").apply(net)
    assert net.backbone_frozen()


def test_unknown_policy_lists_known():
    with pytest.raises(ValueError, match="known names: backbone, gradual, last, none"):
        resolve_freeze_policy("everything")
    np.testing.assert_equal(FreezeLast.from_string("3").k, 3)


@pytest.mark.parametrize("freeze", ["none", "gradual"])
def test_train_batchnorm_false_keeps_pretrained_statistics(source_cnn, tiny_images, freeze):
    from sktransfer import FreezeNone

    X, y = tiny_images
    exported = source_cnn.export_backbone()
    policy = (FreezeNone(train_batchnorm=False) if freeze == "none"
              else GradualUnfreeze(head_epochs=1, train_batchnorm=False))
    clf = TransferClassifier(exported, freeze=policy, max_epochs=3, lr=0.05,
                             random_state=0).fit(X, y)
    changed = _changed(exported.state_dict, clf)
    bn_keys = {k for k in exported.state_dict if ".norm." in k or k.startswith("body.stem.1.")}
    assert bn_keys and not (changed & bn_keys)  # BN weights and running stats untouched
    assert "body.stem.0.weight" in changed  # the convolutions did train
    network = clf.net_.module_
    network.train(True)
    assert not any(m.training for m in network.backbone.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))


def test_policies_accept_numpy_integers_and_validate_their_parameters():
    from sklearn.utils._param_validation import InvalidParameterError

    from sktransfer.network import TransferNetwork, make_head

    backbone = create_backbone("mlp", input_shape=(6,), hidden=(8, 8))
    net = TransferNetwork(backbone, make_head(backbone.num_features, 2))
    for k in np.arange(1, 4):  # what a grid over np.arange gives
        FreezeLast(k=k).apply(net)
        assert sum(p.requires_grad for p in net.parameters()) == 2 * int(k)
    with pytest.raises(InvalidParameterError, match="'k' parameter of FreezeLast"):
        FreezeLast(k=0).apply(net)
    with pytest.raises(InvalidParameterError, match="'k' parameter of FreezeLast"):
        FreezeLast(k="2").validate()
