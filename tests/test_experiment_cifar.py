"""The CIFAR A/B experiment on synthetic images: held-out rows, recipes, reusing task A."""

import numpy as np
import pytest
from sklearn.utils import Bunch

from sktransfer.experiments import cifar as cifar_module
from sktransfer.experiments.cifar import A_RECIPE, B_RECIPES, CIFAR_STRATEGIES, run_cifar

TINY = dict(a_train_size=80, a_test_size=16, b_train_size=20, b_test_size=30, a_epochs=1,
            epochs=1, repeats=2, batch_size=16)


def _fake(per_class_available=60):
    def fetch(subset, *, data_home=None, download=False, max_per_class=None, verbose=0):
        if subset == "test":
            raise FileNotFoundError("CIFAR-10 test data not found")
        per = min(max_per_class or per_class_available, per_class_available)
        target = np.repeat(np.arange(10), per)
        rng = np.random.RandomState(0)
        images = rng.randint(0, 255, (len(target), 32, 32, 3), dtype=np.uint8)
        images[:, 0, 0, 0] = np.tile(np.arange(per), 10)  # row number within its class
        return Bunch(images=images, target=target, target_names=[str(i) for i in range(10)])
    return fetch


@pytest.fixture
def fake_cifar(monkeypatch):
    monkeypatch.setattr(cifar_module, "fetch_cifar10", _fake())


def test_recipes_cover_every_strategy_and_train_a_with_the_short_schedule():
    assert set(B_RECIPES) == set(CIFAR_STRATEGIES)
    assert A_RECIPE["lr_schedule"] == "onecycle" and A_RECIPE["augment"] == "flip_crop"
    assert all("max_epochs" in r for r in B_RECIPES.values())


def test_scratch_gets_the_augmentation_flips_and_budget_of_the_transferred_models():
    # an honest comparison: transfer must not win by starving the scratch model
    scratch = B_RECIPES["scratch"]
    for name, recipe in B_RECIPES.items():
        assert recipe.get("tta", False) == scratch.get("tta", False), name
        assert scratch["max_epochs"] >= recipe["max_epochs"], name
        if recipe.get("augment"):
            assert scratch.get("augment") == recipe["augment"], name


def test_task_a_is_scored_on_held_out_rows_and_b_on_unseen_ones(fake_cifar):
    res = run_cifar(None, **TINY)
    s = res.settings
    assert s["a_train_size"] == 80 and s["a_test_size"] == 16
    assert 0.0 <= s["a_model"]["test_acc"] <= 1.0
    assert s["a_model"]["fit_cpu_seconds"] > 0
    assert s["b_recipes"]["scratch"]["max_epochs"] == 1  # epochs= overrides each recipe
    assert s["a_recipe"]["batch_size"] == 16
    table = res.table
    assert table["strategy"].tolist() == list(CIFAR_STRATEGIES)
    assert (table["n_train"] == 20).all() and (table["n_test"] == 30).all()


def test_rows_do_not_overlap():
    target = np.repeat(np.arange(10), 60)
    a = [c for c in range(10) if c not in (0, 7)]
    train = cifar_module._rows(target, a, 0, 10)
    held = cifar_module._rows(target, a, 10, 12)
    assert not np.intersect1d(train, held).size and len(held) == 16
    pool = cifar_module._rows(target, [0, 7], 0, 20)
    test = cifar_module._rows(target, [0, 7], 20, 35)
    assert not np.intersect1d(pool, test).size


def test_task_b_reruns_alone_from_the_saved_task_a_network(fake_cifar, tmp_path):
    path = tmp_path / "a.pt"
    first = run_cifar(None, strategies="last-1", a_checkpoint=path, **TINY)
    assert path.is_file()
    again = run_cifar(None, strategies="last-1", a_backbone=path, **TINY)
    assert again.settings["a_model"]["source"] == "given (a_backbone)"
    # the checkpoint carries task A's numbers, so a B rerun still reports them
    assert again.settings["a_model"]["test_acc"] == first.settings["a_model"]["test_acc"]
    np.testing.assert_allclose(again.table["balanced_accuracy_mean"],
                               first.table["balanced_accuracy_mean"])


def test_scratch_alone_trains_no_task_a_network(fake_cifar):
    res = run_cifar(None, strategies="scratch", **TINY)
    assert "a_model" not in res.settings


def test_sizes_beyond_the_data_are_a_clear_error(monkeypatch):
    monkeypatch.setattr(cifar_module, "fetch_cifar10", _fake(per_class_available=12))
    with pytest.raises(ValueError, match="lower a_train_size or a_test_size"):
        run_cifar(None, **{**TINY, "a_train_size": 800})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"a_test_size": 0}, "a_test_size must be a positive int"),
    ({"epochs": 0}, "epochs must be a positive int or None"),
    ({"b_classes": (0, 0)}, "two distinct classes"),
    ({"b_classes": tuple(range(10))}, "leave at least one for task A"),
])
def test_bad_arguments_say_what_is_wrong(fake_cifar, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_cifar(None, **{**TINY, **kwargs})
