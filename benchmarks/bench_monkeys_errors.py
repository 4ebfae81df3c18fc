"""10 Monkey Species: which of the 216 held-out photos the pretrained models get wrong.

Fits ``run_monkeys``'s two pretrained models with its defaults (EfficientNet-Lite0 at
256 px: the frozen exact probe, and LP-FT with WiSE-FT 0.5) on the 864 training photos,
and lists every held-out photo either gets wrong (file, true and predicted species,
probabilities). The frozen model is also scored with multi-crop test-time augmentation
(the centre and four corner crops of 7/8 of the side, each also mirrored, averaged with the
whole photo; the ten-crop evaluation of Krizhevsky et al. 2012), to see whether an error
comes from what the photo shows around the monkey.

    python benchmarks/bench_monkeys_errors.py [--threads 1]
"""

from __future__ import annotations

import argparse
import inspect
import time

import numpy as np
import torch
from _common import write
from _data import data_home
from sklearn.metrics import log_loss

from sktransfer.datasets import fetch_monkeys
from sktransfer.experiments import run_monkeys
from sktransfer.experiments._common import held_out_split
from sktransfer.experiments.monkeys import _frozen_classifier, _lp_ft_classifier

#: run_monkeys's defaults, so this script fits exactly the models it compares
DEFAULTS = {name: p.default for name, p in inspect.signature(run_monkeys).parameters.items()
            if p.default is not inspect.Parameter.empty}


def corner_crops(images: np.ndarray, fraction: float = 7 / 8) -> list[np.ndarray]:
    """The centre and four corner crops of ``fraction`` of each side (NHWC uint8)."""
    h, w = images.shape[1:3]
    ch, cw = round(h * fraction), round(w * fraction)
    offsets = [((h - ch) // 2, (w - cw) // 2), (0, 0), (0, w - cw), (h - ch, 0),
               (h - ch, w - cw)]
    return [images[:, i:i + ch, j:j + cw] for i, j in offsets]


def wrong(proba: np.ndarray, y: np.ndarray, files, names) -> list[dict]:
    pred = proba.argmax(1)
    return [{"file": "/".join(str(files[i]).split("/")[-2:]), "true": names[y[i]],
             "predicted": names[pred[i]], "p_true": round(float(proba[i, y[i]]), 4),
             "p_predicted": round(float(proba[i, pred[i]]), 4)}
            for i in np.flatnonzero(pred != y)]


def score(proba, y, files, names) -> dict:
    errors = wrong(proba, y, files, names)
    return {"errors": len(errors), "log_loss": round(float(log_loss(y, proba,
                                                                     labels=range(10))), 4),
            "wrong": errors}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="monkeys_errors")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    d = DEFAULTS
    size = d["image_size"]
    photos = fetch_monkeys("training", data_home=data_home(), image_size=size, verbose=0)
    train, test = held_out_split(photos.target, d["test_fraction"], d["seed"])
    X, y = photos.images, photos.target
    files, names = photos.filenames[test], list(photos.target_names)
    common = dict(batch_size=d["batch_size"], device="cpu", random_state=d["seed"],
                  image_size=size)
    models = {
        "frozen": _frozen_classifier(
            d["backbone"], head_lr=d["head_lr"], lr_schedule=d["lr_schedule"], tta=d["tta"],
            head_solver=d["head_solver"], head_C=d["head_C"], max_epochs=d["fe_epochs"],
            **common),
        "fine-tuned": _lp_ft_classifier(
            d["backbone"], max_epochs=d["ft_epochs"], ft_head_epochs=d["ft_head_epochs"],
            ft_lr=d["ft_lr"], backbone_lr_mult=d["backbone_lr_mult"],
            ft_augment=d["ft_augment"], lr_schedule=d["lr_schedule"],
            ft_warmup=d["ft_warmup"], ft_l2sp=d["ft_l2sp"], tta=d["tta"],
            ft_weight_interpolation=d["ft_weight_interpolation"],
            head_solver=d["head_solver"], head_C=d["head_C"], **common),
    }
    out = {}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X[train], y[train])
        proba = model.predict_proba(X[test])
        out[name] = {"fit_seconds": round(time.perf_counter() - start, 1),
                     "flip_tta": score(proba, y[test], files, names)}
        if name == "frozen":
            crops = [model.predict_proba(c) for c in corner_crops(X[test])]
            out[name]["flip_and_five_crop_tta"] = score((proba + sum(crops)) / 6, y[test],
                                                        files, names)
        print(name, out[name], flush=True)
    both = {e["file"] for e in out["frozen"]["flip_tta"]["wrong"]} & {
        e["file"] for e in out["fine-tuned"]["flip_tta"]["wrong"]}
    write(args.out, {"data": "10 Monkey Species training split: 864 to train, the stratified "
                             "20% (216) run_monkeys holds out",
                     "recipe": {k: v for k, v in d.items() if k != "data_home"},
                     "threads": args.threads, "models": out,
                     "wrong_for_both": sorted(both)})


if __name__ == "__main__":
    main()
