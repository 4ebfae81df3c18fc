"""The outcome of a comparison: scores per split, the summary table, curves and matrices.

:class:`ComparisonResult` is what :func:`sktransfer.compare` returns and what
:mod:`sktransfer.report` reads to draw plots and write files. It holds data and its text
views (``print(result)`` shows the table); it imports neither the comparison runner nor
the report, so the arrows point one way: ``compare -> results <- report``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COMPACT_METRICS", "PRIMARY_METRIC", "ComparisonResult", "format_table",
           "summary_lines"]

#: The metric that ranks models in summaries, unless a result says otherwise.
PRIMARY_METRIC = "balanced_accuracy"

#: Metrics of the compact table printed by the command line and ``print(result)``.
COMPACT_METRICS = ("balanced_accuracy", "kappa", "f1_macro", "roc_auc", "accuracy")


class ComparisonResult:
    """The outcome of :func:`~sktransfer.compare`: scores per split, summary table, curves.

    ``print(result)`` shows the table (mean ± std over splits) and the best model of each
    target; :mod:`sktransfer.report` draws the plots and writes the files
    (:func:`~sktransfer.report.save_report`).

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per (model, target, split): ``model``, ``strategy``, ``target``,
        ``split``, the metrics, ``fit_time_s``, ``predict_time_s``, ``n_train``,
        ``n_test``.
    metrics : list of str
        The metric columns of ``scores``, in display order.
    histories : pandas.DataFrame or None
        Per-epoch curves of the neural models, long format: ``model``, ``target``,
        ``split``, ``epoch``, ``train_loss``, ``valid_loss``, ``train_acc``,
        ``valid_acc``, ``dur``.
    confusion : dict
        ``(model, target) -> {"labels": [...], "matrix": ndarray}``, summed over splits.
    experiment : str
        Title.
    settings : dict
        Everything needed to repeat the run.
    primary_metric : str, default=None
        The metric that ranks models in the summary; None picks ``balanced_accuracy``,
        else ``r2``, else the first of ``metrics``, whichever was scored.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model (per target): ``<metric>_mean``, ``<metric>_std`` (population
        standard deviation over splits), ``fit_time_s_mean``, ``predict_time_s_mean``,
        ``n_train``, ``n_test`` (means over splits).
    rows : list of dict
        Flat records for ``results.json``: each metric's mean under its plain name and
        ``<metric>_std``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> X, y = make_classification(100, random_state=0)
    >>> result = compare({"logreg": LogisticRegression()}, X, y, cv=2)
    >>> sorted(result.to_json())
    ['experiment', 'rows', 'settings']
    """

    def __init__(
        self,
        scores: pd.DataFrame,
        metrics: Sequence[str],
        histories: pd.DataFrame | None,
        confusion: dict,
        experiment: str,
        settings: Mapping[str, Any],
        primary_metric: str | None = None,
    ):
        self.scores = scores
        self.metrics = list(metrics)
        self.histories = histories
        self.confusion = confusion
        self.experiment = experiment
        self.settings = dict(settings)
        if primary_metric is None:
            preferred = [m for m in (PRIMARY_METRIC, "r2") if m in self.metrics]
            primary_metric = (preferred or self.metrics or [PRIMARY_METRIC])[0]
        elif primary_metric not in self.metrics:
            raise ValueError(f"primary_metric {primary_metric!r} is not among the scored "
                             f"metrics {self.metrics}")
        self.primary_metric = primary_metric

    def __repr__(self) -> str:
        return (
            f"ComparisonResult({self.experiment!r}, models={self.models}, "
            f"targets={self.targets})"
        )

    def __str__(self) -> str:
        return "\n".join([self.experiment, "", format_table(self), "",
                          *summary_lines(self)])

    @property
    def models(self) -> list[str]:
        """Model names, in the order they were given."""
        return list(dict.fromkeys(self.scores["model"]))

    @property
    def targets(self) -> list:
        """Target names (``[None]`` for a single unnamed target)."""
        return list(dict.fromkeys(self.scores["target"]))

    def _groups(self):
        keys = dict.fromkeys(zip(self.scores["target"], self.scores["model"]))
        for target, model in keys:
            mask = (self.scores["model"] == model) & _same(self.scores["target"], target)
            yield model, target, self.scores[mask]

    @property
    def table(self) -> pd.DataFrame:
        """Mean and standard deviation over splits, one row per model (per target)."""
        out = []
        for model, target, part in self._groups():
            row = {"model": model, "strategy": part["strategy"].iloc[0], "target": target}
            for metric in self.metrics:
                row[f"{metric}_mean"] = _nanmean(part[metric])
                row[f"{metric}_std"] = _nanstd(part[metric])
            row["fit_time_s_mean"] = float(part["fit_time_s"].mean())
            row["predict_time_s_mean"] = float(part["predict_time_s"].mean())
            row["n_train"] = _maybe_int(part["n_train"].mean())
            row["n_test"] = _maybe_int(part["n_test"].mean())
            row["n_splits"] = len(part)
            out.append(row)
        return pd.DataFrame(out)

    @property
    def rows(self) -> list[dict]:
        """Flat records (one per model and target) as written to ``results.json``."""
        records = []
        for row in self.table.to_dict("records"):
            rec = {"model": row["model"], "strategy": row["strategy"], "target": row["target"]}
            for metric in self.metrics:
                rec[metric] = row[f"{metric}_mean"]
                rec[f"{metric}_std"] = row[f"{metric}_std"]
            rec["fit_time_s"] = row["fit_time_s_mean"]
            rec["predict_time_s"] = row["predict_time_s_mean"]
            for key in ("n_train", "n_test", "n_splits"):
                rec[key] = row[key]
            records.append(json_clean(rec))
        return records

    def winners(self, metric: str | None = None) -> pd.DataFrame:
        """The best model of each target and its margin over the best scratch and baseline.

        Parameters
        ----------
        metric : str, default=None
            The ranking metric; ``None`` uses ``primary_metric``.

        Returns
        -------
        pandas.DataFrame
            Per target: ``best``, ``strategy``, ``score``, ``fit_time_s``, then
            ``scratch``/``scratch_score``/``margin_over_scratch`` and the same for
            ``baseline`` (NaN where the comparison has no such model).

        Examples
        --------
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.dummy import DummyClassifier
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sktransfer.compare import compare
        >>> X, y = make_classification(200, random_state=0)
        >>> res = compare({"dummy": DummyClassifier(), "lr": LogisticRegression()}, X, y)
        >>> res.winners()["best"].tolist()
        ['lr']
        """
        metric = metric or self.primary_metric
        if metric not in self.metrics:
            raise ValueError(f"unknown metric {metric!r}; metrics: {', '.join(self.metrics)}")
        table = self.table
        col = f"{metric}_mean"
        out = []
        for target in self.targets:
            part = table[_same(table["target"], target)].dropna(subset=[col])
            if part.empty:
                continue
            best = part.loc[part[col].idxmax()]
            rec = {"target": target, "metric": metric, "best": best["model"],
                   "strategy": best["strategy"], "score": best[col],
                   "score_std": best[f"{metric}_std"], "fit_time_s": best["fit_time_s_mean"]}
            for kind in ("scratch", "baseline"):
                rivals = part[part["strategy"] == kind]
                if rivals.empty:
                    rec.update({kind: None, f"{kind}_score": math.nan,
                                f"margin_over_{kind}": math.nan})
                    continue
                rival = rivals.loc[rivals[col].idxmax()]
                rec.update({kind: rival["model"], f"{kind}_score": rival[col],
                            f"margin_over_{kind}": best[col] - rival[col]})
            out.append(rec)
        return pd.DataFrame(out)

    def to_json(self) -> dict:
        """``{"experiment", "settings", "rows"}``, ready for :func:`json.dump`.

        NaN values become ``null``.

        Examples
        --------
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sktransfer.compare import compare
        >>> X, y = make_classification(100, random_state=0)
        >>> compare({"lr": LogisticRegression()}, X, y, cv=2).to_json()["rows"][0]["model"]
        'lr'
        """
        return {
            "experiment": self.experiment,
            "settings": json_clean(self.settings),
            "rows": self.rows,
        }

    @classmethod
    def concat(
        cls,
        results: Iterable[ComparisonResult],
        experiment: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> ComparisonResult:
        """Combine results, typically one per target domain, into one.

        Parameters
        ----------
        results : iterable of ComparisonResult
            Results with the same kind of metrics (missing metrics become NaN).
        experiment : str, default=None
            Title; default the first result's.
        settings : dict, default=None
            Settings of the combined result; default the first result's, with the
            per-target settings under ``"per_target"``.

        Returns
        -------
        ComparisonResult

        Examples
        --------
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sktransfer.compare import ComparisonResult, compare
        >>> X, y = make_classification(100, random_state=0)
        >>> parts = [compare({"lr": LogisticRegression()}, X, y, cv=2, target=t)
        ...          for t in ("a", "b")]
        >>> ComparisonResult.concat(parts).table["target"].tolist()
        ['a', 'b']
        """
        results = list(results)
        if not results:
            raise ValueError("concat needs at least one result")
        seen: dict = {}
        for i, r in enumerate(results):
            for pair in dict.fromkeys(zip(r.scores["target"], r.scores["model"])):
                if pair in seen:  # their scores would be pooled into one row
                    target, model = pair
                    raise ValueError(
                        f"results {seen[pair]} and {i} both hold model {model!r} on target "
                        f"{target!r}; give each result its own target (compare(..., "
                        "target=...)) or its models other names"
                    )
                seen[pair] = i
        metrics = list(dict.fromkeys(m for r in results for m in r.metrics))
        histories = [r.histories for r in results if r.histories is not None]
        confusion = {k: v for r in results for k, v in r.confusion.items()}
        if settings is None:
            settings = dict(results[0].settings)
            if len(results) > 1:
                settings["per_target"] = {str(r.targets[0]): r.settings for r in results}
        return cls(
            scores=pd.concat([r.scores for r in results], ignore_index=True),
            metrics=metrics,
            histories=pd.concat(histories, ignore_index=True) if histories else None,
            confusion=confusion,
            experiment=experiment or results[0].experiment,
            settings=settings,
            primary_metric=results[0].primary_metric,
        )


def _same(column: pd.Series, value: Any) -> pd.Series:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return column.isna()
    return column == value


def _maybe_int(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def _nanmean(values) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.mean(arr[~np.isnan(arr)])) if np.any(~np.isnan(arr)) else math.nan


def _nanstd(values) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.std(arr[~np.isnan(arr)])) if np.any(~np.isnan(arr)) else math.nan


def json_clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN to None, unknown objects to str."""
    if isinstance(value, Mapping):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [json_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Path):
        return str(value)
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value


