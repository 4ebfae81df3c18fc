"""The accepted forms of ``X`` and how each becomes tensors a network can eat.

- tabular: 2-D numeric arrays or DataFrames, ``(n_samples, n_features)``;
- images: NHWC or NCHW arrays (``(n, H, W)`` for one channel);
- flattened images: 2-D arrays with ``input_shape=(C, H, W)`` in NCHW order, the form
  imbalanced-learn's samplers accept;
- image files: a 1-column array (or a 1-D array or list) of paths, read lazily batch by
  batch.

One rule for the values of images, whatever their form: ``uint8`` on the 0-255 scale, or
floats in [0, 1]; anything else is an error that says how to convert (nothing is rescaled
behind your back). Every form is checked for finite values after the cast to float32, the
dtype the network computes in, so a value beyond float32's range is refused, not turned
into infinity. Where the channel axis of an image array cannot be told from its shape,
``input_shape`` decides, and where even that cannot tell, the error says what to pass.

Images stay uint8 in memory and on their way to the device; the backbone's preprocessing
converts them there.
"""

from __future__ import annotations

import math
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.utils.validation import check_array

Kind = Literal["tabular", "image", "paths"]

#: how each kind is named in messages
KIND_NAMES = {"tabular": "tabular data (a 2-D array of numbers)",
              "image": "image arrays", "paths": "image file paths"}
_CHANNELS = (1, 3, 4)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


@dataclass
class Inputs:
    """``X`` after validation: a tensor (tabular, image) or an array of file paths."""

    kind: Kind
    data: torch.Tensor | np.ndarray
    sample_shape: tuple[int, ...] | None  # (n_features,) or (C, H, W); None for paths
    n_columns: int | None = None  # columns of 2-D X (tabular, flattened images, paths)

    def __len__(self) -> int:
        return len(self.data)


def _is_path_array(X) -> bool:
    if isinstance(X, (list, tuple)) and X and isinstance(X[0], (str, os.PathLike)):
        return True
    if hasattr(X, "dtypes") and getattr(X, "ndim", 2) == 2:  # DataFrame
        first_is_path = len(X) > 0 and isinstance(X.iloc[0, 0], (str, os.PathLike))
        # object columns, and pandas' string dtypes (the default for text from pandas 3)
        return X.shape[1] == 1 and getattr(X.dtypes.iloc[0], "kind", "") == "O" and first_is_path
    arr = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if arr.dtype.kind not in "OUS":
        return False
    if arr.ndim == 2 and arr.shape[1] != 1:
        return False
    if arr.ndim not in (1, 2) or arr.size == 0:
        return False
    first = arr.reshape(-1)[0]
    return isinstance(first, (str, os.PathLike, np.str_))


def _looks_like_a_path(p: str) -> bool:
    return (os.sep in p or "/" in p or p.lower().endswith(_IMAGE_SUFFIXES)
            or os.path.exists(p))


def _writable_tensor(arr: np.ndarray, dtype) -> torch.Tensor:
    # A copy where needed: torch refuses to wrap read-only arrays (memmaps) silently.
    return torch.from_numpy(np.require(arr, dtype=dtype, requirements=["C", "W"]))


def _image_layout(arr: np.ndarray, input_shape) -> np.ndarray:
    """NHWC or NCHW (or NHW) -> NCHW; ``input_shape`` decides, and ambiguity is an error."""
    if arr.ndim == 3:  # one channel: no layout to tell
        arr = arr[:, None, :, :]
        if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
            raise ValueError(
                f"X has one-channel images of shape {arr.shape[2:]}, which contradicts "
                f"input_shape={tuple(input_shape)} (C, H, W)"
            )
        return arr
    if arr.ndim != 4:
        raise ValueError(f"image arrays must be 3-D or 4-D, got shape {arr.shape}")
    shape = tuple(arr.shape[1:])
    if input_shape is not None:
        c, h, w = input_shape
        nchw, nhwc = shape == (c, h, w), shape == (h, w, c)
        if not (nchw or nhwc):
            raise ValueError(
                f"X has images of shape {shape}, which contradicts input_shape="
                f"{tuple(input_shape)} (C, H, W) in both NCHW and NHWC layouts"
            )
    else:
        nchw, nhwc = shape[0] in _CHANNELS, shape[2] in _CHANNELS
        if not (nchw or nhwc):
            raise ValueError(
                f"cannot tell the channel axis of images of shape {shape}: neither the "
                f"first nor the last axis has 1, 3 or 4 channels; pass input_shape=(C, H, W)"
            )
        if nchw and nhwc:
            raise ValueError(
                f"images of shape {shape} could be NCHW (C={shape[0]}) or NHWC "
                f"(C={shape[2]}); pass input_shape=(C, H, W) to say which"
            )
    if nchw and nhwc:  # input_shape given with C == H == W: both layouts read the same
        raise ValueError(
            f"images of shape {shape} read the same as NCHW and NHWC, so input_shape="
            f"{tuple(input_shape)} cannot tell them apart; put them in NCHW order "
            "(X.transpose(0, 3, 1, 2) for NHWC), flatten them with X.reshape(len(X), -1) "
            "and pass input_shape=(C, H, W): 2-D images are read as NCHW"
        )
    return arr if nchw else arr.transpose(0, 3, 1, 2)


