"""Library IO: atomic writes, checksum-verified downloads and safe archive extraction.

One place for the three things every part of sktransfer that touches the file system
or the network needs, so each is done (and tested) once:

- :func:`atomic_write` writes a file so that readers see the old content or the new
  one, never half a file, and a failure leaves nothing behind.
- :func:`download` fetches a URL into a temporary file, verifies its SHA-256 against a
  pinned checksum and only then moves it into place.
- :func:`safe_extract` unpacks an archive of an expected format (never another one),
  after checking every member: links, devices and FIFOs, absolute names, ``..`` and
  anything resolving outside the target are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

__all__ = [
    "DEFAULT_TIMEOUT",
    "DownloadError",
    "UnsafeArchiveError",
    "atomic_write",
    "download",
    "safe_extract",
    "sha256_file",
]

#: Seconds a download may wait on the network before failing (connect and each read).
DEFAULT_TIMEOUT = 15.0

#: Largest total size (bytes) of the members of an archive :func:`safe_extract` unpacks.
MAX_EXTRACT_BYTES = 8 * 1024**3

_CHUNK_SIZE = 1 << 16
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"^[A-Za-z]:")

# Indirection so tests can replace the opener (they never touch the network).
_urlopen = urllib.request.urlopen


class DownloadError(OSError):
    """A download failed, was cut short, or does not match its pinned checksum.

    Nothing is left behind: the partial file is deleted. ``url`` names what was
    being downloaded.
    """

    def __init__(self, message: str, url: str):
        super().__init__(message)
        self.url = url


class UnsafeArchiveError(ValueError):
    """An archive holds a member that would escape, or is not of the expected format."""


# --------------------------------------------------------------------------------------
# Checksums and atomic writes


def sha256_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 digest of a file.

    Examples
    --------
    >>> import os, tempfile
    >>> from sktransfer._io import sha256_file
    >>> path = os.path.join(tempfile.mkdtemp(), "empty")
    >>> open(path, "wb").close()
    >>> sha256_file(path)[:16]
    'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.strip().lower()):
        raise ValueError(f"sha256 must be a 64-digit hex SHA-256 digest, got {sha256!r}.")
    return sha256.strip().lower()


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: Literal["wb", "w"] = "wb",
    *,
    encoding: str | None = None,
    fsync: bool = False,
) -> Iterator[IO]:
    """Write ``path`` atomically: a temporary file in the same folder, then a rename.

    Readers (other processes included) see either the previous file or the complete
    new one. If the ``with`` block raises, the temporary file is deleted and ``path``
    is untouched. The parent folder is created if needed.

    Parameters
    ----------
    path : str or path-like
        The file to write.

    mode : {"wb", "w"}, default="wb"
        Binary or text.

    encoding : str, default=None
        The text encoding (text mode only; None means UTF-8).

    fsync : bool, default=False
        If True, flush the data to disk before the rename (durable across a power
        loss; slower, so off for caches).

    Yields
    ------
    file : file object
        The open temporary file.

    Raises
    ------
    OSError
        If the folder cannot be created or written; nothing is left behind.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sktransfer._io import atomic_write
    >>> path = os.path.join(tempfile.mkdtemp(), "sub", "a.npy")
    >>> with atomic_write(path) as f:
    ...     np.save(f, np.arange(3))
    >>> np.load(path).tolist()
    [0, 1, 2]
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}.")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, f"cannot write {path}: it is a folder; give a file name inside it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:  # name the file asked for, not the temporary one
        blocker = next((a for a in path.parents if a.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, f"cannot write {path}: {blocker} is a file, not a folder"
            ) from exc
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        if mode == "w":
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        else:
            f = os.fdopen(fd, "wb")
        with f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------
# Downloads


def download(
    url: str,
    path: str | os.PathLike,
    *,
    sha256: str | None,
    timeout: float = DEFAULT_TIMEOUT,
    verbose: int = 1,
) -> Path:
    """Download ``url`` to ``path``, verified against a pinned SHA-256.

    The data go to a temporary file beside ``path``; they are checked (length
    against ``Content-Length`` when the server sends one, then the checksum) and
    only then renamed into place, so an interrupted, truncated or tampered download
    leaves nothing behind and is never reused. An existing ``path`` whose checksum
    matches is reused without downloading.

    Parameters
    ----------
    url : str
        What to download (``https://`` or ``file://``).

    path : str or path-like
        Where to put it.

    sha256 : str or None
        The expected hex SHA-256 digest. It must be given explicitly: None (an
        unverified download, for callers that verify the content some other way) is
        never reused from an earlier call.

    timeout : float, default=DEFAULT_TIMEOUT
        Seconds to wait for the connection and for each read.

    verbose : int, default=1
        If > 0, show a progress bar.

    Returns
    -------
    path : Path
        The verified file.

    Raises
    ------
    DownloadError
        An :class:`OSError` naming the URL, for a network failure, an HTTP error, a
        connection cut short (``http.client.IncompleteRead`` included) or a checksum
        mismatch.

    Examples
    --------
    >>> import hashlib, os, tempfile
    >>> from pathlib import Path
    >>> from sktransfer._io import download
    >>> src = Path(tempfile.mkdtemp()) / "src.txt"
    >>> _ = src.write_bytes(b"hello")
    >>> digest = hashlib.sha256(b"hello").hexdigest()
    >>> out = download(src.as_uri(), src.with_name("copy.txt"), sha256=digest, verbose=0)
    >>> out.read_bytes()
    b'hello'
    """
    expected = None if sha256 is None else _check_sha256(sha256)
    path = Path(path)
    if expected is not None and path.is_file() and sha256_file(path) == expected:
        return path
    with atomic_write(path) as out:
        digest = _stream_to(url, out, timeout=timeout, verbose=verbose, desc=path.name)
        if expected is not None and digest != expected:
            raise DownloadError(
                f"The file downloaded from {url} does not match its pinned SHA-256 checksum "
                f"(got {digest}, expected {expected}); it was discarded. The download was "
                "corrupted or cut short, or the file changed upstream: try again, and if it "
                "keeps failing, report it.",
                url,
            )
    return path


_NETWORK_ERRORS = (OSError, http.client.HTTPException)


def _stream_to(url: str, out: IO[bytes], *, timeout: float, verbose: int, desc: str) -> str:
    """Copy ``url`` into the binary file ``out``; return the SHA-256 of the data."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    n_bytes = 0
    try:
        response = _urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"Could not download {url}: HTTP {exc.code} {exc.reason}. The address may have "
            "moved; try again later, or download it yourself.",
            url,
        ) from exc
    except (*_NETWORK_ERRORS, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"Could not download {url}: {reason}. Check the network connection (and any "
            "proxy) and try again; nothing was kept.",
            url,
        ) from exc
    with response:
        headers = getattr(response, "headers", None)
        length = headers.get("Content-Length") if headers else None
        total = int(length) if length and str(length).isdigit() else None
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=desc, disable=not verbose, leave=False
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK_SIZE)
                except _NETWORK_ERRORS as exc:
                    raise DownloadError(
                        f"Download of {url} was interrupted after {n_bytes} bytes "
                        f"({type(exc).__name__}: {exc}); the partial file was discarded. "
                        "Try again.",
                        url,
                    ) from exc
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                n_bytes += len(chunk)
                bar.update(len(chunk))
    if total is not None and n_bytes != total:
        raise DownloadError(
            f"Download of {url} is incomplete: got {n_bytes} of {total} bytes; the partial "
            "file was discarded. Try again.",
            url,
        )
    return digest.hexdigest()


# --------------------------------------------------------------------------------------
# Archives

ArchiveKind = Literal["zip", "tar", "tar.gz"]


def safe_extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    kind: ArchiveKind,
    max_bytes: int = MAX_EXTRACT_BYTES,
) -> Path:
    """Extract ``archive``, which must be of format ``kind``, into the new folder ``dest``.

    Every member is checked before anything is written. Refused outright: symbolic
    and hard links, devices, FIFOs and any other special member; absolute names,
    drive letters, ``..`` components and names that resolve outside ``dest``;
    encrypted zip members; more than ``max_bytes`` in all. For tars, Python's
    ``filter="data"`` is applied on top of these checks. A ``.tar.gz`` is read to its
    end first, so a corrupt byte fails the gzip CRC before extraction. Nothing but
    ``kind`` is tried: a file that is not a ``kind`` archive is an error.

    The members are unpacked into a temporary folder beside ``dest``, which is
    renamed to ``dest`` only when all succeeded: on any error nothing is left.

    Parameters
    ----------
    archive : str or path-like
        The archive.

    dest : str or path-like
        The folder to create; it must not exist yet.

    kind : {"zip", "tar", "tar.gz"}
        The expected format.

    max_bytes : int, default=MAX_EXTRACT_BYTES
        The largest total size of the members (a guard against archive bombs).

    Returns
    -------
    dest : Path
        The folder holding the extracted members.

    Raises
    ------
    UnsafeArchiveError
        (a ValueError) naming the archive and the member, for a refused member or an
        archive that is not of format ``kind``, is corrupt or truncated.
    FileExistsError
        If ``dest`` exists.

    Examples
    --------
    >>> import os, tempfile, zipfile
    >>> from pathlib import Path
    >>> from sktransfer._io import safe_extract
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(tmp / "a.zip", "w") as zf:
    ...     zf.writestr("data/x.txt", "x")
    >>> out = safe_extract(tmp / "a.zip", tmp / "out", kind="zip")
    >>> (out / "data" / "x.txt").read_text()
    'x'
    """
    if kind not in ("zip", "tar", "tar.gz"):
        raise ValueError(f"kind must be 'zip', 'tar' or 'tar.gz', got {kind!r}.")
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise FileExistsError(f"Extraction target {os.fspath(dest)!r} already exists.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        if kind == "zip":
            _extract_zip(archive, tmp, max_bytes)
        else:
            _extract_tar(archive, tmp, kind, max_bytes)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _where(archive: Path) -> str:
    return f"in archive {os.fspath(archive)!r}"


def _check_member_name(name: str, archive: Path, root: str) -> list[str]:
    """The member's path components, or raise if the name could escape ``root``."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"Unsafe member name {name!r} (NUL byte) {_where(archive)}.")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise UnsafeArchiveError(f"Unsafe absolute path {name!r} {_where(archive)}.")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"Unsafe path {name!r} (contains '..') {_where(archive)}.")
    target = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([root, target]) != root:
        raise UnsafeArchiveError(
            f"Unsafe path {name!r} (resolves outside the extraction folder) {_where(archive)}."
        )
    return parts


def _too_big(archive: Path, total: int, max_bytes: int) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"Archive {os.fspath(archive)!r} would unpack to {total} bytes, more than the "
        f"limit of {max_bytes}; refused."
    )


