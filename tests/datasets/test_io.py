"""Tests for sktransfer._io: atomic writes, verified downloads and safe extraction.

Every malicious archive is built here in ``tmp_path``; no test touches the network.
"""

import hashlib
import http.client
import io
import os
import stat
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest

from sktransfer import _io
from sktransfer._io import (
    DEFAULT_TIMEOUT,
    DownloadError,
    UnsafeArchiveError,
    atomic_write,
    download,
    safe_extract,
    sha256_file,
)

PAYLOAD = b"0123456789" * 20_000  # 200 kB: several chunks
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
URL = "https://example.invalid/x.bin"


class FakeResponse(io.BytesIO):
    """A urlopen() response serving ``data``, optionally failing after some bytes.

    ``length=False`` sends no Content-Length header (a chunked or close-delimited
    response), so a cut-short body cannot be told from a complete one by its length.
    """

    def __init__(self, data, length=None, fail_after=None, exc=None):
        super().__init__(data)
        if length is False:
            self.headers = {}
        else:
            self.headers = {"Content-Length": str(len(data) if length is None else length)}
        self.fail_after = fail_after
        self.exc = exc or ConnectionResetError("connection reset by peer")

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise self.exc
        return super().read(n)


def _serve(monkeypatch, *responses, calls=None):
    """Make _io._urlopen return ``responses`` in turn (a fresh one per call)."""
    queue = list(responses)

    def urlopen(url, timeout=None):
        if calls is not None:
            calls.append((url, timeout))
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    monkeypatch.setattr(_io, "_urlopen", urlopen)


