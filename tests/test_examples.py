"""The gallery examples run, and the public API is documented.

Every ``examples/**/plot_*.py`` runs as a script with ``SKTRANSFER_EXAMPLE_FAST=1`` (tiny
settings), so examples cannot rot. The real data sets are used where ``../shared/data``
(or ``$SKTRANSFER_SHARED_DATA``) has them; elsewhere the examples that need them must say
what is missing and exit with status 0, which is tested too.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").rglob("plot_*.py"))
API_RST = ROOT / "docs" / "api.rst"

#: Examples that need data sets sktransfer does not ship.
NEEDS_DATA = {"plot_cifar_a_to_b.py", "plot_monkeys_scratch_frozen_finetune.py"}

#: Modules whose public names must all be in the API reference (``__all__``, or the
#: names given here for modules without one).
PUBLIC_MODULES = {
    "sktransfer": None,
    "sktransfer.datasets": None,
    "sktransfer.backbones": None,
    "sktransfer.cache": ["FeatureCache", "get_cache", "clear_cache"],
    "sktransfer.compare": None,
    "sktransfer.results": None,
    "sktransfer.report": None,
    "sktransfer.baselines": None,
    "sktransfer.experiments": None,
    "sktransfer.registry": ["create_backbone", "resolve_freeze_policy", "reload_plugins"],
    "sktransfer.network": ["TransferNetwork"],
}


def _example_env(data_home: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SKTRANSFER_EXAMPLE_FAST="1",
        MPLBACKEND="Agg",
        # Many tiny fits: one thread each is much faster on a small or busy machine.
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    if data_home is not None:
        env["SKTRANSFER_DATA"] = str(data_home)
    else:
        env.pop("SKTRANSFER_DATA", None)
    return env


def _run(example: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, example.name], cwd=example.parent, env=env,
        capture_output=True, text=True, timeout=600,
    )


def _explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit code {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n" \
           f"--- stderr\n{proc.stderr[-5000:]}"


def test_examples_are_found():
    assert len(EXAMPLES) >= 6
    assert {p.name for p in EXAMPLES} >= NEEDS_DATA


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example):
    data_home = SHARED_DATA if SHARED_DATA.is_dir() else None
    proc = _run(example, _example_env(data_home))
    assert proc.returncode == 0, _explain(proc)


@pytest.mark.parametrize("name", sorted(NEEDS_DATA))
def test_example_without_its_data_says_what_to_get_and_exits_cleanly(name, tmp_path):
    (example,) = [p for p in EXAMPLES if p.name == name]
    empty_home = tmp_path / "empty data home"
    proc = _run(example, _example_env(empty_home))
    assert proc.returncode == 0, _explain(proc)
    assert "This example needs" in proc.stdout, _explain(proc)
    assert str(empty_home) in proc.stdout  # says where to put the data
    assert not empty_home.exists()  # and creates nothing


# --------------------------------------------------------------------------- docstrings
def _public(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(module_name)
    names = PUBLIC_MODULES.get(module_name) or module.__all__
    return [(f"{module_name}.{name}", getattr(module, name)) for name in names]


def _takes_parameters(obj) -> bool:
    """Whether calling ``obj`` (a function, or a class: its constructor) takes arguments."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return any(name not in ("self", "cls") for name in signature.parameters)


DOCUMENTED = [
    pytest.param(obj, id=name)
    for module in ("sktransfer", "sktransfer.datasets")
    for name, obj in _public(module)
    if callable(obj)
]


@pytest.mark.parametrize("obj", DOCUMENTED)
def test_public_names_have_parameters_and_examples(obj):
    doc = inspect.getdoc(obj) or ""
    assert doc, "no docstring"
    missing = [
        section
        for section, needed in (("Parameters", _takes_parameters(obj)), ("Examples", True))
        if needed and not re.search(rf"^{section}\n-{{3,}}$", doc, flags=re.MULTILINE)
    ]
    assert not missing, f"the docstring has no {' and no '.join(missing)} section"


# --------------------------------------------------------------------------- API reference
def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _documented_objects() -> list:
    """The objects listed in the autosummary tables of docs/api.rst."""
    module, in_table, objects = None, False, []
    for line in API_RST.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\.\. (?:current)?module:: (\S+)", line)
        if m:
            module = m.group(1)
            continue
        if line.startswith(".. autosummary::"):
            in_table = True
            continue
        if in_table:
            entry = line.strip()
            if not entry or entry.startswith(":"):
                continue
            if not line.startswith("   "):
                in_table = False
                continue
            objects.append(_resolve(f"{module}.{entry}"))
    return objects


def test_api_reference_lists_every_public_name():
    documented = _documented_objects()
    missing = [
        name
        for module in PUBLIC_MODULES
        for name, obj in _public(module)
        if not any(obj is d for d in documented)
    ]
    assert not missing, f"add these to docs/api.rst: {missing}"
