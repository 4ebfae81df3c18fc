"""What keying image files by content costs, next to decoding them.

The feature cache keys an image file by a digest of its bytes (sktransfer.cache.file_digest)
rather than its path, size and modification time, which can stay the same while the picture
changes. This measures, in one process and on the same files, the time to hash every file
against the time to decode and resize it (sktransfer's own reader), and against the old
``os.stat`` key. Files come from the monkeys photos in ../shared/data when present, else
from generated JPEGs of the same size. Writes benchmarks/results/cache_keys.json.

    python benchmarks/bench_cache_keys.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

from sktransfer._image_io import read_image  # noqa: E402
from sktransfer.cache import file_digest  # noqa: E402

SHARED = Path(os.environ.get("SKTRANSFER_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
N_FILES = 200
REPEATS = 3


def _files(tmp: Path) -> tuple[list[str], str]:
    root = SHARED / "monkeys" / "training"
    if root.is_dir():
        found = sorted(str(p) for p in root.rglob("*.jpg"))[:N_FILES]
        if found:
            return found, "monkeys training photos (shorter side 256 px, JPEG q92)"
    from PIL import Image

    rng = np.random.RandomState(0)
    out = []
    for i in range(N_FILES):
        img = (rng.rand(256, 340, 3) * 255).astype(np.uint8)
        out.append(str(tmp / f"{i}.jpg"))
        Image.fromarray(img).save(out[-1], quality=92)
    return out, "generated noise JPEGs 340x256 (q92)"


def _best(fn, files) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for f in files:
            fn(f)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        files, source = _files(Path(tmp))
        for f in files:  # warm the page cache: every method then reads from memory
            Path(f).read_bytes()
        stat_s = _best(lambda f: os.stat(f), files)
        hash_s = _best(file_digest, files)
        decode_s = _best(lambda f: read_image(f, image_size=224), files)
    mean_kib = float(np.mean([os.path.getsize(f) for f in files]) / 1024) if files else 0.0
    result = {
        "files": len(files),
        "source": source,
        "mean_file_kib": round(mean_kib, 1),
        "seconds_per_file": {"stat_key": stat_s / len(files), "content_digest": hash_s / len(files),
                             "decode_and_resize_224": decode_s / len(files)},
        "content_digest_over_decode": hash_s / decode_s,
        "content_digest_over_stat": hash_s / stat_s,
        "note": "best of 3 passes, files in the page cache, one thread",
    }
    print(result)
    write("cache_keys", result)


if __name__ == "__main__":
    main()
