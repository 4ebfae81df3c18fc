"""callbacks=, warm_start=True and partial_fit, against skorch's and scikit-learn's habits."""

import pickle

import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.base import clone
from skorch.callbacks import Callback, Checkpoint, GradientNormClipping

from sktransfer import TransferClassifier
from sktransfer._training import WeightedNet


class EpochCounter(Callback):
    """A user's own callback: counts the epochs it saw."""

    def __init__(self, start=0):
        self.start = start

    def initialize(self):
        self.epochs_ = self.start
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1
        net.history.record("counted", self.epochs_)


def _fitted_callback(clf, cls):
    return next(cb for _, cb in clf.net_.callbacks_ if isinstance(cb, cls))


# ---------------------------------------------------------------- callbacks
def test_user_callbacks_run_beside_the_estimators_own(blobs, tmp_path):
    X, y = blobs
    counter = EpochCounter()
    checkpoint = Checkpoint(dirname=str(tmp_path / "ckpt"), monitor="train_loss_best",
                            f_optimizer=None, f_criterion=None)
    clf = TransferClassifier(**FAST, callbacks=[counter, ("ckpt", checkpoint)]).fit(X, y)
    names = [name for name, _ in clf.net_.callbacks_]
    assert {"finite_loss", "train_acc", "ckpt", "EpochCounter"} <= set(names)
    assert _fitted_callback(clf, EpochCounter).epochs_ == FAST["max_epochs"]
    assert list(clf.net_.history[:, "counted"]) == [1, 2, 3, 4, 5]
    assert "train_acc" in clf.history_  # the estimator's own callback still runs
    assert list(clf.history_["counted"]) == [1, 2, 3, 4, 5]  # a user's metric is kept
    assert not any(c.endswith("_best") or c.endswith("_count") for c in clf.history_)
    assert (tmp_path / "ckpt" / "params.pt").is_file()


def test_callbacks_parameter_is_never_mutated_and_clones_are_fresh(blobs):
    X, y = blobs
    counter = EpochCounter()
    clf = TransferClassifier(**FAST, callbacks=[counter]).fit(X, y)
    assert not hasattr(counter, "epochs_")  # fit trained a deep copy
    assert clf.callbacks[0] is counter
    fresh = clone(clf)
    assert fresh.callbacks[0] is not counter
    assert fresh.callbacks[0].get_params() == counter.get_params()
    fresh.fit(X, y)
    assert _fitted_callback(fresh, EpochCounter).epochs_ == FAST["max_epochs"]
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))


def test_gradient_norm_clipping_reaches_the_training_loop(blobs):
    X, y = blobs
    sgd = {**FAST, "optimizer": "sgd", "lr": 0.1}
    clip = [("clip", GradientNormClipping(gradient_clip_value=1e-9))]
    one = TransferClassifier(**{**sgd, "max_epochs": 1}, callbacks=clip).fit(X, y)
    five = TransferClassifier(**sgd, callbacks=clip).fit(X, y)
    free = TransferClassifier(**sgd).fit(X, y)
    # steps of norm lr * 1e-9: four more epochs change nothing, unlike unclipped training
    np.testing.assert_allclose(five.predict_proba(X), one.predict_proba(X), atol=1e-6)
    assert np.abs(free.predict_proba(X) - one.predict_proba(X)).max() > 0.1


class BatchCounter(Callback):
    """Counts the per-batch events, training and validation apart."""

    def initialize(self):
        self.begin_ = {True: 0, False: 0}
        self.end_ = {True: 0, False: 0}
        return self

    def on_batch_begin(self, net, training=False, **kwargs):
        self.begin_[training] += 1

    def on_batch_end(self, net, training=False, **kwargs):
        self.end_[training] += 1


