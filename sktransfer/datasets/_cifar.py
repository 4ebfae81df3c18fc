"""CIFAR-10 from torchvision's pickles, an image folder or a tar.gz of one; class subsets."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from .._image_io import _is_image_file
from .._io import DownloadError, atomic_write, download, safe_extract, sha256_file
from ._base import DATA_HOME, _check_subset, _load_descr, _resolve_data_home
from ._image_folder import _decode_many, _list_images

__all__ = ["CIFAR10_CLASSES", "fetch_cifar10", "split_classes"]

#: CIFAR-10 class names in label order (``target`` i is ``CIFAR10_CLASSES[i]``).
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_PICKLE_DIR = "cifar-10-batches-py"
_PICKLE_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CACHE_DIR = "_cache"
_CACHE_VERSION = 2

#: The original CIFAR-10 python archive and its SHA-256 (the digest torchvision's
#: dataset code pins; its MD5 is c58f30108f718f92721af3b95e74349a).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


@validate_params(
    {
        "subset": [StrOptions(set(_PICKLE_FILES))],
        "data_home": DATA_HOME,
        "download": ["boolean"],
        "max_per_class": [Interval(Integral, 1, None, closed="left"), None],
        "return_X_y": ["boolean"],
        "cache": ["boolean"],
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
def fetch_cifar10(
    subset: str = "train",
    *,
    data_home: str | os.PathLike | None = None,
    download: bool = True,
    max_per_class: int | None = None,
    return_X_y: bool = False,
    cache: bool = True,
    verbose: int = 1,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load the CIFAR-10 images (32 x 32 RGB, 10 classes) from the data home.

    Looks in ``<data_home>/cifar10/``, in this order, for:

    1. torchvision's ``cifar-10-batches-py/`` folder (the original pickles; also
       accepted directly under ``<data_home>``);
    2. an image folder ``{subset}/<class name>/*.png`` (or ``.jpg`` ...);
    3. an archive ``cifar10-{subset}-jpeg.tar.gz``, or any ``*.tar.gz`` holding such
       a folder, read directly (nothing is extracted).

    When none is present and ``download`` is True, the original archive is
    downloaded from the CIFAR-10 page, verified against its pinned SHA-256 checksum
    and unpacked safely (see the user guide's "Security and trust" page); the
    pickles are read with an unpickler that builds numpy arrays only. A ``.tar.gz``
    is read to its end, so a corrupt byte fails its gzip CRC. Images decoded from a
    folder or an archive are cached as ``.npz`` in ``cifar10/_cache/`` of the
    default data home (``$SKTRANSFER_DATA`` or ``~/sktransfer_data``, never a
    ``data_home`` given here, which may be read-only); the cache is skipped when it
    cannot be written, and a corrupt cache file is rebuilt with a warning.

    =================   ===============
    Classes                          10
    Samples             50000 / 10000
    Image size          32 x 32 x 3
    =================   ===============

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        Which split to load.

    data_home : str or path-like, default=None
        The data home. None uses ``$SKTRANSFER_DATA``, then ``~/sktransfer_data``.

    download : bool, default=True
        If True, download the data (about 163 MiB) when it is not found. If False,
        missing data raise FileNotFoundError.

    max_per_class : int, default=None
        Keep only the first ``max_per_class`` images of each class (in the order of
        the pickles, or in sorted file order for folders and archives): a smaller,
        deterministic, faster subset. None keeps all.

    return_X_y : bool, default=False
        If True, return ``(images, target)`` instead of a Bunch.

    cache : bool, default=True
        Whether to read and write the cache of decoded images.

    verbose : int, default=1
        If > 0, show progress bars.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        images : ndarray of shape (n_samples, 32, 32, 3), dtype uint8
            The images, channels last, RGB. Rows are in the order of the pickles, or
            class by class in sorted file order for folders and archives.
        target : ndarray of shape (n_samples,), dtype int64
            The class, 0 to 9 (an index into ``target_names``).
        target_names : list of str
            :data:`CIFAR10_CLASSES`: airplane, automobile, bird, cat, deer, dog,
            frog, horse, ship, truck.
        DESCR : str
            Description of the data set.

    (images, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If the data are not found and ``download`` is False; the message names every
        place looked in.
    OSError
        If the download fails (for instance without network access).
    ValueError
        If a file is corrupt or truncated, or an image is not 32 x 32 (the message
        names the file).

    See Also
    --------
    split_classes : Select classes, e.g. CIFAR's 8-class task A and binary task B.

    Examples
    --------
    >>> from sktransfer.datasets import fetch_cifar10
    >>> cifar = fetch_cifar10("train", max_per_class=100)  # doctest: +SKIP
    >>> cifar.images.shape, cifar.images.dtype  # doctest: +SKIP
    ((1000, 32, 32, 3), dtype('uint8'))
    """
    _check_subset(subset, ("train", "test"))
    if max_per_class is not None and (
        isinstance(max_per_class, bool)
        or not isinstance(max_per_class, int | np.integer)
        or max_per_class < 1
    ):
        raise ValueError(f"max_per_class must be None or a positive int, got {max_per_class!r}.")
    home = _resolve_data_home(data_home)
    root = home / "cifar10"
    looked: list[str] = []
    opts = dict(cache=cache, verbose=verbose)

    result = None
    for pdir in (root / _PICKLE_DIR, home / _PICKLE_DIR):
        files = [pdir / name for name in _PICKLE_FILES[subset]]
        looked.append(f"{pdir} ({', '.join(p.name for p in files)})")
        if all(p.is_file() for p in files):
            result = _read_pickles(files, max_per_class)
            break
    if result is None:
        folder = root / subset
        looked.append(f"{folder}{os.sep}<class name>{os.sep}*.png|jpg")
        if _has_class_folders(folder):
            result = _read_folder(folder, subset, max_per_class, **opts)
    if result is None:
        looked.append(f"{root}{os.sep}cifar10-{subset}-jpeg.tar.gz or *.tar.gz")
        for archive in _candidate_archives(root, subset):
            result = _read_archive(archive, subset, max_per_class, **opts)
            if result is not None:
                break
    if result is None:
        if not download:
            raise FileNotFoundError(
                f"CIFAR-10 {subset} data not found. Looked in: {'; '.join(looked)}. Use "
                "download=True, or put the data in one of these places."
            )
        files = _download_pickles(root, subset, verbose=verbose)
        result = _read_pickles(files, max_per_class)

    images, target = result
    if return_X_y:
        return images, target
    return Bunch(
        images=images,
        target=target,
        target_names=list(CIFAR10_CLASSES),
        DESCR=_load_descr("cifar10.rst"),
    )


