"""Image data for the benchmarks: the real monkeys or CIFAR-10 where present, else synthetic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def data_home() -> str | None:
    home = os.environ.get("SKTRANSFER_DATA")
    if home:
        return home
    return str(SHARED) if SHARED.is_dir() else None


def monkey_images(n_per_class: int, image_size: int = 224, seed: int = 0):
    """(images uint8 NHWC, labels, description): real photos if found, else synthetic."""
    from sktransfer.datasets import fetch_monkeys

    try:
        bunch = fetch_monkeys(data_home=data_home(), image_size=image_size, as_paths=True,
                              verbose=0)
    except (FileNotFoundError, OSError):
        return synthetic_images(10 * n_per_class, 10, image_size, seed) + (
            "synthetic images (monkey data not found)",)
    rng = np.random.RandomState(seed)
    keep = np.concatenate([
        rng.choice(np.flatnonzero(bunch.target == c), n_per_class, replace=False)
        for c in np.unique(bunch.target)
    ])
    from sktransfer._image_io import read_image

    images = np.stack([read_image(p, image_size=image_size) for p in bunch.images[keep, 0]])
    return images, bunch.target[keep], f"10 Monkey Species, {len(keep)} training photos"


def cifar_images(n_per_class: int, seed: int = 0):
    from sktransfer.datasets import fetch_cifar10

    try:
        bunch = fetch_cifar10(data_home=data_home(), download=False, max_per_class=n_per_class,
                              verbose=0)
    except (FileNotFoundError, OSError):
        return synthetic_images(10 * n_per_class, 10, 32, seed) + (
            "synthetic 32x32 images (CIFAR-10 not found)",)
    return bunch.images, bunch.target, f"CIFAR-10 train, {len(bunch.target)} images"


def synthetic_images(n: int, n_classes: int, size: int, seed: int = 0):
    rng = np.random.RandomState(seed)
    y = np.arange(n) % n_classes
    base = rng.randint(0, 255, size=(n_classes, size, size, 3))
    noise = rng.randint(-60, 60, size=(n, size, size, 3))
    return np.clip(base[y] + noise, 0, 255).astype(np.uint8), y
