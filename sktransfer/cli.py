"""The ``sktransfer`` command: argument parsing and printing; the work is in the library.

Examples
--------
::

    sktransfer demo --out results/demo
    sktransfer compare gas --source-batches 1 2 3 --target-batches 4 5 --label-fraction 0.1
    sktransfer compare cifar --data-home ~/data --b-classes airplane horse
    sktransfer compare monkeys --data-home ~/data --strategies feature-extraction,fine-tune
    sktransfer list-backbones
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

_GAS_BATCHES = range(1, 11)


# ---------------------------------------------------------------------- argument types
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _batch(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value not in _GAS_BATCHES:
        raise argparse.ArgumentTypeError(
            f"gas drift batches are 1 to 10, got {text!r}"
        )
    return value


def _gas_task(text: str) -> str:
    from .experiments import parse_gas_task

    try:
        parse_gas_task(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cifar_class(text: str) -> int:
    from .experiments.cifar import _class_index

    try:
        return _class_index(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------------- parser
def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--out", type=Path, default=None,
                       help="folder for results.json, report.md and the plots "
                            "(default: results/<experiment>)")
    group.add_argument("--device", default="auto",
                       help="torch device: auto, cpu, cuda, cuda:1 (default: auto)")
    group.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    group.add_argument("--threads", type=_positive_int, default=None,
                       help="torch CPU threads (default: the experiment's; 1 is often "
                            "fastest on a busy machine)")
    group.add_argument("--quiet", action="store_true",
                       help="no progress bars or training logs")
    return common


def _data_options() -> argparse.ArgumentParser:
    data = argparse.ArgumentParser(add_help=False)
    group = data.add_argument_group("data and models")
    group.add_argument("--data-home", type=Path, default=None,
                       help="data folder (default: $SKTRANSFER_DATA, then ~/sktransfer_data)")
    group.add_argument("--download", action="store_true",
                       help="download missing data where a public source exists")
    group.add_argument("--strategies", default=None, metavar="A,B,C",
                       help="comma-separated strategies (rows) to run (default: all)")
    group.add_argument("--epochs", type=_positive_int, default=None,
                       help="training epochs of the compared models")
    return data


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sktransfer`` command.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from sktransfer.cli import build_parser
    >>> build_parser().parse_args(["demo", "--out", "x"]).command
    'demo'
    """
    from . import __version__
    from .experiments import CIFAR_STRATEGIES, GAS_STRATEGIES, MONKEYS_STRATEGIES

    common, data = _common_options(), _data_options()
    parser = argparse.ArgumentParser(
        prog="sktransfer",
        description="Compare models trained from scratch with transferred ones.",
    )
    parser.add_argument("--version", action="version", version=f"sktransfer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", parents=[common],
        help="gas drift demo on the embedded data (offline, about a minute)",
        description="Scratch vs transferred vs classical models on the embedded gas drift "
                    "data: batches 1-3 -> 4, 5, 6, acetaldehyde vs other gases, 10% "
                    "labelled, 5 repeats.")
    demo.add_argument("--repeats", type=_positive_int, default=None,
                      help="labelled/scored splits per target batch (default: 5)")
    demo.add_argument("--strategies", default=None, metavar="A,B,C",
                      help="comma-separated strategies (rows) to run (default: all)")
    demo.add_argument("--epochs", type=_positive_int, default=None,
                      help="training epochs on the target batches (default: 60)")
    demo.set_defaults(experiment="demo", strategy_names=GAS_STRATEGIES)

    compare = commands.add_parser("compare", help="run a comparison experiment")
    experiments = compare.add_subparsers(dest="experiment", metavar="EXPERIMENT",
                                         required=True)

    gas = experiments.add_parser(
        "gas", parents=[common, data], help="gas sensor drift: source batches -> targets",
        description="Pretrain an MLP on the source batches, then for each target batch "
                    "train on a labelled fraction (stratified, repeated) and score on the "
                    f"rest. Strategies: {', '.join(GAS_STRATEGIES)}.")
    gas.add_argument("--source-batches", type=_batch, nargs="+", default=[1, 2, 3],
                     metavar="N", help="batches to pretrain on (default: 1 2 3)")
    gas.add_argument("--target-batches", type=_batch, nargs="+", default=[4, 5],
                     metavar="N", help="batches to adapt to (default: 4 5)")
    gas.add_argument("--label-fraction", type=_fraction, default=0.1,
                     help="labelled share of each target batch (default: 0.1)")
    gas.add_argument("--task", type=_gas_task, default="multiclass",
                     help="multiclass or binary:<gas> (default: multiclass)")
    gas.add_argument("--repeats", type=_positive_int, default=5,
                     help="labelled/scored splits per target batch (default: 5)")
    gas.add_argument("--source-epochs", type=_positive_int, default=None,
                     help="pretraining epochs (default: 40)")
    gas.set_defaults(strategy_names=GAS_STRATEGIES)

    cifar = experiments.add_parser(
        "cifar", parents=[common, data], help="CIFAR-10 A/B: 8 classes -> the other 2",
        description="Train the small CNN on task A (the classes not in B), then task B from "
                    f"scratch vs transferred. Strategies: {', '.join(CIFAR_STRATEGIES)}.")
    cifar.add_argument("--a-train-size", type=_positive_int, default=None,
                       help="task A training images (default: 36000)")
    cifar.add_argument("--b-train-size", type=_positive_int, default=None,
                       help="task B labelled images (default: 100)")
    cifar.add_argument("--b-test-size", type=_positive_int, default=None,
                       help="task B test images (default: 2000)")
    cifar.add_argument("--b-classes", type=_cifar_class, nargs="+", default=[0, 7],
                       metavar="C", help="task B classes, indices or names (default: 0 7)")
    cifar.add_argument("--a-epochs", type=_positive_int, default=None,
                       help="task A epochs (default: 10)")
    cifar.add_argument("--repeats", type=_positive_int, default=None,
                       help="task B training draws (default: 3)")
    cifar.set_defaults(strategy_names=CIFAR_STRATEGIES)

    monkeys = experiments.add_parser(
        "monkeys", parents=[common, data], help="10 monkey species: scratch vs ImageNet",
        description="A small CNN from scratch vs a pretrained backbone, frozen or "
                    f"fine-tuned. Strategies: {', '.join(MONKEYS_STRATEGIES)}.")
    monkeys.add_argument("--backbone", default="efficientnet_lite0",
                         help="pretrained backbone (default: efficientnet_lite0)")
    monkeys.add_argument("--image-size", type=_positive_int, default=224,
                         help="image resolution of the pretrained backbone (default: 224)")
    monkeys.set_defaults(strategy_names=MONKEYS_STRATEGIES)

    commands.add_parser("list-backbones", help="print the available backbone names")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks that span several options; errors exit with status 2, like argparse's."""
    sub = _subparser(parser, args)
    if getattr(args, "strategies", None) is not None:
        from .experiments._common import select_strategies

        names = list(args.strategy_names)
        try:
            select_strategies(args.strategies, names, args.experiment)
        except ValueError as exc:
            sub.error(f"--strategies: {exc}")
    if args.command == "compare" and args.experiment == "gas":
        both = sorted(set(args.source_batches) & set(args.target_batches))
        if both:
            sub.error(f"batches {both} are both source and target batches")
    if args.command == "compare" and args.experiment == "cifar":
        if len(set(args.b_classes)) < 2:
            sub.error("--b-classes needs at least two distinct classes")
        if len(set(args.b_classes)) > 9:
            sub.error("--b-classes must leave at least one class for task A")
    if args.command == "compare" and args.experiment == "monkeys":
        from .registry import available_backbones

        if args.backbone not in available_backbones():
            sub.error(f"unknown backbone {args.backbone!r}; see `sktransfer list-backbones`")


