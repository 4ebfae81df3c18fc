"""The thread policy: what n_threads picks, and that the caller's torch setting survives."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from sktransfer import TransferClassifier, _threads
from sktransfer._threads import resolve_n_threads, torch_threads

SEEN: list[int] = []


class RecordThreads(torch.nn.Module):
    """A tiny tabular backbone that records torch's thread count at each forward."""

    def __init__(self, n_in=4, n_out=8):
        super().__init__()
        self.linear = torch.nn.Linear(n_in, n_out)

    def forward(self, x):
        if len(x) != 2:  # not the 2-row shape probe when the backbone is built
            SEEN.append(torch.get_num_threads())
        return self.linear(x)


class Big(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1100, 1000)  # 1.1M parameters


@pytest.fixture
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield 3
    torch.set_num_threads(before)


def test_auto_picks_one_thread_for_small_networks_and_the_budget_for_large(monkeypatch):
    monkeypatch.setattr(_threads, "cpu_budget", lambda: 4)
    assert resolve_n_threads("auto", torch.nn.Linear(10, 10)) == 1
    assert resolve_n_threads("auto", Big()) == 4
    assert resolve_n_threads("auto", Big(), concurrent=2) == 2  # concurrent fits share
    assert resolve_n_threads("auto", Big(), concurrent=8) == 1
    assert resolve_n_threads(3, Big()) == 3
    assert resolve_n_threads(None, Big()) is None


def test_budget_honours_the_callers_thread_limit(three_threads):
    # joblib's loky workers and Dask's worker processes limit threads through
    # OMP_NUM_THREADS, which is torch's starting setting: the budget never exceeds it.
    torch.set_num_threads(1)
    assert _threads.cpu_budget() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "many", True])
def test_bad_n_threads_is_a_clear_error(bad):
    X, y = np.random.RandomState(0).rand(20, 4), np.arange(20) % 2
    with pytest.raises(ValueError, match="n_threads"):
        TransferClassifier(n_threads=bad, max_epochs=1).fit(X, y)


def test_fit_and_predict_run_on_the_chosen_threads_and_restore_the_callers(three_threads):
    X, y = np.random.RandomState(0).rand(40, 4), np.arange(40) % 2
    SEEN.clear()
    clf = TransferClassifier(RecordThreads(), max_epochs=2, validation_fraction=None,
                             cache_features=False).fit(X, y)
    assert set(SEEN) == {1} and torch.get_num_threads() == 3
    SEEN.clear()
    clf.set_params(n_threads=2).predict(X)
    clf.transform(X)
    assert set(SEEN) == {2} and torch.get_num_threads() == 3
    SEEN.clear()
    clf.set_params(n_threads=None).predict_proba(X)
    assert set(SEEN) == {3}


class BigRecorder(RecordThreads):
    """A large network (1.1M parameters, mostly unused) that records its threads."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Linear(1100, 1000)


def test_head_on_cached_features_runs_on_one_thread_the_backbone_on_the_budget(
        three_threads, monkeypatch):
    from skorch.callbacks import Callback

    monkeypatch.setattr(_threads, "cpu_budget", lambda: 3)
    head_threads: list[int] = []

    class Record(Callback):
        def on_batch_begin(self, net, **kwargs):
            head_threads.append(torch.get_num_threads())

    X, y = np.random.RandomState(0).rand(40, 4), np.arange(40) % 2
    SEEN.clear()
    clf = TransferClassifier(BigRecorder(), freeze="backbone", max_epochs=2,
                             validation_fraction=None, callbacks=[Record()]).fit(X, y)
    assert clf.feature_cache_used_
    assert set(SEEN) == {3}  # features: the large backbone on the budget
    assert set(head_threads) == {1}  # then only the small head trains
    SEEN.clear()
    head_threads.clear()
    clf.net_.module_.head.register_forward_pre_hook(
        lambda *_: head_threads.append(torch.get_num_threads()))
    clf.predict(X)
    assert not SEEN and set(head_threads) == {1}  # cached features, the head alone
    head_threads.clear()
    clf.set_params(n_threads=2).predict(X)
    assert set(head_threads) == {2} and torch.get_num_threads() == 3  # a number is kept


def test_setting_restored_when_fit_fails(three_threads):
    X, y = np.random.RandomState(0).rand(20, 4), np.arange(20) % 2

    class Boom(RecordThreads):
        def forward(self, x):
            if self.training:
                raise RuntimeError("boom")
            return super().forward(x)

    with pytest.raises(RuntimeError, match="boom"):
        TransferClassifier(Boom(), max_epochs=1, cache_features=False).fit(X, y)
    assert torch.get_num_threads() == 3


def test_concurrent_scopes_in_threads_share_the_budget(monkeypatch):
    monkeypatch.setattr(_threads, "cpu_budget", lambda: 4)
    inside, go = [], threading.Barrier(2)

    def run():
        with torch_threads("auto", None):  # enter the scope, then pick once both are in
            go.wait()
            inside.append(_threads.use_threads("auto", Big()))
            go.wait()

    workers = [threading.Thread(target=run) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert inside == [2, 2]
    assert _threads._active == 0
