"""weight_interpolation: WiSE-FT's average of LP-FT's probe and fine-tuned weights."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.utils._param_validation import InvalidParameterError

from sktransfer import TransferClassifier
from sktransfer.freeze import GradualUnfreeze


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=90, n_features=5, n_informative=4, n_redundant=0,
                               n_classes=3, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def source(data):
    """A "pretrained" body: an MLP fitted on the same kind of rows, exported."""
    X, y = data
    return TransferClassifier("mlp", backbone_kwargs={"hidden": (8,)}, max_epochs=3,
                              random_state=1).fit(X, y[::-1].copy()).export_backbone()


@pytest.fixture
def _lpft(source):
    def make(**params):
        params = {"freeze": GradualUnfreeze(1), "max_epochs": 4, "lr": 0.05,
                  "batch_size": 16, "head_solver": "lbfgs", "random_state": 0, **params}
        return TransferClassifier(source, **params)
    return make


def _weights(clf):
    return {k: v.detach().clone() for k, v in clf.net_.module_.state_dict().items()
            if v.is_floating_point()}


def test_the_two_ends_and_the_middle(data, _lpft):
    X, y = data
    probe = _weights(_lpft(weight_interpolation=0.0).fit(X, y))
    tuned = _weights(_lpft().fit(X, y))
    half = _weights(_lpft(weight_interpolation=0.5).fit(X, y))
    one = _weights(_lpft(weight_interpolation=1.0).fit(X, y))
    moved = [k for k in tuned if not np.allclose(probe[k], tuned[k])]
    assert any("backbone" in k for k in moved) and any("head" in k for k in moved)
    for k in tuned:
        np.testing.assert_allclose(half[k], (probe[k] + tuned[k]) / 2, atol=1e-6)
        np.testing.assert_allclose(one[k], tuned[k], atol=0)


def test_alpha_zero_is_the_exact_probe_on_the_pretrained_body(data, source, _lpft):
    X, y = data
    lpft = _lpft(weight_interpolation=0.0).fit(X, y)
    probe = TransferClassifier(source, freeze="backbone", head_solver="lbfgs",
                               random_state=0).fit(X, y)
    np.testing.assert_allclose(lpft.predict_proba(X), probe.predict_proba(X), atol=1e-5)
    assert [s["stage"] for s in lpft.stages_] == ["head", "fine-tune", "interpolate"]
    assert lpft.stages_[-1]["weight_interpolation"] == 0.0


def test_no_stage_recorded_without_interpolation(data, _lpft):
    X, y = data
    assert [s["stage"] for s in _lpft().fit(X, y).stages_] == ["head", "fine-tune"]


@pytest.mark.parametrize("freeze", ["none", "backbone", "last:1"])
def test_other_freeze_policies_are_refused(data, source, freeze):
    X, y = data
    clf = TransferClassifier(source, freeze=freeze, weight_interpolation=0.5, max_epochs=1)
    with pytest.raises(ValueError, match="freeze='gradual'"):
        clf.fit(X, y)


def test_a_continued_fit_is_refused(data, _lpft):
    X, y = data
    clf = _lpft(weight_interpolation=0.5, warm_start=True, head_solver="minibatch").fit(X, y)
    with pytest.raises(ValueError, match="continued fit"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="continued fit"):
        clf.partial_fit(X, y)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half"])
def test_out_of_range_is_a_parameter_error(data, _lpft, bad):
    X, y = data
    with pytest.raises(InvalidParameterError, match="weight_interpolation"):
        _lpft(weight_interpolation=bad).fit(X, y)


def test_a_head_stage_of_no_epochs_is_refused(data, source):
    X, y = data
    clf = TransferClassifier(source, freeze=GradualUnfreeze(0), weight_interpolation=0.5,
                             max_epochs=2)
    with pytest.raises(ValueError, match="head_epochs >= 1"):
        clf.fit(X, y)
