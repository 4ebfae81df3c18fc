"""export_backbone(): trained weights must survive clone, grids, pickling and files."""

import pickle

import numpy as np
import pytest
import torch
from conftest import FAST
from imblearn.over_sampling import RandomOverSampler
from imblearn.pipeline import make_pipeline
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sktransfer import ExportedBackbone, TransferClassifier


@pytest.fixture(scope="module")
def source(blobs):
    X, y = blobs
    return TransferClassifier(**{**FAST, "max_epochs": 8}).fit(X, y)


def _backbone_state(clf):
    return clf.net_.module_.backbone.state_dict()


def _assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k].cpu(), b[k].cpu(), msg=k)


def test_exported_weights_arrive_in_the_new_estimator(source, blobs):
    X, y = blobs
    exported = source.export_backbone()
    # lr=0 and a frozen backbone: the target network's backbone is exactly the source's
    target = TransferClassifier(exported, freeze="backbone", max_epochs=1, lr=1e-9).fit(X, y)
    _assert_same_weights(_backbone_state(target), _backbone_state(source))
    np.testing.assert_allclose(target.transform(X), source.transform(X), rtol=1e-5, atol=1e-6)
    scratch = TransferClassifier(**FAST).fit(X, y)
    assert not np.allclose(scratch.transform(X), source.transform(X))


def test_weights_survive_clone_and_pickle(source, blobs):
    X, y = blobs
    clf = TransferClassifier(source.export_backbone(), freeze="backbone", max_epochs=1, lr=1e-9)
    for copy in (clone(clf), pickle.loads(pickle.dumps(clf)), clone(clone(clf))):
        fitted = copy.fit(X, y)
        np.testing.assert_allclose(fitted.transform(X), source.transform(X), rtol=1e-5,
                                   atol=1e-6)


def test_weights_arrive_through_gridsearch_in_an_imblearn_pipeline(source, blobs):
    X, y = blobs
    y2 = (y == 0).astype(int)
    exported = source.export_backbone()
    pipe = make_pipeline(
        RandomOverSampler(random_state=0),
        TransferClassifier(max_epochs=2, lr=1e-9, random_state=0,
                           backbone_kwargs={"hidden": (16,)}),
    )
    grid = GridSearchCV(
        pipe,
        {"transferclassifier__backbone": ["mlp", exported],
         "transferclassifier__freeze": ["backbone", "last:2"]},
        cv=2, scoring="balanced_accuracy", refit=False,
    ).fit(X, y2)
    assert len(grid.cv_results_["params"]) == 4
    # refit the transferred candidate by hand through clone: its embeddings are the source's
    best = clone(pipe).set_params(transferclassifier__backbone=exported,
                                  transferclassifier__freeze="backbone").fit(X, y2)
    emb = best[-1].transform(X)
    np.testing.assert_allclose(emb, source.transform(X), rtol=1e-5, atol=1e-6)


def test_checkpoint_file_round_trip(source, blobs, tmp_path):
    X, y = blobs
    path = source.export_backbone().save(tmp_path / "source.pt")
    loaded = ExportedBackbone.load(path)
    _assert_same_weights(loaded.state_dict, _backbone_state(source))
    clf = TransferClassifier(str(path), freeze="backbone", max_epochs=1, lr=1e-9).fit(X, y)
    np.testing.assert_allclose(clf.transform(X), source.transform(X), rtol=1e-5, atol=1e-6)


def test_checkpoint_loading_is_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"sktransfer_backbone": 1, "payload": Evil()}, path)
    with pytest.raises(ValueError, match="could not read backbone checkpoint"):
        ExportedBackbone.load(path)


def test_plain_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match="not an sktransfer backbone checkpoint"):
        ExportedBackbone.load(path)


def test_weights_path_loads_a_state_dict(source, blobs, tmp_path):
    X, y = blobs
    path = tmp_path / "mlp_state.pt"
    torch.save(source.net_.module_.backbone.state_dict(), path)
    clf = TransferClassifier("mlp", weights=str(path), backbone_kwargs={"hidden": (16,)},
                             freeze="backbone", max_epochs=1, lr=1e-9).fit(X, y)
    np.testing.assert_allclose(clf.transform(X), source.transform(X), rtol=1e-5, atol=1e-6)


def test_fitted_estimator_as_backbone_is_refused_with_advice(source, blobs):
    X, y = blobs
    with pytest.raises(TypeError, match="export_backbone"):
        TransferClassifier(source, max_epochs=1).fit(X, y)


def test_feature_count_mismatch_is_explained(source):
    X = np.random.rand(30, 4)
    with pytest.raises(ValueError, match="expects 6 features but X has 4"):
        TransferClassifier(source.export_backbone(), max_epochs=1).fit(X, np.arange(30) % 2)


def test_exported_backbone_is_immutable_and_shared_by_copies(source):
    import copy

    exported = source.export_backbone()
    assert copy.deepcopy(exported) is exported
    assert "ExportedBackbone('mlp'" in repr(exported)
