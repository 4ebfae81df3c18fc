"""Decoding image files into uint8 RGB arrays.

This module is shared by the dataset loaders (:mod:`sktransfer.datasets`) and by
estimators that load images lazily from paths.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["read_image"]

#: File name extensions (lower case) recognised as images by the folder loaders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

ImageSize = int | tuple[int, int] | None


def read_image(path: str | os.PathLike, image_size: ImageSize = None) -> np.ndarray:
    """Read an image file into a uint8 RGB array of shape (height, width, 3).

    Grayscale, palette, RGBA, CMYK and 16-bit images are converted to 8-bit RGB, and the
    EXIF orientation tag is applied (photos from phones are often stored sideways). JPEGs
    needing a reduction by 2x or more are decoded at a reduced scale (Pillow's ``draft``:
    the DCT does part of the downscaling, never below the requested size), which makes
    large photos several times faster to read.

    Parameters
    ----------
    path : str or path-like
        The image file. Any format Pillow can read (JPEG, PNG, BMP, GIF, WebP, ...).

    image_size : int or tuple of (int, int), default=None
        - None: keep the original size.
        - int ``s``: resize so that the shorter side is ``s`` (bilinear, antialiased),
          then crop the centre ``s x s`` square.
        - ``(h, w)``: resize to exactly ``h x w`` (the aspect ratio may change).

    Returns
    -------
    image : ndarray of shape (height, width, 3), dtype uint8
        The decoded image, channels last, RGB order.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable image or is truncated; the message names it.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sktransfer._image_io import read_image
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "red.png")
    >>> Image.new("RGB", (40, 20), (255, 0, 0)).save(path)
    >>> read_image(path).shape
    (20, 40, 3)
    >>> read_image(path, image_size=16).shape
    (16, 16, 3)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Image file not found: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"Expected an image file, got a directory: {path!r}")
    return _decode_image(path, path, image_size)


def _decode_image(
    source: str | os.PathLike | bytes | BinaryIO, name: str, image_size: ImageSize = None
) -> np.ndarray:
    """Decode ``source`` (a path, bytes or a binary file object) into uint8 RGB.

    ``name`` is used in error messages only.
    """
    size = _check_image_size(image_size)
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    try:
        with Image.open(source) as img:
            if size is not None and img.format == "JPEG":
                _draft(img, size)
            img.load()
            img = _exif_upright(img)
            img = _to_rgb(img)
            if size is not None:
                img = _resize(img, size)
            array = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {name!r}") from None
    except UnidentifiedImageError as exc:
        raise ValueError(f"Cannot read {name!r}: not a recognised image file.") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # Pillow raises OSError("image file is truncated ...") for truncated files and
        # SyntaxError / ValueError for some malformed headers.
        raise ValueError(f"Cannot read image {name!r}: {exc} (corrupt or truncated?)") from exc
    if array.ndim != 3 or array.shape[2] != 3:  # pragma: no cover - defensive
        raise ValueError(f"Decoding {name!r} gave an array of shape {array.shape}.")
    return array


def _exif_upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, so that camera photos are not read sideways."""
    if img.getexif().get(0x0112, 1) in (None, 1):  # 0x0112: Orientation
        return img  # the common case: no copy
    return ImageOps.exif_transpose(img)


def _draft(img: Image.Image, size: int | tuple[int, int]) -> None:
    """Ask the JPEG decoder for the smallest DCT scale still covering ``size`` both ways.

    The request is square (the larger side of a ``(h, w)`` size), so an EXIF rotation
    applied after decoding cannot leave a side short.
    """
    side = size if isinstance(size, int) else max(size)
    if img.mode in ("RGB", "L", "YCbCr", "CMYK"):
        img.draft(img.mode, (side, side))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow image mode to 8-bit RGB."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16/32-bit grayscale: scale to 8 bits instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if img.mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0  # floating-point pixels in [0, 1], as float image arrays are
        arr = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Drop the alpha channel (going through RGBA avoids Pillow's palette warning).
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def _resize(img: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Resize (and centre-crop for an int size), like torchvision's Resize+CenterCrop."""
    if isinstance(size, tuple):
        height, width = size
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        return img
    width, height = img.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_w, new_h) != (width, height):
        # Pillow's bilinear filter widens its support when downscaling: antialiased.
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def _check_image_size(image_size: ImageSize) -> int | tuple[int, int] | None:
    """Validate ``image_size`` and return it as None, an int or an (h, w) tuple."""
    if image_size is None:
        return None
    if isinstance(image_size, bool):
        raise ValueError(f"image_size must be a positive int or (h, w), got {image_size!r}.")
    if isinstance(image_size, int | np.integer):
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size!r}.")
        return int(image_size)
    if isinstance(image_size, Sequence) and len(image_size) == 2:
        h, w = image_size
        if all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in (h, w)
        ):
            return (int(h), int(w))
    raise ValueError(
        f"image_size must be None, a positive int or a (height, width) pair, got {image_size!r}."
    )


def _is_image_file(name: str) -> bool:
    """Whether ``name`` (a file name or path) looks like a non-hidden image file."""
    base = os.path.basename(name)
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)
