"""Fixtures for the dataset tests: an isolated data home, the real data, and fixtures."""

import os
from pathlib import Path

import pytest

SHARED_DATA_ENV = "SKTRANSFER_SHARED_DATA"


def _shared_data_path() -> Path:
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    # <repo>/tests/datasets/conftest.py -> <repo>/../shared/data
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


SHARED_DATA = _shared_data_path()
SKIP_REASON = (
    f"real data not found at {SHARED_DATA}; set {SHARED_DATA_ENV} to the folder holding "
    "gas-drift/, cifar10/ and monkeys/ to run these tests"
)


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``realdata`` when the real data are absent."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    here = Path(__file__).parent
    for item in items:
        if "realdata" in item.keywords and here in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    """The real data folder (read-only); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(SKIP_REASON)
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_data_home(tmp_path_factory, monkeypatch):
    """Point the default data home (and the CIFAR cache) at a fresh temporary folder."""
    home = tmp_path_factory.mktemp("sktransfer_home")
    monkeypatch.setenv("SKTRANSFER_DATA", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch):
    """Make any attempt to open a network connection fail immediately."""
    import socket

    def guard(*args, **kwargs):
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket, "create_connection", guard)
    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "getaddrinfo", guard)
