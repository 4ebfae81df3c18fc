"""10 Monkey Species: WiSE-FT, the average of LP-FT's probe and fine-tuned weights.

One LP-FT fit with ``run_monkeys``'s fine-tuning settings (EfficientNet-Lite0 at 256 px,
the exact probe as LP, 3 epochs of fine-tuning with BatchNorm frozen, flip TTA); its
weights at the end of the probe and at the end of fine-tuning are kept, and the model
``(1 - a) * probe + a * fine-tuned`` (Wortsman et al., CVPR 2022) is scored for several
``a``: ``a = 0`` is the frozen model's probe, ``a = 1`` plain LP-FT. ``a = 0.5`` is the
paper's value without tuning; the other values draw the curve, they are not candidates.

``--split tune`` fits on four folds of the 864 training photos (``StratifiedKFold(5,
shuffle, random_state=0)``, as the earlier recipe tuning) and scores the fifth (``--fold``,
0 by default; 173 photos); ``--split heldout`` fits on all 864 and scores the 216 held-out photos
``run_monkeys`` sets aside. Results accumulate in ``results/monkeys_wise_ft.json``.

    python benchmarks/bench_monkeys_wise_ft.py --split tune
"""

from __future__ import annotations

import argparse
import inspect
import json
import time

import numpy as np
import torch
from _common import RESULTS, write
from _data import data_home
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from sktransfer._training import float_state, interpolate_weights
from sktransfer.experiments import run_monkeys
from sktransfer.experiments.monkeys import _load, _lp_ft_classifier
from sktransfer.freeze import GradualUnfreeze

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


class KeepProbe(GradualUnfreeze):
    """LP-FT that keeps a copy of the weights at the moment it unfreezes (the probe)."""

    def unfreeze(self, network):
        self.probe_ = float_state(network)
        return super().unfreeze(network)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "heldout"), default="tune")
    parser.add_argument("--fold", type=int, default=0, help="--split tune: fold scored")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    d = {k: p.default for k, p in inspect.signature(run_monkeys).parameters.items()}
    seed, size = d["seed"], d["image_size"]
    # run_monkeys's own split: its held-out photos (or the validation split, if present)
    X, y, X_test, y_test, _, _ = _load(data_home(), size, d["test_fraction"], seed,
                                       False, [])
    if args.split == "tune":
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        fit_rows, test_rows = list(folds.split(X, y))[args.fold]
        X, y, X_test, y_test = X[fit_rows], y[fit_rows], X[test_rows], y[test_rows]

    # run_monkeys's fine-tuned model, kept whole here: the curve is drawn from its two ends
    recipe = {k: d[k] for k in inspect.signature(_lp_ft_classifier).parameters if k in d}
    clf = _lp_ft_classifier(
        **recipe, max_epochs=d["ft_epochs"], policy_class=KeepProbe, image_size=size,
        batch_size=d["batch_size"], device=d["device"], random_state=seed,
    ).set_params(weight_interpolation=None)
    start = time.perf_counter()
    clf.fit(X, y)
    fit_seconds = time.perf_counter() - start
    module = clf.net_.module_
    tuned = float_state(module)
    probe = clf.freeze_policy_.probe_
    rows = []
    for alpha in ALPHAS:
        module.load_state_dict(tuned, strict=False)
        interpolate_weights(module, probe, alpha)
        proba = clf.predict_proba(X_test)
        pred = clf.classes_[np.argmax(proba, axis=1)]
        rows.append({"weight_interpolation": alpha,
                     "errors": int((pred != y_test).sum()),
                     "log_loss": float(log_loss(y_test, proba, labels=clf.classes_))})
        print(json.dumps(rows[-1]), flush=True)
    path = RESULTS / "monkeys_wise_ft.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else {}
    key = args.split if args.split == "heldout" or args.fold == 0 else f"tune-fold{args.fold}"
    runs[key] = {
        "n_fit": len(y), "n_scored": len(y_test), "fit_seconds": fit_seconds,
        "scored_on": (f"fold {args.fold} of StratifiedKFold(5, shuffle, random_state=0) of "
                      "the 864"
                      if args.split == "tune" else "the 216 photos run_monkeys holds out"),
        "rows": rows,
    }
    write("monkeys_wise_ft", {
        "recipe": {**recipe, "max_epochs": d["ft_epochs"], "image_size": size,
                   "batch_size": d["batch_size"], "seed": seed},
        "threads": args.threads, "runs": runs,
    })


if __name__ == "__main__":
    main()
