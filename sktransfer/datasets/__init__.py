"""Data sets for transfer learning: gas sensor drift, CIFAR-10, monkeys, image folders.

``load_*`` functions read data shipped with the package; ``fetch_*`` functions read
data from the data home (see :func:`get_data_home`), downloading it first where a
public URL exists.
"""

from ._base import clear_data_home, get_data_home
from ._cifar import CIFAR10_CLASSES, fetch_cifar10, split_classes
from ._gas import GAS_NAMES, fetch_gas_drift, load_gas_drift, make_gas_binary, split_gas_batches
from ._image_folder import load_image_folder
from ._monkeys import fetch_monkeys

__all__ = [
    "CIFAR10_CLASSES",
    "GAS_NAMES",
    "clear_data_home",
    "fetch_cifar10",
    "fetch_gas_drift",
    "fetch_monkeys",
    "get_data_home",
    "load_gas_drift",
    "load_image_folder",
    "make_gas_binary",
    "split_classes",
    "split_gas_batches",
]
