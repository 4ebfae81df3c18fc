"""Tests for the gas sensor drift loaders and helpers."""

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sktransfer.datasets import (
    GAS_NAMES,
    _gas,
    fetch_gas_drift,
    load_gas_drift,
    make_gas_binary,
    split_gas_batches,
)
from sktransfer.datasets._gas import _parse_gas_file

ROWS_PER_BATCH = {1: 445, 2: 1244, 3: 1586, 4: 161, 5: 197, 6: 2300}


def _write_dat(path: Path, X: np.ndarray, y: np.ndarray) -> Path:
    """Write rows in the UCI libsvm format (1-based gas labels, 6 decimals, CRLF)."""
    lines = []
    for row, label in zip(X, y):
        feats = " ".join(f"{j}:{v:.6f}" for j, v in enumerate(row, start=1))
        lines.append(f"{label} {feats}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
    return path


def _random_batch(seed: int, n: int = 7):
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(scale=1000, size=(n, 128)), 6)
    y = rng.integers(1, 7, size=n)
    return X, y


# --------------------------------------------------------------------------------------
# load_gas_drift (embedded)


def test_load_gas_drift_bunch():
    gas = load_gas_drift()
    assert gas.data.shape == (5933, 128)
    assert gas.data.dtype == np.float64 and gas.data.flags["C_CONTIGUOUS"]
    assert gas.target.dtype.kind == "i" and set(np.unique(gas.target)) == set(range(6))
    assert gas.target_names == list(GAS_NAMES)
    assert GAS_NAMES == ("ethanol", "ethylene", "ammonia", "acetaldehyde", "acetone", "toluene")
    counts = dict(zip(*np.unique(gas.batch, return_counts=True)))
    assert counts == ROWS_PER_BATCH
    assert len(gas.feature_names) == 128 == len(set(gas.feature_names))
    assert gas.feature_names[0] == "s01_dR" and gas.feature_names[-1] == "s16_ema_decay_1e-1"
    for text in ("CC BY 4.0", "Vergara", "Sensors and Actuators B", "224"):
        assert text in gas.DESCR


def test_load_gas_drift_batches_and_return_X_y():
    X, y = load_gas_drift(batches=[2, 1], return_X_y=True)
    assert X.shape == (445 + 1244, 128) and y.shape == (445 + 1244,)
    gas = load_gas_drift(batches=4)
    assert set(gas.batch) == {4} and gas.data.shape == (161, 128)
    full = load_gas_drift()
    np.testing.assert_array_equal(gas.data, full.data[full.batch == 4])


def test_load_gas_drift_as_frame():
    pd = pytest.importorskip("pandas")
    gas = load_gas_drift(batches=[1, 4], as_frame=True)
    plain = load_gas_drift(batches=[1, 4])
    assert isinstance(gas.data, pd.DataFrame) and list(gas.data.columns) == plain.feature_names
    np.testing.assert_array_equal(gas.data.to_numpy(), plain.data)
    assert gas.target.name == "gas" and gas.batch.name == "batch"
    assert list(gas.frame.columns) == [*plain.feature_names, "gas", "batch"]
    X, y = load_gas_drift(batches=4, return_X_y=True, as_frame=True)
    assert X.shape == (161, 128) and isinstance(y, pd.Series)
    assert plain.frame is None


@pytest.mark.parametrize("batches", [[7], [0, 1], 11])
def test_load_gas_drift_rejects_unshipped_batches(batches):
    with pytest.raises(ValueError, match="fetch_gas_drift"):
        load_gas_drift(batches=batches)


@pytest.mark.parametrize("batches", [["1"], [1.0], True])
def test_load_gas_drift_rejects_non_int_batches(batches):
    with pytest.raises(TypeError):
        load_gas_drift(batches=batches)


def test_load_gas_drift_empty_batches():
    with pytest.raises(ValueError, match="empty"):
        load_gas_drift(batches=[])


def test_embedded_file_is_compact():
    path = Path(_gas.__file__).parent / "data" / _gas.EMBEDDED_FILE
    assert path.stat().st_size < 5_000_000


