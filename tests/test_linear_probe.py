"""head_solver="lbfgs": an exact linear probe on a frozen backbone's cached embeddings."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sktransfer import TransferClassifier
from sktransfer._linear_probe import fit_linear_probe


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4,
                               n_redundant=0, n_classes=3, random_state=0)
    # features on very different scales: the probe standardises them
    return (X * np.array([1, 10, 100, 0.1, 1, 5])).astype(np.float32), y


def _probe(**params):
    # a parameter-free module as the frozen backbone: its embeddings are the columns
    params = {"backbone": nn.Identity(), "freeze": "backbone", **params}
    return TransferClassifier(params.pop("backbone"), head_solver="lbfgs", random_state=0,
                              **params)


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_lbfgs_head_is_logistic_regression_on_standardised_embeddings(data, C):
    X, y = data
    clf = _probe(head_C=C).fit(X, y)
    ref = make_pipeline(StandardScaler(),
                        LogisticRegression(C=C, tol=1e-10, max_iter=10_000)).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=2e-3)
    assert clf.feature_cache_used_
    assert len(clf.history_) == 1 and clf.history_["train_loss"].notna().all()


def test_smaller_C_regularises_more(data):
    X, y = data
    norms = [np.linalg.norm(_probe(head_C=C).fit(X, y).net_.module_.head[-1].weight
                            .detach().numpy()) for C in (0.01, 1.0)]
    assert norms[0] < norms[1] / 5


def test_lbfgs_ignores_lr_and_epochs(data):
    X, y = data
    a = _probe(lr=1e-5, max_epochs=1).fit(X, y).predict_proba(X)
    b = _probe(lr=1.0, max_epochs=50).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_sample_weight_counts_in_the_probe(data):
    X, y = data
    w = np.where(y == 0, 10.0, 1.0)
    plain = _probe(head_C=0.05).fit(X, y).predict_proba(X)[:, 0].mean()
    weighted = _probe(head_C=0.05).fit(X, y, sample_weight=w).predict_proba(X)[:, 0].mean()
    assert weighted > plain + 0.02


@pytest.mark.filterwarnings("ignore:freeze='.*' keeps layers")
@pytest.mark.parametrize("params, message", [
    ({"head": (8,)}, "linear head only"),
    ({"validation_fraction": 0.2}, "no epochs to validate"),
    ({"early_stopping": 3}, "no epochs to validate"),
    ({"freeze": "none", "backbone": "mlp"}, "cached embeddings"),
    ({"freeze": "last:2", "backbone": "mlp"}, "cached embeddings"),
    ({"freeze": "gradual", "backbone": "mlp", "max_epochs": 8, "cache_features": False},
     "cached embeddings"),
])
def test_lbfgs_refuses_fits_it_does_not_solve(data, params, message):
    X, y = data
    with pytest.raises(ValueError, match=message):
        _probe(**params).fit(X, y)


def test_lbfgs_refuses_warm_start_and_partial_fit(data):
    X, y = data
    clf = _probe(warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="one solve"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="one solve"):
        _probe().partial_fit(X, y, classes=np.unique(y))


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_head_C_must_be_positive(data, bad):
    X, y = data
    with pytest.raises(InvalidParameterError, match="head_C"):
        _probe(head_C=bad).fit(X, y)


def test_fit_linear_probe_folds_the_scaling_into_the_layer():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=gen) * torch.tensor([1.0, 50.0, 0.01, 3.0]) + 7.0
    noise = torch.randn(60, generator=gen)  # overlapping classes: a finite optimum
    score = x[:, 0] + x[:, 1] / 50 + noise
    y = (score > 6.5).long() + (score > 7.5).long()  # three classes: both softmax models
    head = nn.Linear(4, 3)
    stats = fit_linear_probe(head, x, y, C=10.0)
    assert stats["train_acc"] > 0.5  # chance: 1/3
    z = (x - x.mean(0)) / x.std(0, unbiased=False)
    ref = LogisticRegression(C=10.0, tol=1e-10, max_iter=10_000).fit(z.numpy(), y.numpy())
    np.testing.assert_allclose(torch.softmax(head(x), 1).detach().numpy(),
                               ref.predict_proba(z.numpy()), atol=2e-3)


@pytest.mark.filterwarnings("ignore:freeze='.*' keeps layers")
def test_lbfgs_solves_the_head_stage_of_lp_ft_then_fine_tunes(data):
    """LP-FT as Kumar et al. run it: the probe solved exactly, then every layer trains."""
    X, y = data
    common = dict(backbone="mlp", backbone_kwargs={"hidden": (16,)})
    probe = _probe(**common).fit(X, y)
    lpft = _probe(**common, freeze="gradual:2", max_epochs=6).fit(X, y)
    history = lpft.history_
    # one row for the solve (the same solution as the plain probe), then 6 - 2 epochs
    assert len(history) == 1 + 4
    assert history["train_loss"].iloc[0] == pytest.approx(probe.history_["train_loss"].iloc[0],
                                                          rel=1e-4)
    assert [s["epochs_run"] for s in lpft.stages_] == [1, 4]
    assert lpft.stages_[0]["cached_features"]
    # the fine-tuning stage moved the backbone away from the probe's frozen one
    moved = [not torch.equal(a, b) for a, b in zip(
        lpft.net_.module_.backbone.parameters(), probe.net_.module_.backbone.parameters())]
    assert any(moved)


@pytest.fixture(scope="module")
def images():
    rng = np.random.RandomState(0)
    y = np.arange(24) % 2
    X = rng.randint(0, 256, (24, 16, 16, 3)).astype(np.uint8)
    X[y == 1, :8] //= 3  # a darker top half: something to learn
    return X, y


@pytest.mark.filterwarnings("ignore:freeze='.*' keeps layers")
@pytest.mark.parametrize("mixing", [{}, {"mixup": 0.4}])
def test_lp_ft_probe_is_solved_on_clean_images_then_fine_tuning_augments(images, mixing):
    """The LP of LP-FT is the probe of the images as given (Kornblith et al. fit probes
    so); augmentation and mixing act in the fine-tuning epochs, which they change."""
    X, y = images
    common = dict(backbone="cnn", image_size=16, head_solver="lbfgs", random_state=0,
                  batch_size=8)
    probe = TransferClassifier(freeze="backbone", **common).fit(X, y)
    plain = TransferClassifier(freeze="gradual:1", max_epochs=3, **common).fit(X, y)
    augmented = TransferClassifier(freeze="gradual:1", max_epochs=3, augment="flip_crop",
                                   **mixing, **common).fit(X, y)
    assert augmented.stages_[0]["cached_features"]
    assert augmented.history_["train_loss"].iloc[0] == pytest.approx(
        probe.history_["train_loss"].iloc[0], rel=1e-4)
    assert len(augmented.history_) == 1 + 2
    assert augmented.history_["train_loss"].iloc[1] != pytest.approx(
        plain.history_["train_loss"].iloc[1], rel=1e-6)


@pytest.mark.parametrize("mixing", [{"augment": "flip_crop"}, {"mixup": 0.4}])
def test_lbfgs_on_a_frozen_backbone_refuses_augmentation(images, mixing):
    """With ``freeze="backbone"`` augmentation would have nothing to act on: refused."""
    X, y = images
    with pytest.raises(ValueError, match="without augmentation or mixing"):
        TransferClassifier("cnn", freeze="backbone", image_size=16, head_solver="lbfgs",
                           **mixing).fit(X, y)