def test_every_batch_event_reaches_callbacks_and_the_history(blobs):
    # the net calls only the callbacks that define a per-batch method, and writes the
    # batch records itself: what callbacks and the history see must be skorch's
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "batch_size": 16}, validation_fraction=0.25,
                             callbacks=[BatchCounter()]).fit(X, y)
    history = clf.net_.history
    counter = _fitted_callback(clf, BatchCounter)
    n_train, n_valid = sum(history[:, "train_batch_count"]), sum(history[:, "valid_batch_count"])
    assert n_train == FAST["max_epochs"] * 9 and n_valid >= FAST["max_epochs"]
    assert counter.begin_ == counter.end_ == {True: n_train, False: n_valid}
    for epoch in history:
        batches = epoch["batches"]
        train = [b for b in batches if "train_loss" in b]
        assert len(train) == epoch["train_batch_count"]
        assert sum(b["train_batch_size"] for b in train) == 135
        assert sum(b["valid_batch_size"] for b in batches if "valid_loss" in b) == 45
        losses = [b["train_loss"] for b in train]
        assert all(isinstance(v, float) and np.isfinite(v) for v in losses)
        assert epoch["train_loss"] == pytest.approx(
            np.average(losses, weights=[b["train_batch_size"] for b in train]))
    # a callback added after fitting is called too (the net's plan follows its callbacks)
    late = BatchCounter().initialize()
    clf.net_.callbacks_.append(("late", late))
    clf.net_.notify("on_batch_begin", batch=None, training=False)
    assert late.begin_[False] == 1 and counter.begin_[False] == n_valid + 1



class GradListener(Callback):
    """Listens to ``on_grad_computed``, so the net keeps skorch's closure-based step."""

    def initialize(self):
        self.calls_ = 0
        return self

    def on_grad_computed(self, net, named_parameters, **kwargs):
        self.calls_ += 1


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_the_direct_train_step_is_skorchs_closure_step(blobs, optimizer, monkeypatch):
    # Adam, AdamW and SGD step without skorch's closure (and, in the plain case, through
    # the net's one-function lean step) unless a callback needs it; both ways must train
    # the very same network
    X, y = blobs
    params = {**FAST, "optimizer": optimizer, "weight_decay": 1e-3}
    lean_epochs = []
    lean = WeightedNet._lean_train_step

    def spy(net):
        step = lean(net)
        lean_epochs.append(step is not None)
        return step

    monkeypatch.setattr(WeightedNet, "_lean_train_step", spy)
    direct = TransferClassifier(**params).fit(X, y)
    assert lean_epochs == [True] * FAST["max_epochs"]
    closure = TransferClassifier(**params, callbacks=[GradListener()]).fit(X, y)
    assert lean_epochs[FAST["max_epochs"]:] == [False] * FAST["max_epochs"]
    n_steps = sum(closure.net_.history[:, "train_batch_count"])
    assert _fitted_callback(closure, GradListener).calls_ == n_steps
    np.testing.assert_array_equal(direct.history_["train_loss"], closure.history_["train_loss"])
    np.testing.assert_array_equal(direct.history_["train_acc"], closure.history_["train_acc"])
    np.testing.assert_array_equal(direct.predict_proba(X), closure.predict_proba(X))


@pytest.mark.parametrize("setting", [{"label_smoothing": 0.1}, {"l2sp": 0.1},
                                     {"class_weight": "balanced"}])
def test_the_lean_step_leaves_what_it_does_not_cover_to_skorch(blobs, setting,
                                                                monkeypatch):
    # a fit with a customised loss must not go through the lean step: the same fit with
    # the lean step switched off gives the very same network
    X, y = blobs
    y = np.where(np.arange(len(y)) % 4 == 0, 0, y)  # imbalanced: class weights matter
    params = {**FAST, **setting}
    taken = TransferClassifier(**params).fit(X, y)
    monkeypatch.setattr(WeightedNet, "_lean_train_step", lambda net: None)
    skorch_path = TransferClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(taken.predict_proba(X), skorch_path.predict_proba(X))
    if "label_smoothing" in setting:  # and the setting did change the training
        plain = TransferClassifier(**FAST).fit(X, y)
        assert not np.array_equal(plain.predict_proba(X), taken.predict_proba(X))


class PredictsEachBatch(Callback):
    """Predicts after every training batch (as skorch's ``BatchScoring`` without caching
    does), which leaves the module in eval mode; records the mode each step found."""

    def initialize(self):
        self.modes_ = []
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.modes_.append(net.module_.training)
            list(net.forward_iter({"x": torch.zeros(2, 6)}))


