"""Reports: plots that open, results.json, report.md embedding the plots, text tables."""

import json
import re

import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from sktransfer import TransferClassifier
from sktransfer.compare import STRATEGIES, ComparisonResult, compare
from sktransfer.experiments._common import torch_threads
from sktransfer.report import format_table, markdown_table, summary_lines, to_markdown

TINY = {"backbone_kwargs": {"hidden": (16,)}, "max_epochs": 3, "random_state": 0,
        "validation_fraction": 0.1}  # validation curves to plot (none are held out by default)


@pytest.fixture(scope="module")
def result():
    X, y = make_classification(200, n_features=6, class_sep=2.0, random_state=1)
    models = {
        "mlp": TransferClassifier("mlp", **TINY),
        "mlp-gradual": TransferClassifier("mlp", freeze="gradual:1", **TINY),
        "dummy": DummyClassifier(),
        "logreg": LogisticRegression(),
    }
    with torch_threads(1):
        parts = [compare(models, X, y, cv=2, target=t, experiment="tiny")
                 for t in ("first", "second")]
    return ComparisonResult.concat(parts)


def test_save_writes_json_report_and_pngs(result, tmp_path):
    paths = result.save(tmp_path / "out")
    names = [p.name for p in paths]
    assert names == ["results.json", "metrics.png", "learning_curves.png", "overlay.png",
                     "confusion_matrices.png", "report.md"]
    assert all(p.is_file() for p in paths)
    with open(tmp_path / "out" / "results.json") as f:
        doc = json.load(f)
    assert list(doc) == ["experiment", "settings", "rows"]
    assert len(doc["rows"]) == 8  # 4 models x 2 targets
    for row in doc["rows"]:
        assert row["strategy"] in STRATEGIES
        assert row["target"] in ("first", "second")
        for key in ("model", "accuracy", "balanced_accuracy", "kappa", "f1_macro",
                    "roc_auc", "fit_time_s", "kappa_std"):
            assert key in row


def test_pngs_open_and_are_not_empty(result, tmp_path):
    for path in result.save(tmp_path):
        if path.suffix == ".png":
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:
                assert img.format == "PNG"
                assert img.width >= 300 and img.height >= 200
                assert len(img.getcolors(maxcolors=1 << 20) or range(1000)) > 10


def test_report_mentions_models_and_embeds_existing_pngs(result, tmp_path):
    result.save(tmp_path)
    text = (tmp_path / "report.md").read_text()
    for model in result.models:
        assert model in text
    embedded = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert sorted(embedded) == pngs
    assert "Best by balanced_accuracy on first" in text
    assert "| model" in text and "kappa" in text


def test_baseline_only_report_has_no_curves(tmp_path):
    X, y = make_classification(100, random_state=0)
    res = compare({"logreg": LogisticRegression()}, X, y, cv=2)
    names = [p.name for p in res.save(tmp_path)]
    assert "learning_curves.png" not in names and "overlay.png" not in names
    assert "learning_curves.png" not in (tmp_path / "report.md").read_text()
    assert isinstance(res.plot_learning_curves(), Figure)  # a placeholder figure


def test_plot_methods(result):
    fig = result.plot_learning_curves(model="mlp")
    assert [ax.get_title() for ax in fig.axes] == ["mlp: loss", "mlp: accuracy"]
    assert len(fig.axes[0].get_lines()) == 4  # train and validation of two targets
    with pytest.raises(ValueError, match="no training curves"):
        result.plot_learning_curves(model="dummy")
    assert len(result.plot_learning_curves().axes) == 4  # two neural models
    assert len(result.plot_overlay(metric="valid_acc", target="first").axes) == 1
    assert len(result.plot_overlay().axes) == 4  # loss and accuracy for two targets
    fig = result.plot_metrics(metrics=["accuracy", "kappa"], target="second")
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 8
    with pytest.raises(ValueError, match="unknown metric"):
        result.plot_metrics(metrics=["auc"])
    assert len(result.plot_confusion_matrices().axes) == 8


def test_text_and_markdown_tables(result, monkeypatch):
    text = format_table(result)
    assert all(model in text for model in result.models)
    assert "±" in text and "balanced_accuracy" in text
    frame = pd.DataFrame({"a": [1, 2], "b": ["x|y", "z"]})

    def no_tabulate(*args, **kwargs):
        raise ImportError("Missing optional dependency 'tabulate'")

    monkeypatch.setattr(pd.DataFrame, "to_markdown", no_tabulate)
    table = markdown_table(frame)
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |", "| 2 | z |"]
    assert "| model |" in to_markdown(result)


def test_summary_lines_give_margins(result):
    lines = summary_lines(result)
    assert len(lines) == 2
    assert "over the best scratch model" in lines[0] or "best scratch model" in lines[0]
    assert "baseline" in lines[0]
