"""The residual ``cnn`` backbone: shapes, declared layers, what ``last:k`` trains, weights."""

import pytest
import torch
from conftest import TINY_CNN

from sktransfer import TransferClassifier
from sktransfer.backbones.cnn import ResidualStage, cnn
from sktransfer.registry import create_backbone


def test_default_cnn_embeds_32px_images_in_the_last_stage_channels():
    backbone = create_backbone("cnn", input_shape=(3, 32, 32))
    assert backbone.num_features == 128
    assert backbone.image_size == (32, 32)
    out = backbone.forward_features(torch.zeros(3, 3, 32, 32, dtype=torch.uint8))
    assert out.shape == (3, 128)
    stages = [m for m in backbone.modules() if isinstance(m, ResidualStage)]
    assert [s.conv.out_channels for s in stages] == [32, 64, 128]


def test_stage_adds_its_residual_branch():
    stage = ResidualStage(3, 4).eval()
    for p in stage.residual.parameters():
        torch.nn.init.zeros_(p)  # branch output GELU(BN(0)) = GELU(0) = 0
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        trunk = stage.act(stage.norm(stage.pool(stage.conv(x))))
        torch.testing.assert_close(stage(x), trunk)


def test_layer_groups_are_declared_from_input_to_output():
    backbone = cnn(input_shape=(3, 32, 32), channels=(4, 8))
    names = backbone.layer_group_names
    assert names == (("stem",), ("stage1.conv", "stage1.norm"), ("stage1.residual",),
                     ("stage2.conv", "stage2.norm"), ("stage2.residual",))
    with_embedding = cnn(input_shape=(3, 8, 8), **TINY_CNN)
    assert with_embedding.layer_group_names[-1] == ("embedding",)
    assert with_embedding.num_features == 16


@pytest.mark.parametrize(("freeze", "trainable"), [
    ("last:1", set()),
    ("last:2", {"stage2.residual"}),
])
def test_last_k_trains_the_top_convolutions(tiny_images, freeze, trainable):
    X, y = tiny_images
    src = TransferClassifier("cnn", backbone_kwargs={"channels": (4, 8), "image_size": 8},
                             max_epochs=1, random_state=0).fit(X, y)
    clf = TransferClassifier(src.export_backbone(), freeze=freeze, max_epochs=1,
                             random_state=0).fit(X, y)
    body = clf.net_.module_.backbone.body
    trained = {name.rsplit(".", 2)[0] for name, p in body.named_parameters()
               if p.requires_grad}
    assert trained == trainable


def test_cnn_learns_a_tiny_task_with_the_cifar_recipe(tiny_images):
    X, y = tiny_images
    X = X.transpose(0, 2, 1, 3).copy()  # bright top or bottom half: flips keep the class
    clf = TransferClassifier("cnn", backbone_kwargs={"channels": (8, 16), "image_size": 8},
                             optimizer="sgd", lr=0.05, lr_schedule="onecycle",
                             label_smoothing=0.1, augment="flip_crop", batch_size=8,
                             max_epochs=15, random_state=0).fit(X, y)
    assert clf.score(X, y) >= 0.9


def test_weights_round_trip_through_a_state_dict(tmp_path):
    a = cnn(input_shape=(3, 8, 8), channels=(4, 8), image_size=8)
    path = tmp_path / "cnn.pt"
    torch.save(a.state_dict(), path)
    b = cnn(input_shape=(3, 8, 8), channels=(4, 8), image_size=8, weights=str(path))
    x = torch.rand(2, 3, 8, 8)
    a.eval(), b.eval()
    torch.testing.assert_close(a.forward_features(x), b.forward_features(x))
    with pytest.raises((ValueError, RuntimeError), match="do not fit|size mismatch"):
        cnn(input_shape=(3, 8, 8), channels=(4, 16), image_size=8, weights=str(path))
    with pytest.raises(ValueError, match="no published pretrained weights"):
        cnn(weights="imagenet")


@pytest.mark.parametrize("kwargs", [{"channels": ()}, {"channels": (4, 0)},
                                    {"num_features": 0}])
def test_bad_architecture_options_are_rejected(kwargs):
    with pytest.raises(ValueError, match="channels|num_features"):
        cnn(input_shape=(3, 32, 32), **kwargs)


def test_grayscale_images_use_one_input_channel():
    backbone = cnn(input_shape=(1, 16, 16), channels=(4,), image_size=16)
    assert backbone.forward_features(torch.zeros(2, 1, 16, 16)).shape == (2, 4)
