"""The private base class carries a task with nothing but its hooks (what a regressor needs)."""

import numpy as np
import torch
from sklearn.base import RegressorMixin, _fit_context, clone
from skorch import NeuralNet

from sktransfer._base_estimator import _TransferEstimatorBase
from sktransfer._training import HoldOut, WeightedNet


class ToyNet(WeightedNet):
    """The training net without the classifier's validation accuracy."""

    @property
    def _default_callbacks(self):
        return NeuralNet._default_callbacks.fget(self)


class ToyRegressor(RegressorMixin, _TransferEstimatorBase):
    """The smallest regressor on the shared machinery: four hooks and two methods."""

    _net_class = ToyNet

    def _encode_target(self, y, *, reset, classes=None):
        return np.asarray(y, dtype=np.float32).reshape(-1, 1)

    def _n_outputs(self):
        return 1

    def _criterion(self):
        return torch.nn.MSELoss

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        return self._fit(X, y, sample_weight)

    def predict(self, X):
        return self._predict_outputs(X).numpy().ravel()


def test_a_regressor_needs_only_the_hooks():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=120)
    reg = ToyRegressor(max_epochs=30, lr=1e-2, backbone_kwargs={"hidden": (16,)},
                       early_stopping=5, random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.8
    assert isinstance(reg.net_.train_split, HoldOut) and not reg.net_.train_split.stratify
    assert reg.transform(X).shape == (120, 16)
    assert "train_acc" not in reg.history_  # a classifier's callback, not the base's
    # the cached-feature path serves the regressor too
    frozen = ToyRegressor(reg.export_backbone(), freeze="backbone", max_epochs=3,
                          random_state=0).fit(X, y)
    assert frozen.feature_cache_used_
    np.testing.assert_allclose(frozen.predict(X), clone(frozen).fit(X, y).predict(X), rtol=1e-5)
    assert reg.export_backbone().meta["source"] == "ToyRegressor"
