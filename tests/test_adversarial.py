"""Bad inputs found by an adversarial sweep: each was a silent wrong result, a crash or an
unclear error, and is now correct or a clear error (see the table in CHANGELOG.md)."""

import io
import json
import os
import warnings

import numpy as np
import pytest
import torch
from conftest import FAST

import sktransfer
from sktransfer import TransferClassifier, TransferRegressor
from sktransfer._io import atomic_write
from sktransfer.cache import clear_cache
from sktransfer.datasets import fetch_cifar10, get_data_home
from sktransfer.persist import _digest


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 5)
    y = (X[:, 0] + 0.3 * rng.rand(40) > 0.6).astype(int)
    return X, y


# -- sample weights: the loss is sum(w * l) / sum(w), so their scale must not matter ------
@pytest.mark.parametrize("scale", [1e-20, 1e36])
def test_sample_weight_scale_does_not_change_the_fit(data, scale):
    X, y = data
    w = np.where(np.arange(40) % 3 == 0, 2.0, 1.0)
    ref = TransferClassifier(**FAST).fit(X, y, sample_weight=w).predict_proba(X)
    # 1e-20: weights summed below the loss's zero guard and training silently stalled;
    # 2e36 is beyond float32's range once cast: a NaN loss ("lower lr, check X")
    got = TransferClassifier(**FAST).fit(X, y, sample_weight=w * scale).predict_proba(X)
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("scale", [1e-30, 1e39])
def test_class_weight_scale_does_not_change_the_fit(data, scale):
    # before: 1e39 diverged (NaN loss, "lower lr"); 1e-30 trained another, stalled model
    X, y = data
    ref = TransferClassifier(**FAST, class_weight={0: 2, 1: 1}).fit(X, y).predict_proba(X)
    got = TransferClassifier(**FAST, class_weight={0: 2 * scale, 1: scale}).fit(X, y)
    np.testing.assert_allclose(got.predict_proba(X), ref, atol=1e-5)


def test_regressor_sample_weight_beyond_float32_trains(data):
    X, y = data
    w = np.where(np.arange(40) == 3, 1e39, 1.0)
    reg = TransferRegressor(**FAST).fit(X, y.astype(float), sample_weight=w)
    assert np.isfinite(reg.predict(X)).all()


# -- save / load ---------------------------------------------------------------------------
@pytest.fixture
def saved(data, tmp_path):
    X, y = data
    clf = TransferClassifier(**FAST).fit(X, y)
    return clf, sktransfer.save(clf, tmp_path / "m.skt"), X


def _rewrite(path, change, keep_digest=True):
    """Change the payload of a saved file; with keep_digest, as a careful forger would."""
    payload = torch.load(path, weights_only=True)
    doc = json.loads(payload["json"])
    change(doc, payload["tensors"])
    payload["json"] = json.dumps(doc)
    if keep_digest:
        payload["sha256"] = _digest(payload["json"], payload["tensors"])
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def test_one_flipped_bit_in_a_weight_is_refused(saved):
    clf, path, X = saved
    raw = bytearray(path.read_bytes())
    weight = clf.net_.module_.state_dict()["head.0.weight"].numpy().tobytes()
    at = bytes(raw).find(weight)
    assert at > 0  # torch stores tensor data uncompressed
    raw[at + 5] ^= 0x10  # before: loaded, and predicted with another weight
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"m.skt is damaged: its content does not match the "
                                         r"SHA-256"):
        sktransfer.load(path)


def test_changed_payload_without_a_new_digest_is_refused(saved):
    _, path, _ = saved
    _rewrite(path, lambda doc, t: doc["params"].update(lr=0.5), keep_digest=False)
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        sktransfer.load(path)


@pytest.mark.parametrize("change, message", [
    (lambda doc, t: doc.pop("fitted"), r"m.skt is damaged or incomplete: it has no fitted"),
    (lambda doc, t: doc["params"].update(lr="abc"),
     r"cannot load .*m.skt: The 'lr' parameter of TransferClassifier must be"),
    (lambda doc, t: doc["params"].update(zzz=1), r"m.skt is damaged or was written by an "
                                                  r"incompatible sktransfer: TypeError"),
    (lambda doc, t: doc["fitted"].pop("input_kind_"), r"m.skt is damaged .*KeyError"),
    (lambda doc, t: t.update({"module.head.0.weight": t["module.head.0.weight"] * np.nan}),
     r"m.skt holds non-finite weights \(module.head.0.weight\)"),
])
def test_inconsistent_files_name_the_file(saved, change, message):
    # before: KeyError 'fitted', a bare float() error, TypeError from __init__, and NaN
    # weights loaded as a model predicting NaN probabilities
    _, path, _ = saved
    with pytest.raises(ValueError, match=message):
        sktransfer.load(_rewrite(path, change))


def test_save_to_a_folder_or_an_unwritable_place_names_the_target(saved, tmp_path):
    clf, _, _ = saved
    # before: "[Errno 21] Is a directory: '/tmp/.xyz.part' -> '<folder>'"
    with pytest.raises(IsADirectoryError, match=rf"cannot write {tmp_path}: it is a folder"):
        sktransfer.save(clf, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"cannot write .*file/m.skt: .*file is a "
                                                 r"file, not a folder"):
        sktransfer.save(clf, tmp_path / "file" / "m.skt")
    with pytest.raises(OSError, match=r"cannot write .*file/m.skt"), \
            atomic_write(tmp_path / "file" / "m.skt"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m.skt"]


# -- data home -------------------------------------------------------------------------------
def test_data_home_that_is_a_file_says_so(tmp_path):
    home = tmp_path / "home"
    home.write_text("not a folder")
    # before: a FileNotFoundError listing paths below the file as places looked in
    with pytest.raises(NotADirectoryError, match=rf"the data home {home} is a file"):
        fetch_cifar10(data_home=home, download=False)
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        get_data_home(home)


# -- feature cache ----------------------------------------------------------------------------
def test_symlinked_cache_entry_is_recomputed_not_served(data, tmp_path):
    X, y = data
    clear_cache()
    params = {**FAST, "freeze": "backbone", "weights": None, "cache_dir": tmp_path}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # frozen random weights
        ref = TransferClassifier(**params).fit(X, y).predict_proba(X)
    entries = sorted(tmp_path.rglob("*.npy"))
    assert len(entries) == len(X)
    entries[0].unlink()
    os.symlink(entries[1], entries[0])  # another sample's features
    clear_cache()
    # before: the linked features were used as the sample's own, a different model
    with pytest.warns(UserWarning, match=r"1 entries .* could not be used \(1 symbolic links"):
        got = TransferClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert not entries[0].is_symlink() and entries[0].is_file()
    clear_cache()