def _subparser(parser, args) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = action.choices[args.command]
    if args.command == "compare":
        inner = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction))
        sub = inner.choices[args.experiment]
    return sub


# ---------------------------------------------------------------------- running
def _run(args: argparse.Namespace):
    from .experiments import run_cifar, run_demo, run_gas, run_monkeys

    progress = not args.quiet
    common = dict(seed=args.seed, device=args.device, progress=progress)
    if args.threads is not None:
        common["threads"] = args.threads
    common["strategies"] = args.strategies
    if args.epochs is not None:
        common["epochs"] = args.epochs
    if args.experiment == "demo":
        extra = {} if args.repeats is None else {"repeats": args.repeats}
        return run_demo(None, quiet=args.quiet, **common, **extra)
    if args.experiment == "gas":
        X, y, batch, source = _load_gas(args)
        extra = {} if args.source_epochs is None else {"source_epochs": args.source_epochs}
        return run_gas(X, y, batch, args.source_batches, args.target_batches,
                       label_fraction=args.label_fraction, task=args.task,
                       repeats=args.repeats, data=source, **common, **extra)
    if args.experiment == "cifar":
        # options left out keep run_cifar's defaults, the measured ones
        names = ("a_epochs", "a_train_size", "b_train_size", "b_test_size", "repeats")
        extra = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        return run_cifar(args.data_home, b_classes=args.b_classes,
                         download=args.download, **common, **extra)
    return run_monkeys(args.data_home, backbone=args.backbone, image_size=args.image_size,
                       **common)


