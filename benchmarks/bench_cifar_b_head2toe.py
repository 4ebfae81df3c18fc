"""Head2Toe on CIFAR task B: a linear probe on pooled features of every layer of task A's CNN.

Head2Toe (Evci et al., ICML 2022) argues that a target far from the source task is
better served by intermediate features than by the last layer alone. This measures it on
the validation pool of ``bench_cifar_b_variants.py`` (and its bench split, for the record):
features of the stem and of each residual stage, pooled (global average and max, or
average over 2x2 cells), concatenated with the embedding, standardised, then an L2
logistic regression whose ``C`` is chosen by 5-fold cross-validation on the 100 labelled
images (an image and its mirror stay in one fold). Training uses each image and its
mirror; prediction averages the two views, as the library's ``tta=True`` does. The row
``last`` is the same probe on the embedding alone, the control.

Writes ``benchmarks/results/cifar_b_head2toe.json``.

Usage::

    python benchmarks/bench_cifar_b_head2toe.py [--a PATH] [--draws 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's sktransfer
import bench_cifar_b_variants as variants  # noqa: E402
from _common import RESULTS, write  # noqa: E402

LAYERS = ("stem", "stage1", "stage2", "stage3")
#: feature set -> the pooled blocks it concatenates
FEATURE_SETS = {
    "last": ["last"],
    "last + stage3 avg": ["last", "stage3_avg"],
    "last + stages 2-3 avg/max": ["last", "stage3_avg", "stage2_avg", "stage2_max"],
    "all layers avg/max": ["last"] + [f"{n}_{p}" for n in LAYERS for p in ("avg", "max")],
    "last + stages 2-3 2x2": ["last", "stage3_p2", "stage2_p2"],
    "all layers 2x2": ["last"] + [f"{n}_p2" for n in LAYERS],
}


def pooled_features(backbone, images, flip: bool) -> dict[str, np.ndarray]:
    """The embedding and every layer's pooled activations, for uint8 NHWC images."""
    import torch

    seen: dict[str, torch.Tensor] = {}
    hooks = [backbone.body.get_submodule(n).register_forward_hook(
        lambda _m, _i, out, n=n: seen.__setitem__(n, out)) for n in LAYERS]
    blocks: list[dict[str, np.ndarray]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), 500):
                x = torch.as_tensor(images[start:start + 500]).permute(0, 3, 1, 2)
                x = x.flip(-1) if flip else x
                block = {"last": backbone.forward_features(x)}
                for n in LAYERS:
                    out = seen[n].float()
                    block[f"{n}_avg"] = out.mean((2, 3))
                    block[f"{n}_max"] = out.amax((2, 3))
                    block[f"{n}_p2"] = torch.nn.functional.adaptive_avg_pool2d(out, 2).flatten(1)
                blocks.append({k: v.numpy() for k, v in block.items()})
    finally:
        for hook in hooks:
            hook.remove()
    return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}


def probe_scores(views, keys, target, split, draws):
    """Balanced accuracy of the cross-validated probe on ``split``'s draws."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    plain, mirrored = (np.hstack([v[k] for k in keys]) for v in views)
    start, pool_end, test_end = variants.SPLITS[split]
    pool = variants._rows(target, start, pool_end)
    test = variants._rows(target, pool_end, test_end)
    scores, chosen = [], []
    for rows in variants._draws(target[pool], draws, 0):
        idx = pool[rows]
        search = GridSearchCV(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
            {"logisticregression__C": np.logspace(-4, 1, 11).tolist()},
            cv=GroupKFold(5), scoring="balanced_accuracy")
        search.fit(np.vstack([plain[idx], mirrored[idx]]), np.concatenate([target[idx]] * 2),
                   groups=np.concatenate([idx, idx]))
        proba = (search.predict_proba(plain[test]) + search.predict_proba(mirrored[test])) / 2
        scores.append(balanced_accuracy_score(target[test], search.classes_[proba.argmax(1)]))
        chosen.append(search.best_params_["logisticregression__C"])
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)),
            "scores": [float(s) for s in scores], "C": chosen,
            "n_features": int(plain.shape[1])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", type=Path, default=variants.DEFAULT_DATA)
    parser.add_argument("--a", type=Path, default=RESULTS / "cifar_a_backbone.pt")
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args(argv)

    import torch

    from sktransfer.backbones.exported import ExportedBackbone
    from sktransfer.datasets import fetch_cifar10
    from sktransfer.registry import create_backbone

    torch.set_num_threads(1)
    exported = ExportedBackbone.load(args.a)
    backbone = create_backbone(exported.name, input_shape=exported.input_shape,
                               **exported.kwargs)
    backbone.load_state_dict(exported.state_dict)
    backbone.eval()
    data = fetch_cifar10("train", data_home=args.data_home, download=False,
                         max_per_class=variants.SPLITS["val"][2], verbose=0)
    keep = np.isin(data.target, variants.B_CLASSES)
    images, target = data.images[keep], data.target[keep]
    t = time.perf_counter()
    views = [pooled_features(backbone, images, flip) for flip in (False, True)]
    rows = {}
    for name, keys in FEATURE_SETS.items():
        rows[name] = {"blocks": keys}
        for split in ("val", "bench"):
            rows[name][split] = probe_scores(views, keys, target, split, args.draws)
            print(f"{name:28s} {split:5s} {rows[name][split]['mean']:.4f} "
                  f"+- {rows[name][split]['std']:.4f}", flush=True)
    write("cifar_b_head2toe", {
        "a_checkpoint": args.a.name, "a_model": exported.meta, "draws": args.draws,
        "method": "Head2Toe (Evci et al., ICML 2022) without its group-lasso selection: "
                  "pooled features of every layer, standardised, L2 logistic regression, "
                  "C by 5-fold grouped CV on the 100 images; flips in training and "
                  "prediction",
        "choose_by": "val", "seconds": round(time.perf_counter() - t, 1), "feature_sets": rows,
    })


if __name__ == "__main__":
    main()