def test_read_embedded_corrupt(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        _gas._read_embedded(bad)


# --------------------------------------------------------------------------------------
# fetch_gas_drift from files in the UCI format


def test_fetch_gas_drift_reads_uci_files(tmp_path):
    X7, y7 = _random_batch(7)
    X8, y8 = _random_batch(8, n=3)
    _write_dat(tmp_path / "gas_drift" / "batch7.dat", X7, y7)
    _write_dat(tmp_path / "gas_drift" / "batch8.dat", X8, y8)

    gas = fetch_gas_drift(batches=[8, 7], data_home=tmp_path, download=False)
    np.testing.assert_array_equal(gas.data, np.vstack([X7, X8]))
    np.testing.assert_array_equal(gas.target, np.concatenate([y7, y8]) - 1)
    np.testing.assert_array_equal(gas.batch, [7] * 7 + [8] * 3)
    assert gas.target_names == list(GAS_NAMES)

    X, y = fetch_gas_drift(batches=7, data_home=tmp_path, download=False, return_X_y=True)
    np.testing.assert_array_equal(X, X7)


def test_fetch_gas_drift_alias_folder_and_canonical_first(tmp_path):
    X_alias, y_alias = _random_batch(1)
    _write_dat(tmp_path / "gas-drift" / "batch9.dat", X_alias, y_alias)
    gas = fetch_gas_drift(batches=[9], data_home=tmp_path, download=False)
    np.testing.assert_array_equal(gas.data, X_alias)

    X_canon, y_canon = _random_batch(2)
    _write_dat(tmp_path / "gas_drift" / "batch9.dat", X_canon, y_canon)
    gas = fetch_gas_drift(batches=[9], data_home=tmp_path, download=False)
    np.testing.assert_array_equal(gas.data, X_canon)


def test_fetch_gas_drift_missing_files_named(tmp_path, no_network):
    _write_dat(tmp_path / "gas_drift" / "batch7.dat", *_random_batch(7))
    with pytest.raises(FileNotFoundError) as excinfo:
        fetch_gas_drift(batches=[7, 9, 10], data_home=tmp_path, download=False)
    message = str(excinfo.value)
    assert "batch9.dat" in message and "batch10.dat" in message
    assert "batch7.dat" not in message.split("(")[0]
    assert "download=True" in message


def test_fetch_gas_drift_offline_download_fails_fast(tmp_path, monkeypatch, no_network):
    import urllib.error

    calls = []

    def offline(url, timeout=None):
        calls.append((url, timeout))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("sktransfer._io._urlopen", offline)
    with pytest.raises(OSError, match="Could not download") as excinfo:
        fetch_gas_drift(batches=[10], data_home=tmp_path / "home", archive_sha256="unverified")
    assert _gas.UCI_URL in str(excinfo.value)
    assert "load_gas_drift()" in str(excinfo.value)  # what to do instead
    assert calls and calls[0][1] is not None and calls[0][1] <= 60  # a socket timeout is set
    assert not (tmp_path / "home").exists()  # nothing half-written


def test_fetch_gas_drift_refuses_an_unverified_download(tmp_path, monkeypatch, no_network):
    # No checksum of the UCI zip is pinned: without an explicit archive_sha256 nothing
    # is downloaded, and the error says what to do.
    assert _gas.UCI_ZIP_SHA256 is None

    def fail(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr("sktransfer._io._urlopen", fail)
    with pytest.raises(ValueError, match="no pinned SHA-256") as excinfo:
        fetch_gas_drift(batches=[7], data_home=tmp_path, verbose=0)
    message = str(excinfo.value)
    assert "archive_sha256='unverified'" in message and _gas.UCI_URL in message
    assert "load_gas_drift()" in message
    assert not (tmp_path / "gas_drift").exists()


@pytest.mark.parametrize("value", ["abc", "sha256:" + "0" * 64, 123])
def test_fetch_gas_drift_bad_archive_sha256(tmp_path, value):
    with pytest.raises(ValueError, match="archive_sha256"):
        fetch_gas_drift(batches=[1], data_home=tmp_path, archive_sha256=value)


def test_fetch_gas_drift_checksum_mismatch(tmp_path):
    # A well-formed file that is not the original UCI batch1.dat.
    path = _write_dat(tmp_path / "gas_drift" / "batch1.dat", *_random_batch(1))
    with pytest.raises(ValueError, match="SHA256") as excinfo:
        fetch_gas_drift(batches=[1], data_home=tmp_path, download=False)
    assert str(path) in str(excinfo.value)


_FULL_ROW = b" ".join(b"%d:1.0" % j for j in range(1, 129))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"1 1:0.5 2:x\r\n", "not a valid libsvm file"),
        (b"9 " + _FULL_ROW + b"\r\n", "gas label 9"),
        (b"1.5 " + _FULL_ROW + b"\r\n", "gas label 1.5"),
        (b"one 1:0.5\r\n", "not a valid libsvm file"),
        (b"1 2:0.5 1:0.3\r\n", "not a valid libsvm file"),
        (b"1 1:0.5 129:0.3\r\n", "not a valid libsvm file"),
        (b"1 1:0.5 2:0.3\r\n", "last feature index is 2, expected 128"),
        (b"\x00\xff\xfe garbage", "not a valid libsvm file"),
        (b"", "empty"),
        (b"1 " + _FULL_ROW + b"\r\n2 1:nan " + _FULL_ROW[6:] + b"\r\n", "line 2.*NaN"),
        (b"1 " + _FULL_ROW.replace(b"7:1.0", b"7:inf") + b"\r\n", "line 1.*infinite"),
    ],
)
def test_corrupt_gas_file_names_the_file(tmp_path, content, match):
    path = tmp_path / "gas_drift" / "batch8.dat"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as excinfo:
        fetch_gas_drift(batches=[8], data_home=tmp_path, download=False)
    assert str(path) in str(excinfo.value)


