"""Does the in-memory feature cache's byte count match the memory it holds?

Fills a fresh FeatureCache with embeddings of a few widths, each in its own process, and
compares ``cache.nbytes`` (what the bound counts) with the growth of the process's
resident memory. For reference it does the same with the former layout (one tensor per
entry, counting tensor data only), emulated in the same process. Writes
benchmarks/results/cache_memory.json.

    python benchmarks/bench_cache_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

CASES = [(16, 100_000), (128, 50_000), (1280, 10_000)]

CHILD = r"""
import gc, hashlib, json, sys
from collections import OrderedDict
import torch
torch.set_num_threads(1)
from sktransfer.cache import FeatureCache

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))

layout, d, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
keys = [hashlib.blake2b(str(i).encode(), digest_size=16).digest() for i in range(n)]
gc.collect()
before = rss()
if layout == "bytes":
    cache = FeatureCache(max_bytes=2**40)
    for s in range(0, n, 1000):
        cache.get_many("k", keys[s:s + 1000], lambda idx: torch.randn(len(idx), d))
    counted = cache.nbytes
else:  # the former layout: a tensor per entry, data bytes counted
    entries, counted = OrderedDict(), 0
    for s in range(0, n, 1000):
        rows = torch.randn(min(1000, n - s), d)
        for r, key in enumerate(keys[s:s + 1000]):
            entries[("k", key)] = rows[r].clone()
            counted += d * 4
gc.collect()
print(json.dumps({"counted": counted, "rss_growth": rss() - before}))
"""


def main() -> None:
    rows = []
    for layout in ("bytes", "tensor_per_entry_former"):
        for d, n in CASES:
            out = subprocess.run([sys.executable, "-c", CHILD, layout.split("_")[0], str(d),
                                  str(n)], capture_output=True, text=True, check=True)
            m = json.loads(out.stdout)
            rows.append({"layout": layout, "n_features": d, "entries": n, **m,
                         "rss_over_counted": m["rss_growth"] / m["counted"]})
            print(rows[-1])
    write("cache_memory", {"cases": rows,
                           "note": "RSS growth includes transient buffers of the fill loop"})


if __name__ == "__main__":
    main()
