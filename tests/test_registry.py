"""The plugin registries: built-ins and third-party backbones and policies via entry points."""

import os
import textwrap

import numpy as np
import pytest
import torch
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


def test_a_factory_that_returns_no_backbone_is_named(blobs):
    registry.register_backbone("returns_a_module", lambda **kw: torch.nn.Linear(6, 3))
    try:
        with pytest.raises(TypeError, match="factory of backbone 'returns_a_module' "
                                            "returned a Linear, not an sktransfer"):
            TransferClassifier("returns_a_module", max_epochs=1).fit(*blobs)
    finally:  # was an AttributeError ('Linear' object has no attribute 'kind')
        registry._runtime_backbones.pop("returns_a_module")


def test_a_factory_name_resolves_without_listing_the_families(monkeypatch):
    from sktransfer.backbones import torchvision as tv_family

    def no_listing():
        raise AssertionError("listed torchvision's models (imports torchvision)")

    monkeypatch.setattr(tv_family.FAMILY, "names", no_listing)
    assert registry.create_backbone("mlp", input_shape=(4,)).info.name == "mlp"


def test_precedence_runtime_then_factories_then_family_members(monkeypatch):
    from sktransfer.backbones.mlp import mlp

    def tiny(*, input_shape=None, weights=None):
        return mlp(input_shape=input_shape, weights=weights, hidden=(3,))

    monkeypatch.setitem(registry._runtime_backbones, "resnet18", tiny)  # over a member
    monkeypatch.setitem(registry._runtime_backbones, "cnn", tiny)  # over a factory
    for name in ("resnet18", "cnn"):
        assert registry.create_backbone(name, input_shape=(4,)).num_features == 3
    monkeypatch.delitem(registry._runtime_backbones, "resnet18")
    assert registry.create_backbone("resnet18", input_shape=(3, 32, 32)).num_features == 512


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


# ---------------------------------------------------------------- names versus paths
@pytest.fixture
def small_checkpoint(blobs):
    """An sktransfer checkpoint of a 3-unit mlp on 6 features."""
    from sktransfer.backbones.mlp import mlp

    backbone = mlp(input_shape=(6,), hidden=(3,))
    return registry.ExportedBackbone("mlp", {"hidden": (3,), "dropout": 0.1}, (6,),
                                     backbone.state_dict())


