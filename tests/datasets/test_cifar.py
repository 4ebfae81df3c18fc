"""Tests for fetch_cifar10 (pickles, folders, archives, cache, download) and split_classes."""

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sktransfer.datasets import CIFAR10_CLASSES, _cifar, fetch_cifar10, split_classes

N_PER_BATCH = 6


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _write_pickles(folder: Path, n_per_batch=N_PER_BATCH, seed=0):
    """torchvision's cifar-10-batches-py layout, in the real pickle format (tiny)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    all_images, all_labels = {}, {}
    for k, name in enumerate(names):
        images = _images(n_per_batch, seed + k)
        labels = [(k + i) % 10 for i in range(n_per_batch)]
        entry = {
            "batch_label": f"{name} of 6",
            "labels": labels,
            "data": images.transpose(0, 3, 1, 2).reshape(n_per_batch, 3072),
            "filenames": [f"img_{k}_{i}.png" for i in range(n_per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        all_images[name], all_labels[name] = images, labels
    meta = {"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": n_per_batch}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    train = [f"data_batch_{i}" for i in range(1, 6)]
    return (
        np.concatenate([all_images[n] for n in train]),
        np.concatenate([all_labels[n] for n in train]),
        all_images["test_batch"],
        np.array(all_labels["test_batch"]),
    )


def _png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _folder_spec(n_per_class=3, classes=("truck", "airplane", "cat"), seed=1):
    """{relative path: image} for a ``<subset>/<class>/NNNN.png`` tree."""
    rng = np.random.default_rng(seed)
    spec = {}
    for cls in classes:
        for i in range(n_per_class):
            spec[f"{cls}/{i:04d}.png"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return spec


def _write_folder(root: Path, spec):
    for rel, img in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)


def _write_tar(path: Path, spec, prefix="train/"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        # Unsorted member order, like the real archive.
        for rel in sorted(spec, reverse=True):
            data = _png_bytes(spec[rel])
            info = tarfile.TarInfo(prefix + rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _expected(spec, max_per_class=None):
    """Images and targets in CIFAR class order, then sorted file name."""
    by_class = {}
    for rel in sorted(spec):
        by_class.setdefault(CIFAR10_CLASSES.index(rel.split("/")[0]), []).append(rel)
    images, target = [], []
    for c in sorted(by_class):
        for rel in by_class[c][:max_per_class]:
            images.append(spec[rel])
            target.append(c)
    return np.array(images), np.array(target)


# --------------------------------------------------------------------------------------
# torchvision pickles


def test_fetch_cifar10_pickles(tmp_path, no_network):
    X_train, y_train, X_test, y_test = _write_pickles(tmp_path / "cifar10" / "cifar-10-batches-py")
    data = fetch_cifar10("train", data_home=tmp_path, download=False)
    assert data.images.shape == (5 * N_PER_BATCH, 32, 32, 3) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images, X_train)
    np.testing.assert_array_equal(data.target, y_train)
    assert data.target_names == list(CIFAR10_CLASSES)
    assert "CIFAR-10" in data.DESCR

    X, y = fetch_cifar10("test", data_home=tmp_path, download=False, return_X_y=True)
    np.testing.assert_array_equal(X, X_test)
    np.testing.assert_array_equal(y, y_test)


def test_fetch_cifar10_pickles_max_per_class(tmp_path):
    _, y_train, _, _ = _write_pickles(tmp_path / "cifar10" / "cifar-10-batches-py")
    y = fetch_cifar10(data_home=tmp_path, download=False, max_per_class=1).target
    assert sorted(y.tolist()) == sorted(set(y_train.tolist()))
    # The first occurrence of each class, in file order.
    first = sorted(np.unique(y_train, return_index=True)[1])
    np.testing.assert_array_equal(y, y_train[first])


def test_fetch_cifar10_pickles_directly_in_data_home(tmp_path):
    X_train, _, _, _ = _write_pickles(tmp_path / "cifar-10-batches-py")
    data = fetch_cifar10(data_home=tmp_path, download=False)
    np.testing.assert_array_equal(data.images, X_train)


def test_pickles_take_precedence_over_folder(tmp_path):
    X_train, _, _, _ = _write_pickles(tmp_path / "cifar10" / "cifar-10-batches-py")
    _write_folder(tmp_path / "cifar10" / "train", _folder_spec())
    data = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    np.testing.assert_array_equal(data.images, X_train)


def test_corrupt_pickle_names_file(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    _write_pickles(folder)
    data = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="data_batch_3"):
        fetch_cifar10(data_home=tmp_path, download=False)


def test_malicious_pickle_is_not_executed(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    _write_pickles(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": []}, f, protocol=2)
    with pytest.raises(ValueError, match="test_batch"):
        fetch_cifar10("test", data_home=tmp_path, download=False)
    assert not (tmp_path / "pwned").exists()


def test_pickle_with_wrong_shape(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    _write_pickles(folder)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match="test_batch.*shape"):
        fetch_cifar10("test", data_home=tmp_path, download=False)


# --------------------------------------------------------------------------------------
# Image folders and archives


def test_fetch_cifar10_folder(tmp_path):
    spec = _folder_spec()
    _write_folder(tmp_path / "cifar10" / "train", spec)
    data = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    images, target = _expected(spec)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.target, target)
    assert data.target.tolist()[:3] == [0, 0, 0]  # airplane first: CIFAR order
    assert set(data.target.tolist()) == {0, 3, 9}

    data = fetch_cifar10(data_home=tmp_path, download=False, max_per_class=2, verbose=0)
    images, target = _expected(spec, 2)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.target, target)


def test_fetch_cifar10_folder_wrong_size(tmp_path):
    spec = _folder_spec()
    spec["cat/0009.png"] = np.zeros((30, 32, 3), np.uint8)
    _write_folder(tmp_path / "cifar10" / "test", spec)
    with pytest.raises(ValueError, match=r"0009.png.*30x32.*32x32"):
        fetch_cifar10("test", data_home=tmp_path, download=False, verbose=0)


def test_fetch_cifar10_folder_unknown_class(tmp_path):
    spec = _folder_spec()
    spec["unicorn/0000.png"] = np.zeros((32, 32, 3), np.uint8)
    _write_folder(tmp_path / "cifar10" / "train", spec)
    with pytest.raises(ValueError, match="unicorn"):
        fetch_cifar10(data_home=tmp_path, download=False, verbose=0)


def test_fetch_cifar10_archive(tmp_path):
    spec = _folder_spec()
    _write_tar(tmp_path / "cifar10" / "cifar10-train-jpeg.tar.gz", spec)
    data = fetch_cifar10(data_home=tmp_path, download=False, max_per_class=2, verbose=0)
    images, target = _expected(spec, 2)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.target, target)


def test_fetch_cifar10_archive_any_name(tmp_path):
    spec = _folder_spec(classes=("horse", "ship"))
    cifar = tmp_path / "cifar10"
    cifar.mkdir()
    _write_tar(cifar / "aaa-unrelated.tar.gz", {"x/0.png": spec["horse/0000.png"]}, prefix="")
    _write_tar(cifar / "mine.tgz", spec, prefix="export/test/")
    data = fetch_cifar10("test", data_home=tmp_path, download=False, verbose=0)
    images, target = _expected(spec)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.target, target)
    with pytest.raises(FileNotFoundError):  # the archive holds no train/ folder
        fetch_cifar10("train", data_home=tmp_path, download=False, verbose=0)


@pytest.mark.parametrize("where", ["middle", "crc"])
def test_fetch_cifar10_archive_with_a_flipped_byte(tmp_path, where):
    path = _write_tar(tmp_path / "cifar10" / "cifar10-train-jpeg.tar.gz", _folder_spec())
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 if where == "middle" else len(raw) - 6] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt") as excinfo:
        fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    assert "cifar10-train-jpeg.tar.gz" in str(excinfo.value)


def test_fetch_cifar10_truncated_archive(tmp_path):
    path = _write_tar(tmp_path / "cifar10" / "cifar10-train-jpeg.tar.gz", _folder_spec())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match="cifar10-train-jpeg.tar.gz"):
        fetch_cifar10(data_home=tmp_path, download=False, verbose=0)


# --------------------------------------------------------------------------------------
# Cache


def _cache_files(home):
    folder = Path(home) / "cifar10" / "_cache"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_cache_is_written_and_used(tmp_path, monkeypatch, _isolated_data_home):
    spec = _folder_spec()
    archive = _write_tar(tmp_path / "data" / "cifar10" / "cifar10-train-jpeg.tar.gz", spec)
    first = fetch_cifar10(data_home=tmp_path / "data", download=False, verbose=0)
    assert len(_cache_files(_isolated_data_home)) == 1
    assert not (tmp_path / "data" / "cifar10" / "_cache").exists()  # not in data_home

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(_cifar, "_decode_many", no_decoding)
    second = fetch_cifar10(data_home=tmp_path / "data", download=False, verbose=0)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.target, second.target)

    # Another max_per_class, or a changed archive, is another cache entry; touching
    # the archive without changing it is not.
    monkeypatch.undo()
    monkeypatch.setenv("SKTRANSFER_DATA", str(_isolated_data_home))
    fetch_cifar10(data_home=tmp_path / "data", download=False, max_per_class=1, verbose=0)
    os.utime(archive, ns=(0, 10**9))
    fetch_cifar10(data_home=tmp_path / "data", download=False, verbose=0)
    assert len(_cache_files(_isolated_data_home)) == 2
    _write_tar(archive, _folder_spec(seed=5))
    fetch_cifar10(data_home=tmp_path / "data", download=False, verbose=0)
    assert len(_cache_files(_isolated_data_home)) == 3


def test_archive_replaced_with_its_mtime_restored_is_not_served_stale(
    tmp_path, _isolated_data_home
):
    archive = _write_tar(tmp_path / "cifar10" / "cifar10-train-jpeg.tar.gz", _folder_spec())
    first = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    st = archive.stat()
    other = _folder_spec(seed=7)
    _write_tar(archive, other)
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    assert not np.array_equal(first.images, second.images)
    np.testing.assert_array_equal(second.images, _expected(other)[0])


def test_folder_image_replaced_with_its_mtime_restored_is_not_served_stale(
    tmp_path, _isolated_data_home
):
    spec = _folder_spec()
    _write_folder(tmp_path / "cifar10" / "train", spec)
    fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    path = tmp_path / "cifar10" / "train" / "cat" / "0000.png"
    st = path.stat()
    new = np.full((32, 32, 3), 7, np.uint8)
    Image.fromarray(new).save(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    data = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    np.testing.assert_array_equal(data.images, _expected({**spec, "cat/0000.png": new})[0])


def test_cache_disabled_or_unwritable(tmp_path, monkeypatch, _isolated_data_home):
    _write_folder(tmp_path / "cifar10" / "train", _folder_spec())
    fetch_cifar10(data_home=tmp_path, download=False, cache=False, verbose=0)
    assert _cache_files(_isolated_data_home) == []

    blocker = tmp_path / "a_file"
    blocker.write_text("the cache cannot go below a file")
    monkeypatch.setenv("SKTRANSFER_DATA", str(blocker / "home"))
    data = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    assert len(data.images) == 9


def _npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda good: b"garbage",
        lambda good: b"PK\x03\x04 not really a zip",  # BadZipFile
        lambda good: good[: len(good) // 2],  # truncated
        lambda good: b"",
        lambda good: _npz_bytes(images=np.zeros((2, 8, 8, 3), np.uint8), target=np.zeros(2)),
        lambda good: _npz_bytes(
            images=np.zeros((2, 32, 32, 3), np.uint8), target=np.array([0, 12])
        ),
        lambda good: _npz_bytes(images=np.zeros((2, 32, 32, 3), np.uint8)),  # no target
    ],
)
def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, _isolated_data_home, corrupt):
    _write_tar(tmp_path / "cifar10" / "cifar10-train-jpeg.tar.gz", _folder_spec())
    first = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    (cache,) = _cache_files(_isolated_data_home)
    cache.write_bytes(corrupt(cache.read_bytes()))
    with pytest.warns(RuntimeWarning, match="corrupt") as record:
        second = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    assert cache.name in str(record[0].message)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.target, second.target)
    # Rebuilt: the next call reads it without a warning.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = fetch_cifar10(data_home=tmp_path, download=False, verbose=0)
    np.testing.assert_array_equal(first.images, third.images)


# --------------------------------------------------------------------------------------
# Missing data and download


def test_fetch_cifar10_missing_names_every_place(tmp_path, no_network):
    with pytest.raises(FileNotFoundError) as excinfo:
        fetch_cifar10("test", data_home=tmp_path, download=False)
    message = str(excinfo.value)
    for place in (
        tmp_path / "cifar10" / "cifar-10-batches-py",
        tmp_path / "cifar-10-batches-py",
        tmp_path / "cifar10" / "test",
        tmp_path / "cifar10" / "cifar10-test-jpeg.tar.gz",
    ):
        assert str(place) in message
    assert not (tmp_path / "cifar10").exists()


def _fake_original_archive(tmp_path, monkeypatch, extra=()):
    """A cifar-10-python.tar.gz like the original, served from a file URL and pinned."""
    src = tmp_path / "src"
    expected = _write_pickles(src / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        for member in extra:
            tar.addfile(member)
    monkeypatch.setattr(_cifar, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(_cifar, "CIFAR10_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    return archive, expected


def test_fetch_cifar10_download_is_verified_and_installed(tmp_path, monkeypatch, no_network):
    _, (_, _, test_images, test_labels) = _fake_original_archive(tmp_path, monkeypatch)
    home = tmp_path / "home"
    data = fetch_cifar10("test", data_home=home, download=True, verbose=0)
    np.testing.assert_array_equal(data.images, test_images)
    np.testing.assert_array_equal(data.target, test_labels)
    installed = sorted(p.name for p in (home / "cifar10" / "cifar-10-batches-py").iterdir())
    assert "test_batch" in installed and "data_batch_5" in installed
    assert not [p for p in installed if p.startswith(".")]  # no temporary files left


def test_fetch_cifar10_download_checksum_mismatch(tmp_path, monkeypatch, no_network):
    _fake_original_archive(tmp_path, monkeypatch)
    monkeypatch.setattr(_cifar, "CIFAR10_SHA256", "0" * 64)
    with pytest.raises(OSError, match="Could not download CIFAR-10.*checksum"):
        fetch_cifar10("test", data_home=tmp_path / "home", download=True, verbose=0)
    assert not (tmp_path / "home" / "cifar10").exists()


def test_fetch_cifar10_download_refuses_links(tmp_path, monkeypatch, no_network):
    link = tarfile.TarInfo("cifar-10-batches-py/evil")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    _fake_original_archive(tmp_path, monkeypatch, extra=[link])
    with pytest.raises(ValueError, match="symbolic link"):
        fetch_cifar10("test", data_home=tmp_path / "home", download=True, verbose=0)
    assert not (tmp_path / "home" / "cifar10").exists()


def test_fetch_cifar10_download_offline_fails_fast(tmp_path, monkeypatch):
    from sktransfer import _io

    calls = []

    def offline(url, timeout=None):
        calls.append(timeout)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(_io, "_urlopen", offline)
    with pytest.raises(OSError, match="Could not download CIFAR-10.*name resolution") as exc:
        fetch_cifar10(data_home=tmp_path, download=True, verbose=0)
    assert _cifar.CIFAR10_URL in str(exc.value) and "download=False" in str(exc.value)
    assert calls and calls[0] is not None  # never an endless wait
    assert not (tmp_path / "cifar10").exists()  # nothing half-written


# --------------------------------------------------------------------------------------
# split_classes


def test_split_classes():
    X = np.arange(20).reshape(10, 2)
    y = np.array([0, 7, 1, 2, 7, 0, 9, 8, 3, 7])
    X_b, y_b = split_classes(X, y, [7, 0])
    np.testing.assert_array_equal(X_b[:, 0], [0, 2, 8, 10, 18])
    np.testing.assert_array_equal(y_b, [1, 0, 0, 1, 0])
    _, y_raw = split_classes(X, y, [7, 0], relabel=False)
    np.testing.assert_array_equal(y_raw, [0, 7, 7, 0, 7])


def test_split_classes_cifar_tasks():
    y = np.repeat(np.arange(10), 3)
    X = np.arange(30)
    task_a = [c for c in range(10) if c not in (0, 7)]
    X_a, y_a = split_classes(X, y, task_a)
    assert len(X_a) == 24 and sorted(set(y_a.tolist())) == list(range(8))
    X_b, y_b = split_classes(X, y, [0, 7])
    assert y_b.tolist() == [0, 0, 0, 1, 1, 1]


def test_split_classes_paths_and_frames():
    paths = np.array([["a.png"], ["b.png"], ["c.png"]], dtype=object)
    X_sub, y_sub = split_classes(paths, [1, 2, 1], [1])
    assert X_sub.shape == (2, 1) and X_sub.dtype == object and y_sub.tolist() == [0, 0]
    df = pd.DataFrame({"a": [1, 2, 3]}, index=[10, 20, 30])
    df_sub, _ = split_classes(df, np.array([1, 2, 1]), [2])
    assert isinstance(df_sub, pd.DataFrame) and df_sub.index.tolist() == [20]


def test_split_classes_errors():
    X, y = np.zeros((3, 1)), np.array([0, 1, 1])
    with pytest.raises(ValueError, match="do not occur"):
        split_classes(X, y, [0, 5])
    with pytest.raises(ValueError, match="duplicates"):
        split_classes(X, y, [1, 1])
    with pytest.raises(ValueError, match="empty"):
        split_classes(X, y, [])
    with pytest.raises(ValueError, match="lengths"):
        split_classes(X[:2], y, [1])


# --------------------------------------------------------------------------------------
# Real data


@pytest.mark.realdata
def test_real_cifar10_archive(shared_data, _isolated_data_home, no_network):
    data = fetch_cifar10("train", data_home=shared_data, download=False, max_per_class=5)
    assert data.images.shape == (50, 32, 32, 3) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.target, np.repeat(np.arange(10), 5))
    assert data.images.std() > 20  # real pictures, not blank
    # The first image of "bird" is train/bird/0000.jpg, decoded as read_image would.
    with tarfile.open(shared_data / "cifar10" / "cifar10-train-jpeg.tar.gz") as tar:
        member = tar.getmember("train/bird/0000.jpg")
        raw = tar.extractfile(member).read()
    expected = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    np.testing.assert_array_equal(data.images[10], expected)
    # The cache went to the default data home, never into the read-only shared data.
    assert len(_cache_files(_isolated_data_home)) == 1
    assert not (shared_data / "cifar10" / "_cache").exists()
    with pytest.raises(FileNotFoundError, match="test"):
        fetch_cifar10("test", data_home=shared_data, download=False)


def test_unpickler_reads_numpy1_module_paths():
    # Pickles written with numpy 1.x (like the original CIFAR files) name numpy.core.
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    data = pickle.dumps({"data": array}, protocol=2)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    entry = _cifar._CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
    np.testing.assert_array_equal(entry["data"], array)


def test_cache_is_not_written_into_a_folder_marked_read_only(tmp_path, monkeypatch):
    from sktransfer.datasets import _cifar

    home = tmp_path / "home"
    (home / "cifar10").mkdir(parents=True)
    (home / "cifar10").chmod(0o555)
    try:
        monkeypatch.setenv("SKTRANSFER_DATA", str(home))
        images = np.zeros((2, 32, 32, 3), np.uint8)
        _cifar._write_cache(_cifar._cache_dir() / "x.npz", images, np.zeros(2, int))
        assert not (home / "cifar10" / "_cache").exists()
    finally:
        (home / "cifar10").chmod(0o755)