def _verify_gzip(archive: Path, max_bytes: int) -> None:
    """Decompress the whole file once: a corrupt byte fails the gzip CRC or length.

    Stops early when the stream is far larger than ``max_bytes`` (a gzip bomb): tar
    headers and padding add far less than the members themselves.
    """
    limit = 2 * max_bytes + (1 << 20)
    n = 0
    with gzip.open(archive, "rb") as gz:
        while chunk := gz.read(1 << 20):
            n += len(chunk)
            if n > limit:
                raise _too_big(archive, n, max_bytes)


_FILTER_ERRORS = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


def _extract_tar(archive: Path, root: Path, kind: str, max_bytes: int) -> None:
    root_real = os.path.realpath(root)
    try:
        if kind == "tar.gz":
            _verify_gzip(archive, max_bytes)
        with tarfile.open(archive, "r:gz" if kind == "tar.gz" else "r:") as tar:
            members = tar.getmembers()
            total = 0
            for member in members:
                if member.issym() or member.islnk():
                    what = "symbolic link" if member.issym() else "hard link"
                    raise UnsafeArchiveError(
                        f"Refused {what} member {member.name!r} -> {member.linkname!r} "
                        f"{_where(archive)}: links are never extracted."
                    )
                if not (member.isreg() or member.isdir()):
                    raise UnsafeArchiveError(
                        f"Refused special member {member.name!r} (device, FIFO or other "
                        f"non-regular file) {_where(archive)}."
                    )
                _check_member_name(member.name, archive, root_real)
                total += max(member.size, 0)
                if total > max_bytes:
                    raise _too_big(archive, total, max_bytes)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, members=members, filter="data")
            else:  # pragma: no cover - requires-python guarantees the filter
                tar.extractall(root, members=members)  # noqa: S202 - members checked above
    except UnsafeArchiveError:
        raise
    except _FILTER_ERRORS as exc:  # pragma: no cover - our checks refuse these first
        raise UnsafeArchiveError(
            f"Refused member {exc} {_where(archive)} (by Python's tarfile data filter)."
        ) from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UnsafeArchiveError(
            f"Archive {os.fspath(archive)!r} is not a valid {kind} file, or is corrupt or "
            f"truncated ({type(exc).__name__}: {exc}). Delete it and download it again."
        ) from exc