def test_a_file_named_like_a_backbone_does_not_replace_it(small_checkpoint, tmp_path,
                                                          monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    small_checkpoint.save(tmp_path / "mlp")
    with pytest.warns(UserWarning, match=r"registry backbone 'mlp'; the file 'mlp' .*not used"):
        named = registry.create_backbone("mlp", input_shape=(6,))
    assert named.num_features == 128  # the registry's default mlp, not the file
    assert registry.create_backbone(Path("mlp")).num_features == 3
    assert registry.create_backbone("./mlp").num_features == 3
    assert registry.create_backbone(str(tmp_path / "mlp")).num_features == 3


def test_an_unknown_name_with_a_file_of_that_name_says_how_to_load_it(small_checkpoint,
                                                                     tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small_checkpoint.save(tmp_path / "my_source")
    with pytest.raises(ValueError, match=r"unknown backbone 'my_source'.*pathlib.Path"):
        registry.create_backbone("my_source", input_shape=(6,))


def test_a_checkpoint_suffix_makes_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="source.pt"):
        registry.create_backbone("source.pt")
    with pytest.raises(ValueError, match="path separator or a checkpoint suffix"):
        registry.register_backbone("net.pt", lambda **kw: None)


def test_a_checkpoint_naming_itself_is_a_clear_error_not_a_recursion(small_checkpoint,
                                                                      tmp_path):
    path = tmp_path / "loop.pt"
    registry.ExportedBackbone(str(path), {}, (6,), small_checkpoint.state_dict).save(path)
    with pytest.raises(ValueError, match=r"loop.pt names its architecture .* is a path"):
        registry.create_backbone(path)


def test_a_checkpoint_missing_fields_names_the_file_and_fields(tmp_path):
    import torch

    from sktransfer.backbones.exported import FORMAT_KEY, FORMAT_VERSION

    path = tmp_path / "partial.pt"
    torch.save({FORMAT_KEY: FORMAT_VERSION, "name": "mlp", "input_shape": "6"}, path)
    with pytest.raises(ValueError) as info:
        registry.create_backbone(path)
    message = str(info.value)
    assert "partial.pt" in message and "missing fields ['kwargs', 'state_dict', 'image_size']" \
        in message and "'input_shape' must be a list" in message


def test_weights_of_the_wrong_shape_name_the_file_and_the_tensors(small_checkpoint, tmp_path):
    import torch

    from sktransfer.backbones.mlp import mlp

    path = tmp_path / "wide.pt"
    wide = registry.ExportedBackbone("mlp", {"hidden": (3,)}, (6,),
                                     mlp(input_shape=(6,), hidden=(5,)).state_dict())
    wide.save(path)
    with pytest.raises(ValueError, match=r"wide.pt do not fit .*body.0.weight: \(5, 6\) in the "
                                         r"file, \(3, 6\) in the model"):
        registry.create_backbone(path)
    state = tmp_path / "state.pth"
    torch.save(mlp(input_shape=(6,), hidden=(5,)).state_dict(), state)
    with pytest.raises(ValueError, match=r"state.pth do not fit .*another shape"):
        registry.create_backbone("mlp", input_shape=(6,), weights=str(state), hidden=(3,))


# ---------------------------------------------------------------- registrations travel
PLUGIN = '''
from sktransfer.backbones.mlp import mlp

def tiny(*, input_shape=None, weights=None):
    return mlp(input_shape=input_shape, weights=weights, hidden=(2,))
'''


@pytest.mark.slow
def test_runtime_registrations_travel_with_a_pickled_estimator(tmp_path, blobs, monkeypatch):
    """A worker process (n_jobs>1) unpickles the estimator: the registration comes along."""
    import pickle
    import subprocess
    import sys

    (tmp_path / "travelling_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import travelling_plugin

    registry.register_backbone("travelling_tiny", travelling_plugin.tiny)
    try:
        X, y = blobs
        (tmp_path / "clf.pkl").write_bytes(pickle.dumps(
            TransferClassifier("travelling_tiny", max_epochs=1, random_state=0)))
        np.savez(tmp_path / "data.npz", X=X, y=y)
        script = (
            "import pickle, numpy as np, sys;"
            "import sktransfer.registry as r;"
            "assert 'travelling_tiny' not in r._runtime_backbones;"
            f"clf = pickle.loads(open({str(tmp_path / 'clf.pkl')!r}, 'rb').read());"
            f"d = np.load({str(tmp_path / 'data.npz')!r});"
            "print(clf.fit(d['X'], d['y']).transform(d['X']).shape[1])"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "2"
    finally:
        registry._runtime_backbones.pop("travelling_tiny")


def test_unknown_name_explains_runtime_registrations(blobs):
    with pytest.raises(ValueError, match=r"register_backbone exists only in the Python process"):
        registry.create_backbone("not_registered_here", input_shape=(6,))


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SKTRANSFER_SLOW_TESTS"),
                    reason="starts two worker processes (about 30 s); set SKTRANSFER_SLOW_TESTS=1")
def test_runtime_registration_reaches_loky_workers(tmp_path, blobs, monkeypatch):
    from joblib import parallel_config
    from sklearn.model_selection import cross_val_score

    (tmp_path / "loky_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import loky_plugin

    registry.register_backbone("loky_tiny", loky_plugin.tiny)
    try:
        X, y = blobs
        with parallel_config(backend="loky"):
            scores = cross_val_score(TransferClassifier("loky_tiny", max_epochs=1), X, y, cv=2,
                                     n_jobs=2)
        assert scores.shape == (2,) and np.isfinite(scores).all()
    finally:
        registry._runtime_backbones.pop("loky_tiny")


def test_registry_options_with_a_checkpoint_are_an_error(small_checkpoint):
    import torch

    with pytest.raises(ValueError, match="weights='imagenet' applies to registry backbone"):
        registry.create_backbone(small_checkpoint, weights="imagenet")
    with pytest.raises(ValueError, match=r"backbone_kwargs \['hidden'\] apply to registry"):
        registry.create_backbone(small_checkpoint, hidden=(4,))
    # repeating the exported backbone's own options (a clone of the source estimator) is fine
    assert registry.create_backbone(small_checkpoint, hidden=[3]).num_features == 3
    with pytest.raises(ValueError, match="backbone_kwargs"):
        registry.create_backbone(torch.nn.Linear(6, 2), input_shape=(6,), hidden=(3,))
