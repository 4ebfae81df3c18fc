"""Task A recipe variants of the CIFAR-10 A/B experiment: train A, save it for the B study.

Each variant changes :data:`sktransfer.experiments.cifar.A_RECIPE` (or the epochs) for one
run of the experiment's task A (the same 36,000 training and 4,000 held-out A images),
saves the backbone as ``benchmarks/results/cifar_a_<name>.pt`` for
``bench_cifar_b_variants.py --a``, and records the A accuracy and CPU time in
``benchmarks/results/cifar_a_variants.json``.

Usage::

    python benchmarks/bench_cifar_a_variants.py NAME [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's sktransfer
from _common import RESULTS, write  # noqa: E402

from sktransfer.experiments import cifar as cifar_exp  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: name -> (A_RECIPE changes, a_epochs)
VARIANTS = {
    # Kornblith et al. 2021 ("Why do better loss functions lead to less transferable
    # features?"): label smoothing makes penultimate features worse for transfer
    "ls0": ({"label_smoothing": 0.0}, 10),
    "ls0-12ep": ({"label_smoothing": 0.0}, 12),
    "ls0.2-12ep": ({}, 12),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--data-home", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    path = RESULTS / "cifar_a_variants.json"
    table = json.loads(path.read_text()).get("variants", {}) if path.is_file() else {}
    base = dict(cifar_exp.A_RECIPE)
    for name in args.names:
        changes, epochs = VARIANTS[name]
        cifar_exp.A_RECIPE.clear()
        cifar_exp.A_RECIPE.update({**base, **changes})
        try:
            res = cifar_exp.run_cifar(args.data_home, strategies="last-1", a_epochs=epochs,
                                      progress=True, threads=1,
                                      a_checkpoint=RESULTS / f"cifar_a_{name}.pt")
        finally:
            cifar_exp.A_RECIPE.clear()
            cifar_exp.A_RECIPE.update(base)
        table[name] = {"changes": changes, "a_epochs": epochs,
                       "a_model": res.settings["a_model"],
                       "bench_last1_old_recipe": float(
                           res.table["balanced_accuracy_mean"].iloc[0])}
        print(name, table[name], flush=True)
        write("cifar_a_variants", {"base_recipe": base, "variants": table})


if __name__ == "__main__":
    main()
