"""save/load: fitted estimators as data only (tensors + JSON), read weights-only."""

import os
import pickle

import numpy as np
import pytest

import sktransfer
from sktransfer import (
    GradualUnfreeze,
    PretrainedEncoder,
    TransferClassifier,
    TransferRegressor,
)

FAST = {"max_epochs": 3, "lr": 1e-2, "random_state": 0, "backbone_kwargs": {"hidden": (16,)}}
TINY_CNN = {"channels": (4, 8), "num_features": 16, "image_size": 8}


def _roundtrip(est, tmp_path, name="model.skt"):
    return sktransfer.load(sktransfer.save(est, tmp_path / name))


def test_classifier_with_string_labels_predicts_the_same(tmp_path, blobs):
    X, y = blobs
    labels = np.array(["ethanol", "ethylene", "ammonia"])[y]
    clf = TransferClassifier(**FAST).fit(X, labels)
    loaded = _roundtrip(clf, tmp_path)
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    assert loaded.get_params() == clf.get_params()
    assert list(loaded.history_.columns) == list(clf.history_.columns)
    assert len(loaded.history_) == 3
    # a loaded model keeps training with warm_start
    loaded.set_params(warm_start=True).fit(X, labels)
    assert len(loaded.history_) == 6


@pytest.mark.parametrize("class_weight", [{0: 1.0, 1: 2.5, 2: 1.0}, "balanced"])
def test_class_weight_round_trips(tmp_path, blobs, class_weight):
    X, y = blobs
    clf = TransferClassifier(**FAST, class_weight=class_weight).fit(X, y)
    loaded = _roundtrip(clf, tmp_path)
    assert loaded.class_weight == class_weight  # int keys stay ints
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    # the loaded model knows what it was fitted with: a changed network is refused
    loaded.set_params(warm_start=True, backbone_kwargs={"hidden": (8,)})
    with pytest.raises(ValueError, match="backbone_kwargs was"):
        loaded.fit(X, y)


def test_settings_changed_before_save_apply_after_load(tmp_path, blobs):
    X, y = blobs
    src = TransferClassifier(**FAST).fit(X, y)
    clf = TransferClassifier(src.export_backbone(), freeze="last:1", max_epochs=1,
                             random_state=0).fit(X, y)
    clf.set_params(freeze="none")  # after fit, before save
    loaded = _roundtrip(clf, tmp_path)
    loaded.set_params(warm_start=True).fit(X, y)
    assert all(p.requires_grad for p in loaded.net_.module_.parameters())
    # a network setting changed before save cannot describe the saved weights
    clf.set_params(backbone_kwargs={"hidden": (4,)})
    with pytest.raises(ValueError, match="cannot save: backbone_kwargs was .* since fit"):
        sktransfer.save(clf, tmp_path / "other.skt")
    clf.set_params(backbone_kwargs=None, freeze="bogus")
    with pytest.raises(ValueError, match="cannot save: unknown freeze policy 'bogus'"):
        sktransfer.save(clf, tmp_path / "other.skt")


def test_a_loaded_lp_ft_model_keeps_its_backbone_unfrozen(tmp_path, blobs):
    X, y = blobs
    src = TransferClassifier(**FAST).fit(X, y)
    clf = TransferClassifier(src.export_backbone(), freeze="gradual:1", max_epochs=3,
                             random_state=0).fit(X, y)
    assert all(p.requires_grad for p in clf.net_.module_.parameters())
    loaded = _roundtrip(clf, tmp_path)
    assert all(p.requires_grad for p in loaded.net_.module_.parameters())


def test_an_lp_ft_file_of_an_earlier_version_loads_unfrozen(tmp_path, blobs):
    import json

    import torch

    from sktransfer.persist import _digest

    X, y = blobs
    src = TransferClassifier(**FAST).fit(X, y)
    clf = TransferClassifier(src.export_backbone(), freeze="gradual:1", max_epochs=3,
                             random_state=0).fit(X, y)
    path = sktransfer.save(clf, tmp_path / "m.skt")
    payload = torch.load(path, weights_only=True)
    doc = json.loads(payload["json"])
    del doc["fitted"]["trainable"]  # what files written before it held
    payload["json"] = json.dumps(doc)
    payload["sha256"] = _digest(payload["json"], payload["tensors"])
    torch.save(payload, path)
    loaded = sktransfer.load(path)
    assert all(p.requires_grad for p in loaded.net_.module_.parameters())


