"""The plugin registries: built-ins and third-party backbones and policies via entry points."""

import textwrap

import numpy as np
import pytest
from conftest import FAST

from sktransfer import TransferClassifier, available_backbones, available_freeze_policies, registry


@pytest.fixture
def third_party_plugin(tmp_path, monkeypatch):
    """An installed-looking distribution that registers a backbone and a freeze policy."""
    pkg = tmp_path / "acme_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from sktransfer.backbones.mlp import mlp
        from sktransfer.freeze import FreezePolicy

        def acme_net(*, input_shape=None, weights=None, width=7):
            return mlp(input_shape=input_shape, weights=weights, hidden=(width,))

        class FreezeNothingButBias(FreezePolicy):
            def apply(self, network):
                for name, p in network.named_parameters():
                    p.requires_grad_(name.endswith("bias"))
                network.set_trainable([], True)
    """))
    dist = tmp_path / "acme_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [sktransfer.backbones]
        acme_net = acme_plugin:acme_net

        [sktransfer.freeze_policies]
        bias_only = acme_plugin:FreezeNothingButBias
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reload_plugins()
    yield
    monkeypatch.undo()
    registry.reload_plugins()


def test_builtins_are_listed():
    names = available_backbones()
    for name in ("mlp", "cnn", "efficientnet_lite0", "resnet18", "resnet34",
                 "mobilenet_v3_small"):
        assert name in names
    assert {"backbone", "gradual", "last", "none"} <= set(available_freeze_policies())


def test_builtins_come_from_entry_points():
    from importlib.metadata import entry_points

    eps = {ep.name for ep in entry_points(group="sktransfer.backbones")}
    assert {"mlp", "cnn", "efficientnet_lite0", "torchvision"} <= eps
    eps = {ep.name for ep in entry_points(group="sktransfer.freeze_policies")}
    assert eps >= {"none", "backbone", "last", "gradual"}


def test_third_party_plugin_registers_through_entry_points(third_party_plugin, blobs):
    X, y = blobs
    assert "acme_net" in available_backbones()
    assert "bias_only" in available_freeze_policies()
    clf = TransferClassifier("acme_net", backbone_kwargs={"width": 5}, freeze="bias_only",
                             max_epochs=2, random_state=0).fit(X, y)
    assert clf.transform(X).shape == (len(X), 5)
    trainable = {n for n, p in clf.net_.module_.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith("bias") for n in trainable)


def test_runtime_registration(blobs):
    from sktransfer.backbones.mlp import mlp

    @registry.register_backbone("tiny_runtime")
    def tiny(*, input_shape=None, weights=None):
        return mlp(input_shape=input_shape, weights=weights, hidden=(3,))

    try:
        X, y = blobs
        assert "tiny_runtime" in available_backbones()
        clf = TransferClassifier("tiny_runtime", max_epochs=1).fit(X, y)
        assert clf.transform(X).shape[1] == 3
    finally:
        registry._runtime_backbones.pop("tiny_runtime")


def test_unknown_backbone_lists_known_names(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet9000'; known names: .*mlp"):
        TransferClassifier("resnet9000", **{k: v for k, v in FAST.items()
                                            if k != "backbone_kwargs"}).fit(X, y)


def test_wrong_backbone_type(blobs):
    X, y = blobs
    with pytest.raises(TypeError, match="backbone must be a registry name"):
        TransferClassifier(backbone=42, max_epochs=1).fit(X, y)


def test_broken_plugin_does_not_hide_the_others(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[sktransfer.backbones]\nbroken = no_such_module:factory\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reload_plugins()
    try:
        assert {"broken", "mlp"} <= set(available_backbones())
        with pytest.raises(ImportError, match="plugin 'broken'.*failed to load"):
            registry.create_backbone("broken", input_shape=(3,))
    finally:
        monkeypatch.undo()
        registry.reload_plugins()
    assert np.isfinite(1.0)
