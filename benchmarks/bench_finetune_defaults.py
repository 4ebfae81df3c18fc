"""Which fine-tuning recipe should ``TransferClassifier()`` use by default?

Measures fine-tuning options one at a time against the old defaults (Adam, constant rate,
no decay) on two small real tasks, CPU-cheap, with one torch thread:

- monkeys: EfficientNet-Lite0 with its ImageNet weights, fine-tuned on a class-stratified
  subset of the 10 Monkey Species training photos at low resolution, scored on other
  photos of the same split never trained on;
- gas: an MLP pretrained on gas-drift batches 1-3, fine-tuned on 10% of a later batch,
  scored on the other 90% of that batch.

Each recipe runs over several seeds (different subsets / label draws); the JSON holds
every score. Run ``python benchmarks/bench_finetune_defaults.py [--quick]``; results go to
``benchmarks/results/bench_finetune_defaults.json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write
from _data import monkey_images
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from sktransfer import TransferClassifier

# The old defaults, spelled out, and each option on top of a common fine-tuning base.
OLD = dict(optimizer="adam", lr_schedule="constant", warmup=0.0, layer_decay=None)
BASE = dict(optimizer="adamw", lr_schedule="cosine", warmup=0.1, layer_decay=None)
RECIPES = {
    "old defaults (adam, constant)": OLD,
    "adamw + cosine + warmup": BASE,
    "+ layer_decay 0.7": {**BASE, "layer_decay": 0.7},
    "+ backbone_lr_mult 0.1": {**BASE, "backbone_lr_mult": 0.1},
    "+ gradual (LP-FT)": {**BASE, "freeze": "gradual"},
    "+ l2sp 0.01": {**BASE, "l2sp": 0.01},
    "+ label_smoothing 0.1": {**BASE, "label_smoothing": 0.1},
    "onecycle": {**BASE, "lr_schedule": "onecycle", "warmup": 0.0},
    "new defaults (auto)": {},
}
IMAGE_EXTRA = {
    "+ flip_crop": {**BASE, "augment": "flip_crop"},
    "+ trivialaugment": {**BASE, "augment": "trivialaugment"},
}


def run_monkeys(seeds, per_class, test_per_class, image_size, epochs, recipes):
    X, y, what = monkey_images(per_class + test_per_class, image_size=image_size, seed=0)
    rows = []
    for seed in seeds:
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, train_size=10 * per_class, stratify=y, random_state=seed)
        for name, params in recipes.items():
            clf = TransferClassifier(
                "efficientnet_lite0", weights="imagenet", image_size=image_size,
                max_epochs=epochs, batch_size=16, validation_fraction=None,
                random_state=seed, device="cpu", **params)
            start = time.perf_counter()
            clf.fit(X_tr, y_tr)
            acc = accuracy_score(y_te, clf.predict(X_te))
            rows.append(dict(task="monkeys", recipe=name, seed=seed, accuracy=acc,
                             seconds=time.perf_counter() - start))
            print(f"monkeys seed={seed} {name:32s} acc={acc:.3f} "
                  f"({rows[-1]['seconds']:.0f}s)", flush=True)
    return rows, f"{what}; {10 * per_class} train / {10 * test_per_class} test per seed, " \
                 f"{image_size}px, {epochs} epochs"


def run_gas(seeds, targets, epochs, recipes):
    from sktransfer.datasets import load_gas_drift

    X_src, y_src = load_gas_drift([1, 2, 3], return_X_y=True)
    source = TransferClassifier("mlp", max_epochs=60, lr=1e-3, batch_size=64,
                                validation_fraction=None, random_state=0,
                                device="cpu").fit(X_src, y_src)
    exported = source.export_backbone()
    rows = []
    for target in targets:
        X_t, y_t = load_gas_drift(target, return_X_y=True)
        for seed in seeds:
            X_tr, X_te, y_tr, y_te = train_test_split(
                X_t, y_t, train_size=0.1, stratify=y_t, random_state=seed)
            for name, params in recipes.items():
                clf = TransferClassifier(
                    exported, max_epochs=epochs, batch_size=16, validation_fraction=None,
                    random_state=seed, device="cpu", **params)
                clf.fit(X_tr, y_tr)
                acc = accuracy_score(y_te, clf.predict(X_te))
                rows.append(dict(task=f"gas batch {target}", recipe=name, seed=seed,
                                 accuracy=acc))
            print(f"gas batch {target} seed={seed} done", flush=True)
    return rows


def summarise(rows):
    out = {}
    for row in rows:
        out.setdefault(row["task"], {}).setdefault(row["recipe"], []).append(row["accuracy"])
    return {task: {r: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
                   for r, v in recipes.items()} for task, recipes in out.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, fewer images")
    parser.add_argument("--skip-monkeys", action="store_true")
    parser.add_argument("--skip-gas", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [0] if args.quick else [0, 1]
    rows, notes = [], {}
    if not args.skip_gas:
        rows += run_gas(seeds if args.quick else [0, 1, 2], [4, 5] if not args.quick else [4],
                        epochs=30, recipes=RECIPES)
        notes["gas"] = ("source MLP pretrained on batches 1-3 (60 epochs); fine-tuned on a "
                        "stratified 10% of the target batch, scored on the other 90%")
    if not args.skip_monkeys:
        per_class = 6 if args.quick else 10
        mrows, what = run_monkeys(seeds, per_class, 8, image_size=96,
                                  epochs=4 if args.quick else 6,
                                  recipes={**RECIPES, **IMAGE_EXTRA})
        rows += mrows
        notes["monkeys"] = what
    summary = summarise(rows)
    for task, recipes in summary.items():
        print(f"\n{task}")
        for name, s in recipes.items():
            print(f"  {name:32s} {s['mean']:.3f} +- {s['std']:.3f} (n={s['n']})")
    write("bench_finetune_defaults", {"settings": notes, "summary": summary, "rows": rows,
                                      "torch_threads": 1})


if __name__ == "__main__":
    main()