def test_truncated_gas_file(tmp_path):
    path = _write_dat(tmp_path / "gas_drift" / "batch8.dat", *_random_batch(8))
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) // 2 + 3, len(data) - 40):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated") as excinfo:
            fetch_gas_drift(batches=[8], data_home=tmp_path, download=False)
        assert "batch8.dat" in str(excinfo.value)


def test_parse_gas_file_sparse_indices(tmp_path):
    # libsvm leaves out zeros; the last index must still be 128.
    path = tmp_path / "b.dat"
    path.write_text("2 1:1.5 128:-2.25\n")
    X, y = _parse_gas_file(path)
    assert y.tolist() == [2]
    assert X[0, 0] == 1.5 and X[0, 127] == -2.25 and not X[0, 1:127].any()


def _make_uci_zip(tmp_path: Path, files: dict) -> Path:
    """A zip like UCI's: the batch files in Dataset/, inside another zip."""
    inner = tmp_path / "Dataset.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"Dataset/{name}", data)
    outer = tmp_path / "gas+sensor+array+drift+dataset.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "Dataset.zip")
    return outer


@pytest.fixture
def small_rows(monkeypatch):
    """Let batches 7-10 of a fake archive have the rows the tests give them."""
    monkeypatch.setattr(_gas, "GAS_ROWS", {**_gas.GAS_ROWS, 7: 7, 8: 3, 9: 7, 10: 7})


def _fake_uci(tmp_path, monkeypatch, batches=(9, 10)):
    src = tmp_path / "src"
    arrays = {}
    for b in batches:
        arrays[b] = _random_batch(b)
        _write_dat(src / f"batch{b}.dat", *arrays[b])
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    archive = _make_uci_zip(tmp_path, files)
    monkeypatch.setattr(_gas, "UCI_URL", archive.as_uri())  # a local file URL
    return archive, arrays


def test_fetch_gas_drift_downloads_nested_zip(tmp_path, monkeypatch, no_network, small_rows):
    archive, arrays = _fake_uci(tmp_path, monkeypatch)
    home = tmp_path / "home"
    gas = fetch_gas_drift(
        batches=[9, 10], data_home=home, archive_sha256="unverified", verbose=0
    )
    np.testing.assert_array_equal(gas.data, np.vstack([arrays[9][0], arrays[10][0]]))
    installed = sorted(p.name for p in (home / "gas_drift").iterdir())
    assert installed == ["batch10.dat", "batch9.dat"]


def test_fetch_gas_drift_download_with_a_checksum(tmp_path, monkeypatch, no_network, small_rows):
    archive, _ = _fake_uci(tmp_path, monkeypatch)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(OSError, match="checksum"):
        fetch_gas_drift(batches=[9], data_home=tmp_path / "a", archive_sha256="0" * 64)
    assert not (tmp_path / "a" / "gas_drift").exists()
    gas = fetch_gas_drift(batches=[9], data_home=tmp_path / "b", archive_sha256=digest)
    assert gas.data.shape == (7, 128)


def test_fetch_gas_drift_download_rejects_wrong_row_count(tmp_path, monkeypatch, no_network):
    _fake_uci(tmp_path, monkeypatch)  # 7 rows, not the 470 of the original batch9.dat
    home = tmp_path / "home"
    with pytest.raises(OSError, match="batch9.dat.*7 rows.*470"):
        fetch_gas_drift(batches=[9], data_home=home, archive_sha256="unverified", verbose=0)
    assert not (home / "gas_drift").exists()


def test_fetch_gas_drift_download_rejects_bad_known_batch(tmp_path, monkeypatch, no_network):
    files = {"batch1.dat": b"1 1:0.0\r\n", "batch9.dat": b"1 1:0.0\r\n"}
    monkeypatch.setattr(_gas, "UCI_URL", _make_uci_zip(tmp_path, files).as_uri())
    home = tmp_path / "home"
    with pytest.raises(OSError, match="batch1.dat"):
        fetch_gas_drift(batches=[9], data_home=home, archive_sha256="unverified", verbose=0)
    assert not (home / "gas_drift").exists()


