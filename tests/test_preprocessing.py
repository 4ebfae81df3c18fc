"""Preprocessing for drifting tabular data: signed log and per-domain standardisation."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from sktransfer.baselines import make_baseline
from sktransfer.preprocessing import (
    PREPROCESSING,
    SignedLog,
    preprocess_gas,
    sensor_pattern,
    signed_log,
    standardize_by_group,
)


def test_signed_log_keeps_sign_and_order():
    x = np.array([[-1e5, -1.0, 0.0, 0.5, 1e5]])
    out = signed_log(x)
    assert out[0, 2] == 0.0
    np.testing.assert_allclose(out[0, 0], -out[0, 4])
    assert np.all(np.diff(out[0]) > 0)
    assert out.max() < 12  # heavy tail tamed


def test_signed_log_transformer_is_a_sklearn_transformer():
    check_estimator(SignedLog())
    t = clone(SignedLog()).fit(np.ones((3, 2)))
    assert t.n_features_in_ == 2
    assert list(t.get_feature_names_out(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match="features"):
        t.transform(np.ones((2, 3)))


def test_standardize_by_group_uses_each_groups_own_statistics():
    rng = np.random.RandomState(0)
    a = rng.normal(0, 1, (50, 3))
    b = rng.normal(100, 20, (40, 3))  # the same data, drifted
    X = np.vstack([a, b])
    groups = np.r_[np.zeros(50), np.ones(40)]
    Z = standardize_by_group(X, groups)
    for g in (0, 1):
        np.testing.assert_allclose(Z[groups == g].mean(0), 0, atol=1e-12)
        np.testing.assert_allclose(Z[groups == g].std(0), 1, atol=1e-12)


def test_standardize_by_group_constant_column_and_errors():
    X = np.array([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(standardize_by_group(X, [0, 0])[:, 1], 0)
    with pytest.raises(ValueError, match="one entry per row"):
        standardize_by_group(X, [0])
    with pytest.raises(ValueError, match="single row"):
        standardize_by_group(X, [0, 1])


def test_preprocess_gas_options():
    rng = np.random.RandomState(1)
    X = np.abs(rng.normal(0, 1000, (20, 4)))
    groups = np.repeat([1, 2], 10)
    np.testing.assert_allclose(preprocess_gas(X, groups, "none"), X)
    np.testing.assert_allclose(preprocess_gas(X, groups, "log"), signed_log(X))
    np.testing.assert_allclose(preprocess_gas(X, groups, "batch"),
                               standardize_by_group(X, groups))
    np.testing.assert_allclose(preprocess_gas(X, groups, "log+batch"),
                               standardize_by_group(signed_log(X), groups))
    assert set(PREPROCESSING) == {"none", "log", "batch", "log+batch", "pattern+batch",
                                  "batch,pattern+batch"}
    with pytest.raises(ValueError, match="preprocessing"):
        preprocess_gas(X, groups, "zscore")


def test_baselines_take_the_same_preprocessing():
    X = np.abs(np.random.RandomState(0).normal(0, 1000, (60, 3)))
    y = np.arange(60) % 2
    pipe = make_baseline("random_forest", random_state=0, preprocessing=SignedLog())
    assert [name for name, _ in pipe.steps][:2] == ["signedlog", "standardscaler"]
    assert pipe.fit(X, y).score(X, y) > 0.9
    tuned = make_baseline("svm_rbf", random_state=0).fit(X, y)
    assert set(tuned[-1].best_params_) == {"C", "gamma"}
    assert make_pipeline(SignedLog()).fit_transform(X).shape == X.shape


def test_sensor_pattern_removes_concentration_per_feature_type():
    from sktransfer.preprocessing import sensor_pattern

    rng = np.random.RandomState(0)
    X = rng.normal(size=(5, 16 * 8))
    P = sensor_pattern(X)
    blocks = P.reshape(5, 16, 8)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=1), 1.0)
    # the same pattern at another concentration (per feature type) maps to the same point
    scale = np.tile(rng.uniform(0.1, 10, 8), 16)
    np.testing.assert_allclose(sensor_pattern(X * scale[None] * 3.0), P)
    assert np.all(sensor_pattern(np.zeros((2, 32)), n_sensors=16) == 0)
    with pytest.raises(ValueError, match="multiple of n_sensors"):
        sensor_pattern(np.ones((2, 10)), n_sensors=16)
    Z = preprocess_gas(X, np.repeat([1, 2], [2, 3]), "pattern+batch")
    np.testing.assert_allclose(Z[:2].mean(axis=0), 0, atol=1e-9)


def test_two_views_side_by_side():
    """``"batch,pattern+batch"``: the standardised readings, then the standardised pattern;
    each row at its own concentration changes the first view, not the second."""
    rng = np.random.RandomState(0)
    X = np.abs(rng.normal(1, 1, (12, 32)))
    groups = np.repeat([1, 2], 6)
    Z = preprocess_gas(X, groups, "batch,pattern+batch")
    assert Z.shape == (12, 64)
    np.testing.assert_allclose(Z[:, :32], preprocess_gas(X, groups, "batch"))
    np.testing.assert_allclose(Z[:, 32:], standardize_by_group(sensor_pattern(X), groups))
    concentrations = rng.uniform(0.2, 5.0, (12, 1))
    Zc = preprocess_gas(X * concentrations, groups, "batch,pattern+batch")
    np.testing.assert_allclose(Zc[:, 32:], Z[:, 32:], atol=1e-9)
    assert not np.allclose(Zc[:, :32], Z[:, :32])
