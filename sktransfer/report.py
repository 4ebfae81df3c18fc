"""Reports of a comparison: text and Markdown tables, plots, ``results.json``, ``report.md``.

Everything here reads a :class:`~sktransfer.compare.ComparisonResult`; nothing in the
library imports this module at import time. Plots are :class:`matplotlib.figure.Figure`
objects made without pyplot, so they never open a window and work with any backend.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "COMPACT_METRICS",
    "format_table",
    "markdown_table",
    "plot_confusion_matrices",
    "plot_learning_curves",
    "plot_metrics",
    "plot_overlay",
    "save_report",
    "summary_lines",
    "to_markdown",
]

#: Metrics of the compact table printed by the command line, when present.
COMPACT_METRICS = ("balanced_accuracy", "kappa", "f1_macro", "roc_auc", "accuracy")

_CURVES = {"loss": ("train_loss", "valid_loss"), "accuracy": ("train_acc", "valid_acc")}


# ---------------------------------------------------------------------- tables
def _fmt(mean: float, std: float | None = None, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _display_frame(result, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Table of strings: model, strategy, (target), ``mean ± std`` per metric, fit time."""
    table = result.table
    if metrics is None:
        metrics = [m for m in COMPACT_METRICS if m in result.metrics]
    columns = {"model": table["model"], "strategy": table["strategy"]}
    if table["target"].notna().any():
        columns["target"] = table["target"].astype(str)
    for metric in metrics:
        columns[metric] = [
            _fmt(m, s) for m, s in zip(table[f"{metric}_mean"], table[f"{metric}_std"])
        ]
    columns["fit_time_s"] = [_fmt(t, digits=2) for t in table["fit_time_s_mean"]]
    columns["n_train"] = table["n_train"]
    return pd.DataFrame(columns)


