"""Tests for downloading (atomic, checksum-verified) and safe archive extraction."""

import hashlib
import io
import tarfile
import urllib.error
import zipfile

import pytest

from sktransfer.datasets import _download
from sktransfer.datasets._download import DEFAULT_TIMEOUT, _fetch_remote, _safe_extract

PAYLOAD = b"0123456789" * 20_000  # 200 kB: several chunks


class FakeResponse(io.BytesIO):
    """A urlopen() response serving ``data``, optionally failing after some bytes."""

    def __init__(self, data, length=None, fail_after=None, exc=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}
        self.fail_after = fail_after
        self.exc = exc or ConnectionResetError("connection reset by peer")

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise self.exc
        return super().read(n)


def _opener(response, calls=None):
    def urlopen(url, timeout=None):
        if calls is not None:
            calls.append((url, timeout))
        return response

    return urlopen


def test_fetch_remote_local_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    out = _fetch_remote(src.as_uri(), tmp_path / "dl", "file.bin", sha256=digest, verbose=0)
    assert out == tmp_path / "dl" / "file.bin"
    assert out.read_bytes() == PAYLOAD
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["file.bin"]


def test_fetch_remote_uses_timeout_and_progress(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(_download, "_urlopen", _opener(FakeResponse(PAYLOAD), calls))
    _fetch_remote("https://example.invalid/x", tmp_path, "x.bin", verbose=1)
    assert calls == [("https://example.invalid/x", DEFAULT_TIMEOUT)]
    assert "x.bin" in capsys.readouterr().err  # the tqdm bar


def test_fetch_remote_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(_download, "_urlopen", _opener(FakeResponse(PAYLOAD)))
    with pytest.raises(OSError, match="checksum"):
        _fetch_remote("https://example.invalid/x", tmp_path, "x.bin", sha256="0" * 64, verbose=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "exc", [ConnectionResetError("reset"), TimeoutError("timed out"), urllib.error.URLError("x")]
)
def test_fetch_remote_interrupted_leaves_nothing(tmp_path, monkeypatch, exc):
    response = FakeResponse(PAYLOAD, fail_after=70_000, exc=exc)
    monkeypatch.setattr(_download, "_urlopen", _opener(response))
    with pytest.raises(OSError, match="interrupted"):
        _fetch_remote("https://example.invalid/x", tmp_path, "x.bin", verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_fetch_remote_keyboard_interrupt_leaves_nothing(tmp_path, monkeypatch):
    response = FakeResponse(PAYLOAD, fail_after=70_000, exc=KeyboardInterrupt())
    monkeypatch.setattr(_download, "_urlopen", _opener(response))
    with pytest.raises(KeyboardInterrupt):
        _fetch_remote("https://example.invalid/x", tmp_path, "x.bin", verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_fetch_remote_incomplete_leaves_nothing(tmp_path, monkeypatch):
    response = FakeResponse(PAYLOAD, length=len(PAYLOAD) + 10)
    monkeypatch.setattr(_download, "_urlopen", _opener(response))
    with pytest.raises(OSError, match="incomplete"):
        _fetch_remote("https://example.invalid/x", tmp_path, "x.bin", verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_fetch_remote_no_network(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(_download, "_urlopen", offline)
    with pytest.raises(OSError, match="Could not download https://example.invalid/x"):
        _fetch_remote("https://example.invalid/x", tmp_path, "x.bin", verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_fetch_remote_reuses_verified_file(tmp_path, monkeypatch):
    (tmp_path / "x.bin").write_bytes(PAYLOAD)

    def fail(*args, **kwargs):
        raise AssertionError("should not download")

    monkeypatch.setattr(_download, "_urlopen", fail)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert _fetch_remote("https://example.invalid/x", tmp_path, "x.bin", sha256=digest).is_file()


def test_fetch_remote_replaces_corrupt_file(tmp_path, monkeypatch):
    (tmp_path / "x.bin").write_bytes(b"corrupt")
    monkeypatch.setattr(_download, "_urlopen", _opener(FakeResponse(PAYLOAD)))
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    out = _fetch_remote("https://example.invalid/x", tmp_path, "x.bin", sha256=digest, verbose=0)
    assert out.read_bytes() == PAYLOAD


# --------------------------------------------------------------------------------------
# Archives


def _tar(path, members, mode="w:gz"):
    """Write a tar with ``members``: (name, bytes) files or TarInfo objects."""
    with tarfile.open(path, mode) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                name, data = m
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_safe_extract_tar(tmp_path):
    archive = _tar(
        tmp_path / "ok.tar.gz",
        [("data/a.txt", b"a"), ("data/sub/b.txt", b"b"), _link("data/c.txt", "a.txt")],
    )
    _safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "sub" / "b.txt").read_bytes() == b"b"
    assert (tmp_path / "out" / "data" / "c.txt").read_bytes() == b"a"


@pytest.mark.parametrize(
    "member, match",
    [
        (("../evil.txt", b"x"), r"'\.\.'"),
        (("data/../../evil.txt", b"x"), r"'\.\.'"),
        (("/tmp/evil.txt", b"x"), "absolute"),
        (_link("data/passwd", "/etc/passwd"), "outside"),
        (_link("data/up", "../../outside"), "outside"),
        (_link("data/hard", "../outside", tarfile.LNKTYPE), r"'\.\.'|outside"),
        (_link("data/dev", "", tarfile.CHRTYPE), "device"),
    ],
)
def test_safe_extract_tar_rejects_traversal(tmp_path, member, match):
    archive = _tar(tmp_path / "evil.tar.gz", [("data/ok.txt", b"ok"), member])
    with pytest.raises(ValueError, match=match) as excinfo:
        _safe_extract(archive, tmp_path / "out")
    assert "evil.tar.gz" in str(excinfo.value)
    assert not (tmp_path / "out").exists()  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_zip(tmp_path):
    archive = tmp_path / "ok.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Dataset/batch1.dat", b"1 1:0.0\n")
    _safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "Dataset" / "batch1.dat").is_file()


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "C:/x.txt"])
def test_safe_extract_zip_rejects_traversal(tmp_path, name):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        zf.writestr(zipfile.ZipInfo(name), b"evil")
    with pytest.raises(ValueError, match="evil.zip"):
        _safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_safe_extract_corrupt_archive(tmp_path):
    archive = _tar(tmp_path / "t.tar.gz", [("a.txt", b"a" * 100_000)])
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="t.tar.gz"):
        _safe_extract(archive, tmp_path / "out")

    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(ValueError, match="junk.zip"):
        _safe_extract(junk, tmp_path / "out")
