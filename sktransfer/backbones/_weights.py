"""Reading weight files safely, shared by every backbone family.

A grid search builds its backbone once per fit, from the same weights file each time, so
:func:`load_state_dict_file_once` reads, checks and unpickles a file once per process and
hands later loads the tensors it kept, for as long as the file is unchanged: same device,
inode, size, modification and status-change times. A file replaced or rewritten since is
read, and checked, again.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .._io import sha256_file

PRETRAINED_NAMES = ("imagenet", "default")
#: How many weights files :func:`load_state_dict_file_once` keeps in memory (least
#: recently used first out): a process seldom uses more backbones than this at once.
MEMO_FILES = 4
#: A file changed less than this long ago (seconds) is not remembered: timestamps have a
#: coarse clock (milliseconds), so a rewrite within the same tick could keep them all.
#: Remembered files are older, and any later write moves their ctime (git's "racy" rule).
RACY_SECONDS = 2.0


def is_pretrained_request(weights: object) -> bool:
    """True for the strings that ask for a backbone's published pretrained weights."""
    return isinstance(weights, str) and weights.lower() in PRETRAINED_NAMES


def _missing_weights_message(path: Path) -> str:
    return (
        f"weights file not found: {path} (weights is None for random initial weights, "
        f"{' or '.join(repr(n) for n in sorted(PRETRAINED_NAMES))} for the backbone's "
        "published pretrained weights, or the path of a weights file)"
    )


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict with ``weights_only=True``: no code from the file runs.

    Accepts a plain state dict or a dict holding one under ``"state_dict"`` or ``"model"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(_missing_weights_message(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(
            f"could not read weights from {path}: {exc}. The file must be a PyTorch state "
            "dict saved with torch.save (loaded with weights_only=True)."
        ) from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return obj


def file_signature(path: str | os.PathLike) -> tuple[int, ...]:
    """What tells a file changed without reading it: device, inode, size, mtime, ctime.

    The status-change time moves whenever the content is written, and, unlike the
    modification time, cannot be set back by hand (``os.utime``).

    Examples
    --------
    >>> import tempfile
    >>> from sktransfer.backbones._weights import file_signature
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     len(file_signature(f.name))
    5
    """
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _settled(path: Path, signature: tuple[int, ...]) -> bool:
    """Whether ``path`` still has the ``signature`` read before it was used, and last
    changed longer than :data:`RACY_SECONDS` ago: what was read of it can be remembered."""
    return (file_signature(path) == signature
            and time.time_ns() - max(signature[3], signature[4]) > RACY_SECONDS * 1e9)


class _Loaded(NamedTuple):
    signature: tuple[int, ...]
    state_dict: dict[str, torch.Tensor]
    versions: tuple[int, ...]  # each tensor's in-place version counter when loaded


_memo: OrderedDict[str, _Loaded] = OrderedDict()
_memo_lock = threading.Lock()


def _versions(state_dict: dict[str, torch.Tensor]) -> tuple[int, ...]:
    return tuple(t._version for t in state_dict.values())


def clear_weights_memo() -> None:
    """Forget the weights files :func:`load_state_dict_file_once` kept."""
    with _memo_lock:
        _memo.clear()


def load_state_dict_file_once(
    path: str | os.PathLike, check: Callable[[Path], None] | None = None
) -> dict[str, torch.Tensor]:
    """:func:`load_state_dict_file`, read and checked once per process while the file is
    unchanged.

    Every call runs ``check(path)`` (a checksum, which remembers the files it verified);
    the first call (and the first after the file changed, see :func:`file_signature`)
    then loads the file with ``weights_only=True``; later calls return the same tensors
    without reading the file. A file written in the
    last :data:`RACY_SECONDS` is read and checked every time. The tensors are shared:
    copy them into a module (:func:`load_weights_into`), never modify them. A tensor
    modified in place all the same is noticed (its version counter moved) and the file is
    read again.

    Parameters
    ----------
    path : str or path-like
        The weights file.
    check : callable, optional
        Called with the path on every call, the file read or not; raises if it is not
        to be used (:func:`check_hub_hash`).

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from sktransfer.backbones._weights import load_state_dict_file_once
    >>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
    >>> torch.save({"w": torch.ones(2)}, path)
    >>> load_state_dict_file_once(path)["w"]  # kept from the next call once 2 s old
    tensor([1., 1.])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(_missing_weights_message(path))
    # on every call, memo or not: a file first read without a check (weights=<its path>)
    # must not be served unchecked to a caller that asks for one; check_hub_hash hashes
    # a file once while it is unchanged, so this costs nothing after the first time
    if check is not None:
        check(path)
    key = str(path.resolve())
    signature = file_signature(path)
    with _memo_lock:
        kept = _memo.get(key)
        if (kept is not None and kept.signature == signature
                and _versions(kept.state_dict) == kept.versions):
            _memo.move_to_end(key)
            return dict(kept.state_dict)
    state_dict = load_state_dict_file(path)
    if _settled(path, signature):  # not being rewritten
        with _memo_lock:
            _memo[key] = _Loaded(signature, state_dict, _versions(state_dict))
            _memo.move_to_end(key)
            while len(_memo) > MEMO_FILES:
                _memo.popitem(last=False)
    return dict(state_dict)


#: resolved path -> (file signature, hash prefix) already verified in this process
_VERIFIED: dict[str, tuple[tuple[int, ...], str]] = {}


def check_hub_hash(path: str | os.PathLike) -> None:
    """Check a torch hub checkpoint against the SHA-256 prefix in its file name.

    The rule of ``torch.hub.load_state_dict_from_url(check_hash=True)``: the hex digits
    after the last ``-`` before the suffix (``torch.hub.HASH_REGEX``) must start the
    file's SHA-256. A name without such digits is not checked. Each file is hashed once
    per process while its :func:`file_signature` is unchanged.

    Parameters
    ----------
    path : str or path-like
        The checkpoint, e.g. ``$TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth``.

    Raises
    ------
    ValueError
        If the digest does not start with the prefix; the message names the file.

    Examples
    --------
    >>> import hashlib, os, tempfile
    >>> from sktransfer.backbones.torchvision import check_hub_hash
    >>> folder = tempfile.mkdtemp()
    >>> prefix = hashlib.sha256(b"weights").hexdigest()[:8]
    >>> path = os.path.join(folder, f"net-{prefix}.pth")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"weights")
    >>> check_hub_hash(path)  # no error: the name matches the content
    """
    path = Path(path)
    match = torch.hub.HASH_REGEX.search(path.name)
    prefix = match.group(1) if match else ""
    if not prefix:
        return
    key, signature = str(path.resolve()), file_signature(path)
    if _VERIFIED.get(key) == (signature, prefix):
        return
    digest = sha256_file(path)
    if not digest.startswith(prefix):
        raise ValueError(
            f"the checkpoint {path} does not match the hash in its name: its SHA-256 starts "
            f"with {digest[:len(prefix)]}, the name says {prefix} (the rule of torch.hub's "
            "check_hash=True). The file is corrupt, truncated or not the published one: "
            "delete it to download it again, or pass weights=<path to a state dict> to use "
            "other weights on purpose."
        )
    if _settled(path, signature):  # not being rewritten
        _VERIFIED[key] = (signature, prefix)


def load_weights_into(
    module: nn.Module, state_dict: dict[str, torch.Tensor], source: str, allow_missing=()
) -> None:
    """Load ``state_dict`` into ``module``; mismatched keys raise an error naming ``source``.

    ``allow_missing`` lists key prefixes that may be absent or extra (a classifier head that
    the backbone drops anyway).
    """
    def _unexpected(keys):
        return [k for k in keys if not any(k.startswith(p) for p in allow_missing)]

    def _shown(items):
        return f"{items[:5]}{f' ... ({len(items)} in all)' if len(items) > 5 else ''}"

    if not isinstance(state_dict, dict):
        raise ValueError(f"weights from {source} are a {type(state_dict).__name__}, not a "
                         "state dict (a mapping of names to tensors)")
    own = module.state_dict()
    wrong_shape = [
        f"{k}: {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model"
        for k, v in state_dict.items()
        if k in own and isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(own[k].shape)
        and not any(k.startswith(p) for p in allow_missing)
    ]
    if wrong_shape:
        raise ValueError(
            f"weights from {source} do not fit this architecture: {len(wrong_shape)} "
            f"tensors have another shape ({'; '.join(wrong_shape[:3])}"
            f"{' ...' if len(wrong_shape) > 3 else ''}). They come from another "
            "architecture or other architecture options (backbone_kwargs, input_shape)."
        )
    state_dict = {k: v for k, v in state_dict.items()
                  if not (k in own and tuple(v.shape) != tuple(own[k].shape))}
    result = module.load_state_dict(state_dict, strict=False)
    missing, unexpected = _unexpected(result.missing_keys), _unexpected(result.unexpected_keys)
    if missing or unexpected:
        raise ValueError(
            f"weights from {source} do not fit this architecture: missing keys "
            f"{_shown(missing)}, unexpected keys {_shown(unexpected)}"
        )