def test_a_loaded_model_goes_on_with_its_partial_fit_schedule(tmp_path, blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 4}, lr_schedule="cosine", warmup=0.0)
    clf.partial_fit(X, y, classes=[0, 1, 2]).partial_fit(X, y)
    loaded = _roundtrip(clf, tmp_path)
    clf.partial_fit(X, y)
    loaded.partial_fit(X, y)
    assert loaded.history_["lr"].tolist() == pytest.approx(clf.history_["lr"].tolist())


def test_transferred_model_keeps_its_source_backbone_and_policy(tmp_path, blobs):
    X, y = blobs
    src = TransferClassifier(**FAST).fit(X, y)
    clf = TransferClassifier(src.export_backbone(), freeze=GradualUnfreeze(head_epochs=1),
                             max_epochs=3, random_state=0).fit(X, y)
    loaded = _roundtrip(clf, tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    assert loaded.freeze == GradualUnfreeze(head_epochs=1).get_params() or isinstance(
        loaded.freeze, GradualUnfreeze)
    src_state = loaded.backbone.state_dict
    for key, value in src.export_backbone().state_dict.items():
        np.testing.assert_array_equal(src_state[key], value)


def test_image_model_on_cached_features(tmp_path, tiny_images):
    X, y = tiny_images
    clf = TransferClassifier("cnn", backbone_kwargs=TINY_CNN, freeze="none", max_epochs=2,
                             random_state=0).fit(X, y)
    loaded = _roundtrip(clf, tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-5)


def test_regressor_and_encoder(tmp_path, blobs):
    X, y = blobs
    reg = TransferRegressor(**FAST).fit(X, y * 100.0 + 5)
    np.testing.assert_allclose(_roundtrip(reg, tmp_path, "r.skt").predict(X), reg.predict(X),
                               rtol=1e-6)
    src = TransferClassifier(**FAST).fit(X, y)
    enc = PretrainedEncoder(src.export_backbone()).fit(X)
    np.testing.assert_allclose(_roundtrip(enc, tmp_path, "e.skt").transform(X),
                               enc.transform(X), rtol=1e-6)


def test_pretrained_weights_are_not_needed_to_load(tmp_path, tiny_images):
    """The architecture is rebuilt without its published weights: the saved ones replace
    them, so a model file loads where the pretrained download is not available."""
    X, y = tiny_images
    clf = TransferClassifier("efficientnet_lite0", weights="imagenet", freeze="backbone",
                             image_size=32, max_epochs=1, device="cpu").fit(X[:8], y[:8])
    loaded = _roundtrip(clf, tmp_path)
    assert loaded.weights == "imagenet"
    np.testing.assert_allclose(loaded.predict_proba(X[:4]), clf.predict_proba(X[:4]),
                               rtol=1e-4, atol=1e-6)


def test_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.skt"
    path.write_bytes(pickle.dumps(os.system))
    with pytest.raises(ValueError, match="not an sktransfer model file"):
        sktransfer.load(path)


def test_unsavable_values_are_errors_not_losses(tmp_path, blobs):
    import torch

    X, y = blobs
    body = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU())
    clf = TransferClassifier(body, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="plugin|pickle"):
        sktransfer.save(clf, tmp_path / "m.skt")
    with pytest.raises(ValueError, match="not fitted"):
        sktransfer.save(TransferClassifier(), tmp_path / "m.skt")
    clf = TransferClassifier(**{**FAST, "random_state": np.random.RandomState(0)}).fit(X, y)
    with pytest.raises(ValueError, match="RandomState"):
        sktransfer.save(clf, tmp_path / "m.skt")
    assert not (tmp_path / "m.skt").exists()