# ---------------------------------------------------------------------- text views
def _fmt(mean: float, std: float | None = None, digits: int = 3, n_splits: int = 2) -> str:
    """``mean ± std``; ``± n/a`` for one split, where a spread cannot be measured."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if n_splits < 2:
        return f"{mean:.{digits}f} ± n/a" if std is not None else f"{mean:.{digits}f}"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def display_frame(result: ComparisonResult, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Table of strings: model, strategy, (target), ``mean ± std`` per metric, fit time.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    metrics : sequence of str, default=None
        Metric columns; default the compact set :data:`COMPACT_METRICS` that exists, or
        every metric scored when none of it was (regression).

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> from sktransfer.results import display_frame
    >>> X, y = make_classification(100, random_state=0)
    >>> list(display_frame(compare({"lr": LogisticRegression()}, X, y, cv=2)).columns)[:3]
    ['model', 'strategy', 'balanced_accuracy']
    """
    table = result.table
    if metrics is None:
        # the compact set where it was scored, else (regression, a custom scoring) all
        metrics = [m for m in COMPACT_METRICS if m in result.metrics] or result.metrics
    columns = {"model": table["model"], "strategy": table["strategy"]}
    if table["target"].notna().any():
        columns["target"] = table["target"].astype(str)
    for metric in metrics:
        columns[metric] = [
            _fmt(m, s, n_splits=n) for m, s, n in
            zip(table[f"{metric}_mean"], table[f"{metric}_std"], table["n_splits"])
        ]
    columns["fit_time_s"] = [_fmt(t, digits=2) for t in table["fit_time_s_mean"]]
    columns["n_train"] = table["n_train"]
    return pd.DataFrame(columns)


