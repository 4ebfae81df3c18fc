"""The frozen-feature cache: exact where it applies, bypassed where it would not be."""

import logging
import os
import threading
import warnings

import numpy as np
import pytest
import torch
from conftest import FAST, TINY_CNN
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sktransfer import TransferClassifier
from sktransfer.cache import (
    ENTRY_OVERHEAD,
    CacheDirWarning,
    FeatureCache,
    clear_cache,
    get_cache,
    module_fingerprint,
    sample_digests,
)


@pytest.fixture(autouse=True)
def empty_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def exported(blobs):
    X, y = blobs
    return TransferClassifier(**FAST).fit(X, y).export_backbone()


@pytest.fixture(scope="module")
def exported_cnn(tiny_images):
    X, y = tiny_images
    return TransferClassifier("cnn", backbone_kwargs=TINY_CNN, max_epochs=2,
                              random_state=0).fit(X, y).export_backbone()


@pytest.mark.parametrize("data", ["tabular", "images"])
def test_cached_and_uncached_training_give_the_same_model(data, blobs, tiny_images, exported,
                                                          exported_cnn):
    X, y = blobs if data == "tabular" else tiny_images
    backbone = exported if data == "tabular" else exported_cnn
    params = dict(backbone=backbone, freeze="backbone", head=(8,), max_epochs=6, lr=1e-2,
                  random_state=0, validation_fraction=0.2)
    cached = TransferClassifier(**params).fit(X, y)
    plain = TransferClassifier(**params, cache_features=False).fit(X, y)
    assert cached.feature_cache_used_ and not plain.feature_cache_used_
    np.testing.assert_array_equal(cached.predict(X), plain.predict(X))
    np.testing.assert_allclose(cached.predict_proba(X), plain.predict_proba(X), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(cached.history_["train_loss"], plain.history_["train_loss"],
                               rtol=1e-4)
    np.testing.assert_allclose(cached.transform(X), plain.transform(X), rtol=1e-5, atol=1e-6)


def test_clones_share_the_cache_and_find_subsets(blobs, exported):
    X, y = blobs
    cache = get_cache()
    clf = TransferClassifier(exported, freeze="backbone", max_epochs=1)
    clone(clf).fit(X, y)
    assert cache.misses == len(X) and cache.hits == 0
    clone(clf).fit(X[::2], y[::2])  # a fold: a subset of the same rows
    assert cache.misses == len(X) and cache.hits == len(X[::2])


def test_gridsearch_computes_each_rows_features_once(blobs, exported):
    X, y = blobs
    cache = get_cache()
    GridSearchCV(TransferClassifier(exported, freeze="backbone", max_epochs=2),
                 {"lr": [1e-3, 1e-2], "head": ["linear", (8,)]}, cv=3).fit(X, y)
    assert cache.misses == len(X)  # 4 candidates x 3 folds x (fit + score) + refit
    assert cache.hits > 10 * len(X)


def test_key_depends_on_the_weights_and_the_input_bytes(blobs, exported):
    X, y = blobs
    cache = get_cache()
    TransferClassifier(exported, freeze="backbone", max_epochs=1).fit(X, y)
    other = TransferClassifier(**{**FAST, "random_state": 1}).fit(X, y).export_backbone()
    TransferClassifier(other, freeze="backbone", max_epochs=1).fit(X, y)
    assert cache.misses == 2 * len(X)
    X2 = X.copy()
    X2[0, 0] += 1.0  # (a change float32 cannot see would rightly hit)
    TransferClassifier(exported, freeze="backbone", max_epochs=1).fit(X2, y)
    assert cache.misses == 2 * len(X) + 1


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"freeze": "none"}, "trains backbone layers"),
        ({"freeze": "last:2"}, "trains backbone layers"),
        # "gradual" now trains its head stage on cached features: tests/test_fine_tuning.py
        ({"freeze": "backbone", "augment": True}, "augment=True"),
    ],
)
def test_bypassed_with_the_reason_in_the_log(tiny_images, exported_cnn, caplog, params,
                                             reason):
    X, y = tiny_images
    with caplog.at_level(logging.INFO, logger="sktransfer"):
        clf = TransferClassifier(exported_cnn, max_epochs=1, **params).fit(X, y)
    assert not clf.feature_cache_used_
    assert "feature cache bypassed: " in caplog.text and reason in caplog.text
    assert len(get_cache()) == 0
    with pytest.warns(UserWarning, match=reason):
        TransferClassifier(exported_cnn, max_epochs=1, cache_features=True, **params).fit(X, y)


