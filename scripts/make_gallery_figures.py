"""Render the figures of the data-dependent gallery examples into ``docs/images/gallery/``.

The CIFAR-10 and monkeys examples need data sets that sktransfer cannot ship or download
without a login; where the docs are built without them, the gallery shows these committed
figures instead (each example's text embeds them). Run where the data are, e.g.::

    make gallery-figures                       # data in ../shared/data
    SKTRANSFER_DATA=/path/to/data python scripts/make_gallery_figures.py

Each example runs with ``SKTRANSFER_EXAMPLE_FAST=1`` (its small settings); every
matplotlib figure it leaves behind (pyplot or pyplot-less) is saved as
``<example>_<n>.png``, in the order the example made them.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "gallery"
EXAMPLES = ["plot_cifar_a_to_b.py", "plot_monkeys_scratch_frozen_finetune.py"]


def _figures(namespace: dict) -> list:
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    figures = [plt.figure(n) for n in plt.get_fignums()]
    figures += [v for v in namespace.values() if isinstance(v, Figure) and v not in figures]
    return figures


def main(names: list[str]) -> int:
    os.environ.setdefault("SKTRANSFER_EXAMPLE_FAST", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("SKTRANSFER_DATA", str(ROOT.parent / "shared" / "data"))
    OUT.mkdir(parents=True, exist_ok=True)
    from matplotlib import pyplot as plt

    for name in names or EXAMPLES:
        path = next((ROOT / "examples").rglob(name))
        print(f"running {path.relative_to(ROOT)}", file=sys.stderr)
        cwd = os.getcwd()
        os.chdir(path.parent)
        try:
            namespace = runpy.run_path(str(path), run_name="__main__")
        except SystemExit:
            namespace = {}
        finally:
            os.chdir(cwd)
        figures = _figures(namespace)
        if not figures:
            print(f"  {name}: no figures (is its data in $SKTRANSFER_DATA?)", file=sys.stderr)
        for i, fig in enumerate(figures, start=1):
            target = OUT / f"{path.stem}_{i}.png"
            fig.savefig(target, dpi=80)
            print(f"  wrote {target.relative_to(ROOT)}", file=sys.stderr)
        plt.close("all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