def test_the_lean_step_trains_in_training_mode_after_a_callback_predicted(blobs,
                                                                          monkeypatch):
    X, y = blobs
    params = {**FAST, "batch_size": 16}
    lean = TransferClassifier(**params, callbacks=[PredictsEachBatch()]).fit(X, y)
    assert all(_fitted_callback(lean, PredictsEachBatch).modes_)  # dropout was on
    monkeypatch.setattr(WeightedNet, "_lean_train_step", lambda net: None)
    skorch_path = TransferClassifier(**params, callbacks=[PredictsEachBatch()]).fit(X, y)
    np.testing.assert_array_equal(lean.predict_proba(X), skorch_path.predict_proba(X))


def test_print_log_formats_its_table_only_when_it_prints(blobs, capsys, monkeypatch):
    import skorch.callbacks.logging as logging

    X, y = blobs
    tables = []
    table = logging.PrintLog.table
    monkeypatch.setattr(logging.PrintLog, "table",
                        lambda self, row: tables.append(1) or table(self, row))
    TransferClassifier(**FAST, verbose=0).fit(X, y)
    assert tables == [] and "train_loss" not in capsys.readouterr().out
    TransferClassifier(**FAST, verbose=1).fit(X, y)
    assert len(tables) == FAST["max_epochs"]
    out = capsys.readouterr().out
    assert "train_loss" in out and out.count("\n") >= FAST["max_epochs"] + 2

@pytest.mark.parametrize("bad, message", [
    ([("train_acc", EpochCounter())], "name 'train_acc' is used by TransferClassifier"),
    (["not a callback"], "must be skorch.callbacks.Callback instances"),
    ([("a", EpochCounter(), 3)], r"\(name, callback\) pairs"),
    ("EpochCounter", "'callbacks' parameter"),
])
def test_bad_callbacks_are_clear_errors(blobs, bad, message):
    X, y = blobs
    with pytest.raises(ValueError, match=message):
        TransferClassifier(**FAST, callbacks=bad).fit(X, y)


# ---------------------------------------------------------------- warm_start
def test_warm_start_continues_training_and_appends_history(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "lr": 1e-3}, warm_start=True).fit(X, y)
    first = clf.history_.copy()
    net = clf.net_
    clf.fit(X, y)
    assert clf.net_ is net  # the same network, trained further
    assert list(clf.history_["epoch"]) == list(range(1, 11))
    assert clf.history_["train_loss"].iloc[5] < first["train_loss"].iloc[0]
    assert clf.history_["train_loss"].iloc[5] == pytest.approx(
        first["train_loss"].iloc[-1], rel=0.5)
    # without warm_start, a second fit starts again
    cold = TransferClassifier(**{**FAST, "lr": 1e-3}).fit(X, y)
    cold.fit(X, y)
    assert list(cold.history_["epoch"]) == [1, 2, 3, 4, 5]


def test_warm_start_needs_the_same_classes_and_columns(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 1}, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="same classes as the previous fit"):
        clf.fit(X[y < 2], y[y < 2])
    with pytest.raises(ValueError, match=r"previous fit, \[0, 1, 2\]; y has \[1, 2, 3\]"):
        clf.fit(X, y + 1)
    with pytest.raises(ValueError, match="X has 5 features, but TransferClassifier is expecting 6"):
        clf.fit(X[:, :5], y)
    # set_params(warm_start=False) builds a new network for new classes
    clf.set_params(warm_start=False).fit(X[y < 2], y[y < 2])
    assert list(clf.classes_) == [0, 1]


