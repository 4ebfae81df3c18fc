"""Gas sensor drift: pretrain on early batches, adapt to a later batch with few labels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import VotingClassifier

from ..baselines import make_baseline
from ..compare import ComparisonResult, compare
from ..datasets import GAS_NAMES, make_gas_binary, split_gas_batches
from ..estimator import TransferClassifier
from ..freeze import GradualUnfreeze
from ..preprocessing import _check_preprocessing, preprocess_gas
from ._common import (
    baselines_in,
    check_epochs,
    few_label_splits,
    network_threads,
    say,
    select_strategies,
    torch_threads,
)

__all__ = [
    "GAS_DEFAULT_STRATEGIES", "GAS_FINE_TUNE", "GAS_STRATEGIES", "fine_tune_ensemble",
    "parse_gas_task", "pretrain_source", "run_gas",
]

#: Strategy names of the gas experiment (``"baseline"`` = the three classical baselines).
GAS_STRATEGIES = (
    "scratch", "fine-tune", "fine-tune-ensemble", "feature-extraction", "last-2", "gradual",
    "source-only", "baseline",
)

#: The strategies run when none are named: all but ``fine-tune-ensemble``, which costs
#: ``ensemble`` times a fine-tune and pretraining (and, measured, wins nothing on average
#: over the plain fine-tune row: it trades the luck of one seed for the mean of five).
GAS_DEFAULT_STRATEGIES = tuple(s for s in GAS_STRATEGIES if s != "fine-tune-ensemble")

#: Target-training settings of the gas experiment's networks (the defaults of
#: :func:`run_gas`), for reuse in a search: ``TransferClassifier(..., **GAS_FINE_TUNE)``.
GAS_FINE_TUNE: dict[str, Any] = {
    "max_epochs": 150, "batch_size": 8, "lr": 3e-4, "validation_fraction": None,
}


def parse_gas_task(task: str) -> str | None:
    """Check a gas task name; return the positive gas of a binary task, or None.

    Parameters
    ----------
    task : str
        ``"multiclass"`` (the six gases) or ``"binary:<gas>"`` ("this gas vs the
        others"), the gas a name of :data:`~sktransfer.datasets.GAS_NAMES` or its number
        1 to 6.

    Returns
    -------
    str or None
        The gas name of a binary task, None for the multiclass task.

    Raises
    ------
    ValueError
        For any other value; the message lists the valid tasks.

    Examples
    --------
    >>> from sktransfer.experiments import parse_gas_task
    >>> parse_gas_task("binary:Acetaldehyde")
    'acetaldehyde'
    >>> parse_gas_task("multiclass") is None
    True
    """
    valid = "'multiclass' or 'binary:<gas>' with <gas> one of " + ", ".join(GAS_NAMES)
    if task == "multiclass":
        return None
    kind, _, gas = str(task).partition(":")
    if kind != "binary" or not gas:
        raise ValueError(f"unknown task {task!r}; use {valid}")
    if gas.isdigit() and 1 <= int(gas) <= len(GAS_NAMES):
        return GAS_NAMES[int(gas) - 1]
    if gas.lower() not in GAS_NAMES:
        raise ValueError(f"unknown gas {gas!r} in task {task!r}; use {valid}")
    return gas.lower()


def pretrain_source(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: Sequence[int] = (256, 128),
    dropout: float = 0.3,
    epochs: int = 40,
    lr: float = 1e-3,
    class_weight: Any = None,
    device: str = "auto",
    seed: int = 0,
    verbose: int = 0,
) -> TransferClassifier:
    """The source MLP of the gas experiment, fitted on the pooled source rows.

    Adam, batches of 64, 10% of the rows held out for the recorded validation accuracy.
    Dropout 0.3 (the MLP's own default is 0.1): more regularised source features transfer
    better across drift, measured on target batches 4, 5 and 6 alike
    (``benchmarks/bench_gas_variants.py``: fine-tuned accuracy 0.953 / 0.993 / 0.990
    against 0.950 / 0.988 / 0.990). Pass the result's
    :meth:`~sktransfer.TransferClassifier.export_backbone` to a target model.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.experiments.gas import pretrain_source
    >>> X, y = np.random.rand(60, 4), np.arange(60) % 3
    >>> pretrain_source(X, y, hidden=(8,), epochs=2).classes_
    array([0, 1, 2])
    """
    return TransferClassifier(
        "mlp", backbone_kwargs={"hidden": tuple(hidden), "dropout": dropout},
        max_epochs=epochs, lr=lr,
        batch_size=64, class_weight=class_weight, validation_fraction=0.1, device=device,
        random_state=seed, verbose=verbose,
    ).fit(X, y)


def fine_tune_ensemble(backbones: Sequence[Any], seed: int = 0, **params) -> VotingClassifier:
    """A deep ensemble of fine-tunes: the soft vote of one fine-tune per source network.

    Member ``k`` fine-tunes ``backbones[k]`` (all layers, a new head) with
    ``random_state=seed + k``; the ensemble averages their class probabilities
    (Lakshminarayanan et al. 2017, "Simple and Scalable Predictive Uncertainty Estimation
    using Deep Ensembles"). With about 17 labelled rows a single fine-tune depends on its
    seeds by several points of accuracy; the average over source and target seeds does not
    (``benchmarks/bench_gas_variants.py``).

    Parameters
    ----------
    backbones : sequence
        Exported source backbones (e.g. of :func:`pretrain_source` with seeds 0, 1, ...).
    seed : int, default=0
        Seed of the first member; member ``k`` uses ``seed + k``.
    **params
        Further :class:`~sktransfer.TransferClassifier` parameters of every member.

    Returns
    -------
    sklearn.ensemble.VotingClassifier
        Unfitted, ``voting="soft"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.experiments.gas import fine_tune_ensemble, pretrain_source
    >>> X, y = np.random.rand(60, 4), np.arange(60) % 3
    >>> sources = [pretrain_source(X, y, hidden=(8,), epochs=2, seed=k) for k in range(2)]
    >>> model = fine_tune_ensemble([s.export_backbone() for s in sources], max_epochs=2)
    >>> model.fit(X, y).predict_proba(X).shape
    (60, 3)
    """
    if not backbones:
        raise ValueError("fine_tune_ensemble needs at least one backbone")
    return VotingClassifier(
        [(f"member{k}", TransferClassifier(bb, freeze="none", **{**params,
                                                                   "random_state": seed + k}))
         for k, bb in enumerate(backbones)],
        voting="soft",
    )


def _neural_models(selected, backbones, common, lr, fe_lr) -> dict[str, Any]:
    backbone = backbones[0] if backbones else None
    specs = {
        "fine-tune": dict(freeze="none", lr=lr),
        "feature-extraction": dict(freeze="backbone", lr=fe_lr),
        "last-2": dict(freeze="last:2", lr=lr),
        # LP-FT must leave epochs to fine-tune in: at most 3 head epochs, one less than all
        "gradual": dict(freeze=GradualUnfreeze(min(3, common["max_epochs"] - 1)), lr=lr),
    }
    models = {}
    if "scratch" in selected:
        models["mlp-scratch"] = TransferClassifier("mlp", lr=lr, **common)
    for strategy, spec in specs.items():
        if strategy in selected:
            models[f"mlp-{strategy}"] = TransferClassifier(backbone, **spec, **common)
    if "fine-tune-ensemble" in selected:
        params = {k: v for k, v in common.items() if k != "random_state"}
        models["mlp-fine-tune-ensemble"] = fine_tune_ensemble(
            backbones, seed=common["random_state"], lr=lr, **params)
    return dict(sorted(models.items(), key=lambda item: _MODEL_ORDER.get(item[0], 99)))


_MODEL_ORDER = {f"mlp-{s}": i for i, s in enumerate(GAS_STRATEGIES)}


def run_gas(
    X: np.ndarray,
    y: np.ndarray,
    batch: np.ndarray,
    source_batches: Sequence[int],
    target_batches: Sequence[int],
    *,
    label_fraction: float = 0.1,
    task: str = "multiclass",
    repeats: int = 5,
    strategies: str | Iterable[str] | None = None,
    epochs: int = GAS_FINE_TUNE["max_epochs"],
    source_epochs: int = 40,
    hidden: Sequence[int] = (256, 128),
    source_dropout: float = 0.3,
    ensemble: int = 5,
    lr: float = GAS_FINE_TUNE["lr"],
    head_lr: float = 1e-2,
    batch_size: int = GAS_FINE_TUNE["batch_size"],
    preprocessing: str = "batch",
    validation_fraction: float | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    verbose: int = 0,
    threads: int | str | None = 1,
    n_jobs: int | None = None,
    experiment: str | None = None,
    data: str | None = None,
) -> ComparisonResult:
    """Scratch vs transferred vs classical models on drifted gas-sensor batches.

    An MLP is pretrained once on the pooled source batches. Then for each target batch,
    ``repeats`` times, a stratified ``label_fraction`` of its rows is labelled (at least
    two rows per class) and the rest is scored; every model of a repeat sees the same
    labelled rows:

    - ``scratch``: the same MLP trained from scratch on the labelled rows;
    - ``fine-tune``: the pretrained MLP, all layers trained (new head);
    - ``fine-tune-ensemble``: ``ensemble`` source MLPs pretrained with seeds ``seed``,
      ``seed + 1``, ..., each fine-tuned, their probabilities averaged (a deep ensemble,
      see :func:`fine_tune_ensemble`); its result row has strategy ``fine-tune``;
    - ``feature-extraction``: the pretrained MLP frozen, a new head trained (``head_lr``);
    - ``last-2``: the head and the top hidden layer trained;
    - ``gradual``: the head first, then everything at a tenth of the learning rate;
    - ``source-only``: the source model predicting the target directly (no target
      labels), when the target's classes are among the source's;
    - ``baseline``: logistic regression, RBF SVM and random forest on the labelled rows.

    Binary tasks are imbalanced: every model uses ``class_weight="balanced"``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, 128)
        Features of all rows (e.g. ``load_gas_drift().data``).
    y : ndarray of shape (n_samples,)
        Gas labels 0 to 5.
    batch : ndarray of shape (n_samples,)
        Batch of each row.
    source_batches, target_batches : sequence of int
        Batches to pretrain on; batches to adapt to (one result row per model and batch).
    label_fraction : float, default=0.1
        Share of each target batch that is labelled.
    task : str, default="multiclass"
        ``"multiclass"`` or ``"binary:<gas>"`` (see :func:`parse_gas_task`).
    repeats : int, default=5
        Labelled/scored splits per target batch.
    strategies : str or iterable of str, default=None
        Subset of :data:`GAS_STRATEGIES` (or baseline names); default
        :data:`GAS_DEFAULT_STRATEGIES` (all but ``fine-tune-ensemble``).
    epochs : int, default=150
        Training epochs on the labelled target rows (with about 20 labelled rows and
        batches of 8, 60 epochs are under 200 optimiser steps: too few, measured).
    source_epochs : int, default=40
        Pretraining epochs on the source batches.
    hidden : sequence of int, default=(256, 128)
        Hidden layers of the MLP.
    source_dropout : float, default=0.3
        Dropout of the source MLP while it is pretrained (see :func:`pretrain_source`).
    ensemble : int, default=5
        Members of the ``fine-tune-ensemble`` strategy (source networks and fine-tunes).
    lr : float, default=3e-4
        Adam learning rate on the target (scratch and fine-tuning); pretraining uses 1e-3.
    head_lr : float, default=1e-2
        Learning rate of feature extraction (a new linear head alone).
    batch_size : int, default=8
        Mini-batch size on the target (64 for pretraining).
    preprocessing : {"none", "log", "batch", "log+batch", "pattern+batch", \
            "batch,pattern+batch"}, default="batch"
        Input transform applied to every batch before anything is fitted, the same for
        every model (see :func:`~sktransfer.preprocessing.preprocess_gas`): ``"batch"``
        standardises each batch with its own rows' mean and deviation (no labels used;
        transductive), so the source model meets drifted target inputs on its scale;
        ``"log"`` is a signed log of the raw features; ``"pattern+batch"`` first scales
        each row's response pattern across the 16 sensors to unit length per feature
        type (concentration-invariant, :func:`~sktransfer.preprocessing.sensor_pattern`);
        ``"batch,pattern+batch"`` gives every model both views side by side. The
        pattern views lift every model on the small drifted batch 4, the classical ones
        as much as the networks, so transfer's margin over them shrinks; ``"batch"``
        stays the default (``benchmarks/bench_gas.py --seeds``).
    validation_fraction : float or None, default=None
        Share of the labelled rows held out for validation curves; None trains the
        networks on all labelled rows, as the baselines are.
    seed : int, default=0
        Seeds the splits and every model.
    device : str, default="auto"
        Torch device.
    progress : bool, default=False
        Progress bars and status lines on stderr.
    verbose : int, default=0
        Verbosity of the networks.
    threads : int, "tune" or None, default=1
        Torch CPU threads while running (the networks are small: one thread is fastest
        and is robust on a busy machine); None leaves torch's setting; ``"tune"`` lets
        the networks time their threads (``n_threads="tune"``: these MLPs stay on one).
    n_jobs : int, default=None
        Parallel fits, see :func:`~sktransfer.compare.compare`.
    experiment : str, default=None
        Title; default describes the task.
    data : str, default=None
        Where the data came from, recorded in the settings.

    Returns
    -------
    ComparisonResult
        One row per model and target batch.

    Examples
    --------
    >>> from sktransfer.datasets import load_gas_drift
    >>> from sktransfer.experiments import run_gas
    >>> gas = load_gas_drift()
    >>> result = run_gas(gas.data, gas.target, gas.batch, [1, 2], [4], repeats=2,
    ...                  strategies="scratch,fine-tune", epochs=5, source_epochs=5,
    ...                  hidden=(32,))  # doctest: +SKIP
    >>> result.table[["model", "target"]]  # doctest: +SKIP
    """
    gas = parse_gas_task(task)
    selected = select_strategies(
        GAS_DEFAULT_STRATEGIES if strategies is None else strategies, GAS_STRATEGIES, "gas")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    if ensemble < 1:
        raise ValueError(f"ensemble must be >= 1, got {ensemble!r}")
    _check_preprocessing(preprocessing)
    check_epochs(epochs=epochs, source_epochs=source_epochs)
    labels = np.asarray(y) if gas is None else make_gas_binary(y, gas)
    X = preprocess_gas(X, batch, preprocessing)
    X_src, y_src, targets = split_gas_batches(X, labels, batch, source_batches, target_batches)
    overlap = sorted(set(source_batches) & set(target_batches))
    if overlap:
        raise ValueError(f"batches {overlap} are both source and target")
    twice = sorted({b for b in target_batches if list(target_batches).count(b) > 1})
    if twice:
        raise ValueError(f"target batches {twice} are listed more than once")
    class_weight = None if gas is None else "balanced"
    names = ({i: n for i, n in enumerate(GAS_NAMES)} if gas is None
             else {0: "other", 1: gas})
    neural = [s for s in selected if s not in ("source-only", "baseline")]
    needs_source = bool(set(neural) - {"scratch"}) or "source-only" in selected
    common = dict(max_epochs=epochs, batch_size=batch_size, class_weight=class_weight,
                  backbone_kwargs={"hidden": tuple(hidden)},
                  validation_fraction=validation_fraction, device=device, random_state=seed,
                  verbose=verbose, **network_threads(threads))
    task_name = "multiclass (6 gases)" if gas is None else f"binary: {gas} vs other gases"
    settings: dict[str, Any] = {
        "experiment": "gas", "task": task, "task_description": task_name,
        "source_batches": list(source_batches), "target_batches": list(target_batches),
        "label_fraction": label_fraction, "repeats": repeats, "strategies": selected,
        "epochs": epochs, "source_epochs": source_epochs, "hidden": list(hidden), "lr": lr,
        "source_dropout": source_dropout,
        "ensemble": ensemble if "fine-tune-ensemble" in selected else None,
        "source_lr": 1e-3,
        "head_lr": head_lr, "batch_size": batch_size, "source_batch_size": 64,
        "preprocessing": preprocessing,
        "validation_fraction": validation_fraction, "class_weight": class_weight,
        "optimizer": "adam", "seed": seed, "device": device, "torch_threads": threads,
        "data": data, "n_source": len(y_src), "min_labelled_per_class": 2,
        "source_class_counts": _counts(y_src, names),
    }
    notes: list[str] = []
    with torch_threads(threads):
        source = None
        if needs_source:
            say(f"pretraining the MLP on batches {list(source_batches)} "
                f"({len(y_src)} rows, {source_epochs} epochs)", progress)
            source = pretrain_source(
                X_src, y_src, hidden=hidden, dropout=source_dropout, epochs=source_epochs,
                class_weight=class_weight, device=device, seed=seed, verbose=verbose)
            last = source.history_.iloc[-1]
            settings["source_model"] = {
                k: float(last[k]) for k in ("train_acc", "valid_acc") if k in last
            }
        backbones = [source.export_backbone()] if source is not None else []
        if "fine-tune-ensemble" in selected:
            say(f"pretraining {ensemble - 1} more source MLPs for the ensemble", progress)
            for k in range(1, ensemble):
                backbones.append(pretrain_source(
                    X_src, y_src, hidden=hidden, dropout=source_dropout,
                    epochs=source_epochs, class_weight=class_weight, device=device,
                    seed=seed + k, verbose=verbose).export_backbone())
        results = []
        for number, (X_t, y_t) in targets.items():
            where = f"target batch {number}"
            splits = few_label_splits(y_t, label_fraction, repeats, seed + number, where=where,
                                      names=names)
            models: dict[str, Any] = _neural_models(selected, backbones, common, lr, head_lr)
            strategies_of = ({"mlp-fine-tune-ensemble": "fine-tune"}
                             if "mlp-fine-tune-ensemble" in models else {})
            if "source-only" in selected:
                missing = sorted(set(np.unique(y_t)) - set(source.classes_))
                if missing:
                    notes.append(f"batch {number}: no source-only row, the source batches "
                                 f"lack class(es) {[names[c] for c in missing]}")
                else:
                    models["mlp-source-only"] = source
                    strategies_of["mlp-source-only"] = "source-only"
            for name in baselines_in(selected):
                models[name] = make_baseline(name, random_state=seed, class_weight=class_weight)
            settings.setdefault("targets", {})[f"batch {number}"] = {
                "n_rows": len(y_t), "class_counts": _counts(y_t, names),
                "n_labelled": len(splits[0][0]),
            }
            results.append(compare(
                models, X_t, y_t, cv=splits, strategies=strategies_of,
                target=f"batch {number}", class_names=names, n_jobs=n_jobs,
                progress=progress, experiment="gas",
            ))
    title = experiment or (
        f"Gas sensor drift, {task_name}: batches {_join(source_batches)} -> "
        f"{_join(target_batches)}, {label_fraction:.0%} of each target labelled"
    )
    settings["notes"] = notes
    settings["description"] = (
        f"An MLP pretrained on batches {_join(source_batches)} ({len(y_src)} rows) is adapted "
        f"to each target batch with {label_fraction:.0%} of its rows labelled (stratified, "
        f"{repeats} repeats); all models of a repeat see the same labelled rows and are "
        "scored on the rest of the batch."
    )
    return ComparisonResult.concat(results, experiment=title, settings=settings)


def _counts(y: np.ndarray, names: dict) -> dict[str, int]:
    values, counts = np.unique(y, return_counts=True)
    return {str(names.get(int(v), v)): int(c) for v, c in zip(values, counts)}


def _join(batches: Sequence[int]) -> str:
    return ", ".join(str(b) for b in batches)
