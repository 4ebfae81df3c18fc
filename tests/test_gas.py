"""The gas experiment's preprocessing option, defaults and source model."""

import numpy as np
import pytest

from sktransfer.experiments import run_gas
from sktransfer.experiments.gas import GAS_FINE_TUNE, fine_tune_ensemble, pretrain_source
from sktransfer.preprocessing import preprocess_gas

TINY = {"epochs": 2, "source_epochs": 2, "hidden": (16,), "repeats": 1}


def _drifting_gas(seed=0):
    """Three batches of a 3-class problem; each later batch scaled and shifted."""
    rng = np.random.RandomState(seed)
    centres = rng.normal(0, 3, (3, 6))
    X, y, batch = [], [], []
    for b, (scale, shift) in enumerate([(1, 0), (5, 40), (0.2, -30)], start=1):
        labels = np.arange(60) % 3
        X.append((centres[labels] + rng.normal(0, 0.5, (60, 6))) * scale + shift)
        y.append(labels)
        batch.append(np.full(60, b))
    return np.vstack(X), np.concatenate(y), np.concatenate(batch)


def test_run_gas_records_and_applies_preprocessing():
    X, y, batch = _drifting_gas()
    res = run_gas(X, y, batch, [1], [2], strategies="scratch,source-only", **TINY)
    assert res.settings["preprocessing"] == "batch"
    assert res.settings["validation_fraction"] is None
    raw = run_gas(X, y, batch, [1], [2], strategies="source-only", preprocessing="none",
                  **TINY)
    assert raw.settings["preprocessing"] == "none"
    with pytest.raises(ValueError, match="unknown preprocessing"):
        run_gas(X, y, batch, [1], [2], preprocessing="zscore", **TINY)


def test_per_batch_standardisation_undoes_an_affine_drift():
    # A source model meets the drifted batch on its own scale only after per-batch
    # standardisation: measured through the source-only row.
    X, y, batch = _drifting_gas()
    scores = {}
    for prep in ("none", "batch"):
        res = run_gas(X, y, batch, [1], [2, 3], strategies="source-only",
                      preprocessing=prep, epochs=2, source_epochs=30, hidden=(16,),
                      repeats=1)
        scores[prep] = res.table["accuracy_mean"].to_numpy()
    assert np.all(scores["batch"] > 0.8), scores
    assert np.all(scores["none"] < scores["batch"] - 0.2), scores


def test_pretrain_source_exports_a_backbone_for_the_target():
    X, y, batch = _drifting_gas()
    Z = preprocess_gas(X, batch, "batch")
    src = pretrain_source(Z[batch == 1], y[batch == 1], hidden=(8,), epochs=3)
    backbone = src.export_backbone()
    assert backbone.input_shape == (6,)
    assert set(GAS_FINE_TUNE) == {"max_epochs", "batch_size", "lr", "validation_fraction"}


def test_pretrain_source_uses_more_dropout_than_the_mlp_default():
    X, y, batch = _drifting_gas()
    src = pretrain_source(X[batch == 1], y[batch == 1], hidden=(8,), epochs=1)
    assert src.export_backbone().kwargs["dropout"] == 0.3
    less = pretrain_source(X[batch == 1], y[batch == 1], hidden=(8,), epochs=1, dropout=0.0)
    assert less.export_backbone().kwargs["dropout"] == 0.0
    res = run_gas(X, y, batch, [1], [2], strategies="fine-tune", source_dropout=0.1, **TINY)
    assert res.settings["source_dropout"] == 0.1


def test_fine_tune_ensemble_strategy_is_a_fine_tune_row():
    X, y, batch = _drifting_gas()
    res = run_gas(X, y, batch, [1], [2], strategies="fine-tune,fine-tune-ensemble",
                  ensemble=2, **TINY)
    rows = res.table.set_index("model")["strategy"]
    assert rows["mlp-fine-tune-ensemble"] == "fine-tune"
    assert rows["mlp-fine-tune"] == "fine-tune"
    assert res.settings["ensemble"] == 2
    with pytest.raises(ValueError, match="ensemble must be"):
        run_gas(X, y, batch, [1], [2], strategies="fine-tune-ensemble", ensemble=0, **TINY)


def test_fine_tune_ensemble_soft_votes_one_member_per_backbone():
    X, y, batch = _drifting_gas()
    Z = preprocess_gas(X, batch, "batch")
    backbones = [pretrain_source(Z[batch == 1], y[batch == 1], hidden=(8,), epochs=2,
                                 seed=k).export_backbone() for k in range(3)]
    model = fine_tune_ensemble(backbones, seed=5, max_epochs=2)
    seeds = [m.random_state for _, m in model.estimators]
    assert seeds == [5, 6, 7] and model.voting == "soft"
    model.fit(Z[batch == 2], y[batch == 2])
    members = np.mean([m.predict_proba(Z[batch == 3]) for m in model.estimators_], axis=0)
    np.testing.assert_allclose(model.predict_proba(Z[batch == 3]), members, rtol=1e-6)
    with pytest.raises(ValueError, match="at least one backbone"):
        fine_tune_ensemble([])


def test_the_ensemble_runs_only_when_asked():
    from sktransfer.experiments.gas import GAS_DEFAULT_STRATEGIES, GAS_STRATEGIES

    assert set(GAS_STRATEGIES) - set(GAS_DEFAULT_STRATEGIES) == {"fine-tune-ensemble"}
    X, y, batch = _drifting_gas()
    res = run_gas(X, y, batch, [1], [2], label_fraction=0.5, **TINY)
    assert "mlp-fine-tune-ensemble" not in set(res.table["model"])
    assert res.settings["ensemble"] is None
