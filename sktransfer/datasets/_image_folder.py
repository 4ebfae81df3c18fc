"""Loading a class-per-folder tree of images, and decoding many images in parallel."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import validate_params
from tqdm.auto import tqdm

from .._image_io import (
    IMAGE_EXTENSIONS,
    ImageSize,
    _check_image_size,
    _decode_image,
    _is_image_file,
)
from ._base import IMAGE_SIZE, PATH, _load_descr, _paths_array

__all__ = ["load_image_folder"]

_MAX_WORKERS = 4


@validate_params(
    {
        "path": PATH,
        "image_size": IMAGE_SIZE,
        "as_paths": ["boolean", None],
        "return_X_y": ["boolean"],
        "verbose": ["verbose"],
    },
    prefer_skip_nested_validation=True,
)
def load_image_folder(
    path: str | os.PathLike,
    *,
    image_size: ImageSize = None,
    as_paths: bool | None = None,
    return_X_y: bool = False,
    verbose: int = 1,
) -> Bunch | tuple[np.ndarray, np.ndarray]:
    """Load images from a class-per-folder tree (your own images).

    Every sub-folder of ``path`` is a class, named after the folder; classes are
    numbered in sorted order. Every image file below a class folder (``.jpg``,
    ``.jpeg``, ``.png``, ``.bmp``, ``.gif``, ``.webp``, any case; also in nested
    folders) is a sample. Hidden files and folders are skipped. Samples are in
    sorted order of class, then path.

    By default the images are not decoded: ``images`` holds their paths, which
    sktransfer's estimators read lazily at their backbone's input size, and which
    work for photos of any size and any number of them. Pass ``image_size`` to get
    decoded, resized arrays instead. Photos with an EXIF orientation tag are turned
    upright when decoded.

    Parameters
    ----------
    path : str or path-like
        The root folder, holding one sub-folder per class.

    image_size : int or tuple of (int, int), default=None
        Resize the decoded images: an int ``s`` resizes the shorter side to ``s``
        and crops the centre ``s x s`` square; ``(h, w)`` resizes to exactly that.
        None keeps the original sizes, which must then all be equal when decoding.

    as_paths : bool, default=None
        If True, do not decode the images: ``images`` holds their paths (loaded
        lazily; ``image_size`` is then ignored). If False, decode them. None (the
        default) means paths when ``image_size`` is None, decoded arrays when it
        is given.

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
            The class of each image (an index into ``target_names``).
        target_names : list of str
            The class folder names, sorted.
        DESCR : str
            Description of the layout.

    (images, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If there are no class folders or no images, if an image cannot be read
        (the message names the file), or if images of different sizes are loaded
        without ``image_size``.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from sktransfer.datasets import load_image_folder
    >>> root = tempfile.mkdtemp()
    >>> for name, color in [("cats", "black"), ("dogs", "white")]:
    ...     os.makedirs(os.path.join(root, name))
    ...     Image.new("RGB", (48, 40), color).save(os.path.join(root, name, "a.png"))
    >>> data = load_image_folder(root, image_size=32, verbose=0)
    >>> data.images.shape, data.target.tolist(), data.target_names
    ((2, 32, 32, 3), [0, 1], ['cats', 'dogs'])
    >>> load_image_folder(root).images.shape  # paths by default
    (2, 1)
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"Image folder not found: {os.fspath(root)!r}")
    if not root.is_dir():
        raise ValueError(f"Expected a folder of class sub-folders, got a file: {os.fspath(root)!r}")
    class_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name,
    )
    if not class_dirs:
        raise ValueError(
            f"No class sub-folders in {os.fspath(root)!r}; expected <path>/<class name>/<image>."
        )
    filenames, target = [], []
    for index, class_dir in enumerate(class_dirs):
        files = _list_images(class_dir)
        if not files:
            # 3: past validate_params' wrapper, at the caller's line
            warnings.warn(f"Class folder {os.fspath(class_dir)!r} holds no images.", stacklevel=3)
        filenames.extend(files)
        target.extend([index] * len(files))
    if not filenames:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) found under {os.fspath(root)!r}."
        )
    images = _load_images(
        filenames, image_size=image_size, as_paths=as_paths, verbose=verbose, desc=root.name
    )
    target = np.asarray(target, dtype=np.int64)
    if return_X_y:
        return images, target
    return Bunch(
        images=images,
        filenames=np.asarray(filenames, dtype=object),
        target=target,
        target_names=[d.name for d in class_dirs],
        DESCR=_load_descr("image_folder.rst") + f"\nLoaded from ``{os.fspath(root)}``.\n",
    )