def _check_finite(tensor: torch.Tensor, what: str) -> None:
    """After the cast to float32: NaN, infinity, or a float64 beyond float32's range.

    A finite sum says every value is finite, in one vectorised pass; only a sum that is
    not (a bad value, or finite ones adding up beyond float32's range) is looked into
    value by value. ``isfinite(x).all()`` alone is three passes over ``x`` and two
    temporaries at every fit and predict; the sum is one pass and none (both count in
    the estimator's fixed cost, which benchmarks/bench_training_loop.py reports).
    """
    if (tensor.dtype.is_floating_point and tensor.numel()
            and not math.isfinite(float(tensor.sum()))
            and not bool(torch.isfinite(tensor).all())):
        raise ValueError(
            f"{what} holds NaN, infinity or values beyond float32's range (|x| > 3.4e38) "
            "once cast to float32, the dtype the network computes in; remove or rescale "
            "them"
        )


def _image_tensor(arr: np.ndarray, form: str) -> torch.Tensor:
    """The one value rule for images: uint8 on 0-255, or floats (or bools) in [0, 1]."""
    if arr.dtype == np.uint8:
        return _writable_tensor(arr, np.uint8)
    if arr.dtype.kind not in "fb":
        hint = ("convert with X.astype(np.uint8) if the values are 0-255"
                if arr.dtype.kind in "iu" else "pass numbers")
        raise ValueError(
            f"{form} must be uint8 (0-255) or float in [0, 1], got dtype {arr.dtype}; {hint}"
        )
    tensor = _writable_tensor(arr, np.float32)
    _check_finite(tensor, form)
    if tensor.numel():
        low, high = float(tensor.min()), float(tensor.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"{form} of floats must be in [0, 1], found values in [{low:.3g}, {high:.3g}]; "
                "divide 0-255 images by 255 (or pass uint8), and pass images before any "
                "normalisation: the backbone normalises them itself"
            )
    return tensor


