"""Compare models on the same folds: scratch, transferred and classical, side by side.

:func:`compare` fits every model on the same splits and scores it with the same metrics;
its :class:`ComparisonResult` holds the table, the training curves and the confusion
matrices, and draws and saves the report (through :mod:`sktransfer.report`, imported only
when a plot or a report is asked for).
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing

__all__ = ["STRATEGIES", "ComparisonResult", "compare", "infer_strategy"]

#: The strategies a model row can have.
STRATEGIES = (
    "scratch",
    "feature-extraction",
    "fine-tune",
    "last-1",
    "last-2",
    "gradual",
    "baseline",
    "source-only",
)

#: Metrics computed for every task, then those added for binary tasks.
DEFAULT_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "kappa")
BINARY_METRICS = ("precision", "recall", "roc_auc")
PRIMARY_METRIC = "balanced_accuracy"

_SIMPLE_METRICS: dict[str, Callable] = {
    "accuracy": accuracy_score,
    "balanced_accuracy": balanced_accuracy_score,
    "f1_macro": lambda t, p: f1_score(t, p, average="macro", zero_division=0),
    "kappa": cohen_kappa_score,
}
_KNOWN_METRICS = (*DEFAULT_METRICS, *BINARY_METRICS)


# ---------------------------------------------------------------------- strategy inference
def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def infer_strategy(estimator: Any) -> str:
    """The strategy of a model, read from its parameters.

    A :class:`~sktransfer.TransferClassifier` (or a pipeline ending in one) is
    ``"feature-extraction"`` with ``freeze="backbone"``, ``"last-1"``/``"last-2"`` with
    ``"last:1"``/``"last:2"``, ``"gradual"`` with ``"gradual"``, and with ``"none"``
    ``"fine-tune"`` when it starts from pretrained weights (``weights`` set, or a
    backbone that is not a registry name: an exported backbone, a checkpoint, a module),
    else ``"scratch"``. Any other estimator is a ``"baseline"``.

    Parameters
    ----------
    estimator : estimator
        The model, fitted or not.

    Returns
    -------
    str
        One of :data:`STRATEGIES` (never ``"source-only"``, which says how a model is used,
        not how it is built: pass it in ``compare(strategies=...)``).

    Examples
    --------
    >>> from sktransfer import TransferClassifier
    >>> from sktransfer.compare import infer_strategy
    >>> infer_strategy(TransferClassifier("mlp"))
    'scratch'
    >>> infer_strategy(TransferClassifier("efficientnet_lite0", weights="imagenet",
    ...                                   freeze="backbone"))
    'feature-extraction'
    """
    from .estimator import TransferClassifier
    from .freeze import FreezeBackbone, FreezeLast, FreezeNone, FreezePolicy, GradualUnfreeze

    final = _final_step(estimator)
    if not isinstance(final, TransferClassifier):
        return "baseline"
    freeze = final.freeze
    if freeze is None or isinstance(freeze, str):
        from .registry import resolve_freeze_policy

        freeze = resolve_freeze_policy(freeze)
    if isinstance(freeze, FreezeBackbone):
        return "feature-extraction"
    if isinstance(freeze, FreezeLast):
        return {1: "last-1", 2: "last-2"}.get(freeze.k, "fine-tune")
    if isinstance(freeze, GradualUnfreeze):
        return "gradual"
    if isinstance(freeze, FreezePolicy) and not isinstance(freeze, FreezeNone):
        return "feature-extraction" if freeze.keeps_backbone_frozen() else "fine-tune"
    return "fine-tune" if _is_pretrained(final) else "scratch"


def _is_pretrained(clf: Any) -> bool:
    if clf.weights is not None:
        return True
    if not isinstance(clf.backbone, str):
        return True
    from .registry import available_backbones

    return clf.backbone not in available_backbones()  # a checkpoint path


def _check_strategy(name: str, strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown strategy {strategy!r} for model {name!r}; use one of {', '.join(STRATEGIES)}"
        )
    return strategy


# ---------------------------------------------------------------------- metrics
def _sanitize(name: Any) -> str:
    text = re.sub(r"\W+", "_", str(name)).strip("_").lower()
    return text or "class"


def _resolve_scoring(scoring, binary: bool) -> tuple[list[str], dict[str, Callable]]:
    """(built-in metric names, custom metrics) from the ``scoring`` argument."""
    defaults = [*DEFAULT_METRICS, *(BINARY_METRICS if binary else ())]
    if scoring is None:
        return defaults, {}
    if isinstance(scoring, Mapping):
        for name, func in scoring.items():
            if not callable(func):
                raise ValueError(f"scoring[{name!r}] must be a callable(y_true, y_pred)")
        return defaults, dict(scoring)
    if isinstance(scoring, str):
        scoring = [scoring]
    names = list(scoring)
    unknown = [n for n in names if n not in _KNOWN_METRICS]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {unknown}; built-in metrics: {', '.join(_KNOWN_METRICS)} "
            "(pass a dict name -> callable(y_true, y_pred) for others)"
        )
    if not binary and "roc_auc" in names:
        raise ValueError("roc_auc is computed for binary tasks only")
    return names, {}


def _metric_columns(builtins: list[str], custom: dict, labels, class_names) -> list[str]:
    columns = []
    for name in builtins:
        if name in ("precision", "recall"):
            columns += [f"{name}_{class_names[c]}" for c in labels]
        else:
            columns.append(name)
    return columns + list(custom)


def _score(y_true, y_pred, y_score, builtins, custom, labels, class_names) -> dict[str, float]:
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. kappa of constant predictions
        for name in builtins:
            if name in ("precision", "recall"):
                func = precision_score if name == "precision" else recall_score
                values = func(y_true, y_pred, labels=labels, average=None, zero_division=0)
                out.update({f"{name}_{class_names[c]}": float(v) for c, v in zip(labels, values)})
            elif name == "roc_auc":
                ok = y_score is not None and len(np.unique(y_true)) == 2
                out[name] = float(roc_auc_score(y_true == labels[1], y_score)) if ok else math.nan
            else:
                out[name] = float(_SIMPLE_METRICS[name](y_true, y_pred))
        for name, func in custom.items():
            out[name] = float(func(y_true, y_pred))
    return out


def _positive_score(est, X, proba, pos_label) -> np.ndarray | None:
    """Scores of the positive class, from probabilities or the decision function."""
    classes = list(getattr(est, "classes_", []))
    if pos_label not in classes:
        return None
    if proba is not None:
        return proba[:, classes.index(pos_label)]
    if hasattr(est, "decision_function"):
        scores = np.asarray(est.decision_function(X))
        if scores.ndim == 1 and len(classes) == 2:
            return scores if classes[1] == pos_label else -scores
    return None


# ---------------------------------------------------------------------- fitting
def _fit_predict(name, estimator, strategy, split, X_tr, y_tr, X_te, y_te, pos_label) -> dict:
    """Fit one model on one split (unless it is used as given) and predict the test rows."""
    from .estimator import TransferClassifier

    if strategy == "source-only":
        est, fit_time = estimator, 0.0
    else:
        est = clone(estimator)
        start = time.perf_counter()
        est.fit(X_tr, y_tr)
        fit_time = time.perf_counter() - start
    start = time.perf_counter()
    proba = None
    if isinstance(_final_step(est), TransferClassifier):
        proba = est.predict_proba(X_te)
        y_pred = np.asarray(est.classes_)[np.argmax(proba, axis=1)]
    else:
        y_pred = est.predict(X_te)
    predict_time = time.perf_counter() - start
    y_score = None
    if pos_label is not None:
        if proba is None and hasattr(est, "predict_proba") and not hasattr(
            est, "decision_function"
        ):
            proba = est.predict_proba(X_te)
        y_score = _positive_score(est, X_te, proba, pos_label)
    # A source-only model did not train here: its pretraining curves are not shown.
    history = None if strategy == "source-only" else getattr(_final_step(est), "history_", None)
    if isinstance(history, pd.DataFrame):
        history = history.assign(model=name, split=split)
    return {
        "model": name,
        "split": split,
        "y_true": np.asarray(y_te),
        "y_pred": np.asarray(y_pred),
        "y_score": y_score,
        "fit_time_s": fit_time,
        "predict_time_s": predict_time,
        "n_train": 0 if strategy == "source-only" else len(y_tr),
        "n_test": len(y_te),
        "history": history if isinstance(history, pd.DataFrame) else None,
    }


def _splits(X, y, cv, groups, test):
    """Yield (split index, X_train, y_train, X_test, y_test)."""
    if test is not None:
        if not (isinstance(test, Sequence) and len(test) == 2):
            raise ValueError("test must be a pair (X_test, y_test)")
        yield 0, X, y, test[0], np.asarray(test[1])
        return
    splitter = check_cv(cv, y, classifier=True)
    for i, (train, held) in enumerate(splitter.split(X, y, groups)):
        yield (i, _safe_indexing(X, train), y[train], _safe_indexing(X, held), y[held])


def compare(
    estimators: Mapping[str, Any],
    X: Any,
    y: Any,
    *,
    cv: Any = 5,
    scoring: Sequence[str] | Mapping[str, Callable] | None = None,
    groups: Any = None,
    test: tuple[Any, Any] | None = None,
    strategies: Mapping[str, str] | None = None,
    target: str | None = None,
    class_names: Sequence[str] | Mapping[Any, str] | None = None,
    n_jobs: int | None = None,
    progress: bool = False,
    experiment: str = "comparison",
    settings: Mapping[str, Any] | None = None,
) -> ComparisonResult:
    """Fit and score several models on the same folds, and put them side by side.

    Each model is cloned and fitted on each training split, then scored on the held-out
    rows with the same metrics; training time, prediction time and (for neural models)
    the per-epoch training curves are recorded.

    Parameters
    ----------
    estimators : dict of str to estimator
        The models, by the name shown in the table. A model whose strategy is
        ``"source-only"`` is used as given (already fitted, never refitted).
    X : array-like, DataFrame or image array
        The data the models are fitted (and, with ``cv``, scored) on.
    y : array-like of shape (n_samples,)
        Class labels.
    cv : int, cross-validation splitter or iterable of (train, test) indices, default=5
        As in scikit-learn (an int means stratified k-fold). A list of precomputed
        ``(train_idx, test_idx)`` pairs gives repeated few-label splits, e.g. from
        ``StratifiedShuffleSplit(train_size=0.1)``. Ignored when ``test`` is given.
    scoring : list of str or dict of str to callable, default=None
        ``None``: accuracy, balanced accuracy, macro F1 and Cohen's kappa, plus for binary
        tasks the precision and recall of each class and the ROC AUC. A list restricts to
        these built-in names (``"accuracy"``, ``"balanced_accuracy"``, ``"f1_macro"``,
        ``"kappa"``, ``"precision"``, ``"recall"``, ``"roc_auc"``); a dict
        ``name -> callable(y_true, y_pred)`` adds metrics to the defaults.
    groups : array-like of shape (n_samples,), default=None
        Group labels passed to the splitter (for ``GroupKFold``...).
    test : tuple (X_test, y_test), default=None
        A separate test set: each model is fitted once on all of ``X, y`` and scored
        on it.
    strategies : dict of str to str, default=None
        The strategy of some or all models (see :data:`STRATEGIES`); the others are
        inferred by :func:`infer_strategy`.
    target : str, default=None
        A name for the target domain or task, shown in the table (results for several
        targets are combined with :meth:`ComparisonResult.concat`).
    class_names : sequence or dict, default=None
        Names of the classes (in sorted label order, or label -> name) used in metric
        names such as ``precision_<name>`` and in the plots; default ``str(label)``.
    n_jobs : int, default=None
        Fit (model, split) pairs in parallel with joblib; ``None`` runs them one by one.
    progress : bool, default=False
        Show a tqdm progress bar over the (model, split) fits.
    experiment : str, default="comparison"
        Title of the results.
    settings : dict, default=None
        Extra settings recorded in the results (data, epochs, seeds...).

    Returns
    -------
    ComparisonResult
        ``table``, ``histories``, ``rows``, plots and ``save``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.dummy import DummyClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.compare import compare
    >>> X, y = make_classification(200, random_state=0)
    >>> result = compare({"dummy": DummyClassifier(), "logreg": LogisticRegression()},
    ...                  X, y, cv=3)
    >>> result.table[["model", "strategy"]].values.tolist()
    [['dummy', 'baseline'], ['logreg', 'baseline']]
    """
    if not isinstance(estimators, Mapping) or not estimators:
        raise ValueError("estimators must be a non-empty dict of name -> estimator")
    strategies = dict(strategies or {})
    extra = set(strategies) - set(estimators)
    if extra:
        raise ValueError(f"strategies names models that are not compared: {sorted(extra)}")
    strategy_of = {
        name: _check_strategy(name, strategies.get(name) or infer_strategy(est))
        for name, est in estimators.items()
    }
    y = np.asarray(y)
    labels = np.unique(y if test is None else np.concatenate([y, np.asarray(test[1])]))
    binary = len(labels) == 2
    builtins, custom = _resolve_scoring(scoring, binary)
    names = _class_names(labels, class_names)
    pos_label = labels[1] if "roc_auc" in builtins else None

    tasks = [
        (name, est, strategy_of[name], *split, pos_label)
        for split in _splits(X, y, cv, groups, test)
        for name, est in estimators.items()
    ]
    fits = _run_tasks(tasks, n_jobs, progress, f"{experiment} {target or ''}".strip())

    records, histories, outcomes = [], [], {}
    for fit in fits:
        scores = _score(fit["y_true"], fit["y_pred"], fit["y_score"], builtins, custom,
                        list(labels), names)
        records.append({
            "model": fit["model"], "strategy": strategy_of[fit["model"]], "target": target,
            "split": fit["split"], **scores,
            **{k: fit[k] for k in ("fit_time_s", "predict_time_s", "n_train", "n_test")},
        })
        if fit["history"] is not None:
            histories.append(fit["history"].assign(target=target))
        outcomes.setdefault(fit["model"], []).append((fit["y_true"], fit["y_pred"]))

    confusion = {
        (name, target): _confusion(outcomes[name], labels, names) for name in estimators
    }
    all_settings = {
        "n_samples": len(y),
        "n_classes": len(labels),
        "classes": [names[c] for c in labels],
        "cv": "test set" if test is not None else _describe_cv(cv),
        "n_test_samples": None if test is None else len(test[1]),
        **dict(settings or {}),
    }
    return ComparisonResult(
        scores=pd.DataFrame.from_records(records),
        metrics=_metric_columns(builtins, custom, labels, names),
        histories=pd.concat(histories, ignore_index=True) if histories else None,
        confusion=confusion,
        experiment=experiment,
        settings=all_settings,
    )


def _run_tasks(tasks, n_jobs, progress, desc) -> list[dict]:
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    parallel = Parallel(n_jobs=n_jobs, return_as="generator")
    results = []
    with tqdm(total=len(tasks), desc=desc, unit="fit", disable=not progress, leave=False) as bar:
        for out in parallel(delayed(_fit_predict)(*task) for task in tasks):
            results.append(out)
            bar.set_postfix_str(out["model"], refresh=False)
            bar.update()
    return results


def _class_names(labels, class_names) -> dict:
    if class_names is None:
        return {c: _sanitize(c) for c in labels}
    if isinstance(class_names, Mapping):
        return {c: _sanitize(class_names.get(c, c)) for c in labels}
    class_names = list(class_names)
    if len(class_names) != len(labels):
        raise ValueError(f"class_names has {len(class_names)} names for {len(labels)} classes")
    return {c: _sanitize(n) for c, n in zip(labels, class_names)}


def _confusion(outcomes, labels, names) -> dict:
    y_true = np.concatenate([t for t, _ in outcomes])
    y_pred = np.concatenate([p for _, p in outcomes])
    extra = [c for c in np.unique(y_pred) if c not in set(labels)]
    all_labels = [*labels, *extra]
    matrix = confusion_matrix(y_true, y_pred, labels=all_labels)
    return {"labels": [names.get(c, _sanitize(c)) for c in all_labels], "matrix": matrix}


def _describe_cv(cv) -> str:
    if isinstance(cv, int):
        return f"stratified {cv}-fold"
    if isinstance(cv, list | tuple):
        return f"{len(cv)} precomputed splits"
    return repr(cv)


# ---------------------------------------------------------------------- result
class ComparisonResult:
    """The outcome of :func:`compare`: scores per split, summary table, curves, plots.

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
    primary_metric : str, default="balanced_accuracy"
        The metric that ranks models in the summary.

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
        primary_metric: str = PRIMARY_METRIC,
    ):
        self.scores = scores
        self.metrics = list(metrics)
        self.histories = histories
        self.confusion = confusion
        self.experiment = experiment
        self.settings = dict(settings)
        self.primary_metric = primary_metric

    def __repr__(self) -> str:
        return (
            f"ComparisonResult({self.experiment!r}, models={self.models}, "
            f"targets={self.targets})"
        )

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
            records.append(_json_clean(rec))
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
            "settings": _json_clean(self.settings),
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

    # ------------------------------------------------------------------ plots and report
    def plot_learning_curves(self, model: str | None = None, target: Any = None):
        """Loss and accuracy per epoch, train solid and validation dashed.

        See :func:`sktransfer.report.plot_learning_curves`.

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import TransferClassifier
        >>> from sktransfer.compare import compare
        >>> X, y = np.random.rand(60, 4), np.arange(60) % 2
        >>> res = compare({"mlp": TransferClassifier("mlp", max_epochs=2)}, X, y, cv=2)
        >>> fig = res.plot_learning_curves("mlp")
        """
        from .report import plot_learning_curves

        return plot_learning_curves(self, model=model, target=target)

    def plot_overlay(self, metric: str | None = None, target: Any = None):
        """All neural models' curves overlaid.

        See :func:`sktransfer.report.plot_overlay`.

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import TransferClassifier
        >>> from sktransfer.compare import compare
        >>> X, y = np.random.rand(60, 4), np.arange(60) % 2
        >>> res = compare({"mlp": TransferClassifier("mlp", max_epochs=2)}, X, y, cv=2)
        >>> fig = res.plot_overlay(metric="valid_acc")
        """
        from .report import plot_overlay

        return plot_overlay(self, metric=metric, target=target)

    def plot_metrics(self, metrics: Sequence[str] | None = None, target: Any = None):
        """Bar chart of the metrics with standard-deviation error bars.

        See :func:`sktransfer.report.plot_metrics`.

        Examples
        --------
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sktransfer.compare import compare
        >>> X, y = make_classification(100, random_state=0)
        >>> res = compare({"lr": LogisticRegression()}, X, y, cv=2)
        >>> fig = res.plot_metrics(["accuracy", "kappa"])
        """
        from .report import plot_metrics

        return plot_metrics(self, metrics=metrics, target=target)

    def plot_confusion_matrices(self, target: Any = None):
        """One confusion matrix per model, summed over splits.

        See :func:`sktransfer.report.plot_confusion_matrices`.

        Examples
        --------
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sktransfer.compare import compare
        >>> X, y = make_classification(100, random_state=0)
        >>> fig = compare({"lr": LogisticRegression()}, X, y, cv=2).plot_confusion_matrices()
        """
        from .report import plot_confusion_matrices

        return plot_confusion_matrices(self, target=target)

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``results.json``, ``report.md`` and the plots (PNG).

        See :func:`sktransfer.report.save_report`.

        Parameters
        ----------
        directory : str or path
            Created if needed.

        Returns
        -------
        list of pathlib.Path
            The files written.

        Examples
        --------
        >>> import tempfile
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sktransfer.compare import compare
        >>> X, y = make_classification(100, random_state=0)
        >>> paths = compare({"lr": LogisticRegression()}, X, y, cv=2).save(tempfile.mkdtemp())
        >>> paths[0].name
        'results.json'
        """
        from .report import save_report

        return save_report(self, directory)


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


def _json_clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN to None, unknown objects to str."""
    if isinstance(value, Mapping):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [_json_clean(v) for v in value]
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