# --------------------------------------------------------------------------------------
# Helpers shared with the other image loaders


def _list_images(folder: str | os.PathLike) -> list[str]:
    """Absolute paths of the image files below ``folder`` (recursive, sorted, no hidden).

    Linked sub-folders are followed, as a linked class folder is (and as torchvision's
    ``ImageFolder`` does), each real folder once. A link to ``folder`` itself or to a
    folder above it is skipped: it would file the whole data set (other classes
    included) under this class.
    """
    folder = os.path.abspath(os.fspath(folder))
    out = []
    top = os.path.realpath(folder)
    seen = {top}
    for dirpath, dirnames, files in os.walk(folder, followlinks=True):
        kept = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            real = os.path.realpath(os.path.join(dirpath, d))
            above = os.path.commonpath([real, top]) == real  # top itself or an ancestor
            if real not in seen and not above:
                seen.add(real)
                kept.append(d)
        dirnames[:] = kept
        out.extend(os.path.join(dirpath, f) for f in files if _is_image_file(f))
    return sorted(out, key=lambda p: os.path.relpath(p, folder).split(os.sep))


def _load_images(
    filenames: Sequence[str],
    *,
    image_size: ImageSize,
    as_paths: bool | None,
    verbose: int,
    desc: str = "images",
) -> np.ndarray:
    """Paths as an (n, 1) object array, or the decoded images as one uint8 array.

    ``as_paths=None`` means paths unless ``image_size`` is given.
    """
    if as_paths is not None and not isinstance(as_paths, bool | np.bool_):
        raise ValueError(f"as_paths must be None, True or False, got {as_paths!r}.")
    if as_paths is None:
        as_paths = _check_image_size(image_size) is None
    if as_paths:
        return _paths_array(filenames)
    return _decode_many(filenames, filenames, image_size=image_size, verbose=verbose, desc=desc)


def _decode_many(
    sources: Sequence,
    names: Sequence[str],
    *,
    image_size: ImageSize = None,
    require_size: tuple[int, int] | None = None,
    verbose: int = 1,
    desc: str = "images",
) -> np.ndarray:
    """Decode images (paths or bytes) with a thread pool into one (n, h, w, 3) array.

    Without ``image_size`` all images must have the same size; ``require_size``
    additionally fixes it to ``(h, w)``. Errors name the offending file.
    """
    size = _check_image_size(image_size)
    n = len(sources)
    if size is None:
        shape = None if require_size is None else (*require_size, 3)
    elif isinstance(size, int):
        shape = (size, size, 3)
    else:
        shape = (*size, 3)
    out = None if shape is None else np.empty((n, *shape), dtype=np.uint8)
    first_name = None

    def decode(i):
        return _decode_image(sources[i], names[i], size)

    workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1, n))
    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        results = executor.map(decode, range(n), chunksize=1)
        for i, img in enumerate(tqdm(results, total=n, desc=desc, disable=not verbose)):
            if out is None:
                out = np.empty((n, *img.shape), dtype=np.uint8)
                first_name = names[i]
            elif img.shape != out.shape[1:]:
                h, w = img.shape[:2]
                if require_size is not None:
                    raise ValueError(
                        f"Image {names[i]!r} is {h}x{w} pixels, expected "
                        f"{require_size[0]}x{require_size[1]}."
                    )
                h0, w0 = out.shape[1:3]
                raise ValueError(
                    f"The images have different sizes ({first_name!r} is {h0}x{w0}, "
                    f"{names[i]!r} is {h}x{w}): pass image_size to resize them, or "
                    "leave as_paths at its default (or True) to get their paths and "
                    "load them lazily."
                )
            out[i] = img
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    if out is None:
        out = np.empty((0, *(shape or (0, 0, 3))), dtype=np.uint8)
    return out
