"""The fine-tuning toolkit as estimator parameters: schedules, layer decay, LP-FT, L2-SP,
augmentation and mixing, the LR finder and the pretrained defaults. Tiny data, CPU."""

import pickle

import numpy as np
import pytest
import torch
from conftest import FAST, TINY_CNN
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback
from torchvision.transforms import v2

from sktransfer import GradualUnfreeze, TransferClassifier, lr_find
from sktransfer.cache import clear_cache, get_cache


@pytest.fixture(scope="module")
def source_mlp(blobs):
    X, y = blobs
    return TransferClassifier(**FAST).fit(X, y).export_backbone()


@pytest.fixture(scope="module")
def source_cnn(tiny_images):
    X, y = tiny_images
    return TransferClassifier("cnn", backbone_kwargs=TINY_CNN, max_epochs=2,
                              random_state=0).fit(X, y).export_backbone()


def _group_lrs(clf):
    return sorted(g["lr"] for g in clf.net_.optimizer_.param_groups)


# ---------------------------------------------------------------- schedules
def test_cosine_schedule_steps_per_batch_and_keeps_group_ratios(blobs, source_mlp):
    X, y = blobs
    clf = TransferClassifier(source_mlp, lr=1e-2, lr_schedule="cosine", warmup=0.4,
                             backbone_lr_mult=0.1, max_epochs=5, batch_size=30,
                             random_state=0).fit(X, y)
    lrs = clf.history_["lr"].to_numpy()
    assert lrs.argmax() == 1  # rises during the warmup (2 of 5 epochs), then decays
    assert np.all(np.diff(lrs[1:]) < 0) and lrs[-1] < 1e-4
    clf.set_params(lr_schedule="onecycle").fit(X, y)  # ends above zero
    head, backbone = max(_group_lrs(clf)), min(_group_lrs(clf))
    assert head == pytest.approx(1e-2 / 25e4)
    assert backbone / head == pytest.approx(0.1)  # ratio held through the schedule


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_history_lr_is_the_rate_of_each_epochs_last_step(blobs, schedule):
    class Spy(Callback):  # the head's rate of every training step, as the optimizer used it
        def initialize(self):
            self.rates_ = []
            return self

        def on_batch_begin(self, net, training=False, **kwargs):
            if training:
                self.rates_.append(net.optimizer_.param_groups[-1]["lr"])

    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 3}, lr_schedule=schedule, warmup=0.0,
                             batch_size=30, validation_fraction=None,
                             callbacks=[("spy", Spy())]).fit(X, y)
    rates = dict(clf.net_.callbacks_)["spy"].rates_
    per_epoch = len(rates) // 3
    np.testing.assert_allclose(clf.history_["lr"], rates[per_epoch - 1::per_epoch])


@pytest.mark.parametrize("schedule", ["constant", "onecycle"])
def test_other_schedules_fit_and_pickle(blobs, schedule):
    X, y = blobs
    clf = TransferClassifier(**FAST, lr_schedule=schedule).fit(X, y)
    assert clf.score(X, y) > 0.8
    assert pickle.loads(pickle.dumps(clf)).predict(X[:3]).shape == (3,)


def test_layer_decay_gives_each_backbone_layer_its_rate(blobs, source_mlp):
    X, y = blobs
    clf = TransferClassifier(source_mlp, lr=1e-2, layer_decay=0.5, lr_schedule="constant",
                             max_epochs=1, random_state=0).fit(X, y)
    # FAST's mlp has one hidden layer: backbone at lr * 0.5, head at lr
    assert _group_lrs(clf) == pytest.approx([5e-3, 1e-2])
    with pytest.raises(ValueError, match="layer_decay"):
        TransferClassifier(layer_decay=1.5).fit(X, y)


def test_toolkit_parameters_are_grid_searchable(blobs, source_mlp):
    X, y = blobs
    grid = GridSearchCV(
        TransferClassifier(source_mlp, max_epochs=2, lr=1e-2, random_state=0),
        {"lr_schedule": ["constant", "cosine"], "layer_decay": [None, 0.8],
         "l2sp": [0.0, 0.1], "label_smoothing": [0.0, 0.1]}, cv=2)
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 16
    assert clone(grid.best_estimator_).get_params()["l2sp"] in (0.0, 0.1)