def test_callbacks_are_not_saved_and_say_so(tmp_path, blobs):
    from skorch.callbacks import GradientNormClipping

    X, y = blobs
    clf = TransferClassifier(callbacks=[GradientNormClipping(1.0)], **FAST).fit(X, y)
    with pytest.warns(UserWarning, match="not saved"):
        path = sktransfer.save(clf, tmp_path / "m.skt")
    assert sktransfer.load(path).callbacks is None


def test_tta_averages_mirrored_views(tiny_images):
    X, y = tiny_images
    base = dict(backbone_kwargs=TINY_CNN, max_epochs=2, random_state=0)
    plain = TransferClassifier("cnn", **base).fit(X, y)
    tta = TransferClassifier("cnn", tta=True, **base).fit(X, y)
    mirrored = np.ascontiguousarray(X[:, :, ::-1])
    expected = (plain.predict_proba(X) + plain.predict_proba(mirrored)) / 2
    np.testing.assert_allclose(tta.predict_proba(X), expected, rtol=1e-5, atol=1e-6)


def test_tta_on_tabular_data_warns(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="tta=True"):
        TransferClassifier(tta=True, **FAST).fit(X, y)


def test_tta_flip_translate_averages_six_views(tiny_images):
    X, y = tiny_images
    base = dict(backbone_kwargs=TINY_CNN, max_epochs=2, random_state=0)
    plain = TransferClassifier("cnn", **base).fit(X, y)
    tta = TransferClassifier("cnn", tta="flip_translate", **base).fit(X, y)
    padded = np.pad(X, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")  # 1 px of 8
    moved = [padded[:, :8, :8], padded[:, 2:, 2:]]
    views = [X, *moved]
    views += [np.ascontiguousarray(v[:, :, ::-1]) for v in views]
    expected = np.mean([plain.predict_proba(np.ascontiguousarray(v)) for v in views], axis=0)
    np.testing.assert_allclose(tta.predict_proba(X), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, TransferClassifier("cnn", tta=True, **base)
                           .fit(X, y).predict_proba(X))


def test_tta_mode_is_validated(tiny_images):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = tiny_images
    with pytest.raises(InvalidParameterError, match="tta"):
        TransferClassifier("cnn", tta="rotate", max_epochs=1).fit(X, y)


def test_tta_takes_numpy_booleans(tiny_images):
    """A grid over ``np.array([True, False])`` hands numpy booleans: same as True."""
    X, y = tiny_images
    base = dict(backbone_kwargs=TINY_CNN, max_epochs=1, random_state=0)
    np.testing.assert_allclose(
        TransferClassifier("cnn", tta=np.True_, **base).fit(X, y).predict_proba(X),
        TransferClassifier("cnn", tta=True, **base).fit(X, y).predict_proba(X))


def test_tta_flip_translate_refuses_one_pixel_images():
    import torch

    from sktransfer.augment import tta_views

    with pytest.raises(ValueError, match="at least 2 x 2"):
        for view in tta_views("flip_translate"):
            view(torch.zeros(1, 3, 1, 5))


def test_a_model_saved_for_cuda_loads_onto_the_cpu_when_asked(tmp_path, blobs):
    import json

    import torch

    from sktransfer.persist import _digest

    X, y = blobs
    clf = TransferClassifier(**FAST).fit(X, y)
    path = sktransfer.save(clf, tmp_path / "model.skt")
    payload = torch.load(path, weights_only=True)  # as save writes it on a GPU machine
    doc = json.loads(payload["json"])
    doc["params"]["device"], doc["params"]["mixed_precision"] = "cuda", "fp16"
    payload["json"] = json.dumps(doc)
    payload["sha256"] = _digest(payload["json"], payload["tensors"])
    torch.save(payload, path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="saved with device='cuda'.*device='cpu'"):
            sktransfer.load(path)
    loaded = sktransfer.load(path, device="cpu")  # was impossible without a GPU
    assert loaded.device == "cpu" and loaded.mixed_precision == "auto"
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    if not torch.cuda.is_available():  # saved on a GPU machine with the default device
        doc["params"]["device"] = "auto"
        payload["json"] = json.dumps(doc)
        payload["sha256"] = _digest(payload["json"], payload["tensors"])
        torch.save(payload, path)
        assert sktransfer.load(path).mixed_precision == "auto"  # was "fp16 needs CUDA"
