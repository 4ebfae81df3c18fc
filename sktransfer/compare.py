"""Compare models on the same folds: scratch, transferred and classical, side by side.

:func:`compare` fits every model on the same splits and scores it with scikit-learn
scorers; the :class:`~sktransfer.results.ComparisonResult` it returns holds the table, the
training curves and the confusion matrices. Plots and report files are drawn from it by
:mod:`sktransfer.report`, which this module never imports.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_regressor
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import (
    check_scoring,
    cohen_kappa_score,
    confusion_matrix,
    get_scorer,
    get_scorer_names,
    make_scorer,
    precision_score,
    recall_score,
)
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import InvalidParameterError, validate_params
from sklearn.utils.metaestimators import available_if

from .freeze import STRATEGY_FREEZE, strategy_for_policy
from .results import PRIMARY_METRIC, ComparisonResult  # noqa: F401  (re-exported)

__all__ = ["STRATEGIES", "ComparisonResult", "compare", "infer_strategy"]

#: The strategies a model row can have: those of :data:`sktransfer.freeze.STRATEGY_FREEZE`,
#: then classical models and fitted models used as they are.
STRATEGIES = (*STRATEGY_FREEZE, "baseline", "source-only")

#: Metrics computed for every task, then those added for binary tasks.
DEFAULT_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "kappa")
BINARY_METRICS = ("precision", "recall", "roc_auc")

#: Short names of this module for scikit-learn scorers (others are sklearn's own names).
_ALIASES: dict[str, Callable[[], Any]] = {
    "kappa": lambda: make_scorer(cohen_kappa_score),
}
_PER_CLASS = {"precision": precision_score, "recall": recall_score}


# ---------------------------------------------------------------------- strategy inference
def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def infer_strategy(estimator: Any) -> str:
    """The strategy of a model, read from its parameters.

    A :class:`~sklearn.frozen.FrozenEstimator` (a fitted model used as it is, never
    refitted) is ``"source-only"``. A :class:`~sktransfer.TransferClassifier` or
    :class:`~sktransfer.TransferRegressor` (or a
    pipeline ending in one) gets the strategy of its freeze policy, read from the one
    table :data:`sktransfer.freeze.STRATEGY_FREEZE`: ``"feature-extraction"`` with
    ``freeze="backbone"``, ``"last-1"``/``"last-2"`` with ``"last:1"``/``"last:2"``,
    ``"gradual"`` with ``"gradual"``, and with ``"none"`` ``"fine-tune"`` when it starts
    from pretrained weights (``weights`` set, or a backbone that is not a registry name: an
    exported backbone, a checkpoint, a module), else ``"scratch"``. Any other estimator is
    a ``"baseline"``.

    Parameters
    ----------
    estimator : estimator
        The model, fitted or not.

    Returns
    -------
    str
        One of :data:`STRATEGIES`.

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
    from ._base_estimator import _TransferEstimatorBase

    if isinstance(estimator, FrozenEstimator):
        return "source-only"
    final = _final_step(estimator)
    if not isinstance(final, _TransferEstimatorBase) or not hasattr(final, "freeze"):
        return "baseline"
    freeze = final.freeze
    if freeze is None or isinstance(freeze, str):
        from .registry import resolve_freeze_policy

        freeze = resolve_freeze_policy(freeze)
    return strategy_for_policy(freeze, pretrained=_is_pretrained(final))


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


def _named_scorer(name: str) -> Any:
    if name in _ALIASES:
        return _ALIASES[name]()
    try:
        return get_scorer(name)
    except ValueError:
        raise ValueError(
            f"unknown metric {name!r}; use {', '.join((*DEFAULT_METRICS, *BINARY_METRICS))}, "
            "any scikit-learn scorer name (sklearn.metrics.get_scorer_names(), e.g. "
            f"{', '.join(get_scorer_names()[:3])}...), or a dict name -> scorer"
        ) from None