# ---------------------------------------------------------------- LP-FT
def test_gradual_trains_the_head_on_cached_features_then_unfreezes(blobs, source_mlp):
    X, y = blobs
    clear_cache()
    clf = TransferClassifier(source_mlp, freeze=GradualUnfreeze(head_epochs=2),
                             max_epochs=4, lr=1e-2, random_state=0).fit(X, y)
    assert clf.history_["unfrozen"].tolist() == [False, False, True, False]
    stages = clf.stages_
    assert [s["epochs"] for s in stages] == [2, 2]
    assert stages[0]["cached_features"] and not stages[1]["cached_features"]
    assert get_cache().misses == len(X)  # the head stage's features, computed once
    before = source_mlp.state_dict
    after = clf.net_.module_.backbone.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # fine-tuned after
    assert not clf.feature_cache_used_  # predictions run the fine-tuned backbone


def test_gradual_head_stage_leaves_the_backbone_exactly_unchanged(blobs, source_mlp):
    X, y = blobs
    snapshot = _FirstStageEnd()
    clf = TransferClassifier(source_mlp, freeze="gradual:3", max_epochs=4, lr=1e-2,
                             callbacks=[("snapshot", snapshot)], random_state=0).fit(X, y)
    cb = dict(clf.net_.callbacks_)["snapshot"]
    assert all(torch.equal(source_mlp.state_dict[k], cb.state_[k]) for k in cb.state_)
    assert clf.stages_[0]["epochs"] == 3


class _FirstStageEnd(Callback):
    """Keeps the backbone's weights as they are when the first training stage ends."""

    def on_train_end(self, net, **kwargs):
        if getattr(self, "state_", None) is None:
            self.state_ = {k: v.clone() for k, v in net.module_.backbone.state_dict().items()}


def test_gradual_that_would_never_unfreeze_is_an_error(blobs, source_mlp):
    X, y = blobs
    clf = TransferClassifier(source_mlp, freeze="gradual:5", max_epochs=5)
    with pytest.raises(ValueError, match="never unfreeze"):
        clf.fit(X, y)


# ---------------------------------------------------------------- L2-SP
def _distance(clf, start):
    after = dict(clf.net_.module_.backbone.named_parameters())
    return sum(float((after[k].detach() - start[k]).pow(2).sum()) for k in after)


def test_l2sp_pulls_the_backbone_toward_its_starting_weights(blobs, source_mlp):
    X, y = blobs
    start = {k: v for k, v in source_mlp.state_dict.items() if "preprocess" not in k}
    params = dict(lr=3e-2, max_epochs=8, random_state=0, lr_schedule="constant")
    free = TransferClassifier(source_mlp, **params).fit(X, y)
    pulled = TransferClassifier(source_mlp, l2sp=10.0, **params).fit(X, y)
    start = {k.removeprefix("body."): v for k, v in start.items()}
    d_free = _distance(free, {f"body.{k}": v for k, v in start.items()})
    d_pulled = _distance(pulled, {f"body.{k}": v for k, v in start.items()})
    assert d_pulled < 0.5 * d_free
    # the head keeps plain weight decay, the backbone none
    groups = pulled.net_.optimizer_.param_groups
    assert {g["weight_decay"] for g in groups[:-1]} == {0.0}


# ---------------------------------------------------------------- augmentation, mixing
@pytest.mark.parametrize("augment", [True, "flip_crop", "trivialaugment", "randaugment",
                                     v2.RandomVerticalFlip()])
def test_augment_policies_fit(tiny_images, augment):
    X, y = tiny_images
    clf = TransferClassifier("cnn", backbone_kwargs=TINY_CNN, augment=augment, max_epochs=2,
                             random_state=0).fit(X, y)
    assert clf.predict(X).shape == y.shape
    assert clone(clf).get_params()["augment"] is not None


def test_a_transform_with_a_static_get_params_is_a_value(tiny_images):
    from sklearn.model_selection import cross_val_score

    X, y = tiny_images
    crop = v2.RandomCrop(8, padding=1)  # RandomCrop.get_params(img, output_size) is static
    clf = TransferClassifier("cnn", backbone_kwargs=TINY_CNN, augment=crop, max_epochs=1,
                             random_state=0)
    assert clf.get_params()["augment"] is crop  # was a TypeError from RandomCrop.get_params
    assert clf.set_params(lr=1e-2).lr == 1e-2
    copy = clone(clf)
    assert isinstance(copy.augment, v2.RandomCrop) and copy.augment is not crop
    assert len(cross_val_score(clf, X, y, cv=2)) == 2
    grid = {"augment": [v2.Compose([crop]), v2.Compose([v2.ColorJitter(0.2)])]}
    GridSearchCV(clf, grid, cv=2).fit(X, y)  # the documented way in a grid


def test_mixing_with_sample_weights_and_smoothing(tiny_images):
    X, y = tiny_images
    w = np.where(y == 0, 2.0, 0.5)
    for params in ({"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.2, "cutmix": 1.0,
                                                      "label_smoothing": 0.1}):
        clf = TransferClassifier("cnn", backbone_kwargs=TINY_CNN, max_epochs=2,
                                 random_state=0, **params).fit(X, y, sample_weight=w)
        assert np.isfinite(clf.history_["train_loss"]).all()


