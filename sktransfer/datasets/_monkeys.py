"""The Kaggle "10 Monkey Species" image data set."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import StrOptions, validate_params

from .._image_io import ImageSize
from ._base import DATA_HOME, IMAGE_SIZE, _check_subset, _dataset_dirs, _load_descr
from ._image_folder import _list_images, _load_images

__all__ = ["fetch_monkeys"]

KAGGLE_NAME = "10 Monkey Species"
KAGGLE_URL = "https://www.kaggle.com/datasets/slothkong/10-monkey-species"
LABELS_FILE = "monkey_labels.txt"
N_CLASSES = 10

#: Used when ``monkey_labels.txt`` is absent: the content of the original file.
_DEFAULT_LABELS = (
    ("alouatta_palliata", "mantled_howler"),
    ("erythrocebus_patas", "patas_monkey"),
    ("cacajao_calvus", "bald_uakari"),
    ("macaca_fuscata", "japanese_macaque"),
    ("cebuella_pygmea", "pygmy_marmoset"),
    ("cebus_capucinus", "white_headed_capuchin"),
    ("mico_argentatus", "silvery_marmoset"),
    ("saimiri_sciureus", "common_squirrel_monkey"),
    ("aotus_nigriceps", "black_headed_night_monkey"),
    ("trachypithecus_johnii", "nilgiri_langur"),
)

_CLASS_DIR = re.compile(r"n(\d)")


@validate_params(
    {
        "subset": [StrOptions({"training", "validation"})],
        "data_home": DATA_HOME,
        "download": ["boolean"],
        "image_size": IMAGE_SIZE,
        "as_paths": ["boolean", None],
        "return_X_y": ["boolean"],
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
def fetch_monkeys(
    subset: str = "training",
    *,
    data_home: str | os.PathLike | None = None,
    download: bool = False,
    image_size: ImageSize = None,
    as_paths: bool | None = None,
    return_X_y: bool = False,
    verbose: int = 1,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load the Kaggle "10 Monkey Species" images from the data home.

    Kaggle requires a login, so the data cannot be downloaded automatically:
    download it from https://www.kaggle.com/datasets/slothkong/10-monkey-species and
    unzip it into ``<data_home>/10-monkey-species/`` (or ``<data_home>/monkeys/``), so
    that it holds ``monkey_labels.txt`` and ``{training,validation}/n0 ... n9/``.
    Kaggle's nested layout ``training/training/n0/`` is accepted as well.

    The photographs have different sizes, so by default they are not decoded:
    ``images`` holds their paths, which sktransfer's estimators read lazily at their
    backbone's input size. Pass ``image_size`` to get decoded, resized arrays.
    Photos with an EXIF orientation tag are turned upright when decoded.

    Parameters
    ----------
    subset : {"training", "validation"}, default="training"
        Which split to load.

    data_home : str or path-like, default=None
        The data home. None uses ``$SKTRANSFER_DATA``, then ``~/sktransfer_data``.

    download : bool, default=False
        Accepted for consistency with the other ``fetch_*`` functions; there is no
        automatic download (missing data raise FileNotFoundError either way).

    image_size : int or tuple of (int, int), default=None
        Resize the decoded images: an int ``s`` resizes the shorter side to ``s``
        and crops the centre ``s x s`` square; ``(h, w)`` resizes to exactly that.
        (Decoding with None keeps the original sizes, which must then be equal.)

    as_paths : bool, default=None
        If True, do not decode the images: ``images`` holds their paths
        (``image_size`` is then ignored). If False, decode them. None (the
        default) means paths when ``image_size`` is None, decoded arrays when it is
        given.

    return_X_y : bool, default=False
        If True, return ``(images, target)`` instead of a Bunch.

    verbose : int, default=1
        If > 0, show a progress bar while decoding.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the following attributes.

        images : ndarray
            Paths: object array of shape (n_samples, 1) of str (the default).
            Decoded: uint8 array of shape (n_samples, height, width, 3), RGB.
        filenames : ndarray of shape (n_samples,)
            The absolute path of each image, as str.
        target : ndarray of shape (n_samples,), dtype int64
            The species, 0 to 9 (folders ``n0`` to ``n9``).
        target_names : list of str
            Common names, e.g. ``'mantled_howler'``.
        latin_names : list of str
            Latin names, e.g. ``'alouatta_palliata'``.
        DESCR : str
            Description of the data set.

    (images, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If the split is not in the data home; the message says where to get it and
        where to put it.
    ValueError
        If an image or the labels file cannot be read (the message names the file),
        or if images of different sizes are decoded without ``image_size``.

    Examples
    --------
    >>> from sktransfer.datasets import fetch_monkeys
    >>> monkeys = fetch_monkeys("training")  # doctest: +SKIP
    >>> monkeys.images.shape  # paths, read lazily by the estimators  # doctest: +SKIP
    (1098, 1)
    >>> fetch_monkeys("training", image_size=64).images.shape  # doctest: +SKIP
    (1098, 64, 64, 3)
    """
    _check_subset(subset, ("training", "validation"))
    root, split_dir, class_dirs = _find_split(subset, data_home)
    latin_names, common_names = _read_labels(root / LABELS_FILE)

    filenames, target = [], []
    for index, class_dir in sorted(class_dirs.items()):
        files = _list_images(class_dir)
        filenames.extend(files)
        target.extend([index] * len(files))
    if not filenames:
        raise ValueError(
            f"No image files found in the class folders under {os.fspath(split_dir)!r}."
        )
    images = _load_images(
        filenames,
        image_size=image_size,
        as_paths=as_paths,
        verbose=verbose,
        desc=f"monkeys {subset}",
    )
    target = np.asarray(target, dtype=np.int64)
    if return_X_y:
        return images, target
    return Bunch(
        images=images,
        filenames=np.asarray(filenames, dtype=object),
        target=target,
        target_names=common_names,
        latin_names=latin_names,
        DESCR=_load_descr("monkeys.rst"),
    )


