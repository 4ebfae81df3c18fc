"""Shared helpers of the benchmarks: timing, machine facts, writing JSON."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")
    return path


def _burn(stop):
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


@contextmanager
def busy_core():
    """Run the block with a background process burning one core: a busy machine."""
    stop = mp.Event()
    burner = mp.Process(target=_burn, args=(stop,), daemon=True)
    burner.start()
    time.sleep(1.0)
    try:
        yield
    finally:
        stop.set()
        burner.join(5)
        if burner.is_alive():
            burner.terminate()