def test_fetch_gas_drift_download_is_never_opened_as_a_tar(tmp_path, monkeypatch, no_network):
    import io
    import tarfile

    fake = tmp_path / "not-a-zip.zip"
    with tarfile.open(fake, "w:gz") as tar:
        data = b"1 1:0.0\r\n"
        info = tarfile.TarInfo("batch9.dat")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(_gas, "UCI_URL", fake.as_uri())
    with pytest.raises(ValueError, match="not a valid zip"):
        fetch_gas_drift(batches=[9], data_home=tmp_path / "home", archive_sha256="unverified")
    assert not (tmp_path / "home" / "gas_drift").exists()


def test_fetch_gas_drift_download_refuses_escaping_members(tmp_path, monkeypatch, no_network):
    inner = tmp_path / "Dataset.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("Dataset/batch9.dat", b"1 1:0.0\r\n")
        zf.writestr(zipfile.ZipInfo("../../evil.dat"), b"x")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "Dataset.zip")
    monkeypatch.setattr(_gas, "UCI_URL", outer.as_uri())
    with pytest.raises(ValueError, match=r"'\.\.'"):
        fetch_gas_drift(batches=[9], data_home=tmp_path / "home", archive_sha256="unverified")
    assert not list(tmp_path.rglob("evil.dat"))
    assert not (tmp_path / "home" / "gas_drift").exists()


# --------------------------------------------------------------------------------------
# make_gas_binary and split_gas_batches


def test_make_gas_binary():
    y = np.array([0, 1, 2, 2, 5, 3])
    np.testing.assert_array_equal(make_gas_binary(y, "ammonia"), [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(make_gas_binary(y, " Toluene "), [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(make_gas_binary(y, 1), [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(make_gas_binary(list(y), np.int64(4)), [0] * 5 + [1])
    assert make_gas_binary(y, 3).dtype == np.int64


@pytest.mark.parametrize("gas", ["methane", 0, 7, True, 2.0, None])
def test_make_gas_binary_unknown_gas(gas):
    with pytest.raises(ValueError) as excinfo:
        make_gas_binary(np.array([0, 1]), gas)
    for name in GAS_NAMES:
        assert name in str(excinfo.value)


@pytest.mark.parametrize("y", [np.array([1, 6]), np.array([0.0, 1.0]), np.array([[0, 1]])])
def test_make_gas_binary_bad_y(y):
    with pytest.raises(ValueError):
        make_gas_binary(y, "ethanol")


def test_make_gas_binary_is_imbalanced_on_real_labels():
    gas = load_gas_drift()
    yb = make_gas_binary(gas.target, "toluene")
    assert 0 < yb.mean() < 0.2


def test_split_gas_batches():
    gas = load_gas_drift()
    X_src, y_src, targets = split_gas_batches(gas.data, gas.target, gas.batch, [1, 2], [6, 3])
    assert X_src.shape == (445 + 1244, 128) and y_src.shape == (445 + 1244,)
    assert list(targets) == [3, 6]
    X3, y3 = targets[3]
    np.testing.assert_array_equal(X3, gas.data[gas.batch == 3])
    np.testing.assert_array_equal(y3, gas.target[gas.batch == 3])

    X_src, _, targets = split_gas_batches(gas.data, gas.target, gas.batch, 1, 2)
    assert X_src.shape[0] == 445 and list(targets) == [2]


def test_split_gas_batches_errors():
    X, y, batch = np.zeros((4, 2)), np.zeros(4, dtype=int), np.array([1, 1, 2, 2])
    with pytest.raises(ValueError, match=r"\[7\].*present: \[1, 2\]"):
        split_gas_batches(X, y, batch, [1], [7])
    with pytest.raises(ValueError, match="same length"):
        split_gas_batches(X, y[:3], batch, [1], [2])


# --------------------------------------------------------------------------------------
# Real data


@pytest.mark.realdata
def test_real_files_match_known_checksums(shared_data):
    for b, digest in _gas.GAS_SHA256.items():
        data = (shared_data / "gas-drift" / f"batch{b}.dat").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest


@pytest.mark.realdata
def test_real_files_equal_embedded_copy_exactly(shared_data):
    fetched = fetch_gas_drift(batches=range(1, 7), data_home=shared_data, download=False)
    embedded = load_gas_drift()
    assert fetched.data.dtype == embedded.data.dtype == np.float64
    np.testing.assert_array_equal(fetched.data, embedded.data)  # bit-exact, no tolerance
    np.testing.assert_array_equal(fetched.target, embedded.target)
    np.testing.assert_array_equal(fetched.batch, embedded.batch)


@pytest.mark.realdata
def test_make_embedded_script_reproduces_file(shared_data, tmp_path):
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "scripts" / "make_embedded_gas.py"
    spec = importlib.util.spec_from_file_location("make_embedded_gas", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.build(shared_data / "gas-drift", tmp_path)
    new = _gas._read_embedded(out)
    shipped = _gas._load_embedded()
    for a, b in zip(new, shipped):
        np.testing.assert_array_equal(a, b)
