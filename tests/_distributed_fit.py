"""One TransferClassifier fit spread over the processes of a ``torchrun`` launch.

Run by tests/test_distributed.py (``torchrun --nproc_per_node 2 ... OUT_DIR``), never
collected by pytest. Each process writes what the test compares to ``OUT_DIR``: its final
weights, its predictions, the rows of its training batches in epoch 3, and its count
of training batches per epoch.
"""

import json
import os
import sys

import numpy as np
import torch
from skorch.callbacks import Callback

from sktransfer import TransferClassifier


class RowsSeen(Callback):
    """The first column of every training row this process trains on, per epoch."""

    def on_train_begin(self, net, **kwargs):
        self.rows_ = getattr(self, "rows_", [])

    def on_epoch_begin(self, net, **kwargs):
        self.rows_.append([])

    def on_batch_begin(self, net, batch, training, **kwargs):
        if training:
            self.rows_[-1].extend(batch[0]["x"][:, 0].tolist())


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    rng = np.random.RandomState(0)
    X = rng.randn(480, 6).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] > 0).astype(int)
    X_fit, y_fit, X_test, y_test = X[:400], y[:400], X[400:], y[400:]
    seen = RowsSeen()
    # gradual: a head-only stage on cached features, then the backbone unfreezes (the DDP
    # wrapper must then be rebuilt to sync the backbone too); a stratified hold-out
    clf = TransferClassifier(
        "mlp", freeze="gradual:2", max_epochs=6, batch_size=32, lr=1e-2,
        validation_fraction=0.2, accelerator="auto", callbacks=[("seen", seen)],
        verbose=1,  # the per-epoch table: printed by the main process only
        random_state=None,  # process 0's seed must reach every process
    )
    clf.fit(X_fit, y_fit)
    acc = clf.net_.accelerator
    rank = acc.process_index
    history = clf.net_.history
    batches = [sum("train_loss" in b for b in row["batches"]) for row in history]
    seen_cb = dict(clf.net_.callbacks_)["seen"]  # epoch 3: the first on raw rows
    torch.save({k: v.cpu() for k, v in clf.net_.module_.state_dict().items()},
               os.path.join(out_dir, f"weights_{rank}.pt"))
    np.save(os.path.join(out_dir, f"proba_{rank}.npy"), clf.predict_proba(X_test))
    with open(os.path.join(out_dir, f"rank_{rank}.json"), "w") as f:
        json.dump({
            "num_processes": acc.num_processes,
            "distributed_type": str(acc.distributed_type),
            "train_batches_per_epoch": batches,
            "rows_epoch_3": seen_cb.rows_[2],
            "n_train_rows": int(round(0.8 * len(X_fit))),
            "test_accuracy": float(clf.score(X_test, y_test)),
            "train_loss": clf.history_["train_loss"].tolist(),
            "valid_loss": clf.history_["valid_loss"].tolist(),
            "stages": clf.stages_,
        }, f)


if __name__ == "__main__":
    main(sys.argv[1])
