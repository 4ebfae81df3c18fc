"""One fit over several processes through Hugging Face Accelerate (``accelerator=``).

The end-to-end test launches a real 2-process CPU fit (gloo) with ``torchrun`` running
tests/_distributed_fit.py; the others check the pieces in one process.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sktransfer import TransferClassifier, TransferRegressor
from sktransfer.inputs import ArrayDataset, BatchLoader

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("_distributed_fit.py")
KW = {"max_epochs": 4, "batch_size": 32, "lr": 1e-2, "random_state": 0,
      "backbone_kwargs": {"hidden": (16,)}}


def _accelerate():
    return pytest.importorskip(
        "accelerate", reason='accelerator= needs the "accelerate" extra (pip install accelerate)'
    )


def _data(n=240, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 6).astype(np.float32)
    return X, (X[:, 0] - X[:, 1] > 0).astype(int)


# ----------------------------------------------------------------- the sharding loader
@pytest.mark.parametrize("n, batch_size, shards", [(100, 10, 2), (95, 10, 2), (70, 10, 3)])
def test_batch_loader_shards_an_epoch(n, batch_size, shards):
    """Each shard takes every num_shards-th batch of one shared permutation; together they
    cover every row, and all take the same number of batches (wrapping round at the end)."""
    data = ArrayDataset(torch.arange(n, dtype=torch.float32)[:, None])
    rows, counts = [], []
    for shard in range(shards):
        loader = BatchLoader(data, batch_size=batch_size, shuffle=True,
                             generator=torch.Generator().manual_seed(3),
                             num_shards=shards, shard=shard)
        batches = [xb["x"][:, 0].long().tolist() for xb, _ in loader]
        assert len(batches) == len(loader)
        counts.append(len(batches))
        rows.append([r for b in batches for r in b])
    n_batches = -(-n // batch_size)
    assert counts == [-(-n_batches // shards)] * shards
    assert sorted({r for part in rows for r in part}) == list(range(n))
    if n_batches % shards == 0:  # no wrap-around: the shards are disjoint
        assert sum(len(p) for p in rows) == n


def test_batch_loader_rejects_a_shard_out_of_range():
    with pytest.raises(ValueError, match="shard=2"):
        BatchLoader(ArrayDataset(torch.zeros(4, 1)), num_shards=2, shard=2)


# ------------------------------------------------------------------- one process
def test_single_process_accelerator_matches_the_plain_fit():
    accelerate = _accelerate()
    X, y = _data()
    plain = TransferClassifier("mlp", **KW).fit(X, y)
    acc = accelerate.Accelerator(cpu=True)
    accel = TransferClassifier("mlp", accelerator=acc, **KW).fit(X, y)
    assert type(accel.net_).__name__ == "AcceleratedWeightedNet"
    np.testing.assert_allclose(accel.predict_proba(X), plain.predict_proba(X), atol=1e-5)
    np.testing.assert_allclose(accel.history_["train_loss"], plain.history_["train_loss"],
                               rtol=1e-5)
    np.testing.assert_allclose(accel.history_["train_acc"], plain.history_["train_acc"])
    # nothing the fit prepared stays with the accelerator (a grid search would pile up)
    assert not acc._models and not acc._optimizers


def test_accelerated_regressor_and_gradual_unfreezing():
    accelerate = _accelerate()
    X, y = _data()
    target = X[:, 0] * 3.0 + 1.0
    acc = accelerate.Accelerator(cpu=True)
    reg = TransferRegressor("mlp", accelerator=acc, **KW).fit(X, target)
    assert type(reg.net_).__name__ == "AcceleratedRegressionNet"
    assert reg.score(X, target) > 0.8
    clf = TransferClassifier("mlp", accelerator=acc, freeze="gradual:2",
                             validation_fraction=0.2, **{**KW, "max_epochs": 5})
    with pytest.warns(UserWarning, match="random initial weights"):
        clf.fit(X, y)
    assert [s["stage"] for s in clf.stages_] == ["head", "fine-tune"]
    assert clf.stages_[0]["cached_features"]
    assert clf.score(X, y) > 0.8
    n = len(clf.history_)
    clf.set_params(warm_start=True).fit(X, y)  # a continued fit re-prepares the net
    assert len(clf.history_) == n + 5


def test_clone_keeps_the_accelerator_and_pickle_stores_auto():
    accelerate = _accelerate()
    X, y = _data(120)
    acc = accelerate.Accelerator(cpu=True)
    clf = TransferClassifier("mlp", accelerator=acc, **KW)
    assert clone(clf).accelerator is acc  # the launch's one handle, not a copy
    clf.fit(X, y)
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.accelerator == "auto"
    assert loaded.net_.accelerator is None
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert clf.net_.accelerator is acc  # pickling left the fitted estimator alone
    loaded.set_params(warm_start=True).fit(X, y)  # "auto" builds this process's one
    assert loaded.net_.accelerator is not None


def test_accelerator_settings_conflicts_are_clear_errors():
    accelerate = _accelerate()
    X, y = _data(60)
    acc = accelerate.Accelerator(cpu=True)
    with pytest.raises(ValueError, match="mixed_precision='bf16' but the accelerator"):
        TransferClassifier("mlp", accelerator=acc, mixed_precision="bf16", **KW).fit(X, y)
    with pytest.raises(ValueError, match="leave device='auto'"):  # checked, not resolved
        TransferClassifier("mlp", accelerator=acc, device="cuda", **KW).fit(X, y)
    plain = TransferClassifier("mlp", **KW).fit(X, y)
    plain.set_params(accelerator=acc, warm_start=True)
    with pytest.raises(ValueError, match="trained without an accelerator"):
        plain.fit(X, y)


def test_accelerator_parameter_is_validated():
    X, y = _data(40)
    with pytest.raises(ValueError, match="accelerator"):
        TransferClassifier("mlp", accelerator="gpu", **KW).fit(X, y)


def test_missing_accelerate_names_the_extra(monkeypatch):
    X, y = _data(40)
    monkeypatch.setitem(sys.modules, "accelerate", None)  # import accelerate -> ImportError
    with pytest.raises(ImportError, match=r"sktransfer\[accelerate\]"):
        TransferClassifier("mlp", accelerator="auto", **KW).fit(X, y)


# ------------------------------------------------------------------ two processes
def test_two_process_cpu_fit(tmp_path):
    """A real 2-process launch (torchrun, gloo): one model, half the batches each."""
    _accelerate()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", "2", str(SCRIPT), str(tmp_path)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert all(r["num_processes"] == 2 for r in ranks)
    assert all(r["distributed_type"].endswith("MULTI_CPU") for r in ranks)

    # each process trained on half of every epoch's batches: 320 rows / 32 = 10 batches
    n_batches = -(-ranks[0]["n_train_rows"] // 32)
    for r in ranks:
        assert r["train_batches_per_epoch"] == [n_batches // 2] * 6
    rows = [set(r["rows_epoch_3"]) for r in ranks]
    assert not rows[0] & rows[1]  # different rows ...
    assert len(rows[0] | rows[1]) == ranks[0]["n_train_rows"]  # ... all of them

    # one model: identical weights, histories and predictions on both processes
    w0, w1 = (torch.load(tmp_path / f"weights_{r}.pt") for r in (0, 1))
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    p0, p1 = (np.load(tmp_path / f"proba_{r}.npy") for r in (0, 1))
    np.testing.assert_array_equal(p0, p1)
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"]  # summed over processes
    assert ranks[0]["valid_loss"] == ranks[1]["valid_loss"]
    assert [s["stage"] for s in ranks[0]["stages"]] == ["head", "fine-tune"]

    # it learned (a linear rule on 80 held-out rows; chance is about 0.5)
    assert ranks[0]["test_accuracy"] > 0.85
    # the per-epoch table was printed once, by the main process
    headers = [line for line in run.stdout.splitlines() if line.split()[:1] == ["epoch"]]
    assert len(headers) == 1, run.stdout


def test_saved_file_holds_a_plain_model(tmp_path):
    accelerate = _accelerate()
    import sktransfer

    X, y = _data(80)
    clf = TransferClassifier("mlp", accelerator=accelerate.Accelerator(cpu=True), **KW)
    clf.fit(X, y)
    sktransfer.save(clf, tmp_path / "model.skt")
    loaded = sktransfer.load(tmp_path / "model.skt")
    assert loaded.accelerator is None
    assert type(loaded.net_).__name__ == "WeightedNet"
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_grid_search_with_an_accelerator():
    """clone keeps the accelerator; each candidate's fit leaves nothing prepared behind."""
    accelerate = _accelerate()
    from sklearn.model_selection import GridSearchCV

    X, y = _data(160)
    acc = accelerate.Accelerator(cpu=True)
    grid = GridSearchCV(TransferClassifier("mlp", accelerator=acc, **KW),
                        {"lr": [1e-3, 1e-2]}, cv=2).fit(X, y)
    assert grid.best_estimator_.accelerator is acc
    assert grid.best_score_ > 0.7
    assert not acc._models and not acc._optimizers
