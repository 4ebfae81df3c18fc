"""Input preprocessing for drifting tabular data: signed log and per-domain standardisation.

Gas-sensor features are heavy-tailed (resistance changes up to 1e5 beside slopes near
0.01) and drift from batch to batch. Two cheap remedies, chosen by measurement on the gas
batches (``benchmarks/bench_gas.py``):

- :class:`SignedLog`: ``sign(x) * log1p(|x|)`` tames the tails, so a few extreme readings
  no longer dominate a standardisation or a network's first layer;
- :func:`sensor_pattern`: each row's response pattern across the sensor array, scaled to
  unit length per feature type (vector normalisation, the e-nose remedy for
  concentration: the direction of the array's response names the gas, its length mostly
  says how much of it there is; Gardner & Bartlett, "Electronic Noses", 1999; Pearce et
  al., "Handbook of Machine Olfaction", 2003);
- :func:`standardize_by_group`: each domain (a batch recorded months later) is
  standardised with its own mean and standard deviation, computed from its own rows
  without labels (transductive, as in domain-specific normalisation: AdaBN, Li et al.
  2016, "Revisiting Batch Normalization For Practical Domain Adaptation"). A network
  trained on standardised source batches then meets target inputs on the same scale.

:func:`preprocess_gas` chains them under one name, the ``preprocessing`` option of
:func:`~sktransfer.experiments.run_gas`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils._param_validation import StrOptions, validate_params
from sklearn.utils.validation import check_array, validate_data

__all__ = [
    "PREPROCESSING", "SignedLog", "preprocess_gas", "sensor_pattern", "signed_log",
    "standardize_by_group",
]

#: Names of the preprocessing choices of :func:`preprocess_gas`.
PREPROCESSING = ("none", "log", "batch", "log+batch", "pattern+batch", "batch,pattern+batch")


def _check_preprocessing(name: str) -> str:
    """``name`` if it is one of :data:`PREPROCESSING`, else a ValueError naming them all
    (for callers that check before any work: ``run_gas``, the command line)."""
    if name not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing {name!r}; use one of "
                         f"{', '.join(map(repr, PREPROCESSING))}")
    return name


def signed_log(X) -> np.ndarray:
    """``sign(X) * log1p(|X|)``: a log that keeps signs and zeros, for heavy tails.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    ndarray of the same shape, float.

    Examples
    --------
    >>> from sktransfer.preprocessing import signed_log
    >>> signed_log([[0.0, -99.0, 9999.0]]).round(2)
    array([[ 0.  , -4.61,  9.21]])
    """
    X = check_array(X, dtype=(np.float64, np.float32))
    return np.sign(X) * np.log1p(np.abs(X))


class SignedLog(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Transformer form of :func:`signed_log` (stateless), for pipelines.

    Examples
    --------
    >>> from sktransfer.preprocessing import SignedLog
    >>> SignedLog().fit_transform([[1.0, -1.0]]).round(3)
    array([[ 0.693, -0.693]])
    """

    def fit(self, X, y=None) -> SignedLog:
        """Check ``X`` and remember its width; nothing is learned."""
        validate_data(self, X, dtype=(np.float64, np.float32))
        return self

    def transform(self, X) -> np.ndarray:
        """Apply ``sign(x) * log1p(|x|)``."""
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        return signed_log(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def sensor_pattern(X, n_sensors: int = 16) -> np.ndarray:
    """Scale each row's pattern across the sensors to unit length, per feature type.

    ``X`` holds ``n_sensors`` blocks of the same features, one block per sensor (the gas
    drift layout: 16 sensors x 8 features, sensor-major). For each row and each feature
    type, the vector of that feature over the sensors is divided by its Euclidean norm, so
    a gas at another concentration (the same pattern, larger or smaller) maps to the same
    point. Uses no labels and nothing across rows.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_sensors * n_features_per_sensor)
    n_sensors : int, default=16
        Number of sensor blocks.

    Returns
    -------
    ndarray of the same shape, float64; an all-zero pattern stays zero.

    Raises
    ------
    ValueError
        If the number of columns is not a multiple of ``n_sensors``.

    Examples
    --------
    >>> from sktransfer.preprocessing import sensor_pattern
    >>> sensor_pattern([[3.0, 10.0, 4.0, 0.0]], n_sensors=2)  # two sensors, two features
    array([[0.6, 1. , 0.8, 0. ]])
    """
    X = check_array(X, dtype=np.float64)
    if n_sensors < 1 or X.shape[1] % n_sensors:
        raise ValueError(f"X has {X.shape[1]} columns, not a multiple of n_sensors={n_sensors}")
    blocks = X.reshape(len(X), n_sensors, -1)
    norm = np.linalg.norm(blocks, axis=1, keepdims=True)
    norm[norm < 1e-12] = 1.0
    return (blocks / norm).reshape(X.shape)


def standardize_by_group(X, groups) -> np.ndarray:
    """Standardise each group of rows (a domain, a batch) with its own mean and deviation.

    Uses no labels: a target domain's unlabelled rows set its scale (transductive). A
    constant column of a group is centred and left unscaled.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    groups : array-like of shape (n_samples,)
        The domain of each row.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64.

    Raises
    ------
    ValueError
        If ``groups`` does not have one entry per row, or a group has a single row
        (its deviation is undefined).

    Examples
    --------
    >>> from sktransfer.preprocessing import standardize_by_group
    >>> standardize_by_group([[1.0], [3.0], [10.0], [30.0]], [0, 0, 1, 1]).ravel()
    array([-1.,  1., -1.,  1.])
    """
    X = check_array(X, dtype=np.float64)
    groups = np.asarray(groups)
    if groups.shape != (len(X),):
        raise ValueError(
            f"groups must have one entry per row of X ({len(X)}), got shape {groups.shape}"
        )
    out = np.empty_like(X)
    for g in np.unique(groups):
        rows = groups == g
        if rows.sum() < 2:
            raise ValueError(f"group {g!r} has a single row; standardising it needs at least 2")
        mean = X[rows].mean(axis=0)
        std = X[rows].std(axis=0)
        std[std < 1e-12] = 1.0
        out[rows] = (X[rows] - mean) / std
    return out


@validate_params(
    {"X": ["array-like"], "groups": ["array-like"],
     "preprocessing": [StrOptions(set(PREPROCESSING))]},
    prefer_skip_nested_validation=True,
)
def preprocess_gas(X, groups, preprocessing: str = "log+batch") -> np.ndarray:
    """Apply one of :data:`PREPROCESSING` to the rows of all batches at once.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    groups : array-like of shape (n_samples,)
        Batch (domain) of each row, for the per-batch standardisation.
    preprocessing : {"none", "log", "batch", "log+batch", "pattern+batch", \
            "batch,pattern+batch"}, default="log+batch"
        ``"log"``: :func:`signed_log`; ``"batch"``: :func:`standardize_by_group`;
        ``"log+batch"``: both, log first; ``"pattern+batch"``: :func:`sensor_pattern`
        (16 sensors), then per batch; ``"batch,pattern+batch"``: the two views side by
        side, ``"batch"``'s columns then ``"pattern+batch"``'s (twice the columns: the
        pattern names the gas whatever its concentration, the standardised readings keep
        the concentration the pattern discards); ``"none"``: ``X`` as float64.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64; twice the columns for
    ``"batch,pattern+batch"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.preprocessing import preprocess_gas
    >>> X = np.array([[1.0, 100.0], [3.0, 300.0], [2.0, 20.0], [4.0, 40.0]])
    >>> preprocess_gas(X, [1, 1, 2, 2], "batch")
    array([[-1., -1.],
           [ 1.,  1.],
           [-1., -1.],
           [ 1.,  1.]])
    """
    X = check_array(X, dtype=np.float64)
    if "," in preprocessing:  # views side by side, each its own chain
        return np.hstack([preprocess_gas(X, groups, view) for view in preprocessing.split(",")])
    if "log" in preprocessing:
        X = signed_log(X)
    if "pattern" in preprocessing:
        X = sensor_pattern(X)
    if "batch" in preprocessing:
        X = standardize_by_group(X, groups)
    return X
