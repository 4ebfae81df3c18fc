"""Data home, dataset folder resolution and helpers shared by the loaders."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable, Sequence
from importlib import resources
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["get_data_home", "clear_data_home"]

#: Environment variable overriding the default data home.
DATA_HOME_ENV = "SKTRANSFER_DATA"

#: Folder names of each data set inside the data home: canonical name first, then
#: accepted aliases (the layout of ``../shared/data`` on development machines).
DATASET_DIRS = {
    "gas_drift": ("gas_drift", "gas-drift"),
    "cifar10": ("cifar10",),
    "monkeys": ("10-monkey-species", "monkeys"),
}

# Constraints shared by the loaders' ``validate_params`` (a wrong type or value raises
# sklearn's InvalidParameterError naming the parameter; the values allowed for ``batches``
# are checked by ``_normalize_ints``, whose message says which batches exist).
PATH = [str, os.PathLike]
DATA_HOME = [str, os.PathLike, None]
BATCHES = [Integral, "array-like"]
IMAGE_SIZE = [Interval(Integral, 1, None, closed="left"), tuple, None]


@validate_params({"data_home": DATA_HOME}, prefer_skip_nested_validation=True)
def get_data_home(data_home: str | os.PathLike | None = None) -> str:
    """Return the path of the sktransfer data directory.

    This folder holds the data sets the ``fetch_*`` functions read (and download
    into). By default it is ``~/sktransfer_data``; the ``SKTRANSFER_DATA``
    environment variable overrides that, and an explicit ``data_home`` overrides
    both. ``~`` is expanded. The folder is created if it does not exist.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The path to the data directory. If None, use ``$SKTRANSFER_DATA`` or
        ``~/sktransfer_data``.

    Returns
    -------
    data_home : str
        The path to the data directory.

    Examples
    --------
    >>> import os
    >>> from sktransfer.datasets import get_data_home
    >>> os.path.isdir(get_data_home())
    True
    """
    path = _resolve_data_home(data_home)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@validate_params({"data_home": DATA_HOME}, prefer_skip_nested_validation=True)
def clear_data_home(data_home: str | os.PathLike | None = None) -> None:
    """Delete all the content of the data home.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The path to the data directory. If None, use ``$SKTRANSFER_DATA`` or
        ``~/sktransfer_data``.

    Examples
    --------
    >>> import tempfile
    >>> from sktransfer.datasets import clear_data_home, get_data_home
    >>> home = get_data_home(tempfile.mkdtemp())
    >>> clear_data_home(home)
    """
    path = _resolve_data_home(data_home)
    if path.exists():
        shutil.rmtree(path)


def _resolve_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Like :func:`get_data_home` but never creates anything (for read-only use)."""
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or os.path.join("~", "sktransfer_data")
    path = Path(os.path.expanduser(os.fspath(data_home)))
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"the data home {path} is a file, not a folder: pass "
            f"data_home=<a folder> (or set ${DATA_HOME_ENV} to one)")
    return path


def _dataset_dirs(dataset: str, data_home: str | os.PathLike | None) -> list[Path]:
    """Candidate folders of ``dataset`` in the data home, canonical name first."""
    home = _resolve_data_home(data_home)
    return [home / name for name in DATASET_DIRS[dataset]]


def _find_dataset_dir(dataset: str, data_home: str | os.PathLike | None) -> Path | None:
    """The first existing folder of ``dataset`` in the data home, or None."""
    for path in _dataset_dirs(dataset, data_home):
        if path.is_dir():
            return path
    return None


def _canonical_dataset_dir(dataset: str, data_home: str | os.PathLike | None) -> Path:
    """The canonical folder of ``dataset`` (where downloads go)."""
    return _dataset_dirs(dataset, data_home)[0]


def _load_descr(name: str) -> str:
    """Read ``descr/<name>`` shipped with the package."""
    return resources.files("sktransfer.datasets").joinpath("descr", name).read_text("utf-8")


def _normalize_ints(
    values: int | Iterable[int], *, what: str, allowed: Sequence[int] | None = None
) -> list[int]:
    """Turn an int or an iterable of ints into a sorted list of unique ints.

    Raises ValueError for non-integers, an empty selection or values outside ``allowed``.
    """
    if isinstance(values, int | np.integer) and not isinstance(values, bool):
        values = [values]
    try:
        items = list(values)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an int or an iterable of ints, got {values!r}.") from None
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"{what} must contain ints, got {v!r}.")
        out.append(int(v))
    if not out:
        raise ValueError(f"{what} must not be empty.")
    if allowed is not None:
        bad = sorted(set(out) - set(allowed))
        if bad:
            raise ValueError(f"Invalid {what} {bad}; valid values are {list(allowed)}.")
    return sorted(set(out))


def _check_subset(subset: str, allowed: Sequence[str]) -> str:
    if subset not in allowed:
        raise ValueError(f"subset must be one of {list(allowed)}, got {subset!r}.")
    return subset


def _paths_array(filenames: Sequence[str]) -> np.ndarray:
    """An (n, 1) object array of str paths: the 1-column input estimators accept."""
    out = np.empty((len(filenames), 1), dtype=object)
    out[:, 0] = [str(f) for f in filenames]
    return out