def test_disabled_cache_stores_nothing(blobs, exported):
    X, y = blobs
    TransferClassifier(exported, freeze="backbone", max_epochs=1, cache_features=False).fit(X, y)
    assert len(get_cache()) == 0


def test_memory_is_bounded_least_recently_used_out():
    cache = FeatureCache(max_bytes=10 * (4 * 4 + ENTRY_OVERHEAD))  # ten rows of 4 float32
    keys = [bytes([i]) for i in range(15)]
    cache.get_many("b", keys, lambda idx: torch.arange(len(idx) * 4.0).view(-1, 4))
    assert len(cache) == 10 and cache.nbytes <= cache.max_bytes
    cache.get_many("b", keys[-10:], lambda idx: pytest.fail("should be cached"))
    cache.get_many("b", keys[:1], lambda idx: torch.zeros(len(idx), 4))
    assert cache.misses == 16 and len(cache) == 10


def test_repeated_rows_are_computed_once():
    cache = FeatureCache()
    keys = [b"a", b"b", b"a", b"c", b"b", b"a"]  # an oversampler's copies
    asked = []

    def compute(idx):
        asked.append(list(idx))
        return torch.tensor([[float(i)] for i in idx])  # the row's position as its value
    rows = cache.get_many("b", keys, compute)
    assert asked == [[0, 1, 3]]  # each distinct row once (was all six)
    assert rows[:, 0].tolist() == [0.0, 1.0, 0.0, 3.0, 1.0, 0.0]
    assert cache.misses == 3 and cache.hits == 3  # the copies count as found


def test_disk_directory_outlives_memory(blobs, exported, tmp_path):
    X, y = blobs
    params = dict(backbone=exported, freeze="backbone", max_epochs=1, cache_dir=str(tmp_path),
                  random_state=0)
    first = TransferClassifier(**params).fit(X, y)
    assert len(list(tmp_path.rglob("*.npy"))) == len(X)
    clear_cache()  # a new process, as far as memory goes
    again = TransferClassifier(**params).fit(X, y)
    assert get_cache().misses == 0 and get_cache().hits == len(X)
    np.testing.assert_array_equal(first.predict(X), again.predict(X))


def test_joblib_memory_as_cache_dir(blobs, exported, tmp_path):
    from joblib import Memory

    X, y = blobs
    TransferClassifier(exported, freeze="backbone", max_epochs=1,
                       cache_dir=Memory(tmp_path, verbose=0)).fit(X, y)
    assert len(list(tmp_path.rglob("*.npy"))) == len(X)


def test_image_paths_are_keyed_by_file(tiny_images, exported_cnn, tmp_path):
    from PIL import Image

    X, y = tiny_images
    paths = []
    for i, img in enumerate(X):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    P = np.array(paths, dtype=object).reshape(-1, 1)
    clf = TransferClassifier(exported_cnn, freeze="backbone", max_epochs=1).fit(P, y)
    assert clf.feature_cache_used_ and get_cache().misses == len(P)
    clf.predict(P)
    assert get_cache().hits == len(P)


def test_bf16_mixed_precision_path_runs_on_cpu(blobs):
    X, y = blobs
    clf = TransferClassifier(**{**FAST, "max_epochs": 8}, mixed_precision="bf16").fit(X, y)
    assert clf.net_.amp_dtype == torch.bfloat16
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="fp16' needs CUDA"):
        TransferClassifier(**FAST, mixed_precision="fp16", device="cpu").fit(X, y)
    assert TransferClassifier(**FAST).fit(X, y).net_.amp_dtype is None  # auto on CPU


# ---------------------------------------------------------------- keys of user modules
class Scaled(torch.nn.Module):
    """Equal weights, another output: ``forward`` reads a plain attribute."""

    def __init__(self, scale: float):
        super().__init__()
        self.linear = torch.nn.Linear(6, 4)
        self.scale = scale

    def forward(self, x):
        return self.linear(x) * self.scale


def test_user_modules_with_equal_weights_and_another_forward_do_not_share(blobs):
    X, y = blobs
    one = Scaled(1.0)
    three = Scaled(3.0)
    three.load_state_dict(one.state_dict())
    params = dict(freeze="backbone", max_epochs=1, random_state=0)
    a = TransferClassifier(one, **params).fit(X, y)
    b = TransferClassifier(three, **params).fit(X, y)
    assert a.feature_cache_used_ and b.feature_cache_used_
    assert get_cache().misses == 2 * len(X)
    np.testing.assert_allclose(b.transform(X), 3 * a.transform(X), rtol=1e-5, atol=1e-6)


