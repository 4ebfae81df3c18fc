"""Task B variants of the CIFAR-10 A/B experiment, chosen on a validation pool of B images.

The task A network comes from an earlier ``bench_cifar.py`` run (its checkpoint). Each
variant (a freeze policy and its training recipe) is scored on two disjoint sets of
airplane and horse training images that task A never saw:

- ``val``: 5 stratified draws of 100 labelled images from B rows 1,100-1,299 of each
  class, scored on rows 1,300-2,299 (2,000 images). The defaults are chosen here.
- ``bench``: the bench's own split (draws from rows 0-99, scored on rows 100-1,099), the
  numbers ``bench_cifar.py`` reports, shown beside for the record, not to choose by.

Writes ``benchmarks/results/cifar_b_variants.json``.

Usage::

    python benchmarks/bench_cifar_b_variants.py [--a PATH] [--only NAME ...]
        [--splits val bench] [--draws 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import VotingClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's sktransfer
from _common import RESULTS, write  # noqa: E402

from sktransfer import TransferClassifier  # noqa: E402
from sktransfer.datasets import fetch_cifar10  # noqa: E402
from sktransfer.experiments import cifar as cifar_exp  # noqa: E402
from sktransfer.experiments.cifar import B_RECIPES  # noqa: E402
from sktransfer.freeze import GradualUnfreeze  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
B_CLASSES = (0, 7)
PER_B, POOL = 50, 100  # labelled images per class, and the pool each draw comes from
SPLITS = {"bench": (0, POOL, POOL + 1000), "val": (1100, 1100 + POOL, 1100 + POOL + 1000)}

_OLD = {  # the recipes before this study (commit 3b260e6), the first rows of the table
    "scratch": {"optimizer": "sgd", "lr": 0.05, "lr_schedule": "onecycle", "warmup": 0.2,
                "weight_decay": 5e-4, "label_smoothing": 0.1, "augment": "flip_crop",
                "batch_size": 32, "max_epochs": 80},
    "last-1": {"optimizer": "adamw", "lr": 1e-2, "lr_schedule": "cosine", "warmup": 0.0,
               "weight_decay": 1e-2, "batch_size": 32, "max_epochs": 60},
    "last-2": {"optimizer": "sgd", "lr": 0.01, "lr_schedule": "onecycle", "warmup": 0.2,
               "weight_decay": 5e-4, "label_smoothing": 0.1, "augment": "flip_crop",
               "batch_size": 32, "max_epochs": 30},
    "fine-tune": {"optimizer": "sgd", "lr": 0.01, "lr_schedule": "onecycle", "warmup": 0.2,
                  "layer_decay": None, "weight_decay": 5e-4, "label_smoothing": 0.1,
                  "augment": "flip_crop", "batch_size": 32, "max_epochs": 30},
}
_SGD = dict(_OLD["last-2"])


def variants() -> dict[str, tuple[object, dict]]:
    """name -> (freeze, TransferClassifier parameters); ``backbone`` "A" or "cnn"."""
    v: dict[str, tuple[object, dict]] = {
        "scratch (old)": ("none", {**_OLD["scratch"], "backbone": "cnn"}),
        "last-1 (old)": ("last:1", _OLD["last-1"]),
        "last-2 (old)": ("last:2", _OLD["last-2"]),
        "fine-tune (old)": ("none", _OLD["fine-tune"]),
        # test-time flips (Krizhevsky et al. 2012): airplanes and horses are mirror-symmetric
        "scratch +tta": ("none", {**_OLD["scratch"], "backbone": "cnn", "tta": True}),
        "last-1 +tta": ("last:1", {**_OLD["last-1"], "tta": True}),
        "last-2 +tta": ("last:2", {**_OLD["last-2"], "tta": True}),
        "fine-tune +tta": ("none", {**_OLD["fine-tune"], "tta": True}),
        # linear probe on augmented images (flips and crops of the 100 images)
        "last-1 +aug +tta": ("last:1", {**_OLD["last-1"], "augment": "flip_crop",
                                        "label_smoothing": 0.1, "tta": True}),
        # one more layer
        "last-3 +tta": ("last:3", {**_SGD, "tta": True}),
        # longer B training
        "last-2 60ep +tta": ("last:2", {**_SGD, "max_epochs": 60, "tta": True}),
        "fine-tune 60ep +tta": ("none", {**_OLD["fine-tune"], "max_epochs": 60, "tta": True}),
        # smaller / larger rate
        "last-2 lr0.005 +tta": ("last:2", {**_SGD, "lr": 0.005, "tta": True}),
        "last-2 lr0.02 +tta": ("last:2", {**_SGD, "lr": 0.02, "tta": True}),
        # L2-SP (Li et al. 2018) toward the A weights
        "fine-tune l2sp0.01 +tta": ("none", {**_OLD["fine-tune"], "l2sp": 0.01, "tta": True}),
        "fine-tune l2sp0.1 +tta": ("none", {**_OLD["fine-tune"], "l2sp": 0.1, "tta": True}),
        # layer-wise LR decay (ULMFiT / BEiT)
        "fine-tune decay0.6 +tta": ("none", {**_OLD["fine-tune"], "layer_decay": 0.6,
                                             "tta": True}),
        # LP-FT (Kumar et al. 2022): head first, then all layers at 0.1x the rate
        "gradual:10 +tta": (GradualUnfreeze(head_epochs=10),
                            {**_OLD["fine-tune"], "max_epochs": 40, "tta": True}),
        "gradual:10 bb0.3 +tta": (GradualUnfreeze(head_epochs=10),
                                  {**_OLD["fine-tune"], "max_epochs": 40,
                                   "backbone_lr_mult": 0.3, "tta": True}),
        # BatchNorm kept at its A statistics when fine-tuning on 100 images
        "fine-tune frozenBN +tta": ("none-bn", {**_OLD["fine-tune"], "tta": True}),
        # no label smoothing
        "last-2 ls0 +tta": ("last:2", {**_SGD, "label_smoothing": 0.0, "tta": True}),
        # second round: combine what helped (longer, smaller rate, LP-FT)
        "last-2 60ep lr0.005 +tta": ("last:2", {**_SGD, "max_epochs": 60, "lr": 0.005,
                                                "tta": True}),
        "last-2 100ep +tta": ("last:2", {**_SGD, "max_epochs": 100, "tta": True}),
        "gradual:20 60ep +tta": (GradualUnfreeze(head_epochs=20),
                                 {**_OLD["fine-tune"], "max_epochs": 60, "tta": True}),
        "fine-tune 100ep +tta": ("none", {**_OLD["fine-tune"], "max_epochs": 100,
                                          "tta": True}),
        "scratch 160ep +tta": ("none", {**_OLD["scratch"], "backbone": "cnn",
                                        "max_epochs": 160, "tta": True}),
        # the exact probe (L-BFGS logistic regression on the standardised A features), alone
        # and as LP-FT's LP (Kumar et al. 2022), and WiSE-FT's average of the two ends
        # (Wortsman et al. 2022, a = 0.5 as the paper recommends); no augmentation: the
        # exact probe needs the cached (unaugmented) features
        "last-1 lbfgs +tta": ("last:1", {"head_solver": "lbfgs", "tta": True}),
        "gradual lbfgs +tta": (GradualUnfreeze(head_epochs=10),
                               {**_OLD["fine-tune"], "max_epochs": 40, "head_solver": "lbfgs",
                                "augment": False, "tta": True}),
        "gradual lbfgs wise0.5 +tta": (GradualUnfreeze(head_epochs=10),
                                       {**_OLD["fine-tune"], "max_epochs": 40,
                                        "head_solver": "lbfgs", "weight_interpolation": 0.5,
                                        "augment": False, "tta": True}),
    }
    # the chosen defaults, as run_cifar uses them (for a new A checkpoint: --a ... --only)
    v.update({f"default {k}": ("none" if k in ("scratch", "fine-tune") else
                               f"last:{k[-1]}",
                               {**r, **({"backbone": "cnn"} if k == "scratch" else {})})
              for k, r in B_RECIPES.items()})
    # the defaults with test-time translations as well as flips (tta="flip_translate":
    # airbench's test-time augmentation, Jordan 2024)
    v.update({f"{name} +translate": (freeze, {**params, "tta": "flip_translate"})
              for name, (freeze, params) in list(v.items()) if name.startswith("default ")})
    # the trained-layer defaults with MixUp (Zhang et al., ICLR 2018) or CutMix (Yun et al.,
    # ICCV 2019) at the papers' CIFAR alpha of 1: regularisers for few labelled images
    v.update({f"{name} +{kind}1.0": (freeze, {**params, kind: 1.0})
              for name, (freeze, params) in list(v.items())
              if name in ("default last-2", "default fine-tune")
              for kind in ("mixup", "cutmix")})
    v.update({f"{name} ensemble5": (freeze, {**params, "ensemble": 5})
              for name, (freeze, params) in list(v.items())
              if name in ("default last-2", "default fine-tune")})
    return v


def _freeze(spec):
    if spec == "none-bn":
        from sktransfer.freeze import FreezeNone

        return FreezeNone(train_batchnorm=False)
    return spec


def _rows(target, start, stop):
    return cifar_exp._rows(target, B_CLASSES, start, stop)


def _draws(y_pool, n, seed):
    from sklearn.model_selection import StratifiedShuffleSplit

    sss = StratifiedShuffleSplit(n, train_size=PER_B * len(B_CLASSES), random_state=seed)
    return [np.sort(tr) for tr, _ in sss.split(np.zeros(len(y_pool)), y_pool)]


def score(freeze, params, backbone, images, target, split, draws, seed=0):
    from sklearn.metrics import balanced_accuracy_score

    start, pool_end, test_end = SPLITS[split]
    pool = _rows(target, start, pool_end)
    test = _rows(target, pool_end, test_end)
    params = dict(params)
    spec = backbone if params.pop("backbone", "A") == "A" else "cnn"
    members = int(params.pop("ensemble", 1))
    amp = cifar_exp._cpu_amp()
    scores, times = [], []
    for rows in _draws(target[pool], draws, seed):
        nets = [TransferClassifier(spec, freeze=_freeze(freeze), random_state=seed + k,
                                   mixed_precision=amp, device="cpu", n_threads=1, **params)
                for k in range(members)]
        # a deep ensemble (Lakshminarayanan et al., NeurIPS 2017): the soft vote of
        # members trained with other seeds (head initialisation, batches, augmentation)
        clf = nets[0] if members == 1 else VotingClassifier(
            [(f"m{k}", net) for k, net in enumerate(nets)], voting="soft")
        t = time.process_time()
        clf.fit(images[pool][rows], target[pool][rows])
        times.append(time.process_time() - t)
        scores.append(balanced_accuracy_score(target[test], clf.predict(images[test])))
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)),
            "scores": [float(s) for s in scores], "fit_cpu_seconds_mean": float(np.mean(times))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--a", type=Path, default=RESULTS / "cifar_a_backbone.pt")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--splits", nargs="*", default=["val", "bench"])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--out", default="cifar_b_variants")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from sktransfer.backbones.exported import ExportedBackbone

    backbone = ExportedBackbone.load(args.a)
    data = fetch_cifar10("train", data_home=args.data_home, download=False,
                         max_per_class=SPLITS["val"][2], verbose=0)
    keep = np.isin(data.target, B_CLASSES)
    images, target = data.images[keep], data.target[keep]
    path = RESULTS / f"{args.out}.json"
    previous = json.loads(path.read_text()).get("variants", {}) if path.is_file() else {}
    table = dict(previous)
    for name, (freeze, params) in variants().items():
        if args.only is not None and name not in args.only:
            continue
        row = dict(table.get(name, {}))
        row.update({"freeze": repr(freeze), "params": dict(params),
                    "a_network": {"checkpoint": args.a.name,
                                  "test_acc": backbone.meta.get("task_a_test_acc")}})
        for split in args.splits:
            row[split] = score(freeze, params, backbone, images, target, split, args.draws)
            print(f"{name:28s} {split:5s} {row[split]['mean']:.4f} "
                  f"+- {row[split]['std']:.4f} ({row[split]['fit_cpu_seconds_mean']:.1f} s)",
                  flush=True)
        table[name] = row
        write(args.out, {
            "a_checkpoint": args.a.name, "a_model": backbone.meta, "draws": args.draws,
            "splits": {k: {"pool_rows_per_class": [a, b], "test_rows_per_class": [b, c]}
                       for k, (a, b, c) in SPLITS.items()},
            "choose_by": "val",
            "note": "each row names the task A network it used (a_network); choose by the "
                    "'val' split, 'bench' is the split bench_cifar.py reports",
            "variants": table,
        })


if __name__ == "__main__":
    main()
