"""The pieces of a skorch training run that the estimator assembles: net, loss, split.

Everything here is plain skorch; the estimator decides what goes in.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import StratifiedShuffleSplit
from skorch import NeuralNetClassifier
from skorch.utils import to_tensor

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


class WeightedNet(NeuralNetClassifier):
    """skorch's classifier with a per-sample weighted loss.

    Each batch's ``X`` is a dict holding ``sample_weight`` (class weights folded in); the
    loss is ``sum(w * ce) / sum(w)``, which is the plain mean when all weights are one. Using
    one code path for weighted and unweighted fits keeps ``sample_weight=ones`` identical to
    no weights at all.
    """

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = to_tensor(y_true, device=self.device)
        losses = self.criterion_(y_pred, y_true)
        if isinstance(X, dict) and "sample_weight" in X:
            w = to_tensor(X["sample_weight"], device=self.device).to(losses.dtype)
            return (losses * w).sum() / w.sum().clamp_min(1e-12)
        return losses.mean()


class HoldOut:
    """skorch ``train_split``: hold out a (stratified where possible) fraction for validation.

    Falls back to a plain random split when a class is too small to stratify, and to no
    validation at all when the fraction of the data is less than one sample.
    """

    def __init__(self, fraction: float, random_state: int):
        self.fraction = fraction
        self.random_state = random_state

    def __call__(self, dataset, y=None, **_):
        n = len(dataset)
        n_valid = int(round(self.fraction * n))
        if n_valid < 1 or n - n_valid < 2:
            return dataset, None
        rng = np.random.RandomState(self.random_state)
        y = None if y is None else np.asarray(y)
        idx_train = idx_valid = None
        if y is not None:
            counts = np.bincount(y)
            counts = counts[counts > 0]
            if counts.min() >= 2 and n_valid >= len(counts) and n - n_valid >= len(counts):
                sss = StratifiedShuffleSplit(1, test_size=n_valid, random_state=rng)
                idx_train, idx_valid = next(sss.split(np.zeros(n), y))
        if idx_train is None:
            perm = rng.permutation(n)
            idx_valid, idx_train = perm[:n_valid], perm[n_valid:]
        return (
            torch.utils.data.Subset(dataset, np.sort(idx_train)),
            torch.utils.data.Subset(dataset, np.sort(idx_valid)),
        )


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is there, else ``"cpu"``; anything else checked."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but CUDA is not available here; use device='auto' or 'cpu'"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return str(parsed)


def history_frame(history):
    """skorch ``History`` -> one pandas row per epoch with the metrics users plot."""
    import pandas as pd

    columns = ["epoch", "train_loss", "valid_loss", "train_acc", "valid_acc", "dur"]
    rows = []
    for row in history:
        record = {c: row.get(c, np.nan) for c in columns}
        record["unfrozen"] = bool(row.get("unfrozen", False))
        rows.append(record)
    frame = pd.DataFrame(rows, columns=[*columns, "unfrozen"])
    return frame.dropna(axis=1, how="all")