def _resolve_scoring(scoring, binary: bool, labels, class_names) -> dict[str, Any]:
    """Metric column -> scikit-learn scorer, from the ``scoring`` argument.

    ``"precision"`` and ``"recall"`` expand to one scorer per class
    (``precision_<class>``); other names are :func:`sklearn.metrics.get_scorer` names or
    aliases of this module (``"kappa"``). A dict adds its scorers to the defaults.
    """
    defaults = [*DEFAULT_METRICS, *(BINARY_METRICS if binary else ())]
    custom: dict[str, Any] = {}
    if scoring is None:
        names = defaults
    elif isinstance(scoring, Mapping):
        names = defaults
        for name, scorer in scoring.items():
            if isinstance(scorer, str):
                scorer = _named_scorer(scorer)
            elif not callable(scorer):
                raise ValueError(
                    f"scoring[{name!r}] must be a scorer name or a scorer "
                    "callable(estimator, X, y), e.g. sklearn.metrics.make_scorer(func)"
                )
            custom[str(name)] = scorer
    else:
        names = [scoring] if isinstance(scoring, str) else list(scoring)
        if not all(isinstance(n, str) for n in names):
            raise ValueError("scoring must be a metric name, a list of names or a dict "
                             "name -> scorer")
    if not binary and "roc_auc" in names:
        raise ValueError("roc_auc is computed for binary tasks only; for several classes "
                         "use 'roc_auc_ovr' or 'roc_auc_ovo'")
    scorers: dict[str, Any] = {}
    for name in names:
        if name in _PER_CLASS:
            for c in labels:
                scorers[f"{name}_{class_names[c]}"] = make_scorer(
                    _PER_CLASS[name], labels=[c], average="macro", zero_division=0)
        else:
            scorers[name] = _named_scorer(name)
    return {**scorers, **custom}


#: what a regression comparison scores when ``scoring`` is None
REGRESSION_METRICS = ("r2", "neg_mean_absolute_error", "neg_root_mean_squared_error")


def _resolve_regression_scoring(scoring) -> dict[str, Any]:
    if scoring is None:
        names, custom = list(REGRESSION_METRICS), {}
    elif isinstance(scoring, Mapping):
        names = list(REGRESSION_METRICS)
        custom = {str(k): _named_scorer(v) if isinstance(v, str) else v
                  for k, v in scoring.items()}
    else:
        names, custom = ([scoring] if isinstance(scoring, str) else list(scoring)), {}
    return {**{n: _named_scorer(n) for n in names}, **custom}


class _PredictedRegression(RegressorMixin, BaseEstimator):
    """A regressor's stored test predictions, dressed as a fitted regressor for scorers."""

    def __init__(self, y_pred):
        self.y_pred = y_pred

    def fit(self, X, y):  # pragma: no cover - never refitted
        return self

    def predict(self, X):
        return self.y_pred


class _Predicted(ClassifierMixin, BaseEstimator):
    """A model's stored test outputs, dressed as a fitted classifier for sklearn scorers.

    Each model predicts its test rows once; every scorer then reads the stored outputs,
    whatever response method (``predict``, ``predict_proba``, ``decision_function``) it
    asks for.
    """

    def __init__(self, classes, y_pred, proba=None, decision=None):
        self.classes = classes
        self.y_pred = y_pred
        self.proba = proba
        self.decision = decision

    @property
    def classes_(self):
        return np.asarray(self.classes)

    def fit(self, X, y):  # pragma: no cover - never refitted
        return self

    def predict(self, X):
        return self.y_pred

    @available_if(lambda self: self.proba is not None)
    def predict_proba(self, X):
        return self.proba

    @available_if(lambda self: self.decision is not None)
    def decision_function(self, X):
        return self.decision