def _refuse_unsupported_containers(X) -> None:
    if isinstance(X, (torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        raise TypeError(
            f"X is a torch {type(X).__name__}; sktransfer estimators take arrays, "
            "DataFrames, image arrays or image paths (as scikit-learn estimators do). "
            "Stack its samples into an array (np.stack([x for x, _ in dataset])) or pass "
            "the image files' paths"
        )


def to_inputs(X, *, input_shape=None) -> Inputs:
    """Validate ``X`` and turn it into :class:`Inputs`.

    Nothing is recorded anywhere: the caller (the estimator) keeps ``n_features_in_`` and
    feature names from :attr:`Inputs.n_columns` and ``X`` itself.

    Parameters
    ----------
    X : array-like, DataFrame, image array or paths
        One of the forms listed in the module docstring.
    input_shape : tuple of int, optional
        ``(n_features,)`` or ``(C, H, W)``: checked against image arrays, needed for
        flattened images and for image arrays whose channel axis is ambiguous.

    Returns
    -------
    Inputs

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.inputs import to_inputs
    >>> to_inputs(np.zeros((2, 8, 8, 3), dtype=np.uint8)).sample_shape
    (3, 8, 8)
    >>> to_inputs(np.zeros((2, 12)), input_shape=(3, 2, 2)).kind
    'image'
    """
    _refuse_unsupported_containers(X)
    if input_shape is not None:
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) not in (1, 3) or min(input_shape) < 1:
            raise ValueError(
                f"input_shape must be (n_features,) or (C, H, W) of positive sizes, got "
                f"{input_shape}"
            )
    if _is_path_array(X):
        paths = np.asarray(X, dtype=object).reshape(-1)
        bad = [i for i, p in enumerate(paths) if not isinstance(p, (str, os.PathLike))]
        if bad:
            raise ValueError(
                f"X is a column of image paths, but {len(bad)} of its {len(paths)} entries "
                f"are not paths (rows {bad[:5]}: {[paths[i] for i in bad[:3]]!r}); drop or "
                "fill the missing ones first (e.g. X.dropna(), with y to match)"
            )
        paths = np.array([os.fspath(p) for p in paths], dtype=object)
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing and not any(_looks_like_a_path(p) for p in paths[:100]):
            raise ValueError(
                f"X is a column of strings that are not file paths (e.g. {paths[0]!r}). A "
                "column of strings is read as image paths; for categories or text, encode "
                "them as numbers first (e.g. sklearn.preprocessing.OneHotEncoder)"
            )
        if missing:
            raise ValueError(
                f"{len(missing)} of {len(paths)} image paths are not readable files, e.g. "
                f"{missing[:3]}; check the paths (relative paths are taken from "
                f"{os.getcwd()})"
            )
        return Inputs("paths", paths, None, 1)

    ndim = getattr(X, "ndim", None)
    if ndim is None:
        ndim = np.asarray(X).ndim if not hasattr(X, "toarray") else 2
    if ndim >= 3:
        arr = check_array(X, allow_nd=True, dtype=None, ensure_all_finite=True)
        if arr.dtype.kind not in "uifb":
            raise ValueError(f"image arrays must be numeric, got dtype {arr.dtype}")
        arr = _image_layout(arr, input_shape)
        return Inputs("image", _image_tensor(arr, "image arrays"), tuple(arr.shape[1:]))

    arr = check_array(X, dtype=None, ensure_min_samples=1)
    if arr.dtype.kind not in "uifb":
        arr = check_array(arr, dtype=np.float64)
    if input_shape is not None and len(input_shape) == 3:
        if arr.shape[1] != int(np.prod(input_shape)):
            raise ValueError(
                f"input_shape={input_shape} needs {int(np.prod(input_shape))} columns "
                f"(C*H*W), but X has {arr.shape[1]}"
            )
        c, h, w = input_shape
        if c > max(_CHANNELS) and w in (3, 4) and h > max(_CHANNELS):  # (H, W, RGB[A])
            raise ValueError(
                f"input_shape={input_shape} reads each row as {c} channels of {h}x{w} "
                f"images; it looks like (H, W, C) instead. input_shape is (C, H, W) and a "
                f"flattened row is read in that order: flatten channels-last images with "
                f"X.transpose(0, 3, 1, 2).reshape(len(X), -1) and pass input_shape="
                f"{(w, c, h)}"
            )
        images = arr.reshape(len(arr), *input_shape)
        tensor = _image_tensor(images, "flattened images (input_shape=(C, H, W))")
        return Inputs("image", tensor, input_shape, arr.shape[1])
    if input_shape is not None and input_shape[0] != arr.shape[1]:
        raise ValueError(f"input_shape={input_shape} but X has {arr.shape[1]} features")
    tensor = _writable_tensor(arr, np.float32)
    _check_finite(tensor, "X")
    return Inputs("tabular", tensor, (arr.shape[1],), arr.shape[1])


class ArrayDataset(torch.utils.data.Dataset):
    """In-memory samples, indexable by a whole batch of indices at once.

    Items are ``({"x": x, "sample_weight": w}, y)`` (no ``sample_weight`` when there are
    none); skorch passes the dict to the network and the loss reads the weights from it.
    ``x`` is raw inputs or, for a frozen backbone, its cached embeddings: the skorch net is
    told which (``head_only``), the data carries no marker.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None,
                 sample_weight: torch.Tensor | None = None):
        n = len(x)
        self.x = x
        self.y = y if y is not None else torch.zeros(n, dtype=torch.long)
        self.sample_weight = sample_weight

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx):
        if self.sample_weight is None:
            return {"x": self.x[idx]}, self.y[idx]
        return {"x": self.x[idx], "sample_weight": self.sample_weight[idx]}, self.y[idx]


class ImagePathDataset(torch.utils.data.Dataset):
    """Image files read on demand, resized to ``image_size``, as uint8 CHW tensors
    (channels-last in memory).

    A batch is decoded by one thread pool that lives as long as the dataset (Pillow
    releases the GIL while decoding): creating a pool per batch costs thread start-ups on
    every batch. The pool has at most as many threads as this process has CPUs, so decoding
    does not fight the network's own threads for the cores.
    """

    def __init__(self, paths: np.ndarray, image_size, y=None, sample_weight=None,
                 n_threads: int = 4):
        n = len(paths)
        self.paths = paths
        self.image_size = image_size
        self.y = y if y is not None else torch.zeros(n, dtype=torch.long)
        self.sample_weight = sample_weight
        self.n_threads = n_threads
        self._pool = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getstate__(self):  # a pool cannot be pickled; the copy makes its own
        state = self.__dict__.copy()
        state["_pool"] = None
        return state

    def _read(self, i: int) -> np.ndarray:
        from ._image_io import read_image

        return read_image(self.paths[i], image_size=self.image_size)

    def _map(self, indices: list[int]) -> list[np.ndarray]:
        from joblib import cpu_count

        workers = min(int(self.n_threads), int(cpu_count()), len(self))
        if workers <= 1 or len(indices) <= 1:
            return [self._read(i) for i in indices]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sktransfer-decode")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return list(self._pool.map(self._read, indices))

    def __getitem__(self, idx):
        # Decoded HWC pixels viewed as CHW are channels-last in memory, the layout oneDNN's
        # CPU convolutions run fastest on (about 30% less compute for EfficientNet-Lite0):
        # kept as they are, not copied to NCHW.
        if isinstance(idx, (int, np.integer)):
            x = torch.from_numpy(self._read(int(idx))).permute(2, 0, 1)
        else:
            indices = [int(i) for i in idx]
            images = self._map(indices)
            sizes = [im.shape for im in images]
            if len(set(sizes)) > 1:  # only without an image_size (a user's own module)
                odd = next(k for k, size in enumerate(sizes) if size != sizes[0])
                raise ValueError(
                    f"image files of different sizes cannot form one batch: "
                    f"{self.paths[indices[0]]!r} is {sizes[0][1]} wide and {sizes[0][0]} "
                    f"high, {self.paths[indices[odd]]!r} {sizes[odd][1]} by {sizes[odd][0]}; "
                    "pass image_size= to have them resized"
                )
            x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        if self.sample_weight is None:
            return {"x": x}, self.y[idx]
        return {"x": x, "sample_weight": self.sample_weight[idx]}, self.y[idx]


class SeededGenerator:
    """A seeded ``torch.Generator`` that pickles and deep-copies with its state.

    The shuffling generator is a parameter of the skorch net, so it travels with a
    pickled (or ``copy.deepcopy``-ed) estimator; ``torch.Generator`` itself cannot be
    pickled before torch 2.3, and sktransfer supports older releases.
    """

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(int(seed))

    def __getstate__(self) -> dict:
        return {"state": self.generator.get_state()}

    def __setstate__(self, state: dict) -> None:
        self.generator = torch.Generator()
        self.generator.set_state(state["state"])


class BatchLoader:
    """Yield batches by indexing the dataset with index tensors.

    skorch's default ``DataLoader`` fetches and collates samples one by one, which costs
    more than the forward pass of a small tabular network (measured in
    ``benchmarks/bench_training_loop.py``). This loader is a drop-in ``iterator_train`` /
    ``iterator_valid`` for skorch: same batches, no per-sample work. It understands the
    ``torch.utils.data.Subset`` that skorch's validation split produces.

    ``num_shards > 1`` splits each epoch between processes of one distributed fit
    (:mod:`sktransfer._distributed`): every process draws the same permutation (their
    generators are seeded alike) and process ``shard`` takes batches ``shard``,
    ``shard + num_shards``, ... of it, so each indexes (and decodes) only its own rows. All
    processes take ``ceil(n_batches / num_shards)`` batches, the last ones wrapping round
    to the epoch's first batches as needed: gradient all-reduces need every process to
    step the same number of times (Accelerate's ``even_batches`` does the same).
    """

    def __init__(self, dataset, batch_size: int = 128, shuffle: bool = False,
                 generator: torch.Generator | SeededGenerator | None = None,
                 pin_memory: bool = False, num_shards: int = 1, shard: int = 0, **_):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.pin_memory = pin_memory
        self.num_shards = int(num_shards)
        self.shard = int(shard)
        if not 0 <= self.shard < self.num_shards:
            raise ValueError(f"shard={shard} must be in [0, num_shards={num_shards})")

    def _base_and_indices(self):
        dataset, indices = self.dataset, None
        while isinstance(dataset, torch.utils.data.Subset):
            sub = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
            indices = sub if indices is None else sub[indices]
            dataset = dataset.dataset
        if indices is None:
            indices = torch.arange(len(dataset))
        return dataset, indices

    def __len__(self) -> int:
        n_batches = (len(self.dataset) + self.batch_size - 1) // self.batch_size
        return -(-n_batches // self.num_shards)

    def _starts(self, n: int) -> range | list[int]:
        starts = range(0, n, self.batch_size)
        if self.num_shards == 1 or not starts:
            return starts
        picks = range(self.shard, len(self) * self.num_shards, self.num_shards)
        return [starts[k % len(starts)] for k in picks]

    def __iter__(self):
        base, indices = self._base_and_indices()
        if self.shuffle:
            generator = self.generator
            if isinstance(generator, SeededGenerator):
                generator = generator.generator
            indices = indices[torch.randperm(len(indices), generator=generator)]
        for start in self._starts(len(indices)):
            batch = base[indices[start:start + self.batch_size]]
            if self.pin_memory:
                batch = _pin(batch)
            yield batch


def _pin(batch):
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory() if batch.device.type == "cpu" else batch
    if isinstance(batch, dict):
        return {k: _pin(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_pin(v) for v in batch)
    return batch
