"""The experiment functions on tiny data: gas (embedded), CIFAR and monkeys (synthetic)."""

import numpy as np
import pytest
from sklearn.utils import Bunch

from sktransfer.baselines import BASELINES, make_baseline
from sktransfer.datasets import load_gas_drift
from sktransfer.experiments import cifar as cifar_module
from sktransfer.experiments import monkeys as monkeys_module
from sktransfer.experiments import parse_gas_task, run_cifar, run_gas, run_monkeys
from sktransfer.experiments._common import few_label_splits, select_strategies

TINY_GAS = {"epochs": 2, "source_epochs": 2, "hidden": (16,), "repeats": 2}


@pytest.fixture(scope="module")
def gas():
    return load_gas_drift()


def test_few_label_splits_label_every_class_and_never_overlap():
    y = np.array([0] * 50 + [1] * 12 + [2] * 3)
    splits = few_label_splits(y, 0.1, repeats=3, random_state=0)
    assert len(splits) == 3
    for labelled, scored in splits:
        assert np.intersect1d(labelled, scored).size == 0
        assert len(labelled) + len(scored) == len(y)
        assert np.bincount(y[labelled]).tolist() == [5, 2, 2]
    assert not np.array_equal(splits[0][0], splits[1][0])
    with pytest.raises(ValueError, match="class 2 has 2 row"):
        few_label_splits(np.array([0] * 20 + [2] * 2), 0.1, 1, 0)


def test_select_strategies():
    available = ("scratch", "fine-tune", "baseline")
    assert select_strategies(None, available, "x") == list(available)
    assert select_strategies("svm_rbf,scratch", available, "x") == ["scratch", "svm_rbf"]
    with pytest.raises(ValueError, match="choose from: scratch, fine-tune, baseline, "):
        select_strategies(["nope"], available, "x")


def test_parse_gas_task():
    assert parse_gas_task("multiclass") is None
    assert parse_gas_task("binary:3") == "ammonia"
    for bad in ("binary:", "binary:air", "ternary:ethanol"):
        with pytest.raises(ValueError, match="binary:<gas>"):
            parse_gas_task(bad)


def test_baselines_are_scaled_pipelines():
    for name in BASELINES:
        pipe = make_baseline(name, random_state=0, class_weight="balanced")
        assert pipe.steps[0][0] == "standardscaler"
        final = pipe[-1]
        if hasattr(final, "param_grid"):  # tuned baselines: an inner GridSearchCV
            final = final.estimator
        assert final.get_params()["class_weight"] == "balanced"
    with pytest.raises(ValueError, match="known baselines"):
        make_baseline("knn")


def test_run_gas_binary(gas):
    res = run_gas(gas.data, gas.target, gas.batch, [1], [4], task="binary:acetaldehyde",
                  label_fraction=0.2, **TINY_GAS)
    table = res.table
    assert table["model"].tolist() == [
        "mlp-scratch", "mlp-fine-tune", "mlp-feature-extraction", "mlp-last-2", "mlp-gradual",
        "mlp-source-only", "logistic_regression", "svm_rbf", "random_forest"]
    assert set(table["target"]) == {"batch 4"}
    trained = table[table["strategy"] != "source-only"]
    assert trained["n_train"].nunique() == 1  # the same labelled rows for every model
    assert table.loc[table["strategy"] == "source-only", "n_train"].tolist() == [0]
    assert {"precision_acetaldehyde", "recall_other", "roc_auc", "kappa"} <= set(res.metrics)
    assert res.settings["class_weight"] == "balanced"
    assert res.settings["targets"]["batch 4"]["class_counts"] == {"other": 131,
                                                                  "acetaldehyde": 30}
    assert set(res.histories["model"]) == {"mlp-scratch", "mlp-fine-tune",
                                           "mlp-feature-extraction", "mlp-last-2",
                                           "mlp-gradual"}