def test_warm_start_applies_settings_changed_since_the_last_fit(blobs):
    """The hand-made LP-FT: fit the head on a frozen backbone, then unfreeze and go on."""
    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    clf = TransferClassifier(source.export_backbone(), freeze="backbone", max_epochs=2,
                             lr=1e-2, random_state=0).fit(X, y)
    assert clf.feature_cache_used_
    before = [p.detach().clone() for p in clf.net_.module_.backbone.parameters()]
    head = clf.net_.module_.head
    clf.set_params(freeze="none", lr=1e-3, warm_start=True).fit(X, y)
    after = list(clf.net_.module_.backbone.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the backbone trained
    assert clf.net_.module_.head is head  # the same network, not a new one
    assert type(clf.freeze_policy_).__name__ == "FreezeNone"
    assert not clf.feature_cache_used_
    assert {g["lr"] for g in clf.net_.optimizer_.param_groups} == {1e-3}
    assert list(clf.history_["epoch"]) == [1, 2, 3, 4]
    # unchanged settings: the same skorch net goes on (its optimizer moments too)
    net = clf.net_
    clf.fit(X, y)
    assert clf.net_ is net and len(clf.history_) == 6
    # partial_fit applies a changed setting too
    clf.set_params(lr=5e-4).partial_fit(X, y)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == 5e-4 and len(clf.history_) == 7


def test_warm_start_refuses_a_changed_network_or_a_staged_policy(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 1}, warm_start=True).fit(X, y)
    clf.set_params(backbone_kwargs={"hidden": (4,)})
    with pytest.raises(ValueError, match=r"backbone_kwargs was \{'hidden': \(16,\)\}, is now "
                                         r"\{'hidden': \(4,\)\}.*warm_start=False"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="backbone_kwargs was"):
        clf.partial_fit(X, y)
    clf.set_params(backbone_kwargs=FAST["backbone_kwargs"], freeze="gradual", max_epochs=5)
    with pytest.raises(ValueError, match="trains the head first, then unfreezes"):
        clf.fit(X, y)
    assert len(clf.history_) == 1  # nothing trained, nothing lost
    clf.set_params(freeze=None, max_epochs=1).fit(X, y)
    assert len(clf.history_) == 2


def test_continued_fit_compares_settings_by_value_and_in_place(blobs):
    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    clf = TransferClassifier(source.export_backbone(), freeze="last:1", max_epochs=1,
                             lr=1e-3, warm_start=True, random_state=0).fit(X, y)
    net = clf.net_
    clf.set_params(lr=np.float64(1e-3), max_epochs=np.int64(1)).fit(X, y)
    assert clf.net_ is net  # the same values: nothing rebuilt
    from sktransfer.freeze import FreezeLast

    clf.set_params(freeze=FreezeLast(1)).fit(X, y)  # "last:1" spelt another way
    assert clf.net_ is net
    trained = sum(p.requires_grad for p in clf.net_.module_.backbone.parameters())
    clf.set_params(freeze__k=2).fit(X, y)  # a change inside the policy object counts
    assert clf.net_ is not net
    assert sum(p.requires_grad for p in clf.net_.module_.backbone.parameters()) > trained
    clf.set_params(verbose=1)
    clf.fit(X, y)
    assert clf.net_.verbose == 1


def test_a_failed_continued_fit_leaves_the_fitted_network_as_it_was(blobs):
    from skorch.callbacks import Callback

    class Fails(Callback):
        def on_epoch_begin(self, net, **kwargs):
            raise RuntimeError("stop")

    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    clf = TransferClassifier(source.export_backbone(), freeze="backbone", max_epochs=1,
                             random_state=0).fit(X, y)
    before = [p.detach().clone() for p in clf.net_.module_.parameters()]
    clf.set_params(warm_start=True, freeze="none", callbacks=[("fails", Fails())])
    with pytest.raises(RuntimeError, match="stop"):
        clf.fit(X, y)
    assert not any(p.requires_grad for p in clf.net_.module_.backbone.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, clf.net_.module_.parameters()))
    clf.set_params(freeze="backbone", callbacks=None).fit(X, y)
    backbone = list(clf.net_.module_.backbone.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, backbone))  # still frozen
    assert clf.feature_cache_used_


def test_a_diverged_continued_fit_keeps_the_model_it_continued(blobs):
    from sktransfer.estimator import TrainingDivergedError

    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 2}, warm_start=True).fit(X, y)
    before = clf.predict_proba(X)
    net = clf.net_
    moments = {k: {n: v.clone() for n, v in state.items()}
               for k, state in net.optimizer_.state_dict()["state"].items()}
    shuffle = net.iterator_train__generator.generator.get_state()  # and the shuffling
    for group in net.optimizer_.param_groups:  # the same settings, a net that diverges
        group["lr"] = 1e30
    with pytest.raises(TrainingDivergedError, match="keeps the model it continued"):
        clf.fit(X, y)
    assert clf.net_ is net and len(net.history) == 2
    np.testing.assert_allclose(clf.predict_proba(X), before)
    for k, state in net.optimizer_.state_dict()["state"].items():  # Adam's moments too
        assert all(torch.equal(v, moments[k][n]) for n, v in state.items())
    assert torch.equal(net.iterator_train__generator.generator.get_state(), shuffle)
    clf.set_params(optimizer="sgd", lr=1e30)  # changed settings: a rebuilt net diverges
    with pytest.raises(TrainingDivergedError, match="keeps the model it continued"):
        clf.fit(X, y)
    assert clf.net_ is net
    np.testing.assert_allclose(clf.predict_proba(X), before)


