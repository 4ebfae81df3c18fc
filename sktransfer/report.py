"""Reports of a comparison: Markdown tables, plots, ``results.json``, ``report.md``.

Everything here reads a :class:`~sktransfer.results.ComparisonResult`; nothing in the
library imports this module (it sits on top, next to the command line). Plots are
:class:`matplotlib.figure.Figure` objects made without pyplot, so they never open a window
and work with any backend.

The plots follow one visual grammar: models are grouped and coloured by what they are
(scratch in oranges, transferred in blues and greens, the source model alone in purple,
classical models in greys), each figure has one legend, its title names the experiment
(the task, the batches, the labelled fraction), and score axes are zoomed to the data.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .results import (
    COMPACT_METRICS,
    ComparisonResult,
    _same,
    display_frame,
    format_table,
    json_clean,
    summary_lines,
)

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

_CURVES = {"loss": ("train_loss", "valid_loss"), "accuracy": ("train_acc", "valid_acc")}

# ---------------------------------------------------------------------- colours
#: Model families, in display order, with their palettes (dark to light).
_FAMILIES = {
    "scratch": ("trained from scratch", ["#d95f02", "#fd8d3c", "#a63603", "#fdae6b"]),
    "transferred": ("transferred", ["#08519c", "#3182bd", "#31a354", "#6baed6", "#006d2c",
                                    "#74c476", "#9ecae1"]),
    "source-only": ("source model, no target labels", ["#6a51a3", "#9e9ac8"]),
    "baseline": ("classical", ["#252525", "#737373", "#a6a6a6", "#525252", "#bdbdbd"]),
}


def _family(strategy: str) -> str:
    if strategy in ("scratch", "baseline", "source-only"):
        return strategy
    return "transferred"


def _model_styles(result: ComparisonResult) -> dict[str, dict]:
    """Model -> {"family", "color", "order"}: grouped by family, shades within a family."""
    strategy = dict(zip(result.scores["model"], result.scores["strategy"]))
    styles, counters = {}, dict.fromkeys(_FAMILIES, 0)
    order = list(_FAMILIES)
    ranked = sorted(result.models, key=lambda m: order.index(_family(strategy[m])))
    for rank, model in enumerate(ranked):
        family = _family(strategy[model])
        palette = _FAMILIES[family][1]
        styles[model] = {"family": family, "order": rank,
                         "color": palette[counters[family] % len(palette)]}
        counters[family] += 1
    return styles


def _title(result: ComparisonResult, what: str) -> str:
    return "\n".join([*textwrap.wrap(str(result.experiment), 95), what])


def _family_handles(styles: dict[str, dict]) -> list:
    present = [f for f in _FAMILIES if any(s["family"] == f for s in styles.values())]
    return [Patch(color=_FAMILIES[f][1][0], label=_FAMILIES[f][0]) for f in present]


# ---------------------------------------------------------------------- tables
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


# ---------------------------------------------------------------------- curves
def _neural_models(result) -> list[str]:
    if result.histories is None or result.histories.empty:
        return []
    present = set(result.histories["model"])
    return [m for m in result.models if m in present]


def _targets(result, target: Any) -> list:
    if target is None:
        return result.targets
    if not _same(pd.Series(result.targets, dtype=object), target).any():
        raise ValueError(f"target {target!r} is not in this result; its targets are "
                         f"{result.targets}")
    return [target]


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
    out["n_splits"] = grouped.size()
    if "unfrozen" in part:
        out["unfrozen"] = part.groupby("epoch")["unfrozen"].any()
    return out


#: Where a band of mean ± std is clipped: losses are >= 0, accuracies in [0, 1].
_BOUNDS = {"loss": (0.0, np.inf), "accuracy": (0.0, 1.0)}

_UNFREEZE_LABEL = "backbone unfrozen (gradual: head-only epochs end)"


def _draw_curves(ax, curves: pd.DataFrame, kind: str, color: str, band: bool) -> bool:
    """Train solid, validation dashed; returns whether an unfreeze marker was drawn."""
    low, high = _BOUNDS.get(kind, (-np.inf, np.inf))
    for column, style in zip(_CURVES.get(kind, (kind,)), ("-", "--")):
        if column not in curves or curves[column].isna().all():
            continue
        x = curves.index.to_numpy()
        y = curves[column].to_numpy(dtype=float)
        ax.plot(x, y, style, color=color, lw=1.6)
        if band and f"{column}_std" in curves and curves["n_splits"].max() > 1:
            s = curves[f"{column}_std"].to_numpy(dtype=float)
            ax.fill_between(x, np.clip(y - s, low, high), np.clip(y + s, low, high),
                            color=color, alpha=0.15, linewidth=0)
    if "unfrozen" in curves and curves["unfrozen"].any():
        ax.axvline(curves.index[curves["unfrozen"].to_numpy()][0], color=color, ls=":",
                   lw=1.2)
        return True
    return False


def _line_handles(unfreeze: bool) -> list:
    handles = [Line2D([], [], color="black", ls="-", label="train"),
               Line2D([], [], color="black", ls="--", label="validation")]
    if unfreeze:
        handles.append(Line2D([], [], color="black", ls=":", label=_UNFREEZE_LABEL))
    return handles


def _empty_figure(message: str) -> Figure:
    fig = Figure(figsize=(6, 2))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def _style_epoch_axis(ax, ylabel: str) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def plot_learning_curves(result, model: str | None = None, target: Any = None) -> Figure:
    """Loss and accuracy per epoch of each neural model (mean over splits).

    Train curves are solid, validation curves dashed, with a band of one standard
    deviation over splits (clipped to the metric's range) when there is one target and
    several splits; a dotted line marks the epoch where a gradual policy unfroze the
    backbone (the head-only epochs end there). One row per model; with several targets,
    one colour per target. One legend for the figure.

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
    colors = {tgt: f"C{i % 10}" for i, tgt in enumerate(targets)}
    fig = Figure(figsize=(11, 2.9 * len(models) + 1.2), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(models), 2, squeeze=False))
    unfreeze = False
    for row, name in enumerate(models):
        for col, kind in enumerate(_CURVES):
            ax = axes[row, col]
            for tgt in targets:
                curves = _curves(result, name, tgt)
                if curves is not None:
                    unfreeze |= _draw_curves(ax, curves, kind, colors[tgt],
                                             band=len(targets) == 1)
            ax.set_title(f"{name}: {kind}")
            _style_epoch_axis(ax, kind)
    handles = _line_handles(unfreeze)
    if len(targets) > 1:
        handles += [Patch(color=colors[t], label=str(t)) for t in targets]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
               fontsize="small", frameon=False)
    what = "Learning curves, mean over splits"
    if len(targets) == 1:
        what += " (band: ± 1 std)"
    fig.suptitle(_title(result, what), fontsize="medium")
    return fig


