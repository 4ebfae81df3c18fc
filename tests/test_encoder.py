"""PretrainedEncoder: a frozen backbone as an unsupervised transformer."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import PretrainedEncoder, TransferClassifier
from sktransfer.cache import clear_cache, get_cache

FAST = {"max_epochs": 5, "lr": 1e-2, "random_state": 0, "backbone_kwargs": {"hidden": (16,)}}


@pytest.fixture
def source(blobs):
    X, y = blobs
    return TransferClassifier(**FAST).fit(X, y)


def test_fit_needs_no_y_and_trains_nothing(source, blobs):
    X, _ = blobs
    exported = source.export_backbone()
    encoder = PretrainedEncoder(exported).fit(X)
    before = {k: v.clone() for k, v in encoder.backbone_.state_dict().items()}
    Z = encoder.transform(X)
    assert Z.shape == (len(X), 16) and Z.dtype == np.float32
    np.testing.assert_allclose(Z, source.transform(X), rtol=1e-5, atol=1e-6)
    after = encoder.backbone_.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in encoder.backbone_.parameters())


def test_pandas_output_and_feature_names(source, blobs):
    X, _ = blobs
    encoder = PretrainedEncoder(source.export_backbone()).set_output(transform="pandas")
    frame = encoder.fit_transform(X)
    assert list(frame.columns) == [f"pretrainedencoder{i}" for i in range(16)]
    assert list(encoder.get_feature_names_out()) == list(frame.columns)


def test_in_a_grid_search_each_row_is_embedded_once(source, blobs):
    X, y = blobs
    clear_cache()
    pipe = make_pipeline(PretrainedEncoder(source.export_backbone()), LogisticRegression())
    GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
    cache = get_cache()
    assert cache.misses == len(X)  # every later fold and candidate is a cache hit
    assert cache.hits > 0


def test_random_weights_warn(blobs):
    X, _ = blobs
    with pytest.warns(UserWarning, match="randomly initialised"):
        PretrainedEncoder("mlp", weights=None).fit(X)


def test_input_form_must_match_fit(source, blobs, tiny_images):
    X, _ = blobs
    encoder = PretrainedEncoder(source.export_backbone()).fit(X)
    with pytest.raises(ValueError, match="features|tabular|image"):
        encoder.transform(tiny_images[0])


def test_images_through_a_real_pretrained_backbone(tiny_images):
    X, _ = tiny_images
    encoder = PretrainedEncoder("efficientnet_lite0", image_size=32, device="cpu").fit(X[:2])
    Z = encoder.transform(X[:4])
    assert Z.shape == (4, 1280) and np.isfinite(Z).all()


@pytest.mark.realdata
def test_monkey_photos_linear_probe(shared_data):
    """Real photos: ImageNet embeddings + logistic regression tell the species apart."""
    from sklearn.model_selection import train_test_split

    from sktransfer.datasets import fetch_monkeys

    bunch = fetch_monkeys(data_home=shared_data, subset="training", as_paths=True,
                           verbose=0)
    paths, y = np.asarray(bunch.filenames).reshape(-1), np.asarray(bunch.target)
    idx = np.concatenate([np.where(y == c)[0][:12] for c in range(3)])
    X_tr, X_te, y_tr, y_te = train_test_split(paths[idx], y[idx], test_size=0.5,
                                              stratify=y[idx], random_state=0)
    pipe = make_pipeline(PretrainedEncoder(image_size=160, device="cpu"),
                         LogisticRegression(max_iter=2000))
    assert pipe.fit(X_tr, y_tr).score(X_te, y_te) >= 0.8