def test_mixing_bypasses_the_cache_and_cutmix_rejects_tables(blobs, tiny_images, source_cnn):
    X, y = tiny_images
    clf = TransferClassifier(source_cnn, freeze="backbone", mixup=0.2, max_epochs=1).fit(X, y)
    assert not clf.feature_cache_used_
    Xb, yb = blobs
    TransferClassifier(**FAST, mixup=0.2).fit(Xb, yb)  # MixUp mixes table rows
    with pytest.raises(ValueError, match="tabular"):
        TransferClassifier(**FAST, cutmix=0.2).fit(Xb, yb)


def test_label_smoothing_matches_cross_entropy_option(blobs):
    X, y = blobs
    clf = TransferClassifier(**FAST, label_smoothing=0.2).fit(X, y)
    logits = torch.randn(4, 3)
    target = torch.tensor([0, 1, 2, 0])
    expected = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.2)
    assert float(clf.net_.get_loss(logits, target)) == pytest.approx(float(expected))


# ---------------------------------------------------------------- LR finder
def test_lr_find_sweeps_and_leaves_the_estimator_unfitted(blobs, source_mlp):
    X, y = blobs
    clf = TransferClassifier(source_mlp, batch_size=16, backbone_lr_mult=0.1)
    result = lr_find(clf, X, y, num_iter=40, end_lr=100.0)
    assert not hasattr(clf, "net_")
    assert len(result.lrs) == len(result.losses) <= 40
    assert np.all(np.diff(result.lrs) > 0)
    assert result.lrs[0] == pytest.approx(1e-7)
    assert 1e-7 <= result.suggestion <= 100 and 1e-8 <= result.lr_min <= 10
    assert np.isfinite(result.smoothed).all()
    ax = result.plot()
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="start_lr"):
        lr_find(clf, X, y, start_lr=1.0, end_lr=0.1)


@pytest.mark.parametrize("num_iter", [30, 5])  # more epochs than the head stage; fewer
def test_lr_find_with_gradual_sweeps_the_head_alone_every_batch(blobs, source_mlp, num_iter):
    trainable = []  # trainable backbone weights at each training batch (lr_find fits a
    # clone of the estimator and of this callback; the list is shared by the closure)

    class Spy(Callback):
        def on_batch_begin(self, net, training=False, **kwargs):
            if training:
                trainable.append(sum(p.requires_grad for p in
                                     net.module_.backbone.parameters()))
    X, y = blobs
    clf = TransferClassifier(source_mlp, freeze="gradual:1", batch_size=16, max_epochs=20,
                             callbacks=[("spy", Spy())])
    result = lr_find(clf, X, y, num_iter=num_iter, end_lr=100.0)
    assert len(result.lrs) == len(trainable) >= 3
    assert not any(trainable)  # before: unfrozen after the head stage's one epoch
    clf.set_params(weight_interpolation=0.5)  # WiSE-FT, which needs both stages, is left out
    assert len(lr_find(clf, X, y, num_iter=num_iter, end_lr=100.0).lrs) >= 3


def test_lr_find_checks_the_estimators_parameters(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="'batch_size' parameter of TransferClassifier"):
        lr_find(TransferClassifier(batch_size=0), X, y)  # was a ZeroDivisionError


def test_lr_find_refuses_the_exact_head_solver(blobs, source_mlp):
    X, y = blobs
    with pytest.raises(ValueError, match="no learning rate to sweep.*head_solver='minibatch'"):
        lr_find(TransferClassifier(source_mlp, freeze="backbone", head_solver="lbfgs"), X, y)


# ---------------------------------------------------------------- defaults
def test_auto_resolves_to_the_measured_recipe_and_explicit_values_win(blobs, source_mlp):
    from sktransfer.schedules import FINETUNE_RECIPE, PLAIN_RECIPE

    X, y = blobs
    ft = TransferClassifier(source_mlp, max_epochs=1).fit(X, y)
    assert ft.training_recipe_ == FINETUNE_RECIPE
    scratch = TransferClassifier(**FAST).fit(X, y)
    assert scratch.training_recipe_ == PLAIN_RECIPE
    chosen = TransferClassifier(source_mlp, max_epochs=1, optimizer="adamw",
                                lr_schedule="cosine", warmup=0.1).fit(X, y)
    assert chosen.training_recipe_["lr_schedule"] == "cosine"
    assert isinstance(chosen.net_.optimizer_, torch.optim.AdamW)
