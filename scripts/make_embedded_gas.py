"""Regenerate the gas drift data shipped with sktransfer.

Reads the original UCI files ``batch1.dat`` ... ``batch6.dat`` from a folder, checks
them against their known SHA-256 checksums and writes
``sktransfer/datasets/data/gas_drift_batches_1-6.npz``.

The features have exactly six decimals in the UCI files, so they are stored as int64
counts of 1e-6 (which compress far better than float64); dividing by 1e6 gives back
exactly the float64 values of the files (the script checks this, and falls back to
storing float64 if it ever does not hold).

Usage::

    python scripts/make_embedded_gas.py ../shared/data/gas-drift
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sktransfer._io import sha256_file as _sha256
from sktransfer.datasets._gas import EMBEDDED_BATCHES, EMBEDDED_FILE, GAS_SHA256, _read_batch_file

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sktransfer" / "datasets" / "data"


def build(source: Path, out_dir: Path) -> Path:
    """Write the embedded file from the ``batchN.dat`` files in ``source``."""
    Xs, ys, batches, digests = [], [], [], []
    for b in EMBEDDED_BATCHES:
        path = source / f"batch{b}.dat"
        X, y = _read_batch_file(path, b)  # verifies the checksum
        Xs.append(X)
        ys.append(y)
        batches.append(np.full(len(y), b, dtype=np.uint8))
        digests.append(_sha256(path))
        print(f"{path}: {X.shape[0]} rows")
    X = np.concatenate(Xs)
    y = np.concatenate(ys).astype(np.uint8)
    batch = np.concatenate(batches)
    assert digests == [GAS_SHA256[b] for b in EMBEDDED_BATCHES]

    scale = 1e6
    micro = np.rint(X * scale)
    exact = np.abs(micro).max() < 2**53 and np.array_equal(micro.astype(np.int64) / scale, X)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / EMBEDDED_FILE
    arrays = {
        "target": y,
        "batch": batch,
        "source_files": np.array([f"batch{b}.dat" for b in EMBEDDED_BATCHES]),
        "source_sha256": np.array(digests),
    }
    if exact:
        # Feature-major order compresses better.
        arrays["data_micro_T"] = np.ascontiguousarray(micro.astype(np.int64).T)
        arrays["scale"] = np.float64(scale)
    else:  # pragma: no cover - not the case for the UCI files
        print("values are not exact multiples of 1e-6: storing float64", file=sys.stderr)
        arrays["data"] = X
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(y)} rows)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding batch1.dat ... batch6.dat")
    parser.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    build(args.source, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
