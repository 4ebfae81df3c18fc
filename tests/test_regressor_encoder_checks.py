"""scikit-learn's estimator checks for the regressor and the unsupervised encoder."""

import warnings

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import PretrainedEncoder, TransferRegressor

EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch training: repeating a row changes the batches and the number of "
        "optimisation steps, so weight 2 cannot equal a duplicated row exactly"
    ),
    "check_sample_weight_equivalence_on_sparse_data": "sparse input is not accepted",
}


@parametrize_with_checks(
    [
        TransferRegressor(
            max_epochs=10, lr=1e-2, backbone_kwargs={"hidden": (32,)}, random_state=0
        ),
        # random weights are what the checks need (no pretrained tabular network exists);
        # the warning that says so is silenced below
        PretrainedEncoder("mlp", weights=None, backbone_kwargs={"hidden": (8,)},
                          random_state=0),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*randomly initialised weights.*")
        check(estimator)


def test_checks_cover_both():
    names = {type(e).__name__ for e in (TransferRegressor(), PretrainedEncoder())}
    assert names == {"TransferRegressor", "PretrainedEncoder"}


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