def _only(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# --------------------------------------------------------------------------------------
# sha256_file and atomic_write


def test_sha256_file(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(PAYLOAD)
    assert sha256_file(path) == DIGEST


def test_atomic_write_binary_and_text(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    with atomic_write(path) as f:
        f.write(b"abc")
    assert path.read_bytes() == b"abc"
    with atomic_write(tmp_path / "t.txt", "w") as f:
        f.write("h\u00e9\n")
    assert (tmp_path / "t.txt").read_bytes() == "h\u00e9\n".encode()
    assert _only(tmp_path) == ["sub", "t.txt"]


def test_atomic_write_failure_keeps_old_content_and_leaves_nothing(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(path, fsync=True) as f:
        f.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert _only(tmp_path) == ["a.bin"]


def test_atomic_write_bad_mode(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "a", "ab"):
        pass


# --------------------------------------------------------------------------------------
# download


def test_download_local_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    out = download(src.as_uri(), tmp_path / "dl" / "file.bin", sha256=DIGEST, verbose=0)
    assert out == tmp_path / "dl" / "file.bin"
    assert out.read_bytes() == PAYLOAD
    assert _only(tmp_path / "dl") == ["file.bin"]


def test_download_sha256_is_required_and_checked(tmp_path):
    with pytest.raises(TypeError):
        download(URL, tmp_path / "x")  # the caller must decide: a digest or None
    with pytest.raises(ValueError, match="64-digit"):
        download(URL, tmp_path / "x", sha256="abc")


def test_download_uses_timeout_and_progress(tmp_path, monkeypatch, capsys):
    calls = []
    _serve(monkeypatch, FakeResponse(PAYLOAD), calls=calls)
    download(URL, tmp_path / "x.bin", sha256=DIGEST.upper(), verbose=1)
    assert calls == [(URL, DEFAULT_TIMEOUT)]
    assert "x.bin" in capsys.readouterr().err  # the tqdm bar


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    _serve(monkeypatch, FakeResponse(PAYLOAD))
    with pytest.raises(DownloadError, match="checksum") as excinfo:
        download(URL, tmp_path / "x.bin", sha256="0" * 64, verbose=0)
    assert isinstance(excinfo.value, OSError) and excinfo.value.url == URL
    assert URL in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError("reset"),
        TimeoutError("timed out"),
        urllib.error.URLError("x"),
        http.client.IncompleteRead(b"partial", 1000),
        http.client.RemoteDisconnected("Remote end closed connection"),
    ],
)
def test_download_interrupted_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch, exc):
    _serve(monkeypatch, FakeResponse(PAYLOAD, fail_after=70_000, exc=exc))
    with pytest.raises(DownloadError, match="interrupted after") as excinfo:
        download(URL, tmp_path / "x.bin", sha256=DIGEST, verbose=0)
    message = str(excinfo.value)
    assert URL in message and type(exc).__name__ in message and "Try again" in message
    assert list(tmp_path.iterdir()) == []


def test_download_keyboard_interrupt_leaves_nothing(tmp_path, monkeypatch):
    _serve(monkeypatch, FakeResponse(PAYLOAD, fail_after=70_000, exc=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        download(URL, tmp_path / "x.bin", sha256=DIGEST, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_download_shorter_than_content_length(tmp_path, monkeypatch):
    _serve(monkeypatch, FakeResponse(PAYLOAD, length=len(PAYLOAD) + 10))
    with pytest.raises(DownloadError, match="incomplete"):
        download(URL, tmp_path / "x.bin", sha256=None, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_download_cut_short_without_content_length_is_neither_kept_nor_reused(
    tmp_path, monkeypatch
):
    # The server closes the connection early and sends no length: only the checksum
    # can tell, and the truncated data must not survive to be reused by the next call.
    cut = FakeResponse(PAYLOAD[:123_456], length=False)
    _serve(monkeypatch, cut, FakeResponse(PAYLOAD, length=False))
    with pytest.raises(DownloadError, match="checksum"):
        download(URL, tmp_path / "x.bin", sha256=DIGEST, verbose=0)
    assert list(tmp_path.iterdir()) == []
    out = download(URL, tmp_path / "x.bin", sha256=DIGEST, verbose=0)
    assert out.read_bytes() == PAYLOAD


def test_download_unverified_is_never_reused(tmp_path, monkeypatch):
    (tmp_path / "x.bin").write_bytes(b"a truncated earlier download")
    _serve(monkeypatch, FakeResponse(PAYLOAD))
    out = download(URL, tmp_path / "x.bin", sha256=None, verbose=0)
    assert out.read_bytes() == PAYLOAD


def test_download_http_error(tmp_path, monkeypatch):
    error = urllib.error.HTTPError(URL, 404, "Not Found", {}, None)
    _serve(monkeypatch, error)
    with pytest.raises(DownloadError, match="HTTP 404 Not Found") as excinfo:
        download(URL, tmp_path / "x.bin", sha256=DIGEST, verbose=0)
    assert URL in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


def test_download_no_network(tmp_path, monkeypatch):
    _serve(monkeypatch, urllib.error.URLError("[Errno -3] Temporary failure in name resolution"))
    with pytest.raises(DownloadError, match=f"Could not download {URL}.*name resolution"):
        download(URL, tmp_path / "x.bin", sha256=DIGEST, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_download_reuses_verified_file(tmp_path, monkeypatch):
    (tmp_path / "x.bin").write_bytes(PAYLOAD)
    _serve(monkeypatch)  # any download attempt fails (empty queue)
    assert download(URL, tmp_path / "x.bin", sha256=DIGEST).read_bytes() == PAYLOAD


def test_download_replaces_corrupt_file(tmp_path, monkeypatch):
    (tmp_path / "x.bin").write_bytes(b"corrupt")
    _serve(monkeypatch, FakeResponse(PAYLOAD))
    out = download(URL, tmp_path / "x.bin", sha256=DIGEST, verbose=0)
    assert out.read_bytes() == PAYLOAD


# --------------------------------------------------------------------------------------
# Archives: helpers


def _info(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _tar(path, members, mode="w:gz"):
    """Write a tar with ``members``: (name, bytes) files or bare TarInfo objects."""
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


def _zip(path, members):
    """Write a zip with ``members``: (name or ZipInfo, bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _unix_zipinfo(name, mode):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def _nothing_escaped(tmp_path, *names):
    for name in names:
        assert not (tmp_path / name).exists()
    assert not (tmp_path / "out").exists()  # checked before anything is written
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert leftovers == []


# --------------------------------------------------------------------------------------
# Archives: what is accepted


@pytest.mark.parametrize("kind, mode", [("tar.gz", "w:gz"), ("tar", "w")])
def test_safe_extract_tar(tmp_path, kind, mode):
    archive = _tar(
        tmp_path / f"ok.{kind}",
        [_info("data", tarfile.DIRTYPE), ("data/a.txt", b"a"), ("./data/sub/b.txt", b"b")],
        mode,
    )
    out = safe_extract(archive, tmp_path / "out", kind=kind)
    assert out == tmp_path / "out"
    assert (out / "data" / "a.txt").read_bytes() == b"a"
    assert (out / "data" / "sub" / "b.txt").read_bytes() == b"b"
    assert _only(tmp_path) == [f"ok.{kind}", "out"]


def test_safe_extract_zip(tmp_path):
    archive = _zip(tmp_path / "ok.zip", [("Dataset/batch1.dat", b"1 1:0.0\n"), ("Dataset/", b"")])
    safe_extract(archive, tmp_path / "out", kind="zip")
    assert (tmp_path / "out" / "Dataset" / "batch1.dat").read_bytes() == b"1 1:0.0\n"


def test_safe_extract_target_must_be_new(tmp_path):
    archive = _zip(tmp_path / "ok.zip", [("a.txt", b"a")])
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError):
        safe_extract(archive, tmp_path / "out", kind="zip")
    with pytest.raises(ValueError, match="kind"):
        safe_extract(archive, tmp_path / "new", kind="rar")


# --------------------------------------------------------------------------------------
# Archives: tar members that are refused


def test_tar_symlink_to_dot_then_member_below_it(tmp_path):
    # The classic escape: "s -> ." is harmless alone, but with "s/x" checked as text
    # only, a link chain can walk out. Links are refused outright.
    archive = _tar(
        tmp_path / "evil.tar.gz",
        [_info("s", tarfile.SYMTYPE, "."), ("s/x", b"x"), ("ok.txt", b"ok")],
    )
    with pytest.raises(UnsafeArchiveError, match="symbolic link.*'s' -> '.'") as excinfo:
        safe_extract(archive, tmp_path / "out", kind="tar.gz")
    assert "evil.tar.gz" in str(excinfo.value)
    _nothing_escaped(tmp_path, "x", "s")


def test_tar_long_symlink_chain_cve_2025_4517(tmp_path):
    # The shape of CVE-2025-4517: directories with long names, symlinks climbing back
    # up through them, and a final link past the target. Python's own data filter
    # misses it on 3.11.7; the first link is refused before anything is written.
    long = "d" * 200
    members, path = [], ""
    for i in range(8):
        path = f"{path}{long}{i}/" if path else f"{long}{i}/"
        members.append(_info(path.rstrip("/"), tarfile.DIRTYPE))
        members.append(_info(f"{path}l{i}", tarfile.SYMTYPE, "../" * (i + 1)))
    members.append(_info("escape", tarfile.SYMTYPE, "/".join(["l7"] + [".."] * 12)))
    members.append(("escape/pwned", b"x"))
    archive = _tar(tmp_path / "evil.tar", members, "w")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(archive, tmp_path / "out", kind="tar")
    _nothing_escaped(tmp_path, "pwned")


@pytest.mark.parametrize(
    "member, match",
    [
        (_info("data/hard", tarfile.LNKTYPE, "data/ok.txt"), "hard link"),
        (_info("data/hard", tarfile.LNKTYPE, "../outside"), "hard link"),
        (_info("data/passwd", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (_info("data/inside", tarfile.SYMTYPE, "ok.txt"), "symbolic link"),
        (_info("data/fifo", tarfile.FIFOTYPE), "special member"),
        (_info("data/dev", tarfile.CHRTYPE), "special member"),
        (_info("data/blk", tarfile.BLKTYPE), "special member"),
        (("../evil.txt", b"x"), r"'\.\.'"),
        (("data/../../evil.txt", b"x"), r"'\.\.'"),
        (("/tmp/evil.txt", b"x"), "absolute"),
        (("C:/evil.txt", b"x"), "absolute"),
        (("data\\..\\..\\evil.txt", b"x"), r"'\.\.'"),
    ],
)
def test_tar_refused_members(tmp_path, member, match):
    archive = _tar(tmp_path / "evil.tar.gz", [("data/ok.txt", b"ok"), member])
    with pytest.raises(UnsafeArchiveError, match=match) as excinfo:
        safe_extract(archive, tmp_path / "out", kind="tar.gz")
    assert "evil.tar.gz" in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    _nothing_escaped(tmp_path, "evil.txt")


def test_tar_real_fifo_is_refused(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "fifo")
    with tarfile.open(tmp_path / "evil.tar", "w") as tar:
        tar.add(tmp_path / "fifo", arcname="fifo")
    with pytest.raises(UnsafeArchiveError, match="special member 'fifo'"):
        safe_extract(tmp_path / "evil.tar", tmp_path / "out", kind="tar")


def test_member_resolving_outside_the_target_is_refused(tmp_path):
    # A folder that already holds a link (say, a reused target) must not be followed.
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    real = os.path.realpath(root)
    assert _io._check_member_name("a/b.txt", tmp_path / "a.tar", real) == ["a", "b.txt"]
    with pytest.raises(UnsafeArchiveError, match="resolves outside"):
        _io._check_member_name("link/x", tmp_path / "a.tar", real)


def test_too_large_archive_is_refused(tmp_path):
    archive = _tar(tmp_path / "big.tar.gz", [("a", b"a" * 1000), ("b", b"b" * 1000)])
    with pytest.raises(UnsafeArchiveError, match="limit"):
        safe_extract(archive, tmp_path / "out", kind="tar.gz", max_bytes=1500)
    z = _zip(tmp_path / "big.zip", [("a", b"a" * 1000), ("b", b"b" * 1000)])
    with pytest.raises(UnsafeArchiveError, match="limit"):
        safe_extract(z, tmp_path / "out", kind="zip", max_bytes=1500)
    _nothing_escaped(tmp_path)


def test_gzip_bomb_is_stopped_while_verifying(tmp_path):
    import gzip

    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb") as gz:
        for _ in range(4):
            gz.write(b"\0" * (1 << 20))  # 4 MiB of zeros: a few kB compressed
    with pytest.raises(UnsafeArchiveError, match="limit"):
        safe_extract(bomb, tmp_path / "out", kind="tar.gz", max_bytes=1000)
    _nothing_escaped(tmp_path)


# --------------------------------------------------------------------------------------
# Archives: corrupt files and the wrong format


def _random_bytes(n, seed=0):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("where", ["middle", "crc", "length", "first data byte"])
def test_tar_gz_with_one_flipped_byte_fails(tmp_path, where):
    data = _random_bytes(50_000) + b"text " * 10_000
    archive = _tar(tmp_path / "t.tar.gz", [("a.bin", data), ("b.txt", b"b" * 5000)])
    raw = bytearray(archive.read_bytes())
    header_end = raw.index(b"\x00", 10) + 1  # after the stored file name
    pos = {"middle": len(raw) // 2, "crc": len(raw) - 6, "length": len(raw) - 2}.get(
        where, header_end
    )
    raw[pos] ^= 0x01
    archive.write_bytes(bytes(raw))
    with pytest.raises(UnsafeArchiveError, match="corrupt") as excinfo:
        safe_extract(archive, tmp_path / "out", kind="tar.gz")
    assert "t.tar.gz" in str(excinfo.value)
    _nothing_escaped(tmp_path)


def test_truncated_archives_fail(tmp_path):
    archive = _tar(tmp_path / "t.tar.gz", [("a.txt", _random_bytes(100_000))])
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeArchiveError, match="t.tar.gz"):
        safe_extract(archive, tmp_path / "out", kind="tar.gz")
    z = _zip(tmp_path / "z.zip", [("a.txt", _random_bytes(100_000))])
    z.write_bytes(z.read_bytes()[:50_000])
    with pytest.raises(UnsafeArchiveError, match="z.zip"):
        safe_extract(z, tmp_path / "out", kind="zip")
    _nothing_escaped(tmp_path)


def test_no_other_format_is_tried(tmp_path):
    # A tar handed over as a zip (or the reverse) is an error, never opened as a tar.
    tar = _tar(tmp_path / "data.zip", [("a.txt", b"a")])
    with pytest.raises(UnsafeArchiveError, match="not a valid zip"):
        safe_extract(tar, tmp_path / "out", kind="zip")
    z = _zip(tmp_path / "data.tar.gz", [("a.txt", b"a")])
    with pytest.raises(UnsafeArchiveError, match="not a valid tar.gz"):
        safe_extract(z, tmp_path / "out", kind="tar.gz")
    plain = _tar(tmp_path / "plain.tar", [("a.txt", b"a")], "w")
    with pytest.raises(UnsafeArchiveError, match="not a valid tar.gz"):
        safe_extract(plain, tmp_path / "out", kind="tar.gz")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(UnsafeArchiveError, match="junk.zip"):
        safe_extract(junk, tmp_path / "out", kind="zip")
    _nothing_escaped(tmp_path)


# --------------------------------------------------------------------------------------
# Archives: zip members that are refused


@pytest.mark.parametrize(
    "name, match",
    [
        ("../evil.txt", r"'\.\.'"),
        ("a/../../evil.txt", r"'\.\.'"),
        ("/abs/evil.txt", "absolute"),
        ("C:/x.txt", "absolute"),
        ("a\\..\\..\\evil.txt", r"'\.\.'"),
    ],
)
def test_zip_refused_names(tmp_path, name, match):
    archive = _zip(tmp_path / "evil.zip", [("ok.txt", b"ok"), (zipfile.ZipInfo(name), b"evil")])
    with pytest.raises(UnsafeArchiveError, match=match) as excinfo:
        safe_extract(archive, tmp_path / "out", kind="zip")
    assert "evil.zip" in str(excinfo.value)
    _nothing_escaped(tmp_path, "evil.txt")


@pytest.mark.parametrize(
    "mode, match",
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFIFO | 0o644, "special member"),
        (stat.S_IFCHR | 0o644, "special member"),
    ],
)
def test_zip_refused_member_types(tmp_path, mode, match):
    archive = _zip(tmp_path / "evil.zip", [("ok.txt", b"ok"), (_unix_zipinfo("s", mode), b".")])
    with pytest.raises(UnsafeArchiveError, match=match):
        safe_extract(archive, tmp_path / "out", kind="zip")
    _nothing_escaped(tmp_path)


def test_zip_regular_unix_members_are_fine(tmp_path):
    info = _unix_zipinfo("a.txt", stat.S_IFREG | 0o644)
    archive = _zip(tmp_path / "ok.zip", [(info, b"a")])
    assert (safe_extract(archive, tmp_path / "out", kind="zip") / "a.txt").read_bytes() == b"a"


def test_zip_encrypted_member_is_refused(tmp_path):
    archive = _zip(tmp_path / "enc.zip", [("a.txt", b"a")])
    raw = bytearray(archive.read_bytes())
    # Set the "encrypted" flag bit in the local header and the central directory.
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = raw.find(sig)
        flag_at = at + (6 if sig == b"PK\x03\x04" else 8)
        raw[flag_at] |= 0x01
    archive.write_bytes(bytes(raw))
    with pytest.raises(UnsafeArchiveError, match="encrypted"):
        safe_extract(archive, tmp_path / "out", kind="zip")


def test_zip_with_one_flipped_byte_fails_its_crc(tmp_path):
    archive = _zip(tmp_path / "z.zip", [("a.bin", b"text " * 20_000)])
    raw = bytearray(archive.read_bytes())
    raw[60] ^= 0x01  # inside the compressed data of the only member
    archive.write_bytes(bytes(raw))
    with pytest.raises(UnsafeArchiveError, match="z.zip"):
        safe_extract(archive, tmp_path / "out", kind="zip")
    _nothing_escaped(tmp_path)
