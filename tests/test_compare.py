"""compare(): the table, metrics, splits, strategies, histories and JSON of a comparison."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, make_classification
from sklearn.dummy import DummyClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer
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


def test_classes_whose_cleaned_names_collide_keep_their_own_columns(binary_data):
    X, y = binary_data
    signed = np.where(y == 1, 1, -1)  # "-1" and "1" both clean to "1"
    result = compare({"logreg": _logreg()}, X, signed, cv=2, progress=False)
    assert [m for m in result.metrics if m.startswith("precision")] == [
        "precision_-1", "precision_1"]
    assert {"recall_-1", "recall_1"} <= set(result.rows[0])
    assert result.confusion[("logreg", None)]["labels"] == ["-1", "1"]
    with pytest.raises(ValueError, match="several classes the name"):
        compare({"logreg": _logreg()}, X, y, cv=2, class_names=["gas", "gas"])


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
    errors = make_scorer(lambda t, p: float(np.sum(t != p)))
    extra = compare({"lr": _logreg()}, X, y, cv=2,
                    scoring={"errors": errors, "logloss": "neg_log_loss"})
    assert extra.metrics[-2:] == ["errors", "logloss"] and "accuracy" in extra.metrics
    row = extra.rows[0]
    assert row["errors"] >= 0 and row["logloss"] < 0  # sklearn's sign convention
    named = compare({"lr": _logreg()}, X, y, cv=2, scoring="f1_weighted")
    assert named.metrics == ["f1_weighted"]
    with pytest.raises(ValueError, match="scorer"):
        compare({"lr": _logreg()}, X, y, cv=2, scoring={"bad": 3})
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
        ({"freeze": GradualUnfreeze(head_epochs=0)}, "scratch"),  # every layer from the start
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


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_the_compared_models_parameters_are_validated(binary_data, n_jobs):
    X, y = binary_data
    with pytest.raises(ValueError, match="model 'bad': The 'max_epochs' parameter of "
                                         "TransferClassifier must be"):
        compare({"bad": TransferClassifier("mlp", max_epochs=0)}, X, y, cv=2,
                n_jobs=n_jobs, progress=False)  # was fitted untrained and scored
    with pytest.raises(ValueError, match="'C' parameter of LogisticRegression"):
        compare({"lr": LogisticRegression(C=-1.0)}, X, y, cv=2, progress=False)


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
    # a FrozenEstimator says the same without naming the strategy
    frozen = compare({"source": FrozenEstimator(source)}, X[100:], y[100:], cv=2)
    assert frozen.table.loc[0, "strategy"] == "source-only"
    assert frozen.table.loc[0, "n_train"] == 0
    np.testing.assert_array_equal(source[-1].coef_, coef)


def test_scores_match_sklearn_metrics_on_the_same_predictions(binary_data):
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    X, y = binary_data
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0, stratify=y)
    res = compare({"lr": _logreg()}, X_tr, y_tr, test=(X_te, y_te), progress=False)
    model = _logreg().fit(X_tr, y_tr)
    row = res.rows[0]
    pred = model.predict(X_te)
    assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_te, pred))
    assert row["kappa"] == pytest.approx(cohen_kappa_score(y_te, pred))
    assert row["roc_auc"] == pytest.approx(roc_auc_score(y_te, model.decision_function(X_te)))


def test_roc_auc_of_a_one_class_fold_is_nan(binary_data):
    X, y = binary_data
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    folds = [(np.arange(0, 240, 2), np.arange(1, 20, 2))]  # test rows of class 0 only
    res = compare({"lr": _logreg()}, X, y, cv=folds, progress=False)
    assert math.isnan(res.scores.loc[0, "roc_auc"]) and res.rows[0]["roc_auc"] is None


def test_progress_is_shown_by_default_on_stderr(binary_data, capsys):
    X, y = binary_data
    compare({"lr": _logreg()}, X, y, cv=2)
    assert "fit" in capsys.readouterr().err
    compare({"lr": _logreg()}, X, y, cv=2, progress=False)
    assert capsys.readouterr().err == ""


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
    other = compare({"lr": DummyClassifier()}, X, y, cv=3, target="batch 4", progress=False)
    with pytest.raises(ValueError, match="results 0 and 2 both hold model 'lr' on target "
                                         "'batch 4'"):
        ComparisonResult.concat([*parts, other])  # was one row averaging two models


def test_json_rows_are_flat_and_round_trip(binary_data):
    X, y = binary_data
    res = compare({"lr": _logreg()}, X, y, cv=2,
                  scoring={"nothing": make_scorer(lambda t, p: math.nan)},
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


def test_regression_and_custom_scoring_results_print_and_report(tmp_path):
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import Ridge

    from sktransfer.report import save_report

    rng = np.random.RandomState(0)
    X = rng.rand(60, 4)
    y = X @ [1.0, 2.0, 3.0, 4.0] + 0.1 * rng.rand(60)
    res = compare({"ridge": Ridge(), "dummy": DummyRegressor()}, X, y, cv=3)
    assert res.primary_metric == "r2" and res.settings["cv"] == "3-fold"
    text = str(res)
    assert "Best by r2: ridge" in text and "neg_mean_absolute_error" in text
    names = [p.name for p in save_report(res, tmp_path / "reg")]
    assert "confusion_matrices.png" not in names and "report.md" in names
    report = (tmp_path / "reg" / "report.md").read_text()
    assert report.count("neg_mean_absolute_error") == report.count("| ridge ") == 1
    from sktransfer.report import plot_confusion_matrices

    with pytest.raises(ValueError, match="no confusion matrices: its models are regressors"):
        plot_confusion_matrices(res)
    # a classification scored without balanced accuracy ranks by its first metric
    labels = (y > y.mean()).astype(int)
    res = compare({"lr": LogisticRegression()}, X, labels, cv=2, scoring=["accuracy", "f1"])
    assert res.primary_metric == "accuracy" and "Best by accuracy" in str(res)
    assert "report.md" in [p.name for p in save_report(res, tmp_path / "clf")]
    with pytest.raises(ValueError, match="primary_metric 'kappa' is not among"):
        ComparisonResult(res.scores, res.metrics, None, {}, "x", {}, primary_metric="kappa")