def plot_overlay(result, metric: str | None = None, target: Any = None) -> Figure:
    """All neural models' curves on shared axes, to compare how fast and how far they learn.

    Colours follow the model families of :func:`plot_metrics`; train curves are solid,
    validation dashed; one legend for the figure.

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
    styles = _model_styles(result)
    models = sorted(models, key=lambda m: styles[m]["order"])
    targets = _targets(result, target)
    drawn = [c for pair in _CURVES.values() for c in pair if c in result.histories]
    if metric is not None and metric not in drawn:
        raise ValueError(f"metric {metric!r} is not a loss or accuracy curve of this "
                         f"result; use one of {drawn}, or None for both panels")
    kinds = list(_CURVES) if metric is None else [metric]
    fig = Figure(figsize=(5.2 * len(kinds) + 2.6, 3.0 * len(targets) + 1.0),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(targets), len(kinds), squeeze=False))
    unfreeze = False
    for row, tgt in enumerate(targets):
        for col, kind in enumerate(kinds):
            ax = axes[row, col]
            for name in models:
                curves = _curves(result, name, tgt)
                if curves is None:
                    continue
                if metric is None:
                    unfreeze |= _draw_curves(ax, curves, kind, styles[name]["color"],
                                             band=False)
                elif kind in curves:
                    ax.plot(curves.index, curves[kind], color=styles[name]["color"], lw=1.6)
            ax.set_title(kind if tgt is None else f"{tgt}: {kind}")
            _style_epoch_axis(ax, kind)
    handles = [Line2D([], [], color=styles[m]["color"], lw=2, label=m) for m in models]
    if metric is None:
        handles += _line_handles(unfreeze)
    fig.legend(handles=handles, loc="outside right center", fontsize="small", frameon=False)
    fig.suptitle(_title(result, "Training curves of the neural models, mean over splits"),
                 fontsize="medium")
    return fig


# ---------------------------------------------------------------------- metrics and matrices
def _default_bar_metrics(result) -> list[str]:
    return [m for m in result.metrics if not m.startswith(("precision_", "recall_"))]


def _zoomed_limits(lows: np.ndarray, highs: np.ndarray) -> tuple[float, float]:
    """Axis limits around the data (never wider than [-1, 1] needs), with a margin."""
    lows, highs = lows[np.isfinite(lows)], highs[np.isfinite(highs)]
    if not len(lows):
        return 0.0, 1.0
    lo, hi = float(lows.min()), float(highs.max())
    pad = max(0.02, 0.08 * (hi - lo))
    upper = min(hi + pad, 1.0 + pad / 2) if hi <= 1.0 else hi + pad
    return lo - pad, upper


def plot_metrics(result, metrics: Sequence[str] | None = None, target: Any = None) -> Figure:
    """Dot-and-whisker chart: mean ± std over splits of each metric, for each model.

    One panel per metric (columns) and target (rows); models on the vertical axis,
    grouped and coloured by family (scratch, transferred, source-only, classical). Each
    score axis is zoomed to the data rather than fixed at 0-1 (dots, not bars, so a zoomed
    axis does not mislead); whiskers are clipped at 1.0, the largest possible score; with
    one split there is no spread and no whisker.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    metrics : sequence of str, default=None
        Metrics to show; default all but the per-class precision and recall.
    target : optional
        Only this target; default one row of panels per target.

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
    >>> fig.axes[0].get_title()
    'accuracy'
    """
    metrics = list(metrics) if metrics is not None else _default_bar_metrics(result)
    unknown = [m for m in metrics if m not in result.metrics]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; metrics: {', '.join(result.metrics)}")
    table = result.table
    targets = _targets(result, target)
    styles = _model_styles(result)
    models = sorted(result.models, key=lambda m: styles[m]["order"])
    height = 0.26 * len(models) + 0.9
    fig = Figure(figsize=(2.6 * len(metrics) + 2.8, height * len(targets) + 1.3),
                 layout="constrained")
    axes = fig.subplots(len(targets), len(metrics), squeeze=False, sharey=True)
    ypos = {}  # a small gap between families
    y, previous = 0.0, None
    for m in models:
        if previous is not None and styles[m]["family"] != previous:
            y += 0.6
        ypos[m], previous = y, styles[m]["family"]
        y += 1.0
    for r, tgt in enumerate(targets):
        part = table[_same(table["target"], tgt)].set_index("model")
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            lows, highs = [], []
            for name in models:
                if name not in part.index:
                    continue
                mean = float(part.loc[name, f"{metric}_mean"])
                std = float(part.loc[name, f"{metric}_std"])
                if not np.isfinite(mean):
                    continue
                spread = part.loc[name, "n_splits"] > 1 and np.isfinite(std)
                ceiling = 1.0 if mean <= 1.0 else np.inf
                lo = mean - std if spread else mean
                hi = min(mean + std, ceiling) if spread else mean
                ax.errorbar(mean, ypos[name], xerr=[[mean - lo], [hi - mean]], fmt="o",
                            color=styles[name]["color"], ms=6, capsize=3, lw=1.5)
                lows.append(lo)
                highs.append(hi)
            ax.set_xlim(*_zoomed_limits(np.array(lows), np.array(highs)))
            if np.array(highs).size and np.nanmax(highs) >= 0.95:
                ax.axvline(1.0, color="black", lw=0.6, alpha=0.5)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(metric if tgt is None else f"{tgt}: {metric}", fontsize="medium")
            ax.xaxis.set_major_locator(MaxNLocator(4))
        axes[r, 0].set_yticks([ypos[m] for m in models], models)
    axes[0, 0].invert_yaxis()  # shared: the first model on top everywhere
    fig.legend(handles=_family_handles(styles), loc="outside lower center",
               ncol=4, fontsize="small", frameon=False)
    n_splits = sorted(set(table["n_splits"]))
    spread = ("mean ± std over splits" if max(n_splits) > 1
              else "one split: no spread shown")
    fig.suptitle(_title(result, f"Scores ({spread}; axes zoomed to the data)"),
                 fontsize="medium")
    return fig


def plot_confusion_matrices(result, target: Any = None) -> Figure:
    """One confusion matrix per model, summed over splits and normalised per true class.

    Each row (a true class) sums to 100%, so a small class is as visible as a large one;
    cells give the share and, below it, the count.

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
    if not result.confusion:
        raise ValueError("the comparison has no confusion matrices: its models are "
                         "regressors (or were scored without predictions of classes)")
    targets = _targets(result, target)
    styles = _model_styles(result)
    models = sorted(result.models, key=lambda m: styles[m]["order"])
    n_labels = max(len(v["labels"]) for v in result.confusion.values())
    longest = max(len(str(label)) for v in result.confusion.values() for label in v["labels"])
    size = 2.0 + 0.32 * n_labels
    labels_room = 0.06 * longest  # rotated tick labels below, names on the left
    fig = Figure(figsize=(size * len(models) + 1.0 + labels_room,
                          (size + 0.5 * labels_room) * len(targets) + 1.0),
                 layout="compressed")  # "compressed" suits grids of square images
    axes = fig.subplots(len(targets), len(models), squeeze=False)
    image = None
    for r, tgt in enumerate(targets):
        for c, name in enumerate(models):
            ax = axes[r, c]
            entry = result.confusion.get((name, tgt))
            if entry is None:
                ax.axis("off")
                continue
            image = _draw_matrix(ax, np.asarray(entry["matrix"]), entry["labels"],
                                 first_col=c == 0, last_row=r == len(targets) - 1)
            if r == 0:  # models head the columns, targets the rows
                family = _FAMILIES[styles[name]["family"]][1][0]
                ax.set_title(name, fontsize="small", color=family)
            if c == 0 and tgt is not None:
                ax.set_ylabel(f"{tgt}\ntrue")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="share of the true class")
    fig.suptitle(_title(result, "Confusion matrices, summed over splits; each row "
                                "normalised to its true class"), fontsize="medium")
    return fig


