"""TransferRegressor: continuous targets through the same backbones, policies and cache."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.model_selection import KFold, cross_val_score

from sktransfer import TransferClassifier, TransferRegressor

FAST = {"max_epochs": 20, "lr": 1e-2, "random_state": 0, "backbone_kwargs": {"hidden": (16,)}}


def test_learns_a_linear_target_in_its_own_units():
    rng = np.random.RandomState(0)
    X = rng.rand(200, 4)
    y = 1000.0 * X[:, 0] - 500.0 * X[:, 1] + 3000.0  # far from unit scale
    reg = TransferRegressor(**FAST).fit(X, y)
    assert reg.score(X, y) > 0.9
    assert abs(reg.predict(X).mean() - y.mean()) < 0.05 * y.std()
    assert reg.predict(X).shape == (200,)
    np.testing.assert_allclose(reg.y_mean_, [y.mean()])


def test_a_target_of_tiny_scale_is_standardised_like_any_other():
    rng = np.random.RandomState(0)
    X = rng.rand(200, 4)
    y = 1000.0 * X[:, 0] - 500.0 * X[:, 1] + 3000.0
    big = TransferRegressor(**FAST).fit(X, y)
    tiny = TransferRegressor(**FAST).fit(X, y * 1e-16)  # was left unscaled: R^2 -1e22
    np.testing.assert_allclose(tiny.y_scale_, big.y_scale_ * 1e-16)
    assert tiny.score(X, y * 1e-16) == pytest.approx(big.score(X, y), abs=1e-4)
    constant = TransferRegressor(**FAST).fit(X, np.full(200, 7.0))
    assert constant.y_scale_[0] == 1.0  # a constant target is not divided by zero


def test_multioutput_targets_keep_their_columns():
    rng = np.random.RandomState(0)
    X = rng.rand(150, 3)
    Y = np.c_[X[:, 0] * 10, X[:, 1] * -3 + 7]
    reg = TransferRegressor(**FAST).fit(X, Y)
    assert reg.n_outputs_ == 2
    assert reg.predict(X).shape == (150, 2)
    assert reg.score(X, Y) > 0.8


def test_sample_weight_zero_rows_do_not_count():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 2)
    y = X[:, 0].copy()
    y[:60] += 100.0  # outliers that weight 0 must hide
    w = np.r_[np.zeros(60), np.ones(60)]
    reg = TransferRegressor(**FAST).fit(X, y, sample_weight=w)
    assert np.abs(reg.predict(X[60:]) - y[60:]).mean() < 5.0


def test_transfer_from_a_classifier_backbone_and_a_frozen_cache():
    rng = np.random.RandomState(0)
    X = rng.rand(120, 6)
    src = TransferClassifier(**FAST).fit(X, (X[:, 0] > 0.5).astype(int))
    reg = TransferRegressor(src.export_backbone(), freeze="backbone", **FAST).fit(X, X[:, 0])
    assert reg.feature_cache_used_
    assert reg.score(X, X[:, 0]) > 0.5


def test_warm_start_and_partial_fit_continue():
    rng = np.random.RandomState(0)
    X = rng.rand(80, 3)
    y = X.sum(axis=1)
    reg = TransferRegressor(warm_start=True, **{**FAST, "max_epochs": 2}).fit(X, y)
    reg.fit(X, y)
    assert len(reg.history_) == 4
    part = TransferRegressor(**FAST)
    for _ in range(3):
        part.partial_fit(X, y)
    assert len(part.history_) == 3


def test_clone_keeps_parameters_not_fit():
    reg = TransferRegressor(**FAST).fit(np.random.rand(30, 2), np.random.rand(30))
    fresh = clone(reg)
    assert not hasattr(fresh, "net_")
    assert fresh.get_params() == reg.get_params()


def test_non_numeric_target_is_a_clear_error():
    with pytest.raises(ValueError, match="could not convert|numeric|float"):
        TransferRegressor(**FAST).fit(np.random.rand(10, 2), np.array(["a", "b"] * 5))


def test_diabetes_matches_a_linear_baseline():
    """scikit-learn's embedded diabetes data: a small MLP is on a par with ridge."""
    X, y = load_diabetes(return_X_y=True)
    cv = KFold(3, shuffle=True, random_state=0)
    reg = TransferRegressor(max_epochs=30, lr=3e-3, backbone_kwargs={"hidden": (32,)},
                            random_state=0, device="cpu")
    assert cross_val_score(reg, X, y, cv=cv).mean() > 0.4


def test_early_stopping_validates_on_a_random_hold_out():
    rng = np.random.RandomState(0)
    X = rng.rand(100, 3)
    reg = TransferRegressor(early_stopping=3, **FAST).fit(X, X[:, 0] * 7.0)
    assert "valid_loss" in reg.history_.columns
    assert "valid_acc" not in reg.history_.columns


def test_compare_scratch_and_transferred_on_a_real_gas_target():
    """Real data (the embedded gas batches): a virtual sensor. Sensor 1's response is
    predicted from the other 15 sensors; a source model pretrained on batches 1-3 is
    fine-tuned on 20% of batch 5, months of drift later, and compared in compare()."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import ShuffleSplit

    from sktransfer import compare
    from sktransfer.datasets import load_gas_drift

    gas = load_gas_drift()
    X, y = gas.data[:, 8:], np.log(np.abs(gas.data[:, 0]) + 1.0)
    src = gas.batch <= 3
    kw = {"max_epochs": 40, "lr": 1e-3, "random_state": 0, "device": "cpu"}
    pretrained = TransferRegressor(**kw).fit(X[src], y[src])
    rows = gas.batch == 5
    result = compare(
        {"scratch": TransferRegressor(**kw),
         "fine-tune": TransferRegressor(pretrained.export_backbone(), **kw),
         "source-only": FrozenEstimator(pretrained)},
        X[rows], y[rows], cv=ShuffleSplit(1, train_size=0.2, random_state=0),
        progress=False,
    )
    table = result.table.set_index("model")
    assert list(result.metrics) == ["r2", "neg_mean_absolute_error",
                                    "neg_root_mean_squared_error"]
    assert table.loc["scratch", "strategy"] == "scratch"
    assert table.loc["fine-tune", "strategy"] == "fine-tune"
    assert table.loc["fine-tune", "r2_mean"] > 0.9
    assert table.loc["fine-tune", "r2_mean"] >= table.loc["scratch", "r2_mean"] - 0.02


def test_compare_refuses_a_mix_of_tasks(blobs):
    from sklearn.linear_model import LogisticRegression

    from sktransfer import compare

    X, y = blobs
    with pytest.raises(ValueError, match="mixes regressors and classifiers"):
        compare({"r": TransferRegressor(), "c": LogisticRegression()}, X, y, cv=2)
