"""TransferClassifier's scikit-learn behaviour on tiny data."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST, TINY_CNN
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sktransfer import TransferClassifier


def test_fit_predict_score_and_attributes(blobs):
    X, y = blobs
    clf = TransferClassifier(**FAST)
    assert clf.fit(X, y) is clf
    assert list(clf.classes_) == [0, 1, 2]
    assert clf.score(X, y) > 0.95
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(X))
    assert clf.n_features_in_ == 6


def test_history_has_per_epoch_curves(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 4}, validation_fraction=0.2).fit(X, y)
    h = clf.history_
    assert isinstance(h, pd.DataFrame)
    assert list(h["epoch"]) == [1, 2, 3, 4]
    for col in ("train_loss", "valid_loss", "train_acc", "valid_acc"):
        assert h[col].notna().all(), col
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    no_valid = TransferClassifier(**FAST, validation_fraction=None).fit(X, y)
    assert "valid_loss" not in no_valid.history_


def test_string_labels_and_dataframe_input(blobs):
    X, y = blobs
    names = np.array(["ethanol", "ethylene", "ammonia"])[y]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    clf = TransferClassifier(**FAST).fit(frame, names)
    assert set(clf.predict(frame)) <= set(names)
    assert list(clf.feature_names_in_) == list(frame.columns)


def test_transform_gives_backbone_embeddings_usable_in_a_pipeline(blobs):
    X, y = blobs
    clf = TransferClassifier(**FAST).fit(X, y)
    emb = clf.transform(X)
    assert emb.shape == (len(X), 16)
    assert list(clf.get_feature_names_out())[:2] == ["transferclassifier0", "transferclassifier1"]
    pipe = make_pipeline(TransferClassifier(**FAST), LogisticRegression()).fit(X, y)
    assert pipe.score(X, y) > 0.9


def test_same_random_state_same_predictions(blobs):
    X, y = blobs
    a = TransferClassifier(**FAST).fit(X, y).predict_proba(X)
    b = TransferClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = TransferClassifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


def test_fit_does_not_touch_global_torch_rng(blobs):
    X, y = blobs
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TransferClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_sample_weight_changes_the_fit(blobs):
    X, y = blobs
    y2 = (y == 0).astype(int)  # imbalanced binary task: 60 vs 120
    X_noisy = X + np.random.RandomState(1).normal(scale=6.0, size=X.shape)
    w = np.where(y2 == 1, 10.0, 1.0)
    plain = TransferClassifier(**FAST).fit(X_noisy, y2)
    weighted = TransferClassifier(**FAST).fit(X_noisy, y2, sample_weight=w)
    assert weighted.predict(X_noisy).mean() > plain.predict(X_noisy).mean()
    ones = TransferClassifier(**FAST).fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(
        ones.predict_proba(X), TransferClassifier(**FAST).fit(X, y).predict_proba(X)
    )


def test_class_weight_balanced_equals_explicit_weights(blobs):
    X, y = blobs
    y2 = (y == 0).astype(int)
    a = TransferClassifier(**FAST, class_weight="balanced").fit(X, y2)
    counts = np.bincount(y2)
    w = (len(y2) / (2 * counts))[y2]
    b = TransferClassifier(**FAST).fit(X, y2, sample_weight=w)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-5)


def test_pickle_and_clone(blobs):
    X, y = blobs
    clf = TransferClassifier(**FAST).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    fresh = clone(clf)
    assert not hasattr(fresh, "net_")
    assert fresh.get_params() == clf.get_params()


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "flat", "float"])
def test_image_array_forms(tiny_images, layout):
    X, y = tiny_images
    kwargs = {}
    if layout == "nchw":
        X = X.transpose(0, 3, 1, 2)
    elif layout == "flat":
        X = X.transpose(0, 3, 1, 2).reshape(len(X), -1)
        kwargs["input_shape"] = (3, 8, 8)
    elif layout == "float":
        X = X.astype(np.float32) / 255.0
    clf = TransferClassifier(
        "cnn", backbone_kwargs=TINY_CNN, max_epochs=15, lr=1e-2, random_state=0, **kwargs
    ).fit(X, y)
    assert clf.input_kind_ == "image"
    assert clf.score(X, y) > 0.9


def test_flattened_and_nhwc_images_give_the_same_model(tiny_images):
    X, y = tiny_images
    params = dict(backbone="cnn", backbone_kwargs=TINY_CNN, max_epochs=3, random_state=0)
    a = TransferClassifier(**params).fit(X, y).predict_proba(X)
    flat = X.transpose(0, 3, 1, 2).reshape(len(X), -1)
    b = TransferClassifier(**params, input_shape=(3, 8, 8)).fit(flat, y).predict_proba(flat)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_image_paths_load_lazily(tiny_images, tmp_path):
    from PIL import Image

    X, y = tiny_images
    paths = []
    for i, img in enumerate(X):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(img).save(p)
        paths.append(str(p))
    P = np.array(paths, dtype=object).reshape(-1, 1)
    params = dict(backbone="cnn", backbone_kwargs=TINY_CNN, max_epochs=3, random_state=0)
    from_paths = TransferClassifier(**params).fit(P, y)
    from_array = TransferClassifier(**params).fit(X, y)
    assert from_paths.input_kind_ == "paths"
    np.testing.assert_allclose(
        from_paths.predict_proba(P), from_array.predict_proba(X), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------- errors users will meet
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_X_is_a_clear_error(blobs, bad):
    X, y = blobs
    X = X.copy()
    X[3, 2] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        TransferClassifier(**FAST).fit(X, y)


def test_nan_in_images_is_a_clear_error(tiny_images):
    X, y = tiny_images
    X = X.astype(np.float32) / 255
    X[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TransferClassifier("cnn", backbone_kwargs=TINY_CNN, max_epochs=1).fit(X, y)


def test_shape_contradicting_input_shape(tiny_images):
    X, y = tiny_images
    with pytest.raises(ValueError, match="contradicts input_shape"):
        TransferClassifier("cnn", input_shape=(3, 16, 16), max_epochs=1).fit(X, y)
    flat = X.reshape(len(X), -1)
    with pytest.raises(ValueError, match="needs 300 columns"):
        TransferClassifier("cnn", input_shape=(3, 10, 10), max_epochs=1).fit(flat, y)


def test_one_class_is_a_clear_error(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="only one class"):
        TransferClassifier(**FAST).fit(X, np.zeros(len(X)))


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        TransferClassifier().predict(np.zeros((2, 3)))


def test_unreadable_image_path(tmp_path, tiny_images):
    _, y = tiny_images
    missing = np.array([[str(tmp_path / "nope.png")]] * len(y), dtype=object)
    with pytest.raises(ValueError, match="not readable files.*nope.png"):
        TransferClassifier("cnn", max_epochs=1).fit(missing, y)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    paths = np.array([[str(broken)]] * len(y), dtype=object)
    with pytest.raises(Exception, match="broken.png"):
        TransferClassifier("cnn", max_epochs=1).fit(paths, y)


def test_tabular_data_with_an_image_backbone(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="takes image inputs.*input_shape"):
        TransferClassifier("cnn", max_epochs=1).fit(X, y)


@pytest.mark.parametrize(
    "param, value, message",
    [
        ("max_epochs", 0, r"'max_epochs' parameter .* must be an int in the range \[1, inf\)"),
        ("lr", -1.0, r"'lr' parameter .* range \(0.0, inf\)"),
        ("lr", np.inf, r"'lr' parameter .* range \(0.0, inf\). Got inf"),
        ("lr", np.nan, r"'lr' parameter .* Got nan"),
        ("backbone_lr_mult", np.nan, r"'backbone_lr_mult' parameter .* Got nan"),
        ("backbone_lr_mult", np.inf, r"'backbone_lr_mult' parameter"),
        ("weight_decay", -0.1, r"'weight_decay' parameter"),
        ("validation_fraction", 1.5, "'validation_fraction' parameter"),
        ("optimizer", "adagrad-ish", r"'optimizer' parameter .* among \{"),
        ("optimizer", torch.optim.LBFGS, "needs a closure .* not supported"),
        ("optimizer", torch.optim.Adam([torch.zeros(1, requires_grad=True)]),
         "Optimizer subclass .the class, not an instance"),
        ("head", "deep", "'head' parameter"),
        ("head", (8, 0), "positive hidden sizes"),
        ("freeze", "last:two", "whole number"),
        ("freeze", "frozen", "unknown freeze policy 'frozen'; known names: backbone"),
        ("device", "tpu", "device must be"),
        ("device", "meta", "device='meta' makes tensors without data"),
        ("class_weight", {0: 1.0, 1: -2.0, 2: 1.0}, "class_weight values must be finite"),
        ("class_weight", {0: 1.0, 1: np.inf, 2: 1.0}, "class_weight values must be finite"),
        ("class_weight", "balance", "'class_weight' parameter"),
        ("input_shape", (3, 0, 2), "input_shape must be"),
        ("cache_features", "always", "'cache_features' parameter"),
        ("early_stopping", 0, "'early_stopping' parameter"),
    ],
)
def test_bad_parameters_are_clear_errors(blobs, param, value, message):
    X, y = blobs
    with pytest.raises(ValueError, match=message):
        TransferClassifier(**{**FAST, param: value}).fit(X, y)


def test_numpy_integers_are_accepted_as_parameters(blobs):
    from sktransfer import FreezeLast

    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": np.int64(2), "lr": np.float32(0.01)},
                             batch_size=np.int32(32), freeze=FreezeLast(k=np.int64(2)))
    clf.fit(X, y)
    assert len(clf.history_) == 2


def test_freeze_policy_parameters_are_validated(blobs):
    from sktransfer import FreezeLast, FreezeNone

    X, y = blobs
    with pytest.raises(ValueError, match="'k' parameter of FreezeLast must be an int"):
        TransferClassifier(**FAST, freeze=FreezeLast(k=0)).fit(X, y)
    with pytest.raises(ValueError, match="'k' parameter of FreezeLast"):
        TransferClassifier(**FAST, freeze=FreezeLast(k=1.5)).fit(X, y)
    with pytest.raises(ValueError, match="'train_batchnorm' parameter of FreezeNone"):
        TransferClassifier(**FAST, freeze=FreezeNone(train_batchnorm="no")).fit(X, y)


def test_cuda_requested_without_gpu(blobs):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, y = blobs
    with pytest.raises(ValueError, match="CUDA is not available"):
        TransferClassifier(**FAST, device="cuda").fit(X, y)


def test_device_can_change_after_fit(blobs):
    X, y = blobs
    clf = TransferClassifier(**FAST, device="cpu").fit(X, y)
    expected = clf.predict_proba(X)
    target = "cuda" if torch.cuda.is_available() else "cpu"
    clf.set_params(device=target)
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-4, atol=1e-5)
    assert str(next(clf.net_.module_.parameters()).device).startswith(target)


@pytest.mark.parametrize("shape, channels", [((16, 12, 12), 1), ((16, 12, 12, 4), 4),
                                             ((16, 12, 12, 3), 3)])
def test_module_backbone_gets_the_channels_the_images_have(shape, channels):
    X = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    y = np.arange(len(X)) % 2
    body = torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
    clf = TransferClassifier(body, max_epochs=1, random_state=0).fit(X, y)
    assert clf.transform(X).shape == (len(X), 4)  # grey was made RGB; RGBA failed


def test_module_backbone_is_copied_not_mutated(blobs):
    X, y = blobs
    body = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU())
    before = {k: v.clone() for k, v in body.state_dict().items()}
    clf = TransferClassifier(body, max_epochs=3, random_state=0).fit(X, y)
    for k, v in body.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert clf.transform(X).shape == (len(X), 12)
    # trained weights differ from the untouched original
    trained = clf.net_.module_.backbone.body.state_dict()
    assert not torch.equal(trained["0.weight"], before["0.weight"])
