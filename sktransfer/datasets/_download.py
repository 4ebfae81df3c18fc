"""Downloading files (atomic, checksum-verified) and extracting archives safely."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

#: Seconds a download may wait on the network before failing (connect and each read).
DEFAULT_TIMEOUT = 15.0

_CHUNK_SIZE = 1 << 16

# Indirection so tests can replace the opener (they never touch the network).
_urlopen = urllib.request.urlopen


def _sha256(path: str | os.PathLike) -> str:
    """The hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_remote(
    url: str,
    dirname: str | os.PathLike,
    filename: str,
    *,
    sha256: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    verbose: int = 1,
) -> Path:
    """Download ``url`` to ``dirname/filename`` and return the path.

    The data are written to a temporary file in ``dirname``, verified against
    ``sha256`` (when given) and only then moved into place, so an interrupted or
    corrupt download leaves nothing behind. An existing file with the right
    checksum is reused.

    Raises
    ------
    OSError
        If the download fails (no network, timeout, HTTP error) or the checksum
        does not match.
    """
    dirname = Path(dirname)
    final = dirname / filename
    if final.is_file() and (sha256 is None or _sha256(final) == sha256):
        return final
    dirname.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dirname)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream_to(url, out, timeout=timeout, verbose=verbose, desc=filename)
        if sha256 is not None and digest != sha256:
            raise OSError(
                f"SHA256 checksum of the file downloaded from {url} ({digest}) differs from "
                f"the expected one ({sha256}); the download was discarded."
            )
        os.replace(tmp_name, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return final


def _stream_to(url: str, out, *, timeout: float, verbose: int, desc: str) -> str:
    """Copy ``url`` into the binary file ``out``; return the SHA-256 of the data."""
    digest = hashlib.sha256()
    n_bytes = 0
    try:
        response = _urlopen(url, timeout=timeout)
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OSError(f"Could not download {url}: {reason}") from exc
    with response:
        length = response.headers.get("Content-Length") if response.headers else None
        total = int(length) if length and length.isdigit() else None
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=desc, disable=not verbose, leave=False
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK_SIZE)
                except (TimeoutError, ConnectionError, urllib.error.URLError) as exc:
                    raise OSError(f"Download of {url} was interrupted: {exc}") from exc
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                n_bytes += len(chunk)
                bar.update(len(chunk))
    if total is not None and n_bytes != total:
        raise OSError(f"Download of {url} is incomplete: got {n_bytes} of {total} bytes.")
    return digest.hexdigest()


# --------------------------------------------------------------------------------------
# Archives

_DRIVE = re.compile(r"^[A-Za-z]:")


def _check_member_name(name: str, archive: str | os.PathLike) -> str:
    """Return the normalised member path, or raise ValueError if it escapes the target."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise ValueError(f"Unsafe absolute path {name!r} in archive {os.fspath(archive)!r}.")
    if ".." in norm.split("/"):
        raise ValueError(f"Unsafe path {name!r} (contains '..') in archive {os.fspath(archive)!r}.")
    return norm


def _check_tar_member(member: tarfile.TarInfo, archive: str | os.PathLike) -> None:
    name = _check_member_name(member.name, archive)
    if member.issym() or member.islnk():
        link = member.linkname.replace("\\", "/")
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, link))
        if link.startswith("/") or _DRIVE.match(link) or target.split("/")[0] == "..":
            raise ValueError(
                f"Unsafe link {member.name!r} -> {member.linkname!r} (points outside the "
                f"extraction folder) in archive {os.fspath(archive)!r}."
            )
    elif not (member.isfile() or member.isdir()):
        raise ValueError(
            f"Unsupported member {member.name!r} (device or fifo) in archive "
            f"{os.fspath(archive)!r}."
        )


def _safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract a tar (optionally compressed) or zip archive into ``dest``.

    Every member is checked before anything is written: absolute paths, ``..``
    components, links pointing outside ``dest`` and special files are rejected with
    a ValueError naming the archive.
    """
    archive = Path(archive)
    dest = Path(dest)
    if archive.name.lower().endswith(".zip") and zipfile.is_zipfile(archive):
        _safe_extract_zip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _safe_extract_tar(archive, dest)
    elif zipfile.is_zipfile(archive):
        _safe_extract_zip(archive, dest)
    else:
        raise ValueError(f"{os.fspath(archive)!r} is not a tar or zip archive (or is corrupt).")


def _safe_extract_tar(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_tar_member(member, archive)
            dest.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second line of defence
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - older Pythons; members were checked above
                tar.extractall(dest, members=members)  # noqa: S202
    except (tarfile.TarError, EOFError) as exc:
        raise ValueError(f"Corrupt or truncated archive {os.fspath(archive)!r}: {exc}") from exc


def _safe_extract_zip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_member_name(info.filename, archive)
            dest.mkdir(parents=True, exist_ok=True)
            zf.extractall(dest, members=infos)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"Corrupt or truncated archive {os.fspath(archive)!r}: {exc}") from exc
