"""Classical scikit-learn baselines, so a comparison shows whether a network is worth it.

Each baseline is a pipeline of a :class:`~sklearn.preprocessing.StandardScaler` and a
classifier, for tabular data (images must be flattened first). To be fair rivals on few
labelled rows, the regularisation of logistic regression and the ``C``/``gamma`` of the RBF
SVM are chosen by an inner stratified 3-fold cross-validation on the training rows alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

__all__ = ["BASELINES", "make_baseline"]


#: Inner-CV grids of the tuned baselines (C of logistic regression; C and gamma of the SVM).
LOGISTIC_C = (0.01, 0.1, 1.0, 10.0, 100.0)
SVM_GRID = {"C": [1.0, 10.0, 100.0, 1000.0], "gamma": ["scale", 0.003, 0.01, 0.03, 0.1]}


def _inner_cv(random_state) -> StratifiedKFold:
    # 3 folds: the few-label splits keep at least 2 rows of a class, so a fold may lack
    # one (scikit-learn warns); shuffling with the baseline's seed keeps repeats honest.
    seed = random_state if isinstance(random_state, int) else 0
    return StratifiedKFold(3, shuffle=True, random_state=seed)


def _logistic_regression(random_state, class_weight) -> Any:
    lr = LogisticRegression(max_iter=5000, class_weight=class_weight, random_state=random_state)
    return GridSearchCV(lr, {"C": list(LOGISTIC_C)}, cv=_inner_cv(random_state))


def _svm_rbf(random_state, class_weight) -> Any:
    svc = SVC(kernel="rbf", class_weight=class_weight, random_state=random_state)
    return GridSearchCV(svc, SVM_GRID, cv=_inner_cv(random_state))


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


def make_baseline(
    name: str, random_state: Any = None, class_weight: Any = None, preprocessing: Any = None
) -> Pipeline:
    """A classical baseline by name: ``make_pipeline(StandardScaler(), classifier)``.

    Parameters
    ----------
    name : {"logistic_regression", "svm_rbf", "random_forest"}
        Which classifier: logistic regression (``C`` by inner 3-fold CV), an RBF-kernel
        SVM (``C`` and ``gamma`` by inner 3-fold CV) or a random forest of 200 trees.
    random_state : int, RandomState or None, default=None
        Seed of the classifier.
    class_weight : None, "balanced" or dict, default=None
        Passed to the classifier (use ``"balanced"`` for imbalanced tasks, as for the
        networks).
    preprocessing : transformer or None, default=None
        A step put before the scaler (e.g. :class:`~sktransfer.preprocessing.SignedLog`),
        so the baselines can get the same input transform as the networks.

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
    >>> make_baseline("random_forest", random_state=0).steps[-1][0]
    'randomforestclassifier'
    >>> make_baseline("svm_rbf").steps[-1][1].param_grid["C"]
    [1.0, 10.0, 100.0, 1000.0]
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}")
    steps = [] if preprocessing is None else [preprocessing]
    return make_pipeline(*steps, StandardScaler(), BASELINES[name](random_state, class_weight))
