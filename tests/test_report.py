"""Reports: plots that open, results.json, report.md embedding the plots, text tables."""

import json
import re

import numpy as np
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
from sktransfer.report import (
    format_table,
    markdown_table,
    plot_confusion_matrices,
    plot_learning_curves,
    plot_metrics,
    plot_overlay,
    save_report,
    summary_lines,
    to_markdown,
)

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


def _suptitle(fig) -> str:
    """The figure's suptitle (``Figure.get_suptitle`` needs matplotlib 3.8; the bound is 3.7)."""
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def test_save_writes_json_report_and_pngs(result, tmp_path):
    paths = save_report(result, tmp_path / "out")
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
    for path in save_report(result, tmp_path):
        if path.suffix == ".png":
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:
                assert img.format == "PNG"
                assert img.width >= 300 and img.height >= 200
                assert len(img.getcolors(maxcolors=1 << 20) or range(1000)) > 10


def test_report_mentions_models_and_embeds_existing_pngs(result, tmp_path):
    save_report(result, tmp_path)
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
    names = [p.name for p in save_report(res, tmp_path)]
    assert "learning_curves.png" not in names and "overlay.png" not in names
    assert "learning_curves.png" not in (tmp_path / "report.md").read_text()
    assert isinstance(plot_learning_curves(res), Figure)  # a placeholder figure


def test_plot_functions(result):
    fig = plot_learning_curves(result, model="mlp")
    assert [ax.get_title() for ax in fig.axes] == ["mlp: loss", "mlp: accuracy"]
    assert len(fig.axes[0].get_lines()) == 4  # train and validation of two targets
    with pytest.raises(ValueError, match="no training curves"):
        plot_learning_curves(result, model="dummy")
    assert len(plot_learning_curves(result).axes) == 4  # two neural models
    assert len(plot_overlay(result, metric="valid_acc", target="first").axes) == 1
    assert len(plot_overlay(result).axes) == 4  # loss and accuracy for two targets
    fig = plot_metrics(result, metrics=["accuracy", "kappa"], target="second")
    assert [ax.get_title() for ax in fig.axes] == ["second: accuracy", "second: kappa"]
    with pytest.raises(ValueError, match="unknown metric"):
        plot_metrics(result, metrics=["auc"])
    fig = plot_confusion_matrices(result)
    assert len(fig.axes) == 8 + 1  # 4 models x 2 targets, and one colour bar
    for plot in (plot_metrics, plot_confusion_matrices, plot_overlay):
        with pytest.raises(ValueError, match="target 'third' is not in this result"):
            plot(result, target="third")  # was a figure of empty panels
    with pytest.raises(ValueError, match="metric 'accuracy' is not a loss or accuracy curve"):
        plot_overlay(result, metric="accuracy")


def _texts(fig) -> str:
    parts = [_suptitle(fig)]
    for legend in fig.legends:
        parts += [t.get_text() for t in legend.get_texts()]
    return "\n".join(parts)


def test_figures_name_the_task_and_have_one_legend(result):
    for fig in (plot_metrics(result), plot_learning_curves(result), plot_overlay(result),
                plot_confusion_matrices(result)):
        assert _suptitle(fig).startswith("tiny")  # the experiment's title
        assert all(ax.get_legend() is None for ax in fig.axes)  # no legend per panel
    assert len(plot_metrics(result).legends) == 1
    legend = _texts(plot_metrics(result))
    for family in ("trained from scratch", "transferred", "classical"):
        assert family in legend
    # the gradual policy's unfreeze marker is explained in the legend
    assert "backbone unfrozen" in _texts(plot_learning_curves(result))
    assert "summed over splits" in _suptitle(plot_confusion_matrices(result))


def test_metric_axes_are_zoomed_and_whiskers_stop_at_one(result):
    fig = plot_metrics(result, metrics=["accuracy"], target="first")
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    table = result.table[result.table["target"] == "first"]
    assert low > 0.0 or table["accuracy_mean"].min() < 0.1  # not a fixed 0-1 axis
    assert high <= 1.02
    for collection in ax.collections:  # the whiskers
        for segment in collection.get_segments():
            assert segment[:, 0].max() <= 1.0 + 1e-9


def test_scores_of_models_are_grouped_by_family(result):
    labels = [t.get_text() for t in plot_metrics(result).axes[0].get_yticklabels()]
    # scratch first, then transferred, then the classical models
    assert labels == ["mlp", "mlp-gradual", "dummy", "logreg"]


def test_confusion_matrix_colours_are_shares_of_the_true_class():
    X, y = make_classification(300, weights=[0.9], random_state=0)
    res = compare({"dummy": DummyClassifier()}, X, y, cv=2, progress=False)
    image = plot_confusion_matrices(res).axes[0].get_images()[0]
    share = np.asarray(image.get_array())
    assert np.allclose(share.sum(axis=1), 1.0)  # each true class's row sums to 1
    assert share[1, 0] == pytest.approx(1.0)  # the minority class: all predicted as 0


def test_a_single_split_shows_no_spread():
    X, y = make_classification(100, random_state=0)
    res = compare({"lr": LogisticRegression()}, X[:60], y[:60], test=(X[60:], y[60:]),
                  progress=False)
    text = format_table(res)
    assert "± n/a" in text and "± 0.000" not in text
    assert "n/a" in summary_lines(res)[0]
    assert "one split" in _suptitle(plot_metrics(res))


def test_print_shows_the_table(result):
    text = str(result)
    assert text.startswith("tiny")
    assert "balanced_accuracy" in text and "logreg" in text and "Best by" in text


def test_report_is_imported_by_no_library_module():
    import ast
    from pathlib import Path

    import sktransfer

    root = Path(sktransfer.__file__).parent
    on_top = {"cli.py", "report.py", "__main__.py"}
    for path in root.rglob("*.py"):
        if path.name in on_top or "experiments" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not module.endswith(("report", "cli", "experiments")), (
                    f"{path.name} imports {module}")
                assert not (node.level and module == "" and any(
                    a.name in ("report", "cli", "experiments") for a in node.names)), path


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