def test_partial_fit_refuses_a_two_stage_policy_on_its_first_call(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="which partial_fit cannot run.*"
                                         "set_params\\(freeze='none'\\)"):
        TransferClassifier(**FAST, freeze="gradual:1").partial_fit(X, y, classes=[0, 1, 2])


def test_partial_fit_weighs_a_chunk_by_the_class_weight_dict_of_all_classes(blobs):
    X, y = blobs
    chunk = y != 2  # a chunk without class 2, which the dict weighs
    weighted = TransferClassifier(**FAST, class_weight={0: 2.0, 2: 3.0}).partial_fit(
        X[chunk], y[chunk], classes=[0, 1, 2])
    by_hand = TransferClassifier(**FAST).partial_fit(
        X[chunk], y[chunk], classes=[0, 1, 2], sample_weight=np.where(y[chunk] == 0, 2.0, 1.0))
    np.testing.assert_allclose(weighted.predict_proba(X), by_hand.predict_proba(X), rtol=1e-5)
    with pytest.raises(ValueError, match="'balanced' is not supported by partial_fit.*"
                                         "compute_class_weight"):
        TransferClassifier(**FAST, class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_continued_fits_run_their_schedule_and_keep_the_l2sp_start(blobs):
    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    clf = TransferClassifier(source.export_backbone(), freeze="none", lr_schedule="cosine",
                             warmup=0.0, max_epochs=2, batch_size=30, l2sp=0.1,
                             warm_start=True, random_state=0).fit(X, y)
    start = clf.net_.l2sp_reference_
    assert start is not None  # kept: the continued fit pulls toward it too
    clf.fit(X, y)
    lrs = clf.history_["lr"].tolist()
    assert lrs[2:] == pytest.approx(lrs[:2])  # the second fit runs the whole schedule again
    clf.set_params(lr=2e-3).fit(X, y)  # rebuilt: still the first fit's starting weights
    assert clf.net_.l2sp_reference_ is start
    # partial_fit: each call is the next epoch of one schedule of max_epochs epochs
    part = TransferClassifier(**{**FAST, "max_epochs": 3}, lr_schedule="cosine", warmup=0.0,
                              batch_size=30)
    for _ in range(4):
        part.partial_fit(X, y, classes=[0, 1, 2])
    lrs = part.history_["lr"].tolist()
    assert lrs[0] > lrs[1] > lrs[2] and lrs[3] == pytest.approx(lrs[0])
    # a pickled copy goes on with the same schedule
    again = TransferClassifier(**{**FAST, "max_epochs": 3}, lr_schedule="cosine", warmup=0.0,
                               batch_size=30).partial_fit(X, y, classes=[0, 1, 2])
    copied = pickle.loads(pickle.dumps(again))
    again.partial_fit(X, y)
    copied.partial_fit(X, y)
    rate = again.net_.optimizer_.param_groups[0]["lr"]  # the rate the optimizer holds
    assert copied.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(rate)
    assert copied.history_["lr"].tolist() == pytest.approx(again.history_["lr"].tolist())
    # a small first chunk does not cut the schedule short for bigger ones after it
    chunks = TransferClassifier(**{**FAST, "max_epochs": 3}, lr_schedule="cosine",
                                warmup=0.0, batch_size=10)
    chunks.partial_fit(X[:30], y[:30], classes=[0, 1, 2])
    chunks.partial_fit(X, y)
    from sktransfer.schedules import ScheduleFactor

    b = -(-len(X) // 10)  # the second call's batches: it trains at epoch 2's rates
    expected = FAST["lr"] * ScheduleFactor("cosine", 3 * b)(2 * b - 1)
    assert chunks.history_["lr"].iloc[1] == pytest.approx(expected) and expected > 0
    # a call that fails is rolled back, its epoch of the schedule with it
    from skorch.callbacks import Callback

    class FailsOnce(Callback):
        armed = True

        def on_epoch_end(self, net, **kwargs):
            if FailsOnce.armed:
                FailsOnce.armed = False
                raise RuntimeError("once")

    retried = TransferClassifier(**{**FAST, "max_epochs": 3}, lr_schedule="cosine",
                                 warmup=0.0, batch_size=30)
    retried.partial_fit(X, y, classes=[0, 1, 2])
    retried.set_params(callbacks=[("fails", FailsOnce())])
    with pytest.raises(RuntimeError, match="once"):
        retried.partial_fit(X, y)
    retried.partial_fit(X, y)
    assert retried.history_["lr"].tolist() == pytest.approx(lrs[:2])
    # after a fit without warm_start, the continued fit anchors L2-SP where it starts
    cold = TransferClassifier(source.export_backbone(), freeze="none", l2sp=0.1,
                              max_epochs=1, random_state=0).fit(X, y)
    assert cold.net_.l2sp_reference_ is None  # not needed to predict
    cold.set_params(warm_start=True).fit(X, y)
    assert cold.net_.l2sp_reference_ is not None and cold.net_.l2sp_penalty() > 0


def test_a_fitted_lp_ft_model_continues_with_everything_trained(blobs):
    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    clf = TransferClassifier(source.export_backbone(), freeze="gradual", max_epochs=4,
                             warm_start=True, random_state=0).fit(X, y)
    clf.set_params(lr=5e-4, max_epochs=1).fit(X, y)  # a changed rate, the same policy
    assert all(p.requires_grad for p in clf.net_.module_.parameters())
    assert len(clf.history_) == 5


def test_continued_fit_follows_verbose_and_equal_policy_spellings(blobs):
    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    clf = TransferClassifier(source.export_backbone(), freeze="gradual", max_epochs=4,
                             verbose=2, warm_start=True, random_state=0).fit(X, y)
    net = clf.net_
    assert "progress" in dict(net.callbacks_)
    clf.set_params(freeze="gradual:3", verbose=0, max_epochs=1).fit(X, y)  # the same policy
    assert clf.net_ is net and "progress" not in dict(net.callbacks_) and net.verbose == 0
    plain = TransferClassifier(**FAST, freeze=None, warm_start=True).fit(X, y)
    net = plain.net_
    plain.set_params(freeze="none").fit(X, y)
    assert plain.net_ is net


def test_a_refused_refit_leaves_the_fitted_model_as_it_was(blobs):
    X, y = blobs
    clf = TransferClassifier(**FAST).fit(X, y)
    before = clf.predict(X)
    with pytest.raises(ValueError):
        clf.fit(X, np.array(["c", "b", "a"])[y], sample_weight=-np.ones(len(y)))
    assert list(clf.classes_) == [0, 1, 2]
    np.testing.assert_array_equal(clf.predict(X), before)
    fresh = TransferClassifier(**FAST)
    with pytest.raises(ValueError):
        fresh.fit(X, y, sample_weight=-np.ones(len(y)))
    assert not hasattr(fresh, "classes_") and not hasattr(fresh, "net_")


def test_a_refused_encoder_refit_and_a_failing_lr_sweep_leave_nothing_broken(blobs):
    from skorch.callbacks import Callback

    from sktransfer import PretrainedEncoder, lr_find

    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    encoder = PretrainedEncoder(source.export_backbone()).fit(X)
    with pytest.raises(ValueError, match="features"):
        encoder.fit(X[:, :4])
    assert encoder.n_features_in_ == X.shape[1] and encoder.transform(X).shape[0] == len(X)

    class Fails(Callback):
        def on_epoch_end(self, net, **kwargs):
            raise ValueError("a user's callback failed")

    result = lr_find(TransferClassifier(**FAST, batch_size=16, callbacks=[("f", Fails())]),
                     X, y, num_iter=8)
    assert len(result.lrs) == len(result.losses) > 0  # what the sweep recorded


def test_continued_fit_watches_the_hold_out_it_now_has(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 3}, early_stopping=2)
    clf.partial_fit(X, y, classes=[0, 1, 2])  # built without a hold-out
    clf.set_params(warm_start=True).fit(X, y)
    assert dict(clf.net_.callbacks_)["early_stopping"].monitor == "valid_loss"
    # set_params(max_epochs=...) between partial_fit calls sets the schedule's length
    part = TransferClassifier(**{**FAST, "max_epochs": 3}, lr_schedule="cosine", warmup=0.0,
                              batch_size=30).partial_fit(X, y, classes=[0, 1, 2])
    part.set_params(max_epochs=6)
    for _ in range(5):
        part.partial_fit(X, y)
    fresh = TransferClassifier(**{**FAST, "max_epochs": 6}, lr_schedule="cosine",
                               warmup=0.0, batch_size=30)
    for _ in range(6):
        fresh.partial_fit(X, y, classes=[0, 1, 2])
    assert part.history_["lr"].tolist()[1:] == pytest.approx(fresh.history_["lr"].tolist()[1:])


# ---------------------------------------------------------------- partial_fit
def test_partial_fit_trains_one_epoch_per_call(blobs):
    X, y = blobs
    order = np.random.RandomState(0).permutation(len(y))
    clf = TransferClassifier(**FAST)
    first = order[:60]
    first = first[y[first] < 2]  # the first chunk lacks class 2
    assert clf.partial_fit(X[first], y[first], classes=[0, 1, 2]) is clf
    assert list(clf.classes_) == [0, 1, 2]
    assert clf.predict_proba(X[:3]).shape == (3, 3)
    for chunk in np.array_split(order, 4):
        clf.partial_fit(X[chunk], y[chunk])
    assert list(clf.history_["epoch"]) == [1, 2, 3, 4, 5]
    assert "valid_loss" not in clf.history_  # every row of every chunk trains
    assert clf.score(X, y) > 0.6


def test_partial_fit_follows_sklearn_rules_for_classes(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        TransferClassifier(**FAST).partial_fit(X, y)
    clf = TransferClassifier(**FAST).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="differs from classes_"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"y has labels \[5\] that are not in classes_"):
        clf.partial_fit(X[:3], np.array([0, 1, 5]))
    with pytest.raises(ValueError, match="y has labels"):
        TransferClassifier(**FAST).partial_fit(X, y, classes=[0, 1])


def test_partial_fit_after_fit_continues_even_with_early_stopping(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 3}, early_stopping=2).fit(X, y)
    n = len(clf.history_)
    clf.partial_fit(X, y)
    assert len(clf.history_) == n + 1
    assert np.isnan(clf.history_["valid_loss"].iloc[-1])  # nothing held out in partial_fit


