"""The accepted forms of ``X`` and how each becomes tensors a network can eat.

- tabular: 2-D float arrays or DataFrames, ``(n_samples, n_features)``;
- images: uint8 or float arrays, NHWC or NCHW (``(n, H, W)`` for one channel); floats are
  taken to be in [0, 1];
- flattened images: 2-D arrays with ``input_shape=(C, H, W)``, the form imbalanced-learn's
  samplers accept;
- image files: a 1-column array (or a 1-D array) of paths, read lazily batch by batch.

Images stay uint8 in memory and on their way to the device; the backbone's preprocessing
converts them there.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.utils.validation import check_array

Kind = Literal["tabular", "image", "paths"]


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
        return X.shape[1] == 1 and X.dtypes.iloc[0] == np.dtype(object) and first_is_path
    arr = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if arr.dtype.kind not in "OUS":
        return False
    if arr.ndim == 2 and arr.shape[1] != 1:
        return False
    if arr.ndim not in (1, 2) or arr.size == 0:
        return False
    first = arr.reshape(-1)[0]
    return isinstance(first, (str, os.PathLike, np.str_))


def _writable_tensor(arr: np.ndarray, dtype) -> torch.Tensor:
    # A copy where needed: torch refuses to wrap read-only arrays (memmaps) silently.
    return torch.from_numpy(np.require(arr, dtype=dtype, requirements=["C", "W"]))


def _image_layout(arr: np.ndarray, input_shape) -> np.ndarray:
    """NHWC or NCHW (or NHW) -> NCHW, using ``input_shape`` where the layout is ambiguous."""
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    if arr.ndim != 4:
        raise ValueError(f"image arrays must be 3-D or 4-D, got shape {arr.shape}")
    if input_shape is not None:
        c, h, w = input_shape
        if arr.shape[1:] == (c, h, w):
            return arr
        if arr.shape[1:] == (h, w, c):
            return arr.transpose(0, 3, 1, 2)
        raise ValueError(
            f"X has images of shape {arr.shape[1:]}, which contradicts input_shape="
            f"{tuple(input_shape)} (C, H, W) in both NCHW and NHWC layouts"
        )
    if arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4):
        return arr.transpose(0, 3, 1, 2)
    if arr.shape[1] in (1, 3, 4):
        return arr
    if arr.shape[-1] in (1, 3, 4):
        return arr.transpose(0, 3, 1, 2)
    raise ValueError(
        f"cannot tell the channel axis of images of shape {arr.shape[1:]}; pass "
        "input_shape=(C, H, W)"
    )


def to_inputs(X, *, input_shape=None) -> Inputs:
    """Validate ``X`` and turn it into :class:`Inputs`.

    Nothing is recorded anywhere: the caller (the estimator) keeps ``n_features_in_`` and
    feature names from :attr:`Inputs.n_columns` and ``X`` itself.
    """
    if input_shape is not None:
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) not in (1, 3) or min(input_shape) < 1:
            raise ValueError(
                f"input_shape must be (n_features,) or (C, H, W) of positive sizes, got "
                f"{input_shape}"
            )
    if _is_path_array(X):
        paths = np.asarray(X, dtype=object).reshape(-1)
        paths = np.array([os.fspath(p) for p in paths], dtype=object)
        missing = [p for p in paths if not os.path.isfile(p)]
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
        if arr.dtype.kind not in "uif" and arr.dtype != bool:
            raise ValueError(f"image arrays must be numeric, got dtype {arr.dtype}")
        arr = _image_layout(arr, input_shape)
        if arr.dtype == np.uint8:
            tensor = _writable_tensor(arr, np.uint8)
        else:
            tensor = _writable_tensor(arr, np.float32)
            if tensor.numel() and float(tensor.max()) > 2.0:
                raise ValueError(
                    "float images must be scaled to [0, 1] (found values up to "
                    f"{float(tensor.max()):.3g}); pass uint8 images or divide by 255"
                )
        return Inputs("image", tensor, tuple(arr.shape[1:]))

    arr = check_array(X, dtype=None, ensure_min_samples=1)
    if arr.dtype.kind not in "uifb":
        arr = check_array(arr, dtype=np.float64)
    if input_shape is not None and len(input_shape) == 3:
        if arr.shape[1] != int(np.prod(input_shape)):
            raise ValueError(
                f"input_shape={input_shape} needs {int(np.prod(input_shape))} columns "
                f"(C*H*W), but X has {arr.shape[1]}"
            )
        images = arr.reshape(len(arr), *input_shape)
        dtype = np.uint8 if arr.dtype == np.uint8 else np.float32
        return Inputs("image", _writable_tensor(images, dtype), input_shape, arr.shape[1])
    if input_shape is not None and input_shape[0] != arr.shape[1]:
        raise ValueError(f"input_shape={input_shape} but X has {arr.shape[1]} features")
    return Inputs("tabular", _writable_tensor(arr, np.float32), (arr.shape[1],), arr.shape[1])


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
    """Image files read on demand, resized to ``image_size``, as uint8 CHW tensors."""

    def __init__(self, paths: np.ndarray, image_size, y=None, sample_weight=None,
                 n_threads: int = 4):
        n = len(paths)
        self.paths = paths
        self.image_size = image_size
        self.y = y if y is not None else torch.zeros(n, dtype=torch.long)
        self.sample_weight = sample_weight
        self.n_threads = n_threads

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> np.ndarray:
        from ._image_io import read_image

        return read_image(self.paths[i], image_size=self.image_size)

    def __getitem__(self, idx):
        if isinstance(idx, (int, np.integer)):
            x = torch.from_numpy(self._read(int(idx))).permute(2, 0, 1).contiguous()
        else:
            indices = [int(i) for i in idx]
            if self.n_threads > 1 and len(indices) > 1:
                with ThreadPoolExecutor(self.n_threads) as pool:
                    images = list(pool.map(self._read, indices))
            else:
                images = [self._read(i) for i in indices]
            x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        if self.sample_weight is None:
            return {"x": x}, self.y[idx]
        return {"x": x, "sample_weight": self.sample_weight[idx]}, self.y[idx]


class BatchLoader:
    """Yield batches by indexing the dataset with index tensors.

    skorch's default ``DataLoader`` fetches and collates samples one by one, which costs
    more than the forward pass of a small tabular network (measured in
    ``benchmarks/bench_training_loop.py``). This loader is a drop-in ``iterator_train`` /
    ``iterator_valid`` for skorch: same batches, no per-sample work. It understands the
    ``torch.utils.data.Subset`` that skorch's validation split produces.
    """

    def __init__(self, dataset, batch_size: int = 128, shuffle: bool = False,
                 generator: torch.Generator | None = None, pin_memory: bool = False, **_):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.pin_memory = pin_memory

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
        return (len(self.dataset) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        base, indices = self._base_and_indices()
        if self.shuffle:
            indices = indices[torch.randperm(len(indices), generator=self.generator)]
        for start in range(0, len(indices), self.batch_size):
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
