"""Tests for the data home, folder resolution, the public API and its docstrings."""

import doctest
import importlib
import inspect
import tempfile
from pathlib import Path

import pytest

import sktransfer.datasets as datasets
from sktransfer.datasets import clear_data_home, get_data_home
from sktransfer.datasets._base import (
    _find_dataset_dir,
    _load_descr,
    _normalize_ints,
    _paths_array,
)

PUBLIC = {
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
}


def test_get_data_home_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == str(tmp_path / "from_env")
    assert (tmp_path / "from_env").is_dir()


def test_get_data_home_default_and_explicit(tmp_path, monkeypatch):
    monkeypatch.delenv("SKTRANSFER_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert get_data_home() == str(tmp_path / "sktransfer_data")
    assert get_data_home("~/elsewhere") == str(tmp_path / "elsewhere")
    assert get_data_home(tmp_path / "p") == str(tmp_path / "p")


def test_clear_data_home(tmp_path):
    home = Path(get_data_home(tmp_path / "home"))
    (home / "cifar10").mkdir()
    (home / "cifar10" / "x").write_text("x")
    clear_data_home(home)
    assert not home.exists()
    clear_data_home(home)  # no error when already gone


def test_find_dataset_dir_canonical_first(tmp_path):
    assert _find_dataset_dir("gas_drift", tmp_path) is None
    (tmp_path / "gas-drift").mkdir()
    assert _find_dataset_dir("gas_drift", tmp_path) == tmp_path / "gas-drift"
    (tmp_path / "gas_drift").mkdir()
    assert _find_dataset_dir("gas_drift", tmp_path) == tmp_path / "gas_drift"
    (tmp_path / "monkeys").mkdir()
    assert _find_dataset_dir("monkeys", tmp_path) == tmp_path / "monkeys"


def test_descr_files_ship():
    for name in ("gas_drift.rst", "cifar10.rst", "monkeys.rst", "image_folder.rst"):
        assert len(_load_descr(name)) > 200


def test_normalize_ints():
    assert _normalize_ints(3, what="x") == [3]
    assert _normalize_ints([3, 1, 3], what="x") == [1, 3]
    assert _normalize_ints(range(1, 3), what="x", allowed=range(1, 5)) == [1, 2]
    with pytest.raises(ValueError, match=r"\[9\]"):
        _normalize_ints([9], what="x", allowed=range(1, 5))
    with pytest.raises(TypeError):
        _normalize_ints("12", what="x")


def test_paths_array():
    arr = _paths_array([Path("/a/b.png"), "c.png"])
    assert arr.shape == (2, 1) and arr.dtype == object
    assert arr[:, 0].tolist() == ["/a/b.png", "c.png"]


def test_public_api():
    assert set(datasets.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(datasets, name)


@pytest.mark.parametrize("name", sorted(n for n in PUBLIC if n.islower()))
def test_public_functions_documented(name):
    func = getattr(datasets, name)
    doc = inspect.getdoc(func)
    for section in ("Parameters", "Examples"):
        if section == "Parameters" and not inspect.signature(func).parameters:
            continue
        assert f"\n{section}\n---" in doc, f"{name} lacks a {section} section"
    hints = func.__annotations__
    assert "return" in hints, f"{name} lacks a return type hint"


@pytest.mark.parametrize(
    "module",
    [
        "sktransfer._image_io",
        "sktransfer.datasets._base",
        "sktransfer.datasets._gas",
        "sktransfer.datasets._cifar",
        "sktransfer.datasets._image_folder",
        "sktransfer.datasets._monkeys",
    ],
)
def test_docstring_examples(module, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # examples' temporary files
    result = doctest.testmod(
        importlib.import_module(module),
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0 and result.failed == 0