def _class_dirs(folder: Path) -> dict[int, Path]:
    """``{index: folder}`` for the sub-folders ``n0`` ... ``n9`` of ``folder``."""
    if not folder.is_dir():
        return {}
    out = {}
    for d in folder.iterdir():
        m = _CLASS_DIR.fullmatch(d.name)
        if m and d.is_dir():
            out[int(m.group(1))] = d
    return out


def _find_split(subset: str, data_home) -> tuple[Path, Path, dict[int, Path]]:
    """Locate ``subset`` (flat or Kaggle-nested) in the candidate folders."""
    looked = []
    for root in _dataset_dirs("monkeys", data_home):
        for split_dir in (root / subset / subset, root / subset):
            looked.append(split_dir)
            class_dirs = _class_dirs(split_dir)
            if class_dirs:
                return root, split_dir, class_dirs
    canonical = _dataset_dirs("monkeys", data_home)[0]
    raise FileNotFoundError(
        f'The {subset} split of the Kaggle "{KAGGLE_NAME}" data set was not found; looked '
        f"for class folders n0 ... n9 in: {', '.join(os.fspath(p) for p in looked)}. "
        f"Kaggle requires a login, so it cannot be downloaded automatically: download it "
        f"from {KAGGLE_URL}, unzip it and put it so that {canonical / subset}/n0 ... n9/ "
        f"hold the images (Kaggle's nested layout {canonical / subset / subset}/n0 ... n9/ "
        f"works too) and {canonical / LABELS_FILE} the labels, or pass data_home."
    )


def _read_labels(path: Path) -> tuple[list[str], list[str]]:
    """Latin and common names from ``monkey_labels.txt`` (CSV with padded fields)."""
    defaults = ([latin for latin, _ in _DEFAULT_LABELS], [common for _, common in _DEFAULT_LABELS])
    if not path.is_file():
        warnings.warn(
            f"{os.fspath(path)!r} not found; using the standard names of the 10 species.",
            stacklevel=3,
        )
        return defaults
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"Cannot read the monkey labels file {os.fspath(path)!r}: {exc}") from exc
    latin: dict[int, str] = {}
    common: dict[int, str] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        m = _CLASS_DIR.fullmatch(fields[0])
        if not m:
            continue  # header or blank line
        if len(fields) < 3 or not fields[1] or not fields[2]:
            raise ValueError(f"Malformed line {line.strip()!r} in {os.fspath(path)!r}.")
        latin[int(m.group(1))] = fields[1]
        common[int(m.group(1))] = fields[2]
    if sorted(common) != list(range(N_CLASSES)):
        raise ValueError(
            f"The monkey labels file {os.fspath(path)!r} should list n0 ... n9, found "
            f"{', '.join('n' + str(i) for i in sorted(common)) or 'none'}."
        )
    return [latin[i] for i in range(N_CLASSES)], [common[i] for i in range(N_CLASSES)]
