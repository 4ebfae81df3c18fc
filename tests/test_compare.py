"""compare(): the table, metrics, splits, strategies, histories and JSON of a comparison."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, make_classification
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import GradualUnfreeze, TransferClassifier
from sktransfer.compare import STRATEGIES, ComparisonResult, compare, infer_strategy
from sktransfer.experiments._common import torch_threads

TINY = {"backbone_kwargs": {"hidden": (16,)}, "max_epochs": 2, "random_state": 0}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def binary_data():
    return make_classification(240, n_features=8, class_sep=2.0, random_state=0)


def _logreg():
    return make_pipeline(StandardScaler(), LogisticRegression())


def test_table_ranks_models_and_has_the_documented_columns(binary_data):
    X, y = binary_data
    result = compare({"dummy": DummyClassifier(), "logreg": _logreg()}, X, y, cv=3)
    table = result.table
    assert table["model"].tolist() == ["dummy", "logreg"]
    assert table["strategy"].tolist() == ["baseline", "baseline"]
    expected = ["model", "strategy", "target"]
    for metric in ("accuracy", "balanced_accuracy", "f1_macro", "kappa"):
        expected += [f"{metric}_mean", f"{metric}_std"]
    assert list(table.columns[: len(expected)]) == expected
    for column in ("fit_time_s_mean", "predict_time_s_mean", "n_train", "n_test", "roc_auc_mean"):
        assert column in table
    dummy, logreg = table.set_index("model").loc[["dummy", "logreg"]].to_dict("records")
    assert dummy["balanced_accuracy_mean"] == pytest.approx(0.5)
    assert dummy["kappa_mean"] == pytest.approx(0.0)
    assert logreg["balanced_accuracy_mean"] > 0.85
    assert logreg["kappa_mean"] > 0.7
    assert logreg["roc_auc_mean"] > dummy["roc_auc_mean"]
    assert (table["n_splits"] == 3).all()
    assert (table["n_train"] + table["n_test"] == len(y)).all()
    assert result.winners()["best"].tolist() == ["logreg"]
    assert len(result.scores) == 6  # 2 models x 3 folds


def test_binary_metrics_are_named_after_the_classes(binary_data):
    X, y = binary_data
    result = compare({"logreg": _logreg()}, X, y, cv=2, class_names=["no gas", "Gas!"])
    assert result.metrics == [
        "accuracy", "balanced_accuracy", "f1_macro", "kappa",
        "precision_no_gas", "precision_gas", "recall_no_gas", "recall_gas", "roc_auc",
    ]
    row = result.rows[0]
    assert 0.8 < row["recall_gas"] <= 1.0


def test_multiclass_has_no_binary_metrics():
    X, y = load_iris(return_X_y=True)
    result = compare({"logreg": _logreg()}, X, y, cv=3)
    assert result.metrics == ["accuracy", "balanced_accuracy", "f1_macro", "kappa"]
    assert result.confusion[("logreg", None)]["matrix"].shape == (3, 3)
    assert result.confusion[("logreg", None)]["matrix"].sum() == len(y)


def test_scoring_list_restricts_and_dict_extends(binary_data):
    X, y = binary_data
    only = compare({"lr": _logreg()}, X, y, cv=2, scoring=["kappa", "roc_auc"])
    assert only.metrics == ["kappa", "roc_auc"]
    extra = compare({"lr": _logreg()}, X, y, cv=2,
                    scoring={"errors": lambda t, p: float(np.sum(t != p))})
    assert extra.metrics[-1] == "errors" and "accuracy" in extra.metrics
    with pytest.raises(ValueError, match="unknown metric"):
        compare({"lr": _logreg()}, X, y, cv=2, scoring=["accuracy", "auc"])
    with pytest.raises(ValueError, match="binary"):
        compare({"lr": _logreg()}, *load_iris(return_X_y=True), cv=2, scoring=["roc_auc"])


def test_test_set_and_precomputed_splits(binary_data):
    X, y = binary_data
    res = compare({"lr": _logreg()}, X[:200], y[:200], test=(X[200:], y[200:]))
    assert res.table.loc[0, "n_splits"] == 1
    assert res.table.loc[0, "n_train"] == 200 and res.table.loc[0, "n_test"] == 40
    assert res.settings["cv"] == "test set"
    splits = list(StratifiedShuffleSplit(4, train_size=0.1, random_state=0).split(X, y))
    res = compare({"lr": _logreg()}, X, y, cv=splits)
    assert res.table.loc[0, "n_splits"] == 4
    assert res.table.loc[0, "n_train"] == 24


def test_groups_are_passed_to_the_splitter(binary_data):
    X, y = binary_data
    groups = np.arange(len(y)) % 4
    res = compare({"lr": _logreg()}, X, y, cv=GroupKFold(4), groups=groups)
    assert res.table.loc[0, "n_test"] == len(y) // 4


def test_histories_for_neural_models_only(binary_data):
    X, y = binary_data
    res = compare({"mlp": TransferClassifier("mlp", **TINY), "lr": _logreg()}, X, y, cv=2)
    hist = res.histories
    assert set(hist["model"]) == {"mlp"}
    assert sorted(set(hist["split"])) == [0, 1]
    assert {"epoch", "train_loss", "train_acc"} <= set(hist.columns)
    assert "valid_loss" not in hist.columns  # nothing held out by default: all rows train
    assert len(hist) == 2 * 2  # 2 epochs x 2 folds
    strategies = dict(zip(res.table["model"], res.table["strategy"]))
    assert strategies == {"mlp": "scratch", "lr": "baseline"}


@pytest.fixture(scope="module")
def exported():
    X = np.random.RandomState(0).rand(40, 4)
    return TransferClassifier("mlp", **TINY).fit(X, np.arange(40) % 2).export_backbone()


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, "scratch"),
        ({"weights": "imagenet", "backbone": "efficientnet_lite0"}, "fine-tune"),
        ({"freeze": "backbone"}, "feature-extraction"),
        ({"freeze": "last:1"}, "last-1"),
        ({"freeze": "last:2"}, "last-2"),
        ({"freeze": "last:4"}, "fine-tune"),
        ({"freeze": "gradual"}, "gradual"),
        ({"freeze": GradualUnfreeze(head_epochs=2)}, "gradual"),
    ],
)
def test_infer_strategy(params, expected):
    assert infer_strategy(TransferClassifier(**params)) == expected


def test_infer_strategy_of_transferred_pipelines_and_baselines(exported):
    assert infer_strategy(TransferClassifier(exported)) == "fine-tune"
    assert infer_strategy(TransferClassifier(exported, freeze="backbone")) == "feature-extraction"
    assert infer_strategy(make_pipeline(StandardScaler(), TransferClassifier("mlp"))) == "scratch"
    assert infer_strategy(_logreg()) == "baseline"
    assert infer_strategy(DummyClassifier()) == "baseline"
    assert "source-only" in STRATEGIES


def test_strategies_are_validated(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="unknown strategy 'transfer'"):
        compare({"lr": _logreg()}, X, y, cv=2, strategies={"lr": "transfer"})
    with pytest.raises(ValueError, match="not compared"):
        compare({"lr": _logreg()}, X, y, cv=2, strategies={"other": "scratch"})
    with pytest.raises(ValueError, match="non-empty"):
        compare({}, X, y)


def test_source_only_models_are_used_as_given(binary_data):
    X, y = binary_data
    source = _logreg().fit(X[:100], y[:100])
    coef = source[-1].coef_.copy()
    res = compare({"source": source, "lr": _logreg()}, X[100:], y[100:], cv=2,
                  strategies={"source": "source-only"})
    row = res.table.set_index("model").loc["source"]
    assert row["strategy"] == "source-only"
    assert row["fit_time_s_mean"] == 0 and row["n_train"] == 0
    np.testing.assert_array_equal(source[-1].coef_, coef)


def test_concat_keeps_targets_apart(binary_data):
    X, y = binary_data
    parts = [compare({"dummy": DummyClassifier(), "lr": _logreg()}, X, y, cv=2, target=t)
             for t in ("batch 4", "batch 5")]
    res = ComparisonResult.concat(parts, experiment="two targets")
    assert res.table[["model", "target"]].values.tolist() == [
        ["dummy", "batch 4"], ["lr", "batch 4"], ["dummy", "batch 5"], ["lr", "batch 5"]]
    assert res.targets == ["batch 4", "batch 5"]
    assert set(res.confusion) == {(m, t) for m in ("dummy", "lr")
                                  for t in ("batch 4", "batch 5")}
    assert list(res.winners()["target"]) == ["batch 4", "batch 5"]
    assert set(res.settings["per_target"]) == {"batch 4", "batch 5"}


def test_json_rows_are_flat_and_round_trip(binary_data):
    X, y = binary_data
    res = compare({"lr": _logreg()}, X, y, cv=2, scoring={"nothing": lambda t, p: math.nan},
                  experiment="json", settings={"seed": np.int64(3), "shape": (2, 3)})
    doc = res.to_json()
    assert list(doc) == ["experiment", "settings", "rows"]
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text) == doc
    row = doc["rows"][0]
    assert row["model"] == "lr" and row["strategy"] == "baseline" and row["target"] is None
    assert row["nothing"] is None
    assert {"accuracy", "accuracy_std", "kappa", "f1_macro", "fit_time_s"} <= set(row)
    assert all(not isinstance(v, dict | list) for v in row.values())
    assert doc["settings"]["seed"] == 3 and doc["settings"]["shape"] == [2, 3]


def test_parallel_fits_match_sequential(binary_data):
    X, y = binary_data
    models = {"dummy": DummyClassifier(), "lr": _logreg()}
    seq = compare(models, X, y, cv=3)
    par = compare(models, X, y, cv=3, n_jobs=2)
    pd.testing.assert_frame_equal(
        seq.table.filter(like="accuracy"), par.table.filter(like="accuracy"))
