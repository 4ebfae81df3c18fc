"""Benchmark 1: frozen-backbone GridSearchCV, TransferClassifier vs plain skorch + Freezer.

The same search twice, in one process: EfficientNet-Lite0 (ImageNet weights) frozen, a new
linear head, Adam, the same folds, grid, batch size and epochs. The skorch version is what a
user writes today: a module holding backbone and head, skorch's ``Freezer`` callback on the
backbone, images normalised once up front. (Its module keeps the frozen backbone in eval
mode, so its BatchNorm statistics stay put; without that its accuracy would drop.)
TransferClassifier computes each image's features once and reuses them across epochs,
folds and candidates. Goal (issue #11): at least 50x faster at equal accuracy. One-off
process costs (torch's first optimizer, the first read of the weights file) are paid
before either search is timed.

    python benchmarks/bench_frozen_gridsearch.py [--per-class 6] [--epochs 10]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from _common import timed, write
from _data import monkey_images
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from skorch import NeuralNetClassifier
from skorch.callbacks import Freezer

from sktransfer import TransferClassifier
from sktransfer.backbones.efficientnet_lite import MEAN, STD, efficientnet_lite0
from sktransfer.cache import clear_cache


class FrozenBackboneNet(torch.nn.Module):
    """Backbone + linear head, as written by hand for skorch."""

    def __init__(self, n_classes=10):
        super().__init__()
        self.backbone = efficientnet_lite0(weights="imagenet").body
        self.head = torch.nn.Linear(1280, n_classes)

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # frozen: keep BatchNorm statistics
        return self

    def forward(self, x):
        return self.head(self.backbone(x))


def skorch_search(X, y, folds, grid, epochs, batch_size, seed):
    x = torch.as_tensor(X).permute(0, 3, 1, 2).float().div(255)
    x = ((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    torch.manual_seed(seed)
    net = NeuralNetClassifier(
        FrozenBackboneNet, module__n_classes=len(np.unique(y)),
        criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
        max_epochs=epochs, batch_size=batch_size, train_split=None, verbose=0,
        iterator_train__shuffle=True,
        callbacks=[Freezer("backbone.*")],
    )
    search = GridSearchCV(net, {k.replace("weight_decay", "optimizer__weight_decay"): v
                                for k, v in grid.items()}, cv=folds)
    return search.fit(x.numpy(), y.astype(np.int64))


def sktransfer_search(X, y, folds, grid, epochs, batch_size, seed):
    clf = TransferClassifier("efficientnet_lite0", weights="imagenet", freeze="backbone",
                             max_epochs=epochs, batch_size=batch_size,
                             validation_fraction=None, random_state=seed)
    return GridSearchCV(clf, grid, cv=folds).fit(X, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    X, y, source = monkey_images(args.per_class)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    grid = {"lr": [1e-3, 3e-3], "weight_decay": [0.0, 1e-4]}
    kw = dict(folds=folds, grid=grid, epochs=args.epochs, batch_size=args.batch_size, seed=0)
    # One-off process costs that either side would pay first, so whichever runs first
    # pays them (as bench_training_loop warms up): torch's optimizer machinery imports
    # torch._dynamo on the first optimizer, and the first Lite0 build reads its weights file.
    warm = torch.zeros(1, requires_grad=True)
    warm.sum().backward()
    torch.optim.Adam([warm]).step()
    efficientnet_lite0(weights="imagenet")
    clear_cache()
    # A busy host slows the two runs unequally (they run minutes apart): the load average
    # and the process's CPU time (which excludes the time it waited for a CPU) go with them.
    load = {"before_sktransfer": os.getloadavg()[0]}
    cpu = time.process_time()
    ours, t_ours = timed(sktransfer_search, X, y, **kw)
    cpu_ours, cpu = time.process_time() - cpu, time.process_time()
    load["before_skorch"] = os.getloadavg()[0]
    theirs, t_theirs = timed(skorch_search, X, y, **kw)
    cpu_theirs = time.process_time() - cpu
    load["after"] = os.getloadavg()[0]
    speedup = t_theirs / t_ours
    result = {
        "data": source, "n_images": len(y), "grid": grid, "n_folds": 3,
        "epochs": args.epochs, "batch_size": args.batch_size,
        "fits": 4 * 3 + 1,
        "seconds": {"sktransfer": t_ours, "skorch_freezer": t_theirs},
        "speedup": speedup,
        "cpu_seconds": {"sktransfer": cpu_ours, "skorch_freezer": cpu_theirs},
        "cpu_speedup": cpu_theirs / cpu_ours,
        "best_cv_accuracy": {"sktransfer": ours.best_score_, "skorch_freezer": theirs.best_score_},
        "mean_cv_accuracy": {
            "sktransfer": float(np.mean(ours.cv_results_["mean_test_score"])),
            "skorch_freezer": float(np.mean(theirs.cv_results_["mean_test_score"])),
        },
        "goal": ">= 50x faster at equal accuracy", "met": bool(speedup >= 50),
        "load_average_1min": load, "cpu_count": os.cpu_count(),
    }
    print(f"sktransfer {t_ours:.1f}s (best cv acc {ours.best_score_:.3f})  skorch+Freezer "
          f"{t_theirs:.1f}s (best cv acc {theirs.best_score_:.3f})  speed-up {speedup:.1f}x "
          f"(CPU time {cpu_theirs / cpu_ours:.1f}x)")
    write("frozen_gridsearch", result)
    return result


if __name__ == "__main__":
    main()
