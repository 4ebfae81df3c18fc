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


class SmallConv(torch.nn.Module):
    """A tiny convolutional backbone (few parameters, image-sized operations)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        if len(x) != 2:
            SEEN.append(torch.get_num_threads())
        return self.pool(self.conv(x)).flatten(1)


def test_tune_starts_where_auto_does(monkeypatch):
    monkeypatch.setattr(_threads, "cpu_budget", lambda: 4)
    assert resolve_n_threads("tune", SmallConv()) == 1  # few parameters: one thread
    assert resolve_n_threads("tune", Big()) == 4


class FakeClock:
    """perf_counter for ThreadTuner: a batch takes ``cost[threads]`` seconds per sample."""

    def __init__(self, cost):
        self.cost, self.now, self.batches = cost, 0.0, []

    def __call__(self):
        return self.now

    def batch(self, tuner, n=32):
        tuner.before_batch()
        threads = torch.get_num_threads()
        self.batches.append(threads)
        self.now += self.cost[threads] * n
        tuner.after_batch(n)


@pytest.mark.parametrize("cost, chosen, n_probe", [
    ({1: 0.01, 3: 0.005}, 3, 8),    # an idle machine: the budget is clearly faster
    ({1: 0.01, 3: 0.009}, 1, 8),    # hardly faster: one thread, the robust choice
    ({1: 0.01, 3: 0.05}, 1, 5),     # a busy core: the probe stops at its first batch
    ({1: 1e-5, 3: 5e-6}, 1, 4),     # tiny steps: the budget is never tried
])
def test_thread_tuner_keeps_the_faster_setting(three_threads, monkeypatch, cost, chosen,
                                               n_probe):
    clock = FakeClock(cost)
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    tuner = _threads.ThreadTuner(3)
    tuner.new_pass(40)
    assert tuner.probing and torch.get_num_threads() == 1  # starts on one thread
    while tuner.probing:
        clock.batch(tuner)
    assert len(clock.batches) == n_probe and tuner.threads == chosen
    assert torch.get_num_threads() == chosen
    clock.batch(tuner)  # the rest of the pass runs on the choice, untimed
    assert clock.batches[-1] == chosen and not tuner.probing


def test_thread_tuner_probes_long_passes_only(three_threads, monkeypatch):
    clock = FakeClock({1: 0.01, 3: 0.005})
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    tuner = _threads.ThreadTuner(3, min_batches=16, reprobe_batches=100)
    tuner.new_pass(10)  # too short to measure: the setting found is kept
    assert not tuner.probing and torch.get_num_threads() == 3 and tuner.threads is None
    tuner.new_pass(20)  # long enough for a first probe
    while tuner.probing:
        clock.batch(tuner)
    torch.set_num_threads(2)
    tuner.new_pass(50)  # a later short pass keeps the choice, without a new probe
    assert not tuner.probing and torch.get_num_threads() == 3
    tuner.new_pass(100)  # a long later pass probes again (the load may have changed)
    assert tuner.probing and torch.get_num_threads() == 1
    assert _threads.ThreadTuner(1).probing is False


def test_tune_times_the_first_batches_records_the_threads_and_restores(three_threads,
                                                                      monkeypatch):
    monkeypatch.setattr(_threads, "cpu_budget", lambda: 3)
    X = np.random.RandomState(0).rand(96, 3, 8, 8).astype("float32")
    y = np.arange(96) % 2
    SEEN.clear()
    clf = TransferClassifier(SmallConv(), input_shape=(3, 8, 8), batch_size=4,
                             max_epochs=2, validation_fraction=None, n_threads="tune",
                             cache_features=False).fit(X, y)
    assert SEEN[:4] == [1, 1, 1, 1]  # the probe starts on one thread
    assert set(clf.history_["threads"]) <= {1, 3} and torch.get_num_threads() == 3
    import pickle

    assert "thread_tuner" not in vars(pickle.loads(pickle.dumps(clf)).net_)  # not a model's
    auto = TransferClassifier(SmallConv(), input_shape=(3, 8, 8), batch_size=4,
                              max_epochs=1, validation_fraction=None,
                              cache_features=False)
    SEEN.clear()
    auto.fit(X, y)
    assert set(SEEN) == {1} and "threads" not in auto.history_  # "auto": the rule


def test_tune_probes_again_when_lp_ft_unfreezes(three_threads, monkeypatch):
    monkeypatch.setattr(_threads, "cpu_budget", lambda: 3)
    resets = []
    real_reset = _threads.ThreadTuner.reset
    monkeypatch.setattr(_threads.ThreadTuner, "reset",
                        lambda self: resets.append(self.threads) or real_reset(self))
    X = np.random.RandomState(0).rand(80, 3, 8, 8).astype("float32")
    y = np.arange(80) % 2
    clf = TransferClassifier(SmallConv(), input_shape=(3, 8, 8), batch_size=4,
                             freeze="gradual", max_epochs=4,
                             validation_fraction=None, n_threads="tune").fit(X, y)
    assert len(resets) == 1 and clf.history_["unfrozen"].any()
    assert torch.get_num_threads() == 3


def test_tune_shares_one_tuner_across_tta_views(three_threads, monkeypatch):
    monkeypatch.setattr(_threads, "cpu_budget", lambda: 3)
    passes = []
    real = _threads.ThreadTuner.new_pass
    monkeypatch.setattr(_threads.ThreadTuner, "new_pass",
                        lambda self, n: passes.append(id(self)) or real(self, n))
    X = np.random.RandomState(0).rand(40, 3, 8, 8).astype("float32")
    y = np.arange(40) % 2
    clf = TransferClassifier(SmallConv(), input_shape=(3, 8, 8), max_epochs=1, tta=True,
                             cache_features=False, validation_fraction=None,
                             n_threads="tune").fit(X, y)
    passes.clear()
    clf.predict(X)
    assert len(passes) >= 2 and len(set(passes)) == 1


def test_tune_keeps_its_choice_across_partial_fit_calls(three_threads, monkeypatch):
    monkeypatch.setattr(_threads, "cpu_budget", lambda: 3)
    passes = []
    real = _threads.ThreadTuner.new_pass
    monkeypatch.setattr(_threads.ThreadTuner, "new_pass",
                        lambda self, n: passes.append((id(self), self.threads)) or real(self, n))
    X = np.random.RandomState(0).rand(80, 3, 8, 8).astype("float32")
    y = np.arange(80) % 2
    clf = TransferClassifier(SmallConv(), input_shape=(3, 8, 8), batch_size=4,
                             cache_features=False, n_threads="tune")
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1])
    assert len({tuner for tuner, _ in passes}) == 1  # one tuner for the three calls
    assert passes[0][1] is None and all(t is not None for _, t in passes[1:])  # one probe
    assert torch.get_num_threads() == 3


def test_a_passes_choice_does_not_leak_into_the_next(three_threads, monkeypatch):
    from sktransfer._base_estimator import _run_batches
    from sktransfer.inputs import ArrayDataset

    monkeypatch.setattr(_threads.time, "perf_counter", FakeClock({1: 0.0, 2: 0.0}))
    tuner = _threads.ThreadTuner(2, min_batch_seconds=0.0, margin=1.0)
    torch.set_num_threads(1)
    module = torch.nn.Linear(4, 2)
    _run_batches(module, module, ArrayDataset(torch.rand(64, 4)), 2, "cpu",
                 kind="image", tuner=tuner)
    assert tuner.threads == 2  # the probe chose two threads for its pass ...
    assert torch.get_num_threads() == 1  # ... and put back the setting it found


class BigConv(SmallConv):
    """A convolutional backbone over a million parameters (mostly unused)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Linear(1100, 1000)


def test_tta_views_after_cached_features_run_on_the_networks_threads(three_threads,
                                                                     monkeypatch):
    monkeypatch.setattr(_threads, "cpu_budget", lambda: 3)
    X = np.random.RandomState(0).rand(40, 3, 8, 8).astype("float32")
    y = np.arange(40) % 2
    clf = TransferClassifier(BigConv(), input_shape=(3, 8, 8), freeze="backbone",
                             max_epochs=1, tta=True, validation_fraction=None).fit(X, y)
    assert clf.feature_cache_used_
    SEEN.clear()
    clf.predict(X)  # the head on cached features (one thread), then mirrored images
    assert SEEN and set(SEEN) == {3}  # the whole network: the budget, not the head's one
