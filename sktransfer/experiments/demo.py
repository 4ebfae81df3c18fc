"""The demo: the gas drift study on the embedded data, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..compare import ComparisonResult
from ..datasets import load_gas_drift
from .gas import run_gas

__all__ = ["DEMO_SETTINGS", "run_demo"]

#: What the demo runs (any of :func:`~sktransfer.experiments.run_gas`'s arguments).
#: Acetaldehyde vs the other gases is an honestly imbalanced task (12% of the source rows,
#: 19%, 23% and 1.3% of batches 4, 5 and 6) on which sensor drift hurts: a source-only
#: model falls to a kappa near 0.1 on batch 6.
DEMO_SETTINGS: dict[str, Any] = {
    "source_batches": (1, 2, 3),
    "target_batches": (4, 5, 6),
    "task": "binary:acetaldehyde",
    "label_fraction": 0.1,
    "repeats": 5,
}


def run_demo(
    out: str | Path | None = None, quiet: bool = False, **overrides: Any
) -> ComparisonResult:
    """Run the demo comparison on the gas data shipped with the package (no download).

    An MLP pretrained on batches 1-3 is adapted to the drifted batches 4, 5 and 6 with
    10% of their rows labelled, for the imbalanced task "acetaldehyde vs other gases":
    scratch vs fine-tuning, feature extraction, last-2, gradual unfreezing, the source
    model alone and three classical baselines, over 5 repeats; every batch is standardised
    with its own rows first (``preprocessing="batch"``). A few minutes on two
    CPU cores.

    Parameters
    ----------
    out : str or path, default=None
        Folder for ``results.json``, ``report.md`` and the plots; None writes nothing.
    quiet : bool, default=False
        No progress bars.
    **overrides
        Replace entries of :data:`DEMO_SETTINGS` or other arguments of
        :func:`~sktransfer.experiments.run_gas` (``repeats=2``, ``epochs=10``...).

    Returns
    -------
    ComparisonResult

    Examples
    --------
    >>> from sktransfer.experiments import run_demo
    >>> result = run_demo("results/demo")  # doctest: +SKIP
    >>> result.winners()[["target", "best", "margin_over_scratch"]]  # doctest: +SKIP
    """
    gas = load_gas_drift()
    settings = {**DEMO_SETTINGS, **overrides}
    settings.setdefault("progress", not quiet)
    settings.setdefault("data", "embedded gas drift batches 1-6 (load_gas_drift)")
    result = run_gas(gas.data, gas.target, gas.batch, **settings)
    result.experiment = f"sktransfer demo: {result.experiment}"
    if out is not None:
        from ..report import save_report

        save_report(result, out)
    return result