@validate_params(
    {"X": ["array-like"], "y": ["array-like"], "classes": ["array-like"],
     "relabel": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def split_classes(
    X, y, classes: Iterable, *, relabel: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the rows of some classes, relabelled 0..k-1 in the order given.

    Makes class-subset tasks, such as CIFAR-10's transfer tasks: task A, the 8
    classes other than airplane and horse, and task B, airplane (0) vs horse (7).

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        The samples (features, images or paths). A DataFrame is indexed by row.

    y : array-like of shape (n_samples,)
        The labels.

    classes : iterable
        The labels to keep, without duplicates; each must occur in ``y``.

    relabel : bool, default=True
        If True, the kept labels become ``0 .. len(classes) - 1`` in the order of
        ``classes``. If False, they are returned unchanged.

    Returns
    -------
    X_sub : ndarray of shape (n_kept, ...)
        The rows whose label is in ``classes``, in their original order.

    y_sub : ndarray of shape (n_kept,)
        Their labels.

    Raises
    ------
    ValueError
        If ``classes`` is empty, has duplicates or names a label absent from ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.datasets import split_classes
    >>> X = np.arange(10).reshape(10, 1)
    >>> y = np.arange(10)
    >>> X_b, y_b = split_classes(X, y, [0, 7])  # CIFAR task B: airplane vs horse
    >>> X_b.ravel().tolist(), y_b.tolist()
    ([0, 7], [0, 1])
    >>> task_a = [c for c in range(10) if c not in (0, 7)]
    >>> X_a, y_a = split_classes(X, y, task_a)
    >>> y_a.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-dimensional, got shape {y.shape}.")
    if len(X) != len(y):
        raise ValueError(f"X and y have different lengths: {len(X)} and {len(y)}.")
    classes = list(classes) if not isinstance(classes, str) else [classes]
    if not classes:
        raise ValueError("classes must not be empty.")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes has duplicates: {classes}.")
    present = set(np.unique(y).tolist())
    absent = [c for c in classes if c not in present]
    if absent:
        raise ValueError(f"Classes {absent} do not occur in y (labels present: {sorted(present)}).")
    mask = np.isin(y, classes)
    y_sub = y[mask]
    if relabel:
        new = np.empty(len(y_sub), dtype=np.int64)
        for index, c in enumerate(classes):
            new[y_sub == c] = index
        y_sub = new
    X_sub = X.iloc[mask] if hasattr(X, "iloc") else np.asarray(X)[mask]
    return X_sub, y_sub


# --------------------------------------------------------------------------------------
# torchvision's pickles


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only builds numpy arrays (the CIFAR files hold nothing else)."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR pickle")


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"CIFAR-10 file {os.fspath(path)!r} is corrupt or truncated: {exc}"
        ) from exc
    if not isinstance(entry, dict):
        raise ValueError(f"CIFAR-10 file {os.fspath(path)!r} does not hold a batch dict.")
    return entry


def _read_pickles(
    files: Sequence[Path], max_per_class: int | None
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in files:
        entry = _load_pickle(path)
        data = entry.get("data")
        y = entry.get("labels")
        if data is None or y is None:
            raise ValueError(
                f"CIFAR-10 file {os.fspath(path)!r} lacks 'data' or 'labels' (not CIFAR-10?)."
            )
        data = np.asarray(data)
        y = np.asarray(y, dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(y):
            raise ValueError(
                f"CIFAR-10 file {os.fspath(path)!r} has data of shape {data.shape} and "
                f"{len(y)} labels; expected (n, 3072) and n (corrupt?)."
            )
        if len(y) and (y.min() < 0 or y.max() >= len(CIFAR10_CLASSES)):
            raise ValueError(f"CIFAR-10 file {os.fspath(path)!r} has labels outside 0..9.")
        images.append(data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32))
        labels.append(y)
    X = np.concatenate(images).transpose(0, 2, 3, 1)
    y = np.concatenate(labels)
    if max_per_class is not None:
        keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:max_per_class] for c in range(10)]))
        X, y = X[keep], y[keep]
    return np.ascontiguousarray(X), y