def _score(fit: dict, scorers: dict[str, Any]) -> dict[str, float]:
    """Every metric of one fit, from its stored outputs; a metric that cannot be computed
    on these rows (ROC AUC of a one-class fold...) is NaN."""
    if fit["classes"] is None:
        stored = _PredictedRegression(fit["y_pred"])
    else:
        stored = _Predicted(fit["classes"], fit["y_pred"], fit["proba"], fit["decision"])
    scorer = check_scoring(stored, scoring=scorers, raise_exc=False)
    X_dummy = np.zeros((len(fit["y_true"]), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. kappa of constant predictions
        values = scorer(stored, X_dummy, fit["y_true"])
    out = {}
    for name in scorers:
        value = values.get(name)
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            out[name] = float("nan")  # the scorer failed: its message is in ``value``
    return out


# ---------------------------------------------------------------------- fitting
class ModelParameterError(ValueError, TypeError):
    """A parameter of an estimator given to :func:`~sktransfer.compare` or
    :func:`~sktransfer.lr_find` is invalid (scikit-learn's ``InvalidParameterError``,
    named after the model; both derive from ``ValueError`` and ``TypeError``)."""


def _fit_predict(name, estimator, strategy, split, X_tr, y_tr, X_te, y_te) -> dict:
    """Fit one model on one split (a frozen one is used as given) and predict the test rows."""
    from .estimator import TransferClassifier

    if strategy == "source-only" and not isinstance(estimator, FrozenEstimator):
        estimator = FrozenEstimator(estimator)
    est = clone(estimator)  # a FrozenEstimator clones to itself
    start = time.perf_counter()
    try:
        est.fit(X_tr, y_tr)  # a no-op for a FrozenEstimator
    except InvalidParameterError as exc:
        # named after the model; not an InvalidParameterError, or compare's validation
        # wrapper would rename the estimator in the message to "compare"
        raise ModelParameterError(f"model {name!r}: {exc}") from exc
    fit_time = 0.0 if strategy == "source-only" else time.perf_counter() - start
    start = time.perf_counter()
    proba = decision = None
    if isinstance(_final_step(est), TransferClassifier):
        proba = est.predict_proba(X_te)  # one forward pass gives both
        y_pred = np.asarray(est.classes_)[np.argmax(proba, axis=1)]
    else:
        y_pred = est.predict(X_te)
    predict_time = time.perf_counter() - start
    if proba is None and hasattr(est, "predict_proba"):
        proba = est.predict_proba(X_te)
    if hasattr(est, "decision_function"):
        decision = est.decision_function(X_te)
    # A source-only model did not train here: its pretraining curves are not shown.
    history = None if strategy == "source-only" else getattr(_final_step(est), "history_", None)
    if isinstance(history, pd.DataFrame):
        history = history.assign(model=name, split=split)
    return {
        "model": name,
        "split": split,
        "classes": np.asarray(est.classes_) if hasattr(est, "classes_") else None,
        "y_true": np.asarray(y_te),
        "y_pred": np.asarray(y_pred),
        "proba": proba,
        "decision": decision,
        "fit_time_s": fit_time,
        "predict_time_s": predict_time,
        "n_train": 0 if strategy == "source-only" else len(y_tr),
        "n_test": len(y_te),
        "history": history if isinstance(history, pd.DataFrame) else None,
    }


def _splits(X, y, cv, groups, test, classifier: bool = True):
    """Yield (split index, X_train, y_train, X_test, y_test)."""
    if test is not None:
        if not (isinstance(test, Sequence) and len(test) == 2):
            raise ValueError("test must be a pair (X_test, y_test)")
        yield 0, X, y, test[0], np.asarray(test[1])
        return
    splitter = check_cv(cv, y, classifier=classifier)
    for i, (train, held) in enumerate(splitter.split(X, y, groups)):
        yield (i, _safe_indexing(X, train), y[train], _safe_indexing(X, held), y[held])


@validate_params(
    {
        "estimators": [Mapping],
        "X": "no_validation",  # tables, image arrays, paths, DataFrames: checked per model
        "y": ["array-like"],
        "cv": ["cv_object"],
        "scoring": [str, list, tuple, Mapping, None],
        "groups": ["array-like", None],
        "test": [tuple, None],
        "strategies": [Mapping, None],
        "target": [str, None],
        "class_names": ["array-like", Mapping, None],
        "n_jobs": [Integral, None],
        "progress": ["boolean"],
        "experiment": [str],
        "settings": [Mapping, None],
    },
    # False: the estimators fitted inside check their parameters, as in cross_validate
    prefer_skip_nested_validation=False,
)
def compare(
    estimators: Mapping[str, Any],
    X: Any,
    y: Any,
    *,
    cv: Any = 5,
    scoring: str | Sequence[str] | Mapping[str, Any] | None = None,
    groups: Any = None,
    test: tuple[Any, Any] | None = None,
    strategies: Mapping[str, str] | None = None,
    target: str | None = None,
    class_names: Sequence[str] | Mapping[Any, str] | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
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
        The models, by the name shown in the table. A fitted model wrapped in
        :class:`sklearn.frozen.FrozenEstimator` (or one whose strategy is given as
        ``"source-only"``) is used as it is, never refitted.
    X : array-like, DataFrame or image array
        The data the models are fitted (and, with ``cv``, scored) on.
    y : array-like of shape (n_samples,)
        Class labels.
    cv : int, cross-validation splitter or iterable of (train, test) indices, default=5
        As in scikit-learn (an int means stratified k-fold). A list of precomputed
        ``(train_idx, test_idx)`` pairs gives repeated few-label splits, e.g. from
        ``StratifiedShuffleSplit(train_size=0.1)``. Ignored when ``test`` is given.
    scoring : str, list of str or dict of str to scorer, default=None
        Scored with scikit-learn scorers (:func:`sklearn.metrics.get_scorer`), each model
        predicting its test rows once. ``None``: accuracy, balanced accuracy, macro F1
        and Cohen's kappa (``"kappa"``), plus for binary tasks the precision and recall of
        each class (``"precision"``/``"recall"`` give one column per class) and the ROC
        AUC. A name or a list restricts to those names (any of
        :func:`sklearn.metrics.get_scorer_names` too); a dict ``name -> scorer``
        (a scorer name, or a callable ``scorer(estimator, X, y)`` such as
        :func:`sklearn.metrics.make_scorer` makes) adds metrics to the defaults.
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
        Names are cleaned to lower-case word characters (``"Setosa"`` -> ``setosa``)
        unless that would give two classes one name (``-1`` and ``1``): then they are
        kept as written. Two classes named alike are an error.
    n_jobs : int, default=None
        Fit (model, split) pairs in parallel with joblib; ``None`` runs them one by one.
    progress : bool, default=True
        A tqdm progress bar over the (model, split) fits, on stderr; ``False`` for
        silence.
    experiment : str, default="comparison"
        Title of the results.
    settings : dict, default=None
        Extra settings recorded in the results (data, epochs, seeds...).

    Returns
    -------
    ComparisonResult
        ``table``, ``histories``, ``rows``; ``print(result)`` shows the table, and
        :func:`sktransfer.report.save_report` writes the plots and files.

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
    not_estimators = {name: type(est).__name__ for name, est in estimators.items()
                      if not (hasattr(est, "fit") and hasattr(est, "get_params"))}
    if not_estimators:
        raise TypeError(
            f"estimators must map names to scikit-learn estimators (with fit and "
            f"get_params); these are not: {not_estimators}"
        )
    strategies = dict(strategies or {})
    extra = set(strategies) - set(estimators)
    if extra:
        raise ValueError(f"strategies names models that are not compared: {sorted(extra)}")
    strategy_of = {
        name: _check_strategy(name, strategies.get(name) or infer_strategy(est))
        for name, est in estimators.items()
    }
    y = np.asarray(y)
    kinds = {is_regressor(_final_step(est)) for est in estimators.values()}
    if len(kinds) > 1:
        raise ValueError(
            "estimators mixes regressors and classifiers; compare models of one task at a "
            "time"
        )
    regression = kinds == {True}
    if regression:
        labels, names = [], {}
        scorers = _resolve_regression_scoring(scoring)
    else:
        labels = np.unique(y if test is None else np.concatenate([y, np.asarray(test[1])]))
        binary = len(labels) == 2
        names = _class_names(labels, class_names)
        scorers = _resolve_scoring(scoring, binary, labels, names)

    tasks = [
        (name, est, strategy_of[name], *split)
        for split in _splits(X, y, cv, groups, test, classifier=not regression)
        for name, est in estimators.items()
    ]
    fits = _run_tasks(tasks, n_jobs, progress, f"{experiment} {target or ''}".strip())

    records, histories, outcomes = [], [], {}
    for fit in fits:
        scores = _score(fit, scorers)
        records.append({
            "model": fit["model"], "strategy": strategy_of[fit["model"]], "target": target,
            "split": fit["split"], **scores,
            **{k: fit[k] for k in ("fit_time_s", "predict_time_s", "n_train", "n_test")},
        })
        if fit["history"] is not None:
            histories.append(fit["history"].assign(target=target))
        outcomes.setdefault(fit["model"], []).append((fit["y_true"], fit["y_pred"]))

    confusion = {} if regression else {
        (name, target): _confusion(outcomes[name], labels, names) for name in estimators
    }
    task = {"task": "regression"} if regression else {
        "n_classes": len(labels), "classes": [names[c] for c in labels]}
    all_settings = {
        "n_samples": len(y),
        **task,
        "cv": "test set" if test is not None else _describe_cv(cv, regression),
        "n_test_samples": None if test is None else len(test[1]),
        **dict(settings or {}),
    }
    return ComparisonResult(
        scores=pd.DataFrame.from_records(records),
        metrics=list(scorers),
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
    with tqdm(total=len(tasks), desc=desc, unit="fit", disable=not progress, leave=False,
              file=sys.stderr) as bar:
        for out in parallel(delayed(_fit_predict)(*task) for task in tasks):
            results.append(out)
            bar.set_postfix_str(out["model"], refresh=False)
            bar.update()
    return results


def _class_names(labels, class_names) -> dict:
    """Class -> the name in metric columns (``precision_<name>``) and confusion matrices.

    Names are cleaned to word characters in lower case; where that would give two classes
    one name (``-1`` and ``1``, ``"A"`` and ``"a"``), every name is kept as written, so no
    class's columns overwrite another's.
    """
    if class_names is None:
        raw = {c: c for c in labels}
    elif isinstance(class_names, Mapping):
        raw = {c: class_names.get(c, c) for c in labels}
    else:
        class_names = list(class_names)
        if len(class_names) != len(labels):
            raise ValueError(
                f"class_names has {len(class_names)} names for {len(labels)} classes")
        raw = dict(zip(labels, class_names))
    names = {c: _sanitize(n) for c, n in raw.items()}
    if len(set(names.values())) == len(names):
        return names
    names = {c: str(n) for c, n in raw.items()}
    if len(set(names.values())) < len(names):
        same = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
        raise ValueError(f"class_names gives several classes the name(s) {same}; give each "
                         "class its own name")
    return names


def _confusion(outcomes, labels, names) -> dict:
    y_true = np.concatenate([t for t, _ in outcomes])
    y_pred = np.concatenate([p for _, p in outcomes])
    extra = [c for c in np.unique(y_pred) if c not in set(labels)]
    all_labels = [*labels, *extra]
    matrix = confusion_matrix(y_true, y_pred, labels=all_labels)
    return {"labels": [names.get(c, _sanitize(c)) for c in all_labels], "matrix": matrix}


def _describe_cv(cv, regression: bool = False) -> str:
    if isinstance(cv, int):  # check_cv: KFold for regressors, StratifiedKFold otherwise
        return f"{cv}-fold" if regression else f"stratified {cv}-fold"
    if isinstance(cv, list | tuple):
        return f"{len(cv)} precomputed splits"
    return repr(cv)


