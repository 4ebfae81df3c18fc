"""Declarative validation of the public functions: a bad value raises sklearn's
InvalidParameterError, naming the parameter and the function, before any work is done."""

import re

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

import sktransfer
from sktransfer import datasets
from sktransfer.datasets import (
    clear_data_home,
    fetch_cifar10,
    fetch_gas_drift,
    fetch_monkeys,
    get_data_home,
    load_gas_drift,
    load_image_folder,
    make_gas_binary,
    split_classes,
    split_gas_batches,
)

X4 = np.zeros((4, 3))
Y4 = np.array([0, 1, 0, 1])

# (function, args, kwargs, the parameter named in the error)
CASES = [
    (get_data_home, (3,), {}, "data_home"),
    (clear_data_home, (3.5,), {}, "data_home"),
    (load_gas_drift, ("1",), {}, "batches"),
    (load_gas_drift, (), {"return_X_y": "yes"}, "return_X_y"),
    (fetch_gas_drift, (), {"download": "no"}, "download"),
    (fetch_gas_drift, (), {"archive_sha256": 123}, "archive_sha256"),
    (fetch_gas_drift, (), {"verbose": -1}, "verbose"),
    (fetch_gas_drift, (), {"data_home": 5}, "data_home"),
    (fetch_gas_drift, (2.5,), {}, "batches"),
    (fetch_cifar10, ("validation",), {}, "subset"),
    (fetch_cifar10, (), {"max_per_class": 0}, "max_per_class"),
    (fetch_cifar10, (), {"cache": "sometimes"}, "cache"),
    (fetch_monkeys, ("train",), {}, "subset"),
    (fetch_monkeys, (), {"image_size": -3}, "image_size"),
    (fetch_monkeys, (), {"as_paths": "no"}, "as_paths"),
    (load_image_folder, (42,), {}, "path"),
    (load_image_folder, (".",), {"image_size": 0}, "image_size"),
    (make_gas_binary, (5, "ethanol"), {}, "y"),
    (split_gas_batches, (X4, Y4, Y4, "1", [2]), {}, "source_batches"),
    (split_gas_batches, (X4, Y4, Y4, [1], 2.0), {}, "target_batches"),
    (split_classes, (X4, Y4, 0), {}, "classes"),
    (split_classes, (X4, Y4, [0]), {"relabel": "no"}, "relabel"),
    (sktransfer.compare, ([("a", None)], X4, Y4), {}, "estimators"),
    (sktransfer.compare, ({"a": None}, X4, Y4), {"cv": 1}, "cv"),
    (sktransfer.compare, ({"a": None}, X4, Y4), {"n_jobs": 1.5}, "n_jobs"),
    (sktransfer.compare, ({"a": None}, X4, Y4), {"progress": "no"}, "progress"),
    (sktransfer.compare, ({"a": None}, X4, Y4), {"scoring": 3}, "scoring"),
    (sktransfer.compare, ({"a": None}, X4, Y4), {"test": [X4, Y4]}, "test"),
    (sktransfer.lr_find, ("mlp", X4, Y4), {}, "estimator"),
    (sktransfer.lr_find, (sktransfer.TransferClassifier(), X4, Y4), {"start_lr": 0},
     "start_lr"),
    (sktransfer.lr_find, (sktransfer.TransferClassifier(), X4, Y4), {"num_iter": 2},
     "num_iter"),
    (sktransfer.lr_find, (sktransfer.TransferClassifier(), X4, Y4), {"smooth": 1.5},
     "smooth"),
    (sktransfer.lr_find, (sktransfer.TransferClassifier(), X4, Y4), {"diverge": 0.5},
     "diverge"),
    (sktransfer.save, ("model", "m.skt"), {}, "estimator"),
    (sktransfer.save, (sktransfer.TransferClassifier(), 7), {}, "path"),
    (sktransfer.load, (None,), {}, "path"),
    (sktransfer.register_backbone, (3, lambda **kw: None), {}, "name"),
    (sktransfer.register_backbone, ("x", "not callable"), {}, "factory"),
    (sktransfer.register_freeze_policy, ("x", "FreezeLast"), {}, "policy_class"),
]


@pytest.mark.parametrize(
    "func, args, kwargs, param", CASES,
    ids=[f"{c[0].__name__}-{c[3]}-{i}" for i, c in enumerate(CASES)],
)
def test_bad_value_names_the_parameter(func, args, kwargs, param, tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path))  # nothing is read or written
    with pytest.raises(InvalidParameterError,
                       match=rf"The '{re.escape(param)}' parameter of {func.__name__} must be"):
        func(*args, **kwargs)
    assert not any(tmp_path.iterdir())


def test_numpy_integers_and_ranges_are_accepted():
    X, y = load_gas_drift(np.int64(4), return_X_y=True)
    assert len(X) == 161
    X2, _ = load_gas_drift(range(4, 6), return_X_y=True)
    assert len(X2) == 161 + 197
    assert make_gas_binary(np.array([0, 5]), np.int64(6)).tolist() == [0, 1]


def test_value_checks_still_name_what_exists():
    # the constraint checks the type; the allowed batches are listed by the loader
    with pytest.raises(ValueError, match="ships batches 1-6 only; use fetch_gas_drift"):
        load_gas_drift(7)
    with pytest.raises(ValueError, match="ethanol"):
        make_gas_binary(np.array([0, 1]), 2.0)


def test_every_public_function_declares_its_constraints():
    public = [getattr(sktransfer, n) for n in sktransfer.__all__]
    public += [getattr(datasets, n) for n in datasets.__all__]
    funcs = [f for f in public if callable(f) and not isinstance(f, type)]
    takes_params = [f for f in funcs if f.__name__ not in
                    ("available_backbones", "available_freeze_policies")]
    missing = [f.__name__ for f in takes_params if not hasattr(f, "__wrapped__")]
    assert not missing, f"public functions without validate_params: {missing}"


def test_register_freeze_policy_needs_a_freeze_policy_class():
    with pytest.raises(TypeError, match="subclass of sktransfer.freeze.FreezePolicy.*got dict"):
        sktransfer.register_freeze_policy("not_a_policy", dict)
    with pytest.raises(ValueError, match="without ':'"):
        sktransfer.register_freeze_policy("a:b", sktransfer.FreezeLast)