def format_table(result: ComparisonResult, metrics: Sequence[str] | None = None) -> str:
    """The comparison as plain text, ``mean ± std`` over splits, for a terminal.

    With a single split per model the spread is shown as ``± n/a``.

    Parameters
    ----------
    result : ComparisonResult
        The comparison.
    metrics : sequence of str, default=None
        Metric columns; default the compact set :data:`COMPACT_METRICS` that exists, or
        every metric scored when none of it was (regression).

    Returns
    -------
    str

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> from sktransfer.results import format_table
    >>> X, y = make_classification(100, random_state=0)
    >>> format_table(compare({"lr": LogisticRegression()}, X, y, cv=2)).split()[:3]
    ['model', 'strategy', 'balanced_accuracy']
    """
    return display_frame(result, metrics).to_string(index=False)


def summary_lines(result: ComparisonResult, metric: str | None = None) -> list[str]:
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
    >>> from sktransfer.results import summary_lines
    >>> X, y = make_classification(200, random_state=0)
    >>> res = compare({"dummy": DummyClassifier(), "lr": LogisticRegression()}, X, y)
    >>> summary_lines(res)[0].startswith("Best by balanced_accuracy: lr")
    True
    """
    table = result.table
    lines = []
    for rec in result.winners(metric).to_dict("records"):
        where = f" on {rec['target']}" if rec["target"] is not None else ""
        row = table[(table["model"] == rec["best"]) & _same(table["target"], rec["target"])]
        n_splits = int(row["n_splits"].iloc[0]) if len(row) else 2
        text = (
            f"Best by {rec['metric']}{where}: {rec['best']} ({rec['strategy']}) "
            f"{_fmt(rec['score'], rec['score_std'], n_splits=n_splits)}, "
            f"fit {rec['fit_time_s']:.2f} s"
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
