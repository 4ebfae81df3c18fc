"""scikit-learn's own estimator checks, with the ones that cannot pass declared and explained."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import TransferClassifier

EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch training: repeating a row changes the batches and the number of "
        "optimisation steps, so weight 2 cannot equal a duplicated row exactly"
    ),
    "check_sample_weight_equivalence_on_sparse_data": "sparse input is not accepted",
}


@parametrize_with_checks(
    [
        TransferClassifier(
            max_epochs=10, lr=1e-2, backbone_kwargs={"hidden": (32,)}, random_state=0
        )
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_parameter_constraints_cover_every_parameter_and_are_enforced():
    """scikit-learn's own check for its estimators (not part of check_estimator): every
    ``__init__`` parameter has a constraint, and a value breaking any constraint makes
    fit and partial_fit raise InvalidParameterError before any work."""
    from sklearn.utils.estimator_checks import check_param_validation

    check_param_validation(
        "TransferClassifier",
        TransferClassifier(max_epochs=1, backbone_kwargs={"hidden": (8,)}, random_state=0),
    )