def _download_pickles(root: Path, subset: str, *, verbose: int) -> list[Path]:
    """Download the original archive (SHA-256 verified), unpack it safely into ``root``.

    Download and extraction happen in a temporary folder, so nothing is written to
    ``root`` unless all of it succeeds.
    """
    hint = (
        f"Without network access, put the {_PICKLE_DIR}/ folder (from {CIFAR10_URL}) or an "
        f"image folder {subset}/<class name>/*.png in {root}, or use download=False."
    )
    with tempfile.TemporaryDirectory(prefix="sktransfer-cifar10-") as tmp:
        tmp = Path(tmp)
        try:
            archive = download(
                CIFAR10_URL, tmp / "cifar-10-python.tar.gz", sha256=CIFAR10_SHA256,
                verbose=verbose,
            )
        except DownloadError as exc:
            raise DownloadError(f"Could not download CIFAR-10: {exc} {hint}", exc.url) from exc
        extracted = safe_extract(archive, tmp / "extracted", kind="tar.gz")
        downloaded = extracted / _PICKLE_DIR
        missing = [n for n in _PICKLE_FILES[subset] if not (downloaded / n).is_file()]
        if missing:
            raise OSError(f"The CIFAR-10 archive does not contain {missing}. {hint}")
        try:
            target = root / _PICKLE_DIR
            for path in sorted(downloaded.iterdir()):
                if path.is_file() and not (target / path.name).exists():  # keep what is there
                    with atomic_write(target / path.name) as out, open(path, "rb") as src:
                        shutil.copyfileobj(src, out)
        except OSError as exc:
            raise OSError(f"Cannot write CIFAR-10 to {root} ({exc}). {hint}") from exc
    return [root / _PICKLE_DIR / name for name in _PICKLE_FILES[subset]]


