"""Frozen EfficientNet-Lite0 on the monkey photos from file paths, against a by-hand pipeline.

Both in one process, on the same stratified 80/20 split of the 10 Monkey Species training
photos (about 864 to fit, 216 to predict, 224 px):

- sktransfer: ``TransferClassifier("efficientnet_lite0", weights="imagenet",
  freeze="backbone")`` fitted on the paths, then ``predict`` on the held-out paths (the
  feature cache is emptied first, so every image is decoded and embedded once);
- by hand: what a user writes without the library: Pillow decoding (open, RGB, resize the
  shorter side, centre crop), Lite0 features in batches under ``torch.inference_mode``,
  scikit-learn's ``LogisticRegression`` on them.

Both pipelines build their own network from the installed weights and use torch's threads
as the process has them; the registry's one-time imports (torchvision) happen before the
clock starts. The ratio sktransfer / by hand is the figure (goal <= 1.2, at
equal held-out accuracy); ``--repeats`` alternates the two and keeps each one's best time.

    python benchmarks/bench_monkeys_frozen.py [--repeats 1] [--limit 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write
from _data import data_home
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sktransfer import TransferClassifier
from sktransfer.backbones.efficientnet_lite import MEAN, STD, efficientnet_lite0
from sktransfer.cache import clear_cache


def _plain_read(path: str, size: int = 224) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                         Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        return np.asarray(img.crop((left, top, left + size, top + size)))


def by_hand(train, y_train, test, batch_size: int = 64):
    model = efficientnet_lite0(weights="imagenet").body.eval()
    mean = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD).view(1, 3, 1, 1) * 255

    def features(paths):
        out = []
        for start in range(0, len(paths), batch_size):
            batch = np.stack([_plain_read(p) for p in paths[start:start + batch_size]])
            x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() - mean) / std
            with torch.inference_mode():
                out.append(model(x).flatten(1))
        return torch.cat(out).numpy()

    clf = LogisticRegression(max_iter=2000).fit(features(train), y_train)
    return clf.predict(features(test))


def ours(train, y_train, test, batch_size: int = 64):
    clear_cache()
    clf = TransferClassifier("efficientnet_lite0", weights="imagenet", freeze="backbone",
                             validation_fraction=None, batch_size=batch_size,
                             random_state=0)
    return clf.fit(train, y_train).predict(test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="use only this many photos")
    args = parser.parse_args(argv)
    from sktransfer.datasets import fetch_monkeys

    bunch = fetch_monkeys(data_home=data_home(), as_paths=True, verbose=0)
    paths, y = np.asarray(bunch.images).reshape(-1), np.asarray(bunch.target)
    if args.limit:
        keep = np.random.RandomState(0).permutation(len(y))[:args.limit]
        paths, y = paths[keep], y[keep]
    train, test, y_train, y_test = train_test_split(paths, y, test_size=0.2, stratify=y,
                                                    random_state=0)
    from sktransfer import available_backbones

    available_backbones()  # one-time imports of the registry (torchvision), not per fit
    times = {"sktransfer": [], "by_hand": []}
    acc = {}
    for _ in range(args.repeats):
        for name, run in (("by_hand", by_hand), ("sktransfer", ours)):
            start = time.perf_counter()
            pred = run(train, y_train, test)
            times[name].append(time.perf_counter() - start)
            acc[name] = float(np.mean(pred == y_test))
            print(f"{name}: {times[name][-1]:.1f}s, held-out accuracy {acc[name]:.3f}")
    ratio = min(times["sktransfer"]) / min(times["by_hand"])
    result = {
        "data": "10 Monkey Species training photos, from file paths",
        "n_fit": len(train), "n_predict": len(test), "image_size": 224,
        "seconds": times, "ratio_sktransfer_over_by_hand": ratio,
        "held_out_accuracy": acc,
        "goal": "<= 1.2x the by-hand pipeline at equal accuracy",
        "met": bool(ratio <= 1.2 and acc["sktransfer"] >= acc["by_hand"] - 0.02),
    }
    print(f"ratio sktransfer / by hand = {ratio:.2f}")
    write("monkeys_frozen", result)
    return result


if __name__ == "__main__":
    main()