def _zip_file_type(info: zipfile.ZipInfo) -> int:
    """The Unix file type bits of a zip member (0 when the archive records none)."""
    return stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0


def _extract_zip(archive: Path, root: Path, max_bytes: int) -> None:
    root_real = os.path.realpath(root)
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            total = 0
            for info in infos:
                ftype = _zip_file_type(info)
                if ftype == stat.S_IFLNK:
                    raise UnsafeArchiveError(
                        f"Refused symbolic link member {info.filename!r} {_where(archive)}: "
                        "links are never extracted."
                    )
                if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeArchiveError(
                        f"Refused special member {info.filename!r} (device, FIFO or other "
                        f"non-regular file) {_where(archive)}."
                    )
                if info.flag_bits & 0x1:
                    raise UnsafeArchiveError(
                        f"Refused encrypted member {info.filename!r} {_where(archive)}."
                    )
                _check_member_name(info.filename, archive, root_real)
                total += info.file_size
                if total > max_bytes:
                    raise _too_big(archive, total, max_bytes)
            for info in infos:  # reading checks each member's CRC-32
                zf.extract(info, root)
    except UnsafeArchiveError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise UnsafeArchiveError(
            f"Archive {os.fspath(archive)!r} is not a valid zip file, or is corrupt or "
            f"truncated ({type(exc).__name__}: {exc}). Delete it and download it again."
        ) from exc
