"""Shared fixtures: tiny data, and the real data in ../shared/data when it is there."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(
    os.environ.get(
        "SKTRANSFER_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)


@pytest.fixture
def shared_data() -> Path:
    """The real data sets beside the repository; skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data not found at {SHARED_DATA}; set SKTRANSFER_SHARED_DATA to the folder "
            "holding gas-drift/, cifar10/ and monkeys/ to run this test"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def blobs():
    """Three well separated classes in 6 dimensions (features on very different scales)."""
    rng = np.random.RandomState(0)
    centers = rng.normal(scale=4.0, size=(3, 6))
    y = np.repeat(np.arange(3), 60)
    X = centers[y] + rng.normal(size=(len(y), 6))
    X[:, 0] *= 1000.0  # the gas data's raw scales differ like this
    return X, y


@pytest.fixture(scope="session")
def tiny_images():
    """40 uint8 RGB 8x8 images whose class is which half is bright."""
    rng = np.random.RandomState(0)
    y = np.arange(40) % 2
    X = rng.randint(0, 60, size=(40, 8, 8, 3)).astype(np.uint8)
    X[y == 0, :, :4] += 150
    X[y == 1, :, 4:] += 150
    return X, y


FAST = {"max_epochs": 5, "lr": 1e-2, "random_state": 0, "backbone_kwargs": {"hidden": (16,)}}
TINY_CNN = {"channels": (4, 8), "num_features": 16, "image_size": 8}