def _draw_matrix(ax, matrix: np.ndarray, labels: list[str], first_col: bool = True,
                 last_row: bool = True):
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels if last_row else [""] * len(labels), rotation=45, ha="right",
                  fontsize="x-small")
    ax.set_yticks(ticks, labels if first_col else [""] * len(labels), fontsize="x-small")
    if last_row:
        ax.set_xlabel("predicted")
    if first_col:
        ax.set_ylabel("true")
    if len(labels) <= 12:
        small = "xx-small" if len(labels) > 6 else "x-small"
        for (i, j), count in np.ndenumerate(matrix):
            if count == 0:
                continue  # empty cells stay blank: the errors stand out
            text = f"{share[i, j]:.0%}\n{count}" if len(labels) <= 6 else f"{share[i, j]:.0%}"
            ax.text(j, i, text, ha="center", va="center", fontsize=small,
                    color="white" if share[i, j] > 0.5 else "black")
    return image


# ---------------------------------------------------------------------- files
_PLOTS = (
    ("metrics.png", "Scores (mean ± std over splits)", plot_metrics, False),
    ("learning_curves.png", "Learning curves (train solid, validation dashed)",
     plot_learning_curves, True),
    ("overlay.png", "All neural models overlaid", plot_overlay, True),
    ("confusion_matrices.png",
     "Confusion matrices (summed over splits, normalised per true class)",
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
    shown = display_frame(result)
    parts += ["## Results", "", "Mean ± standard deviation over splits "
              f"({_split_text(result)}).", "", markdown_table(shown), ""]
    extra = [m for m in result.metrics if m not in shown.columns]
    if extra:
        parts += ["### Other metrics", "", markdown_table(display_frame(result, extra)), ""]
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
    return json_clean({k: v for k, v in settings.items() if k not in ("notes", "description")})


def save_report(result, directory: str | Path) -> list[Path]:
    """Write ``results.json``, the plots (PNG) and ``report.md`` embedding them.

    ``metrics.png`` is always written, ``confusion_matrices.png`` for classifiers,
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
        if plot is plot_confusion_matrices and not result.confusion:
            continue  # a regression has none
        fig = plot(result)
        fig.savefig(out / filename, dpi=100)
        written.append(out / filename)
        images.append((title, filename))
    (out / "report.md").write_text(to_markdown(result, images), encoding="utf-8")
    written.append(out / "report.md")
    return written