class PrivateScaled(torch.nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.linear = torch.nn.Linear(6, 4)
        self._factor = factor  # a private attribute forward reads

    def forward(self, x):
        return self.linear(x) * self._factor


def _scaled_by(k):
    import functools

    def decorate(method):
        @functools.wraps(method)
        def wrapper(*args):
            return method(*args) * k
        return wrapper
    return decorate


def test_private_attributes_and_decorator_arguments_are_part_of_the_key():
    one, three = PrivateScaled(1.0), PrivateScaled(3.0)
    three.load_state_dict(one.state_dict())
    assert module_fingerprint(one) != module_fingerprint(three)  # was served one's features

    def twin(k):
        cls = type("Decorated", (torch.nn.Module,),
                   {"forward": _scaled_by(k)(lambda self, x: x)})
        cls.__qualname__ = "Decorated"
        return cls()
    assert module_fingerprint(twin(2.0)) != module_fingerprint(twin(3.0))
    assert module_fingerprint(twin(2.0)) == module_fingerprint(twin(2.0))


class AutocastWithALock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(6, 4)
        self._lock = threading.Lock()  # private state that cannot be pickled

    @torch.autocast("cpu", enabled=False)  # a library's decorator (functools.wraps)
    def forward(self, x):
        return self.linear(x)


def test_library_decorators_and_unpicklable_private_state_keep_a_stable_key():
    module = AutocastWithALock()
    before = module_fingerprint(module)  # keyable: the lock counts by its type
    module(torch.zeros(2, 6))
    assert module_fingerprint(module) == before  # the decorator's state is torch's


def _class_with_forward(factor):
    namespace = {}
    exec(f"def forward(self, x):\n    return x * {factor}\n", namespace)
    cls = type("Twin", (torch.nn.Module,), {"forward": namespace["forward"]})
    cls.__qualname__ = "Twin"
    return cls


def test_same_class_name_with_other_code_gets_another_key():
    first, second = _class_with_forward(1.0)(), _class_with_forward(2.0)()
    assert type(first).__qualname__ == type(second).__qualname__
    assert module_fingerprint(first) != module_fingerprint(second)
    assert module_fingerprint(first) == module_fingerprint(_class_with_forward(1.0)())


class Opaque:
    """Copies itself but cannot be pickled: nothing to build a key from."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("not picklable")


def test_a_module_that_cannot_be_keyed_is_not_cached(blobs, caplog):
    X, y = blobs
    module = Scaled(1.0)
    module.helper = Opaque()
    with caplog.at_level(logging.INFO, logger="sktransfer"):
        clf = TransferClassifier(module, freeze="backbone", max_epochs=1).fit(X, y)
    assert not clf.feature_cache_used_ and len(get_cache()) == 0
    assert "cannot be keyed" in caplog.text and "'helper'" in caplog.text


# ---------------------------------------------------------------- keys of image files
def test_an_image_overwritten_with_its_mtime_restored_gets_new_features(tiny_images,
                                                                        exported_cnn, tmp_path):
    from PIL import Image

    X, y = tiny_images
    paths = []
    for i, img in enumerate(X):
        Image.fromarray(img).save(tmp_path / f"{i}.bmp")  # uncompressed: same size
        paths.append(str(tmp_path / f"{i}.bmp"))
    P = np.array(paths, dtype=object).reshape(-1, 1)
    clf = TransferClassifier(exported_cnn, freeze="backbone", max_epochs=1).fit(P, y)
    before = clf.transform(P[:1])
    stat = os.stat(paths[0])
    Image.fromarray(X[1]).save(paths[0])  # another picture, same byte size
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(paths[0]).st_size == stat.st_size
    assert os.stat(paths[0]).st_mtime_ns == stat.st_mtime_ns
    after = clf.transform(P[:1])
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, clf.transform(P[1:2]), rtol=1e-5, atol=1e-6)


def test_identical_files_share_one_key(tmp_path):
    (tmp_path / "a.png").write_bytes(b"same bytes")
    (tmp_path / "b.png").write_bytes(b"same bytes")
    (tmp_path / "c.png").write_bytes(b"other bytes")
    a, b, c = sample_digests(np.array([str(tmp_path / f"{n}.png") for n in "abc"],
                                      dtype=object))
    assert a == b != c


# ---------------------------------------------------------------- what is read is checked
@pytest.mark.parametrize("keep_format_file", [True, False])
def test_invalid_cache_files_are_recomputed_never_used(blobs, exported, tmp_path,
                                                       keep_format_file):
    X, y = blobs
    params = dict(backbone=exported, freeze="backbone", max_epochs=1, cache_dir=str(tmp_path),
                  random_state=0)
    clf = TransferClassifier(**params).fit(X, y)
    expected = clf.transform(X)
    files = sorted(f for f in tmp_path.rglob("*.npy"))
    width = np.load(files[0]).shape
    np.save(files[0], np.full(width, np.nan, dtype=np.float32))  # NaN-filled
    files[1].write_bytes(b"")  # zero bytes
    np.save(files[2], np.zeros(3, dtype=np.float32))  # wrong shape
    np.save(files[3], np.zeros(width, dtype=np.float64))  # wrong dtype
    files[4].write_bytes(b"\x93NUMPY garbage")  # torn
    if not keep_format_file:
        next(tmp_path.rglob("_format.json")).unlink()
    clear_cache()
    with pytest.warns(CacheDirWarning, match=r"5 entries in .* could not be used"):
        again = clf.transform(X)
    np.testing.assert_allclose(again, expected, rtol=1e-6)
    assert get_cache().misses == 5 and get_cache().rejected == 5
    for f in files[:5]:  # rewritten valid
        assert np.load(f).shape == width and np.isfinite(np.load(f)).all()
    clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TransferClassifier(**params).fit(X, y)
    assert get_cache().misses == 0


def test_cache_files_of_another_width_are_not_used(blobs, exported, tmp_path):
    """Every file of the folder replaced by a consistent but wrong-shaped one."""
    X, y = blobs
    params = dict(backbone=exported, freeze="backbone", max_epochs=1, cache_dir=str(tmp_path))
    clf = TransferClassifier(**params).fit(X, y)
    expected = clf.transform(X)
    for f in tmp_path.rglob("*.npy"):
        np.save(f, np.ones(2, dtype=np.float32))
    clear_cache()
    with pytest.warns(CacheDirWarning, match="wrong shape"):
        np.testing.assert_allclose(clf.transform(X), expected, rtol=1e-6)


# ---------------------------------------------------------------- memory
def test_the_byte_bound_counts_what_the_entries_really_hold():
    import tracemalloc

    cache = FeatureCache(max_bytes=2**30)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for start in range(0, 3000, 500):
            keys = [i.to_bytes(16, "little") for i in range(start, start + 500)]
            cache.get_many("b", keys, lambda idx: torch.randn(len(idx), 16))
        del keys
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # Entries are plain bytes objects, keys and dict nodes, all seen by tracemalloc; the
    # count also covers the allocator's own overhead, which tracemalloc does not see.
    assert 0.6 * cache.nbytes <= held <= cache.nbytes


# ---------------------------------------------------------------- unwritable directories
def test_an_unwritable_cache_dir_falls_back_to_memory_before_computing(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cache = FeatureCache()

    def compute(idx):
        assert seen, "the warning must come before the features are computed"
        return torch.ones(len(idx), 2)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = cache.get_many("b", [b"x", b"y"], compute, directory=blocker)
        cache.get_many("b", [b"z"], compute, directory=blocker)
    assert out.shape == (2, 2) and len(cache) == 3
    messages = [str(w.message) for w in seen if issubclass(w.category, CacheDirWarning)]
    assert len(messages) == 1 and "cannot be written" in messages[0]
    assert "in memory only" in messages[0]


def test_a_fitted_model_predicts_when_its_cache_dir_became_unwritable(blobs, exported,
                                                                      tmp_path, monkeypatch):
    import tempfile

    from sktransfer import cache as cache_module

    X, y = blobs
    clf = TransferClassifier(exported, freeze="backbone", max_epochs=1,
                             cache_dir=str(tmp_path / "c")).fit(X, y)
    expected = clf.predict(X)
    clear_cache()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "c"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # what a read-only folder does
    monkeypatch.setattr(cache_module, "_warned_dirs", set())
    X2 = X + 1.0  # rows not on disk yet: they must be computed and cannot be written
    with pytest.warns(CacheDirWarning, match="cannot be written"):
        clf.predict(X2)
    np.testing.assert_array_equal(clf.predict(X), expected)  # read back from disk


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permissions do not bind root")
def test_a_read_only_cache_dir_is_read_but_not_written(blobs, exported, tmp_path):
    X, y = blobs
    folder = tmp_path / "c"
    params = dict(backbone=exported, freeze="backbone", max_epochs=1, cache_dir=str(folder))
    TransferClassifier(**params).fit(X[:90], y[:90])
    for d in [folder, *folder.iterdir()]:
        d.chmod(0o555)
    try:
        clear_cache()
        with pytest.warns(CacheDirWarning, match="cannot be written"):
            clf = TransferClassifier(**params).fit(X, y)
        assert get_cache().hits == 90
        clf.predict(X)
    finally:
        for d in [folder, *folder.iterdir()]:
            d.chmod(0o755)


def test_augment_on_tabular_data_keeps_the_cache(blobs, exported):
    X, y = blobs
    clf = TransferClassifier(exported, freeze="backbone", augment=True, max_epochs=1).fit(X, y)
    assert clf.feature_cache_used_  # nothing is augmented in a table


# ---------------------------------------------------------------- backbone digest memo
def _digest_without_memo(module):
    import sktransfer.cache as cache_module

    cache_module._digest_memo.clear()
    return cache_module.backbone_digest(module)


def _spy_same_bits(monkeypatch):
    import sktransfer.cache as cache_module

    calls, real = [], cache_module._same_bits

    def spy(state, kept):
        calls.append(real(state, kept))
        return calls[-1]

    monkeypatch.setattr(cache_module, "_same_bits", spy)
    return calls


def test_backbone_digest_of_the_same_weights_is_recognised_not_rehashed(monkeypatch):
    import copy

    from sktransfer.cache import backbone_digest

    torch.manual_seed(0)
    first = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8))
    expected = _digest_without_memo(copy.deepcopy(first))
    calls = _spy_same_bits(monkeypatch)
    assert backbone_digest(first) == expected  # the kept digest, as computed before
    assert backbone_digest(copy.deepcopy(first)) == expected
    assert calls == [True, True]


@pytest.mark.parametrize("change", ["value", "negative zero", "buffer"])
def test_backbone_digest_memo_sees_any_changed_bit(change, monkeypatch):
    import copy

    from sktransfer.cache import backbone_digest

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8))
    with torch.no_grad():
        module[0].bias[0] = 0.0
    before = backbone_digest(module)
    other = copy.deepcopy(module)
    with torch.no_grad():
        if change == "value":
            other[0].weight[0, 0] += 1e-6
        elif change == "negative zero":  # equal as numbers, another bit pattern
            other[0].bias[0] = -0.0
        else:
            other[1].running_mean[0] = 1.0
    calls = _spy_same_bits(monkeypatch)
    after = backbone_digest(other)
    assert calls == [False] and after != before
    assert after == _digest_without_memo(other)


def test_backbone_digest_memo_keeps_at_most_its_byte_budget(monkeypatch):
    import sktransfer.cache as cache_module

    cache_module._digest_memo.clear()
    monkeypatch.setattr(cache_module, "DIGEST_MEMO_BYTES", 400)
    cache_module.backbone_digest(torch.nn.Linear(40, 40))  # 6560 bytes of weights
    assert len(cache_module._digest_memo) == 0  # over the budget: not kept
    for _ in range(6):
        cache_module.backbone_digest(torch.nn.Linear(4, 4))
    kept = sum(t.numel() * t.element_size() for v in cache_module._digest_memo.values()
               for t in v[0].values())
    assert 0 < kept <= 400  # the oldest dropped (80 bytes each)


def test_library_versions_do_not_import_torchvision():
    import subprocess
    import sys

    code = ("import sys; from sktransfer.cache import _library_versions, "
            "_torchvision_version; v = _library_versions(); "
            "assert 'torchvision' not in sys.modules, 'imported'; "
            "import torchvision; assert _torchvision_version() == torchvision.__version__")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("value", ["", "abc", "inf", "nan", "-5"])
def test_a_cache_size_variable_that_is_no_size_warns_and_gives_the_default(monkeypatch,
                                                                           value):
    from sktransfer.cache import _max_bytes_from_env

    monkeypatch.setenv("SKTRANSFER_CACHE_MB", value)
    with pytest.warns(UserWarning, match="SKTRANSFER_CACHE_MB=.*is not a size"):
        assert _max_bytes_from_env() == 2048 * 2**20  # was an error at import
    monkeypatch.setenv("SKTRANSFER_CACHE_MB", "1.5")
    assert _max_bytes_from_env() == int(1.5 * 2**20)
