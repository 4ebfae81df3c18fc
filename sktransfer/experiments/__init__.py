"""The experiments behind ``sktransfer demo`` and ``sktransfer compare``, as functions.

Each returns a :class:`~sktransfer.compare.ComparisonResult`; the command line only
parses arguments, calls one of these and prints the result.
"""

from .cifar import CIFAR_STRATEGIES, run_cifar
from .demo import DEMO_SETTINGS, run_demo
from .gas import GAS_STRATEGIES, parse_gas_task, run_gas
from .monkeys import MONKEYS_STRATEGIES, run_monkeys

__all__ = [
    "CIFAR_STRATEGIES",
    "DEMO_SETTINGS",
    "GAS_STRATEGIES",
    "MONKEYS_STRATEGIES",
    "parse_gas_task",
    "run_cifar",
    "run_demo",
    "run_gas",
    "run_monkeys",
]