def _load_gas(args):
    from .datasets import fetch_gas_drift, load_gas_drift

    batches = sorted({*args.source_batches, *args.target_batches})
    if args.data_home is None and max(batches) <= 6:
        gas = load_gas_drift(batches)
        source = "embedded gas drift batches 1-6 (load_gas_drift)"
    else:
        gas = fetch_gas_drift(batches, data_home=args.data_home, download=args.download,
                              verbose=int(not args.quiet))
        source = f"fetch_gas_drift(data_home={str(args.data_home or 'default')!r})"
    return gas.data, gas.target, gas.batch, source


def _print_result(result, paths: list[Path], elapsed: float, out=None) -> None:
    from .report import format_table, summary_lines

    out = out or sys.stdout
    print(f"\n{result.experiment}\n", file=out)
    print(format_table(result), file=out)
    print("", file=out)
    for line in summary_lines(result):
        print(line, file=out)
    for note in result.settings.get("notes") or []:
        print(f"sktransfer: note: {note}", file=sys.stderr)
    print(f"\nWrote ({elapsed:.0f} s):", file=out)
    for path in paths:
        print(f"  {path}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sktransfer`` command.

    Parameters
    ----------
    argv : sequence of str, default=None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        0 on success, 1 when the data are missing or an experiment cannot run. Usage
        errors exit with status 2 (``SystemExit``), as argparse does.

    Examples
    --------
    >>> from sktransfer.cli import main
    >>> main(["list-backbones"])  # doctest: +ELLIPSIS
    alexnet
    cnn
    ...
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list-backbones":
        from .registry import available_backbones

        try:
            print("\n".join(available_backbones()))
            sys.stdout.flush()
        except BrokenPipeError:  # `sktransfer list-backbones | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    _check_args(parser, args)
    out = args.out or Path("results") / args.experiment
    start = time.perf_counter()
    try:
        # Training logs go to stderr with the progress bars; stdout gets the table.
        with contextlib.redirect_stdout(sys.stderr):
            result = _run(args)
            paths = result.save(out)
    except (FileNotFoundError, OSError, ValueError, ImportError) as exc:
        message = str(exc).strip() or type(exc).__name__
        print(f"sktransfer: error: {message}", file=sys.stderr)
        return 1
    _print_result(result, paths, time.perf_counter() - start)
    return 0
