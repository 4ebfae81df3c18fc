"""The frozen-feature cache: exact where it applies, bypassed where it would not be."""

import logging

import numpy as np
import pytest
import torch
from conftest import FAST, TINY_CNN
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier
from sktransfer.cache import FeatureCache, clear_cache, get_cache


@pytest.fixture(autouse=True)
def empty_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def exported(blobs):
    X, y = blobs
    return TransferClassifier(**FAST).fit(X, y).export_backbone()


@pytest.fixture(scope="module")
def exported_cnn(tiny_images):
    X, y = tiny_images
    return TransferClassifier("cnn", backbone_kwargs=TINY_CNN, max_epochs=2,
                              random_state=0).fit(X, y).export_backbone()


@pytest.mark.parametrize("data", ["tabular", "images"])
def test_cached_and_uncached_training_give_the_same_model(data, blobs, tiny_images, exported,
                                                          exported_cnn):
    X, y = blobs if data == "tabular" else tiny_images
    backbone = exported if data == "tabular" else exported_cnn
    params = dict(backbone=backbone, freeze="backbone", head=(8,), max_epochs=6, lr=1e-2,
                  random_state=0, validation_fraction=0.2)
    cached = TransferClassifier(**params).fit(X, y)
    plain = TransferClassifier(**params, cache_features=False).fit(X, y)
    assert cached.feature_cache_used_ and not plain.feature_cache_used_
    np.testing.assert_array_equal(cached.predict(X), plain.predict(X))
    np.testing.assert_allclose(cached.predict_proba(X), plain.predict_proba(X), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(cached.history_["train_loss"], plain.history_["train_loss"],
                               rtol=1e-4)
    np.testing.assert_allclose(cached.transform(X), plain.transform(X), rtol=1e-5, atol=1e-6)


def test_clones_share_the_cache_and_find_subsets(blobs, exported):
    X, y = blobs
    cache = get_cache()
    clf = TransferClassifier(exported, freeze="backbone", max_epochs=1)
    clone(clf).fit(X, y)
    assert cache.misses == len(X) and cache.hits == 0
    clone(clf).fit(X[::2], y[::2])  # a fold: a subset of the same rows
    assert cache.misses == len(X) and cache.hits == len(X[::2])


def test_gridsearch_computes_each_rows_features_once(blobs, exported):
    X, y = blobs
    cache = get_cache()
    GridSearchCV(TransferClassifier(exported, freeze="backbone", max_epochs=2),
                 {"lr": [1e-3, 1e-2], "head": ["linear", (8,)]}, cv=3).fit(X, y)
    assert cache.misses == len(X)  # 4 candidates x 3 folds x (fit + score) + refit
    assert cache.hits > 10 * len(X)


def test_key_depends_on_the_weights_and_the_input_bytes(blobs, exported):
    X, y = blobs
    cache = get_cache()
    TransferClassifier(exported, freeze="backbone", max_epochs=1).fit(X, y)
    other = TransferClassifier(**{**FAST, "random_state": 1}).fit(X, y).export_backbone()
    TransferClassifier(other, freeze="backbone", max_epochs=1).fit(X, y)
    assert cache.misses == 2 * len(X)
    X2 = X.copy()
    X2[0, 0] += 1.0  # (a change float32 cannot see would rightly hit)
    TransferClassifier(exported, freeze="backbone", max_epochs=1).fit(X2, y)
    assert cache.misses == 2 * len(X) + 1


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"freeze": "none"}, "trains backbone layers"),
        ({"freeze": "last:2"}, "trains backbone layers"),
        # "gradual" now trains its head stage on cached features: tests/test_fine_tuning.py
        ({"freeze": "backbone", "augment": True}, "augment=True"),
    ],
)
def test_bypassed_with_the_reason_in_the_log(tiny_images, exported_cnn, caplog, params,
                                             reason):
    X, y = tiny_images
    with caplog.at_level(logging.INFO, logger="sktransfer"):
        clf = TransferClassifier(exported_cnn, max_epochs=1, **params).fit(X, y)
    assert not clf.feature_cache_used_
    assert "feature cache bypassed: " in caplog.text and reason in caplog.text
    assert len(get_cache()) == 0
    with pytest.warns(UserWarning, match=reason):
        TransferClassifier(exported_cnn, max_epochs=1, cache_features=True, **params).fit(X, y)


def test_disabled_cache_stores_nothing(blobs, exported):
    X, y = blobs
    TransferClassifier(exported, freeze="backbone", max_epochs=1, cache_features=False).fit(X, y)
    assert len(get_cache()) == 0


def test_memory_is_bounded_least_recently_used_out():
    cache = FeatureCache(max_bytes=10 * 4 * 4)  # ten rows of 4 float32
    keys = [bytes([i]) for i in range(15)]
    cache.get_many("b", keys, lambda idx: torch.arange(len(idx) * 4.0).view(-1, 4))
    assert len(cache) == 10 and cache.nbytes <= cache.max_bytes
    cache.get_many("b", keys[-10:], lambda idx: pytest.fail("should be cached"))
    cache.get_many("b", keys[:1], lambda idx: torch.zeros(len(idx), 4))
    assert cache.misses == 16 and len(cache) == 10


def test_disk_directory_outlives_memory(blobs, exported, tmp_path):
    X, y = blobs
    params = dict(backbone=exported, freeze="backbone", max_epochs=1, cache_dir=str(tmp_path),
                  random_state=0)
    first = TransferClassifier(**params).fit(X, y)
    assert len(list(tmp_path.rglob("*.npy"))) == len(X)
    clear_cache()  # a new process, as far as memory goes
    again = TransferClassifier(**params).fit(X, y)
    assert get_cache().misses == 0 and get_cache().hits == len(X)
    np.testing.assert_array_equal(first.predict(X), again.predict(X))


def test_joblib_memory_as_cache_dir(blobs, exported, tmp_path):
    from joblib import Memory

    X, y = blobs
    TransferClassifier(exported, freeze="backbone", max_epochs=1,
                       cache_dir=Memory(tmp_path, verbose=0)).fit(X, y)
    assert len(list(tmp_path.rglob("*.npy"))) == len(X)


def test_image_paths_are_keyed_by_file(tiny_images, exported_cnn, tmp_path):
    from PIL import Image

    X, y = tiny_images
    paths = []
    for i, img in enumerate(X):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    P = np.array(paths, dtype=object).reshape(-1, 1)
    clf = TransferClassifier(exported_cnn, freeze="backbone", max_epochs=1).fit(P, y)
    assert clf.feature_cache_used_ and get_cache().misses == len(P)
    clf.predict(P)
    assert get_cache().hits == len(P)


def test_bf16_mixed_precision_path_runs_on_cpu(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 8}, mixed_precision="bf16").fit(X, y)
    assert clf.net_.amp_dtype == torch.bfloat16
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="fp16' needs CUDA"):
        TransferClassifier(**FAST, mixed_precision="fp16", device="cpu").fit(X, y)
    assert TransferClassifier(**FAST).fit(X, y).net_.amp_dtype is None  # auto on CPU
