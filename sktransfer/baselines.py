"""Classical scikit-learn baselines, so a comparison shows whether a network is worth it.

Each baseline is a pipeline of a :class:`~sklearn.preprocessing.StandardScaler` and a
classifier, for tabular data (images must be flattened first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["BASELINES", "make_baseline"]


def _logistic_regression(random_state, class_weight) -> Any:
    return LogisticRegression(max_iter=2000, class_weight=class_weight, random_state=random_state)


def _svm_rbf(random_state, class_weight) -> Any:
    return SVC(kernel="rbf", class_weight=class_weight, random_state=random_state)


def _random_forest(random_state, class_weight) -> Any:
    return RandomForestClassifier(
        n_estimators=200, class_weight=class_weight, random_state=random_state
    )


#: Baseline name -> factory ``f(random_state, class_weight)`` of the final classifier.
BASELINES: dict[str, Callable[[Any, Any], Any]] = {
    "logistic_regression": _logistic_regression,
    "svm_rbf": _svm_rbf,
    "random_forest": _random_forest,
}


def make_baseline(name: str, random_state: Any = None, class_weight: Any = None) -> Pipeline:
    """A classical baseline by name: ``make_pipeline(StandardScaler(), classifier)``.

    Parameters
    ----------
    name : {"logistic_regression", "svm_rbf", "random_forest"}
        Which classifier: logistic regression, an RBF-kernel SVM or a random forest of
        200 trees.
    random_state : int, RandomState or None, default=None
        Seed of the classifier.
    class_weight : None, "balanced" or dict, default=None
        Passed to the classifier (use ``"balanced"`` for imbalanced tasks, as for the
        networks).

    Returns
    -------
    sklearn.pipeline.Pipeline
        An unfitted pipeline.

    Raises
    ------
    ValueError
        If ``name`` is not a known baseline; the message lists them.

    Examples
    --------
    >>> from sktransfer.baselines import make_baseline
    >>> make_baseline("svm_rbf", random_state=0).steps[-1][0]
    'svc'
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}")
    return make_pipeline(StandardScaler(), BASELINES[name](random_state, class_weight))