def test_run_gas_multiclass_notes_missing_source_classes(gas):
    res = run_gas(gas.data, gas.target, gas.batch, [4], [1], strategies="scratch,source-only",
                  **TINY_GAS)
    assert res.table["model"].tolist() == ["mlp-scratch"]
    assert "toluene" in res.settings["notes"][0]


def test_experiment_threads_are_checked(gas):
    from sktransfer.experiments._common import network_threads

    assert network_threads("tune") == {"n_threads": "tune"} and network_threads(2) == {}
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive int, 'tune' or None"):
            run_gas(gas.data, gas.target, gas.batch, [1], [4], threads=bad,
                    strategies="scratch", **TINY_GAS)


def test_run_gas_errors(gas):
    with pytest.raises(ValueError, match="single class"):
        run_gas(gas.data, gas.target, gas.batch, [1], [4], task="binary:toluene", **TINY_GAS)
    with pytest.raises(ValueError, match="not found in the data"):
        run_gas(gas.data, gas.target, gas.batch, [1], [9], **TINY_GAS)
    with pytest.raises(ValueError, match="unknown strategy"):
        run_gas(gas.data, gas.target, gas.batch, [1], [4], strategies="last-1", **TINY_GAS)
    with pytest.raises(ValueError, match=r"target batches \[4\] are listed more than once"):
        run_gas(gas.data, gas.target, gas.batch, [1], [4, 5, 4], **TINY_GAS)  # was merged


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_experiment_epochs_are_checked(gas, bad):
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        run_gas(gas.data, gas.target, gas.batch, [1], [4], epochs=bad, strategies="scratch")
    with pytest.raises(ValueError, match="source_epochs must be a positive int"):
        run_gas(gas.data, gas.target, gas.batch, [1], [4], source_epochs=bad)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        run_monkeys("/nowhere", epochs=bad)  # epochs=0 fell back to the defaults


def _fake_cifar(subset, *, data_home=None, download=False, max_per_class=None, verbose=0):
    if subset == "test":
        raise FileNotFoundError("CIFAR-10 test data not found")
    rng = np.random.RandomState(0)
    per = max_per_class or 50
    target = np.repeat(np.arange(10), per)
    images = rng.randint(0, 255, (len(target), 32, 32, 3), dtype=np.uint8)
    images[target == 0, :, :, 0] = 255  # B classes told apart by colour
    return Bunch(images=images, target=target, target_names=[str(i) for i in range(10)])


def test_run_cifar_holds_out_b_test_images(monkeypatch):
    monkeypatch.setattr(cifar_module, "fetch_cifar10", _fake_cifar)
    res = run_cifar(None, a_train_size=80, b_train_size=20, b_test_size=30, a_epochs=1,
                    epochs=1, repeats=2, batch_size=16)
    table = res.table
    assert table["model"].tolist() == ["cnn-scratch", "cnn-last-1", "cnn-last-2",
                                       "cnn-fine-tune"]
    assert table["strategy"].tolist() == ["scratch", "last-1", "last-2", "fine-tune"]
    assert (table["n_train"] == 20).all() and (table["n_test"] == 30).all()
    assert res.settings["b_test_source"] == "held-out CIFAR-10 training images"
    assert "test split was not found" in res.settings["notes"][0]
    assert res.targets == ["B: airplane vs horse"]
    assert {"precision_airplane", "recall_horse"} <= set(res.metrics)


def _fake_monkeys(subset, *, data_home=None, image_size=None, verbose=0, **_):
    if subset == "validation":
        raise FileNotFoundError("validation split not found")
    rng = np.random.RandomState(0)
    target = np.repeat(np.arange(10), 5)
    images = rng.randint(0, 255, (len(target), image_size, image_size, 3), dtype=np.uint8)
    return Bunch(images=images, target=target, target_names=[f"m{i}" for i in range(10)])