# --------------------------------------------------------------------------------------
# Image folders and archives of them


def _class_index(name: str, where: str) -> int:
    try:
        return CIFAR10_CLASSES.index(name)
    except ValueError:
        raise ValueError(
            f"Unknown CIFAR-10 class folder {name!r} in {where}; expected the names "
            f"{list(CIFAR10_CLASSES)}."
        ) from None


def _has_class_folders(folder: Path) -> bool:
    return folder.is_dir() and any(
        d.is_dir() and not d.name.startswith(".") for d in folder.iterdir()
    )


def _select(per_class: dict[int, list], max_per_class: int | None) -> tuple[list, np.ndarray]:
    """Sorted items per class (first ``max_per_class``), concatenated in class order."""
    items, target = [], []
    for c in sorted(per_class):
        chosen = sorted(per_class[c], key=lambda item: item[0])[:max_per_class]
        items.extend(chosen)
        target.extend([c] * len(chosen))
    return items, np.asarray(target, dtype=np.int64)


def _read_folder(
    folder: Path, subset: str, max_per_class: int | None, *, cache: bool, verbose: int
) -> tuple[np.ndarray, np.ndarray]:
    per_class: dict[int, list] = {}
    for d in sorted(folder.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        c = _class_index(d.name, os.fspath(folder))
        per_class[c] = [(os.path.relpath(p, folder), p) for p in _list_images(d)]
    items, target = _select(per_class, max_per_class)
    if not items:
        raise ValueError(f"No image files in the class folders of {os.fspath(folder)!r}.")
    fingerprint = []
    for rel, path in items:
        st = os.stat(path)
        # ctime too: a file overwritten with its mtime restored still changes it.
        fingerprint.append([rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    key = ["folder", os.fspath(folder.resolve()), fingerprint]
    name = f"{subset}-folder"
    return _cached(
        key,
        name,
        max_per_class,
        cache,
        lambda: (
            _decode_many(
                [p for _, p in items],
                [p for _, p in items],
                require_size=(32, 32),
                verbose=verbose,
                desc=f"cifar10 {subset}",
            ),
            target,
        ),
    )


def _candidate_archives(root: Path, subset: str) -> list[Path]:
    if not root.is_dir():
        return []
    preferred = root / f"cifar10-{subset}-jpeg.tar.gz"
    others = sorted(
        p
        for p in root.iterdir()
        if p.is_file() and p.name.endswith((".tar.gz", ".tgz")) and p != preferred
    )
    return ([preferred] if preferred.is_file() else []) + others


def _member_class(name: str, subset: str) -> str | None:
    """The class name of an archive member ``[prefix/]<subset>/<class>/<file>``, or None."""
    parts = name.replace("\\", "/").strip("/").split("/")
    if len(parts) < 3 or ".." in parts or not _is_image_file(parts[-1]):
        return None
    if parts[-3] == subset:
        return parts[-2]
    return None


def _read_archive(
    archive: Path, subset: str, max_per_class: int | None, *, cache: bool, verbose: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Decode ``<subset>/<class>/*`` images straight from a tar archive (or None)."""
    if not _peek_archive(archive, subset):
        return None
    # Keyed on the content, not the mtime: an archive replaced in place is noticed.
    key = ["archive", os.fspath(archive.resolve()), sha256_file(archive)]
    name = f"{subset}-{re.sub(r'[^A-Za-z0-9_.-]', '_', archive.name)}"

    def build():
        per_class: dict[int, list] = {}
        try:
            with gzip.open(archive, "rb") as gz:
                with tarfile.open(fileobj=gz, mode="r|") as tar:
                    for member in tar:
                        if not member.isreg():  # links and special members are skipped
                            continue
                        cls = _member_class(member.name, subset)
                        if cls is None:
                            continue
                        c = _class_index(cls, repr(os.fspath(archive)))
                        f = tar.extractfile(member)
                        data = f.read() if f is not None else b""
                        per_class.setdefault(c, []).append((member.name, data))
                while gz.read(1 << 20):  # to the end: the gzip CRC and length are checked
                    pass
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValueError(
                f"CIFAR-10 archive {os.fspath(archive)!r} is corrupt or truncated: {exc}"
            ) from exc
        if not per_class:
            return None
        items, target = _select(per_class, max_per_class)
        images = _decode_many(
            [data for _, data in items],
            [f"{os.fspath(archive)}:{member}" for member, _ in items],
            require_size=(32, 32),
            verbose=verbose,
            desc=f"cifar10 {subset}",
        )
        return images, target

    return _cached(key, name, max_per_class, cache, build)


def _peek_archive(archive: Path, subset: str, n_members: int = 50) -> bool:
    """Whether the first file members of ``archive`` look like ``<subset>/<class>/...``.

    The preferred name ``cifar10-<subset>-jpeg.tar.gz`` is always read.
    """
    if archive.name == f"cifar10-{subset}-jpeg.tar.gz":
        return True
    try:
        with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for i, member in enumerate(tar):
                if i >= n_members:
                    break
                if member.isreg() and _member_class(member.name, subset) is not None:
                    return True
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile):
        return False  # not an archive of ours; ignore it
    return False


# --------------------------------------------------------------------------------------
# Cache of decoded arrays


def _cache_dir() -> Path:
    """``<default data home>/cifar10/_cache``: never inside a user-given ``data_home``,
    which may be a shared, read-only copy of the data."""
    return _resolve_data_home(None) / "cifar10" / _CACHE_DIR


def _cached(key, name, max_per_class, cache, build):
    """Return ``build()``, through an .npz cache keyed by ``key`` when ``cache``."""
    if not cache:
        return build()
    blob = json.dumps([_CACHE_VERSION, key, max_per_class]).encode()
    digest = hashlib.sha256(blob).hexdigest()[:16]
    tag = "all" if max_per_class is None else f"max{max_per_class}"
    filename = f"{name}-{tag}-{digest}.npz"
    path = _cache_dir() / filename
    if path.is_file():
        cached = _read_cache(path)
        if cached is not None:
            return cached
    result = build()
    if result is not None:
        _write_cache(path, *result)
    return result


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (images, target), or None (with a warning) when the file is unusable."""
    try:
        with np.load(path, allow_pickle=False) as f:
            images, target = f["images"], f["target"]
        problem = None
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            problem = f"images of dtype {images.dtype} and shape {images.shape}"
        elif target.ndim != 1 or len(images) != len(target):
            problem = f"{len(images)} images but targets of shape {target.shape}"
        elif target.dtype.kind not in "iu" or (
            len(target) and (target.min() < 0 or target.max() >= len(CIFAR10_CLASSES))
        ):
            problem = "targets outside 0..9"
        if problem is None:
            return images, target.astype(np.int64)
    except (OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    warnings.warn(
        f"The CIFAR-10 cache file {os.fspath(path)!r} is corrupt ({problem}); it is "
        "deleted and rebuilt.",
        RuntimeWarning,
        stacklevel=4,
    )
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def _marked_read_only(path: Path) -> bool:
    """True when the nearest existing folder above ``path`` has no write permission bits.

    ``os.access`` says yes to root everywhere; a folder whose owner made it read-only
    (a shared copy of the data) is respected all the same.
    """
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return not (folder.stat().st_mode & 0o222)


def _write_cache(path: Path, images: np.ndarray, target: np.ndarray) -> None:
    """Write the cache atomically; give up silently when it cannot be written."""
    if _marked_read_only(path.parent):
        return
    try:
        with atomic_write(path) as f:
            np.savez(f, images=images, target=target)
    except OSError:
        pass  # a cache is an optimisation: carry on without it