def test_warm_start_and_partial_fit_on_cached_features(blobs):
    X, y = blobs
    source = TransferClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    clf = TransferClassifier(source.export_backbone(), freeze="backbone", max_epochs=2,
                             lr=1e-2, warm_start=True, random_state=0).fit(X, y)
    assert clf.feature_cache_used_ and clf.net_.head_only
    digest = clf.backbone_digest_
    clf.fit(X, y)
    clf.partial_fit(X, y)
    assert clf.feature_cache_used_ and clf.backbone_digest_ == digest
    assert list(clf.history_["epoch"]) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(clf.transform(X), source.transform(X), rtol=1e-5, atol=1e-6)
    # the head trained on cached embeddings; the whole network gives the same predictions
    with torch.no_grad():
        logits = clf.net_.module_.eval()(torch.as_tensor(X, dtype=torch.float32))
    np.testing.assert_allclose(torch.softmax(logits.double(), 1).numpy(),
                               clf.predict_proba(X), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- train_acc
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_train_accuracy_counts_every_batch_across_chunks(chunk):
    """Scored in chunks of batches, the epoch's accuracy is still that of all its rows."""
    from skorch.history import History

    from sktransfer._training import TrainAccuracy

    class Net:  # what the callback reads of the net: a history to record into
        history = History()

    net = Net()
    net.history.new_epoch()
    acc = TrainAccuracy()
    acc.chunk = chunk
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(n, 4, generator=gen) for n in (8, 8, 8, 8, 5)]
    targets = [torch.randint(0, 4, (len(z),), generator=gen) for z in logits]
    acc.on_epoch_begin(net)
    for z, t in zip(logits, targets):
        acc.on_batch_end(net, batch=({"x": None}, t), training=True, y_pred=z)
        acc.on_batch_end(net, batch=({"x": None}, t), training=False, y_pred=z)  # ignored
    acc.on_epoch_end(net)
    expected = float((torch.cat(logits).argmax(1) == torch.cat(targets)).float().mean())
    assert net.history[-1, "train_acc"] == pytest.approx(expected)
    assert acc.outputs_ == [] and acc.seen_ == 0  # nothing held between epochs