def format_table(result, metrics: Sequence[str] | None = None) -> str:
    """The comparison as plain text, ``mean ± std`` over splits, for a terminal.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    metrics : sequence of str, default=None
        Metric columns; default the compact set :data:`COMPACT_METRICS` that exists.

    Returns
    -------
    str

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> from sktransfer.report import format_table
    >>> X, y = make_classification(100, random_state=0)
    >>> format_table(compare({"lr": LogisticRegression()}, X, y, cv=2)).split()[:3]
    ['model', 'strategy', 'balanced_accuracy']
    """
    return _display_frame(result, metrics).to_string(index=False)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown pipe table (``tabulate`` used when installed).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; the index is not written.

    Returns
    -------
    str

    Examples
    --------
    >>> import pandas as pd
    >>> from sktransfer.report import markdown_table
    >>> print(markdown_table(pd.DataFrame({"a": [1], "b": ["x"]})).splitlines()[0])
    ... # doctest: +ELLIPSIS
    |...a...|...b...|
    """
    try:
        return frame.to_markdown(index=False)
    except ImportError:  # tabulate is optional
        return _pipe_table(frame)


def _pipe_table(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body])


def summary_lines(result, metric: str | None = None) -> list[str]:
    """One sentence per target: the best model and its margin over scratch and baselines.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    metric : str, default=None
        Ranking metric; default ``result.primary_metric``.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.dummy import DummyClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> from sktransfer.report import summary_lines
    >>> X, y = make_classification(200, random_state=0)
    >>> res = compare({"dummy": DummyClassifier(), "lr": LogisticRegression()}, X, y)
    >>> summary_lines(res)[0].startswith("Best by balanced_accuracy: lr")
    True
    """
    lines = []
    for rec in result.winners(metric).to_dict("records"):
        where = f" on {rec['target']}" if rec["target"] is not None else ""
        text = (
            f"Best by {rec['metric']}{where}: {rec['best']} ({rec['strategy']}) "
            f"{_fmt(rec['score'], rec['score_std'])}, fit {rec['fit_time_s']:.2f} s"
        )
        for kind in ("scratch", "baseline"):
            if rec[kind] is None:
                continue
            if rec[kind] == rec["best"]:
                text += f"; it is the best {kind} model"
            else:
                text += (
                    f"; {rec[f'margin_over_{kind}']:+.3f} over the best {kind} model "
                    f"({rec[kind]}, {rec[f'{kind}_score']:.3f})"
                )
        lines.append(text + ".")
    return lines


# ---------------------------------------------------------------------- curves
def _neural_models(result) -> list[str]:
    if result.histories is None or result.histories.empty:
        return []
    present = set(result.histories["model"])
    return [m for m in result.models if m in present]


def _targets(result, target: Any) -> list:
    return result.targets if target is None else [target]


def _curves(result, model: str, target: Any) -> pd.DataFrame | None:
    """Per-epoch mean and std over splits of one model on one target."""
    hist = result.histories
    part = hist[(hist["model"] == model) & _same(hist["target"], target)]
    if part.empty:
        return None
    numeric = [c for c in ("train_loss", "valid_loss", "train_acc", "valid_acc") if c in part]
    grouped = part.groupby("epoch")[numeric]
    mean, std = grouped.mean(), grouped.std(ddof=0).fillna(0.0)
    out = mean.join(std.add_suffix("_std"))
    if "unfrozen" in part:
        out["unfrozen"] = part.groupby("epoch")["unfrozen"].any()
    return out


def _same(column: pd.Series, value: Any) -> pd.Series:
    return column.isna() if value is None else column == value


def _draw_curves(ax, curves: pd.DataFrame, kind: str, color: str, label: str, band: bool):
    for column, style, part in zip(_CURVES[kind], ("-", "--"), ("train", "valid")):
        if column not in curves or curves[column].isna().all():
            continue
        x = curves.index.to_numpy()
        y = curves[column].to_numpy(dtype=float)
        ax.plot(x, y, style, color=color, label=f"{label} {part}".strip())
        if band:
            s = curves[f"{column}_std"].to_numpy(dtype=float)
            ax.fill_between(x, y - s, y + s, color=color, alpha=0.15, linewidth=0)
    if "unfrozen" in curves and curves["unfrozen"].any():
        ax.axvline(curves.index[curves["unfrozen"].to_numpy()][0], color="grey", ls=":", lw=1)


def _empty_figure(message: str) -> Figure:
    fig = Figure(figsize=(6, 2))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def plot_learning_curves(result, model: str | None = None, target: Any = None) -> Figure:
    """Loss and accuracy per epoch of each neural model (mean over splits).

    Train curves are solid, validation curves dashed, with a band of one standard
    deviation over splits when there is one target; a dotted line marks the epoch where
    a gradual policy unfroze the backbone. One row per model; with several targets, one
    colour per target.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    model : str, default=None
        Only this model; default all neural models.
    target : optional
        Only this target; default all.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier
    >>> from sktransfer.compare import compare
    >>> from sktransfer.report import plot_learning_curves
    >>> X, y = np.random.rand(60, 4), np.arange(60) % 2
    >>> res = compare({"mlp": TransferClassifier("mlp", max_epochs=2)}, X, y, cv=2)
    >>> plot_learning_curves(res).axes[0].get_ylabel()
    'loss'
    """
    models = _neural_models(result) if model is None else [model]
    if model is not None and model not in _neural_models(result):
        raise ValueError(f"no training curves for model {model!r}; neural models: "
                         f"{', '.join(_neural_models(result)) or 'none'}")
    if not models:
        return _empty_figure("no neural models: no training curves")
    targets = _targets(result, target)
    fig = Figure(figsize=(11, 3.2 * len(models)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(models), 2, squeeze=False))
    for row, name in enumerate(models):
        for col, kind in enumerate(_CURVES):
            ax = axes[row, col]
            for i, tgt in enumerate(targets):
                curves = _curves(result, name, tgt)
                if curves is None:
                    continue
                label = "" if len(targets) == 1 else str(tgt)
                _draw_curves(ax, curves, kind, f"C{i}", label, band=len(targets) == 1)
            ax.set_title(f"{name}: {kind}")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(kind)
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    return fig


def plot_overlay(result, metric: str | None = None, target: Any = None) -> Figure:
    """All neural models' curves on shared axes, to compare how fast and how far they learn.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    metric : str, default=None
        One history column (``"valid_acc"``, ``"train_loss"``...) for a single panel;
        default a loss panel and an accuracy panel, train solid and validation dashed.
    target : optional
        Only this target; default one row of panels per target.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TransferClassifier
    >>> from sktransfer.compare import compare
    >>> from sktransfer.report import plot_overlay
    >>> X, y = np.random.rand(60, 4), np.arange(60) % 2
    >>> res = compare({"mlp": TransferClassifier("mlp", max_epochs=2)}, X, y, cv=2)
    >>> len(plot_overlay(res).axes)
    2
    """
    models = _neural_models(result)
    if not models:
        return _empty_figure("no neural models: no training curves")
    targets = _targets(result, target)
    kinds = list(_CURVES) if metric is None else [metric]
    fig = Figure(figsize=(5.5 * len(kinds) + 2, 3.4 * len(targets)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(targets), len(kinds), squeeze=False))
    for row, tgt in enumerate(targets):
        for col, kind in enumerate(kinds):
            ax = axes[row, col]
            for i, name in enumerate(models):
                curves = _curves(result, name, tgt)
                if curves is None:
                    continue
                if metric is None:
                    _draw_curves(ax, curves, kind, f"C{i % 10}", name, band=False)
                elif kind in curves:
                    ax.plot(curves.index, curves[kind], color=f"C{i % 10}", label=name)
            title = kind if tgt is None else f"{tgt}: {kind}"
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[row, -1].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


# ---------------------------------------------------------------------- metrics and matrices
def _default_bar_metrics(result) -> list[str]:
    return [m for m in result.metrics if not m.startswith(("precision_", "recall_"))]


def plot_metrics(result, metrics: Sequence[str] | None = None, target: Any = None) -> Figure:
    """Grouped bar chart: one group per metric, one bar per model, std error bars.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    metrics : sequence of str, default=None
        Metrics to show; default all but the per-class precision and recall.
    target : optional
        Only this target; default one panel per target.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> from sktransfer.report import plot_metrics
    >>> X, y = make_classification(100, random_state=0)
    >>> fig = plot_metrics(compare({"lr": LogisticRegression()}, X, y, cv=2))
    >>> fig.axes[0].get_ylabel()
    'score (mean ± std over splits)'
    """
    metrics = list(metrics) if metrics is not None else _default_bar_metrics(result)
    unknown = [m for m in metrics if m not in result.metrics]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; metrics: {', '.join(result.metrics)}")
    table = result.table
    targets = _targets(result, target)
    models = result.models
    width = 0.8 / max(len(models), 1)
    fig = Figure(figsize=(max(7.0, 1.1 * len(metrics) * max(len(models), 2) * 0.45 + 3),
                          3.6 * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), 1, squeeze=False)[:, 0]
    x = np.arange(len(metrics))
    for ax, tgt in zip(axes, targets):
        part = table[_same(table["target"], tgt)].set_index("model")
        for i, name in enumerate(models):
            if name not in part.index:
                continue
            means = [part.loc[name, f"{m}_mean"] for m in metrics]
            stds = [part.loc[name, f"{m}_std"] for m in metrics]
            ax.bar(x - 0.4 + width * (i + 0.5), np.nan_to_num(means), width, yerr=stds,
                   capsize=2, color=f"C{i % 10}", label=name)
        ax.set_xticks(x, metrics, rotation=20, ha="right")
        ax.axhline(0, color="black", lw=0.5)
        values = part[[f"{m}_mean" for m in metrics]].to_numpy(dtype=float)
        lowest = np.nanmin(values, initial=0.0) if np.isfinite(values).any() else 0.0
        ax.set_ylim(min(0.0, lowest - 0.1), 1.05)
        ax.set_ylabel("score (mean ± std over splits)")
        ax.set_title(result.experiment if tgt is None else str(tgt))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def plot_confusion_matrices(result, target: Any = None) -> Figure:
    """One confusion matrix per model (summed over splits; colours normalised per true class).

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    target : optional
        Only this target; default one row per target.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> from sktransfer.report import plot_confusion_matrices
    >>> X, y = make_classification(100, random_state=0)
    >>> res = compare({"lr": LogisticRegression()}, X, y, cv=2)
    >>> plot_confusion_matrices(res).axes[0].get_xlabel()
    'predicted'
    """
    targets = _targets(result, target)
    models = result.models
    n_labels = max(len(v["labels"]) for v in result.confusion.values())
    size = 2.2 + 0.3 * n_labels
    fig = Figure(figsize=(size * len(models), size * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), len(models), squeeze=False)
    for r, tgt in enumerate(targets):
        for c, name in enumerate(models):
            ax = axes[r, c]
            entry = result.confusion.get((name, tgt))
            if entry is None:
                ax.axis("off")
                continue
            _draw_matrix(ax, np.asarray(entry["matrix"]), entry["labels"])
            ax.set_title(name if tgt is None else f"{name}\n{tgt}", fontsize="small")
    return fig


def _draw_matrix(ax, matrix: np.ndarray, labels: list[str]) -> None:
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize="x-small")
    ax.set_yticks(ticks, labels, fontsize="x-small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 12:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize="x-small",
                    color="white" if share[i, j] > 0.5 else "black")


# ---------------------------------------------------------------------- files
_PLOTS = (
    ("metrics.png", "Metrics (mean ± std over splits)", plot_metrics, False),
    ("learning_curves.png", "Learning curves (train solid, validation dashed)",
     plot_learning_curves, True),
    ("overlay.png", "All neural models overlaid", plot_overlay, True),
    ("confusion_matrices.png", "Confusion matrices (summed over splits)",
     plot_confusion_matrices, False),
)


def to_markdown(result, images: Sequence[tuple[str, str]] = ()) -> str:
    """The Markdown report: summary, notes, tables, plots and settings.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    images : sequence of (title, relative path), default=()
        Plots to embed.

    Returns
    -------
    str

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> from sktransfer.report import to_markdown
    >>> X, y = make_classification(100, random_state=0)
    >>> to_markdown(compare({"lr": LogisticRegression()}, X, y, cv=2)).splitlines()[0]
    '# comparison'
    """
    settings = result.settings
    parts = [f"# {result.experiment}", ""]
    if settings.get("description"):
        parts += [str(settings["description"]), ""]
    notes = settings.get("notes") or []
    if notes:
        parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    parts += ["## Summary", "", *[f"- {line}" for line in summary_lines(result)], ""]
    parts += ["## Results", "", "Mean ± standard deviation over splits "
              f"({_split_text(result)}).", "", markdown_table(_display_frame(result)), ""]
    extra = [m for m in result.metrics if m not in COMPACT_METRICS]
    if extra:
        parts += ["### Other metrics", "", markdown_table(_display_frame(result, extra)), ""]
    if images:
        parts += ["## Plots", ""]
        for title, path in images:
            parts += [f"### {title}", "", f"![{title}]({path})", ""]
    parts += ["## Settings", "", "```json",
              json.dumps(_settings_for_report(settings), indent=2, default=str), "```", ""]
    return "\n".join(parts)


def _split_text(result) -> str:
    counts = sorted(set(result.table["n_splits"]))
    return f"{'/'.join(str(c) for c in counts)} split(s) per model"


def _settings_for_report(settings: dict) -> dict:
    from .compare import _json_clean

    return _json_clean({k: v for k, v in settings.items() if k not in ("notes", "description")})


def save_report(result, directory: str | Path) -> list[Path]:
    """Write ``results.json``, the plots (PNG) and ``report.md`` embedding them.

    ``metrics.png`` and ``confusion_matrices.png`` are always written;
    ``learning_curves.png`` and ``overlay.png`` when there are neural models.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    directory : str or path
        Output folder, created if needed; existing files of the same names are replaced.

    Returns
    -------
    list of pathlib.Path
        The files written: ``results.json``, the PNGs, ``report.md``.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> from sktransfer.report import save_report
    >>> X, y = make_classification(100, random_state=0)
    >>> res = compare({"lr": LogisticRegression()}, X, y, cv=2)
    >>> [p.name for p in save_report(res, tempfile.mkdtemp())]
    ['results.json', 'metrics.png', 'confusion_matrices.png', 'report.md']
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json"]
    with open(written[0], "w", encoding="utf-8") as f:
        json.dump(result.to_json(), f, indent=2)
    has_curves = bool(_neural_models(result))
    images = []
    for filename, title, plot, needs_curves in _PLOTS:
        if needs_curves and not has_curves:
            continue
        fig = plot(result)
        fig.savefig(out / filename, dpi=100)
        written.append(out / filename)
        images.append((title, filename))
    (out / "report.md").write_text(to_markdown(result, images), encoding="utf-8")
    written.append(out / "report.md")
    return written