def test_run_monkeys_scores_on_a_held_out_part(monkeypatch):
    monkeypatch.setattr(monkeys_module, "fetch_monkeys", _fake_monkeys)
    res = run_monkeys(None, image_size=32, scratch_image_size=32, epochs=1, batch_size=16,
                      strategies="scratch,feature-extraction")
    table = res.table
    assert table["strategy"].tolist() == ["scratch", "feature-extraction"]
    assert table["model"].tolist() == ["cnn-scratch", "efficientnet_lite0-feature-extraction"]
    assert (table["n_test"] == 10).all() and (table["n_train"] == 40).all()
    assert "validation split is not available" in res.settings["notes"][0]
    assert res.settings["test_source"].startswith("held-out 20%")



def test_run_monkeys_fine_tunes_with_frozen_batchnorm(monkeypatch):
    monkeypatch.setattr(monkeys_module, "fetch_monkeys", _fake_monkeys)
    res = run_monkeys(None, image_size=32, epochs=2, batch_size=16, strategies="fine-tune")
    assert res.table["strategy"].tolist() == ["fine-tune"]
    assert res.histories["unfrozen"].tolist() == [False, True]
    assert res.settings["ft_batchnorm"].startswith("frozen")


def test_run_monkeys_fine_tune_default_is_lp_ft(monkeypatch):
    # the defaults: the head solved exactly first (one L-BFGS solve on cached features),
    # then the whole network trains 3 epochs with its own warmup + cosine schedule
    monkeypatch.setattr(monkeys_module, "fetch_monkeys", _fake_monkeys)
    res = run_monkeys(None, image_size=32, batch_size=16, strategies="fine-tune")
    unfrozen = res.histories["unfrozen"].tolist()  # True on the first unfrozen epoch
    assert len(unfrozen) == 4 and unfrozen.index(True) == 1 and sum(unfrozen) == 1
    assert res.settings["head_solver"] == "lbfgs"
    assert res.settings["lr_schedule"] == "cosine" and res.settings["tta"] is True
    assert res.settings["epochs"] == {"efficientnet_lite0-fine-tune": 33}


def test_run_monkeys_fine_tune_averages_probe_and_fine_tuned_weights(monkeypatch):
    # WiSE-FT at the paper's 0.5 by default; none when a one-epoch run has no probe stage
    monkeypatch.setattr(monkeys_module, "fetch_monkeys", _fake_monkeys)
    stages = []
    fit = monkeys_module.TransferClassifier.fit

    def spy(self, X, y, **kwargs):
        out = fit(self, X, y, **kwargs)
        stages.append([s["stage"] for s in out.stages_])
        return out

    monkeypatch.setattr(monkeys_module.TransferClassifier, "fit", spy)
    res = run_monkeys(None, image_size=32, batch_size=16, strategies="fine-tune",
                      epochs=2)
    assert res.settings["ft_weight_interpolation"] == 0.5
    # a one-epoch run has no probe stage to solve either (the default lbfgs LP)
    one = run_monkeys(None, image_size=32, batch_size=16, strategies="fine-tune", epochs=1)
    assert stages == [["head", "fine-tune", "interpolate"], ["train"]]
    assert one.settings["head_solver"] == "lbfgs"  # still the frozen head's solver


def test_run_monkeys_pretrained_models_run_at_image_size(monkeypatch):
    # not at the backbone's own 224 px: the images' resolution is the one asked for
    monkeypatch.setattr(monkeys_module, "fetch_monkeys", _fake_monkeys)
    seen = []
    fit = monkeys_module.TransferClassifier.fit

    def spy(self, X, y, **kwargs):
        seen.append(self.image_size)
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(monkeys_module.TransferClassifier, "fit", spy)
    run_monkeys(None, image_size=40, scratch_image_size=32, epochs=2, batch_size=16,
                strategies="feature-extraction,fine-tune")
    assert seen == [40, 40]
    # minibatch heads stay available
    res = run_monkeys(None, image_size=32, batch_size=16, strategies="fine-tune",
                      head_solver="minibatch", epochs=3, ft_head_epochs=2)
    assert res.histories["unfrozen"].tolist() == [False, False, True]
