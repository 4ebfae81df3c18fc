"""Names -> objects: the one place where strings become backbones and freeze policies.

Both registries are filled from Python entry points, so built-ins and third-party plugins
register the same way, in their package metadata::

    [project.entry-points."sktransfer.backbones"]
    my_net = "my_package.backbones:my_net"          # a factory returning a Backbone

    [project.entry-points."sktransfer.freeze_policies"]
    my_policy = "my_package.freeze:MyPolicy"         # a FreezePolicy subclass

A backbone entry point is either a factory ``f(*, input_shape, weights, **kwargs)`` or a
family object with ``names()`` and ``create(name, *, input_shape, weights, **kwargs)``
(torchvision's models are one family). :func:`register_backbone` adds one at run time, for
a notebook or a test.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from sklearn.utils._param_validation import validate_params
from torch import nn

from .backbones._base import Backbone
from .backbones._weights import load_weights_into
from .backbones.custom import from_module
from .backbones.exported import ExportedBackbone

logger = logging.getLogger("sktransfer")

BACKBONE_GROUP = "sktransfer.backbones"
FREEZE_GROUP = "sktransfer.freeze_policies"

_runtime_backbones: dict[str, Callable[..., Backbone]] = {}
_runtime_policies: dict[str, type] = {}


def _load_group(group: str) -> dict[str, Any]:
    found = {}
    for ep in entry_points(group=group):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not hide the others
            found[ep.name] = _BrokenPlugin(ep.name, ep.value, exc)
    return found


class _BrokenPlugin:
    def __init__(self, name, value, exc):
        self.name, self.value, self.exc = name, value, exc

    def __call__(self, *args, **kwargs):
        raise ImportError(f"plugin {self.name!r} ({self.value}) failed to load: {self.exc}")


@functools.cache
def _backbone_entry_points() -> dict[str, Any]:
    return _load_group(BACKBONE_GROUP)


@functools.cache
def _policy_entry_points() -> dict[str, Any]:
    return _load_group(FREEZE_GROUP)


def reload_plugins() -> None:
    """Forget the entry points read so far (after installing a plugin in a live session).

    Examples
    --------
    >>> from sktransfer.registry import reload_plugins
    >>> reload_plugins()  # the next lookup reads the installed entry points again
    """
    _backbone_entry_points.cache_clear()
    _policy_entry_points.cache_clear()


def _is_family(obj: Any) -> bool:
    return hasattr(obj, "names") and hasattr(obj, "create")


def _backbone_table() -> dict[str, tuple[Any, str | None]]:
    """name -> (factory or family, name inside the family)."""
    table: dict[str, tuple[Any, str | None]] = {}
    for ep_name, obj in _backbone_entry_points().items():
        if _is_family(obj):
            try:
                names = obj.names()
            except Exception:  # a family whose library is missing lists nothing
                names = []
            for name in names:
                table.setdefault(name, (obj, name))
        else:
            table[ep_name] = (obj, None)
    for name, factory in _runtime_backbones.items():
        table[name] = (factory, None)
    return table


def available_backbones() -> list[str]:
    """Names accepted as ``backbone=``: built-ins, torchvision models and plugins.

    Examples
    --------
    >>> from sktransfer import available_backbones
    >>> {"mlp", "cnn", "efficientnet_lite0", "resnet18"} <= set(available_backbones())
    True
    """
    return sorted(_backbone_table())


def available_freeze_policies() -> list[str]:
    """Names accepted as ``freeze=`` (``"last"`` takes an argument: ``"last:2"``).

    Examples
    --------
    >>> from sktransfer import available_freeze_policies
    >>> available_freeze_policies()[:4]
    ['backbone', 'gradual', 'last', 'none']
    """
    return sorted({**_policy_entry_points(), **_runtime_policies})


@validate_params({"name": [str], "factory": [callable, None]},
                 prefer_skip_nested_validation=True)
def register_backbone(name: str, factory: Callable[..., Backbone] | None = None):
    """Register a backbone factory under ``name`` for this Python session.

    Plugins that should be found in every session register an entry point instead (see the
    module docstring). Usable as a decorator.

    Parameters
    ----------
    name : str
        The name accepted as ``backbone=`` from now on.
    factory : callable, optional
        ``factory(*, input_shape, weights, **kwargs) -> Backbone``. Omit it to use the
        function as a decorator.

    Returns
    -------
    The factory (or a decorator that registers one).

    Examples
    --------
    >>> from sktransfer.registry import register_backbone
    >>> from sktransfer.backbones.mlp import mlp
    >>> @register_backbone("tiny_mlp")
    ... def tiny_mlp(*, input_shape=None, weights=None):
    ...     return mlp(input_shape=input_shape, weights=weights, hidden=(8,))
    """
    if factory is None:
        return lambda f: register_backbone(name, f)
    if not isinstance(name, str) or not name or _is_explicit_path(name):
        raise ValueError(
            f"a backbone name must be a non-empty string without a path separator or a "
            f"checkpoint suffix ({', '.join(CHECKPOINT_SUFFIXES)}), got {name!r}"
        )
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    _runtime_backbones[name] = factory
    return factory


@validate_params({"name": [str], "policy_class": [type, None]},
                 prefer_skip_nested_validation=True)
def register_freeze_policy(name: str, policy_class: type | None = None):
    """Register a freeze policy class under ``name`` for this Python session.

    Parameters
    ----------
    name : str
        The name accepted as ``freeze=`` (``"name"`` or ``"name:arg"``, the argument going
        to the class's ``from_string``).
    policy_class : type, optional
        A :class:`~sktransfer.freeze.FreezePolicy` subclass. Omit it to use the function as
        a class decorator.

    Returns
    -------
    The class (or a decorator that registers one).

    Examples
    --------
    >>> from sktransfer import FreezeLast, register_freeze_policy
    >>> @register_freeze_policy("top2")
    ... class Top2(FreezeLast):
    ...     def __init__(self, k=2):
    ...         super().__init__(k)
    """
    if policy_class is None:
        return lambda c: register_freeze_policy(name, c)
    _check_policy_class(policy_class, "policy_class")
    if not name or ":" in name:
        raise ValueError(f"a freeze policy name must be non-empty without ':' (which "
                         f"separates the argument in 'name:arg'), got {name!r}")
    _runtime_policies[name] = policy_class
    return policy_class


def _check_policy_class(policy_class: Any, what: str) -> None:
    from .freeze import FreezePolicy

    if not (isinstance(policy_class, type) and issubclass(policy_class, FreezePolicy)):
        shown = getattr(policy_class, "__name__", repr(policy_class))
        raise TypeError(
            f"{what} must be a subclass of sktransfer.freeze.FreezePolicy (it decides "
            f"requires_grad in apply(network)), got {shown}"
        )


_RUNTIME_HINT = (
    ". A name added with register_{what} exists only in the Python process that "
    "registered it (and in estimators pickled there, which carry it): a worker process "
    "started otherwise (n_jobs>1) must register it again, e.g. in a module it imports, or "
    "the plugin must declare an entry point (see sktransfer.registry)"
)


def _unknown(kind: str, value: object, known: list[str], what: str = "backbone") -> ValueError:
    shown = ", ".join(known[:60]) + (f", ... ({len(known)} in all)" if len(known) > 60 else "")
    message = f"unknown {kind} {value!r}; known names: {shown}"
    if (what == "backbone" and isinstance(value, str) and not _is_explicit_path(value)
            and Path(value).is_file()):
        message += (
            f". A file named {value!r} exists in the working directory: to load it as a "
            f"checkpoint pass backbone=pathlib.Path({value!r}) or {'./' + value!r}"
        )
    return ValueError(message + _RUNTIME_HINT.format(what=what))


#: Suffixes that make a ``backbone=`` string a checkpoint path rather than a registry name.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def _is_explicit_path(spec: str) -> bool:
    """A string is a path only when it says so: a separator or a checkpoint suffix.

    Whether a file of that name exists plays no part, so a file ``resnet18`` in the
    working directory never replaces the registry's ``resnet18``.
    """
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return any(sep in spec for sep in separators) or spec.lower().endswith(CHECKPOINT_SUFFIXES)


def _registrations_for(*specs: Any) -> dict[str, dict[str, Any]]:
    """Runtime registrations the names in ``specs`` need, to travel inside a pickle.

    An estimator pickled for a worker process (``n_jobs>1``) carries them, and
    :func:`_restore_registrations` adds them there, so ``register_backbone`` reaches the
    workers of ``cross_val_score`` or ``GridSearchCV``.
    """
    found: dict[str, dict[str, Any]] = {"backbones": {}, "policies": {}}
    for spec in specs:
        if isinstance(spec, str):
            if spec in _runtime_backbones:
                found["backbones"][spec] = _runtime_backbones[spec]
            name = spec.partition(":")[0]
            if name in _runtime_policies:
                found["policies"][name] = _runtime_policies[name]
    return {k: v for k, v in found.items() if v}


def _restore_registrations(registrations: dict[str, dict[str, Any]] | None) -> None:
    """Add registrations carried by a pickle; names registered here already win."""
    for name, factory in (registrations or {}).get("backbones", {}).items():
        _runtime_backbones.setdefault(name, factory)
    for name, policy_class in (registrations or {}).get("policies", {}).items():
        _runtime_policies.setdefault(name, policy_class)


def create_backbone(
    spec: Any,
    *,
    weights: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    **kwargs,
) -> Backbone:
    """Turn any accepted ``backbone=`` value into a fresh :class:`Backbone` module.

    Parameters
    ----------
    spec : str, path, ExportedBackbone or torch.nn.Module
        A registry name, a checkpoint file written by :meth:`ExportedBackbone.save`, an
        exported backbone, or a feature-extracting module (copied, never modified).
    weights : None, "imagenet", "default" or path
        For registry names only: which weights to start from.
    input_shape : tuple of int, optional
        Shape of one sample of the data the backbone will see.
    **kwargs
        Architecture options passed to the factory (``hidden=(64,)`` for ``"mlp"``...).

    Examples
    --------
    >>> from sktransfer.registry import create_backbone
    >>> create_backbone("mlp", input_shape=(10,)).kind
    'tabular'
    """
    if isinstance(spec, str) and _is_explicit_path(spec) and not Path(spec).exists() \
            and spec in _backbone_table():
        # a plugin family's name with a separator ("hub/net"), and no such file: no doubt
        return _create_registered(spec, weights=weights, input_shape=input_shape, **kwargs)
    if isinstance(spec, ExportedBackbone):
        _check_no_registry_options(spec, weights, kwargs)
        return _build_exported(spec)
    if isinstance(spec, nn.Module):
        _check_no_registry_options(spec, weights, kwargs)
        if input_shape is None:
            raise ValueError("a module backbone needs the input shape of the data")
        return from_module(spec, input_shape)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and _is_explicit_path(spec)):
        path = Path(spec)
        if weights is not None:  # before reading the file
            _check_no_registry_options(spec, weights, {})
        logger.info("backbone=%r: loading the checkpoint file %s", spec, path.resolve())
        exported = ExportedBackbone.load(path)
        _check_no_registry_options(exported, None, kwargs)
        return _build_exported(exported, source=str(path))
    if not isinstance(spec, str):
        raise TypeError(
            "backbone must be a registry name, a checkpoint path, an exported backbone or a "
            f"torch.nn.Module, got {type(spec).__name__}. A fitted TransferClassifier is not "
            "accepted (scikit-learn's clone would erase its weights): pass "
            "clf.export_backbone() instead."
        )
    backbone = _create_registered(spec, weights=weights, input_shape=input_shape, **kwargs)
    if Path(spec).is_file():
        warnings.warn(
            f"backbone={spec!r} is the registry backbone {spec!r}; the file {spec!r} in the "
            f"working directory was not used. To load that file pass "
            f"backbone=pathlib.Path({spec!r}) or {'./' + spec!r}.",
            UserWarning, stacklevel=3,
        )
    return backbone


def _check_no_registry_options(spec: Any, weights: Any, kwargs: dict) -> None:
    """``weights`` and architecture options only mean something for a registry name.

    Architecture options that repeat an exported backbone's own (an estimator cloned from
    the source one, ``backbone`` replaced) are accepted; others are an error.
    """
    if not isinstance(spec, (str, os.PathLike, ExportedBackbone, nn.Module)):
        return  # the type error comes next
    what = {ExportedBackbone: "an exported backbone", nn.Module: "a torch.nn.Module"}
    kind = next((v for k, v in what.items() if isinstance(spec, k)), f"the checkpoint {spec}")
    if weights is not None:
        raise ValueError(
            f"weights={weights!r} applies to registry backbone names only; backbone is "
            f"{kind}, which carries its own weights: drop weights"
        )
    if not kwargs:
        return
    own = spec.kwargs if isinstance(spec, ExportedBackbone) else {}
    different = sorted(k for k, v in kwargs.items()
                       if k not in own or _normalised(own[k]) != _normalised(v))
    if different:
        raise ValueError(
            f"backbone_kwargs {different} apply to registry backbone names only; backbone "
            f"is {kind}, whose architecture is fixed"
            + (f" ({ {k: own[k] for k in different if k in own} })" if own else "")
            + ": drop backbone_kwargs"
        )


def _normalised(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_normalised(v) for v in value)
    return value


def _create_registered(name: str, *, weights=None, input_shape=None, **kwargs) -> Backbone:
    """Build the registry backbone ``name`` (never a file: a checkpoint names its
    architecture this way, and a path there would load the checkpoint again)."""
    factory, member = _lookup_backbone(name)
    if member is not None:
        backbone = factory.create(member, input_shape=input_shape, weights=weights, **kwargs)
    else:
        backbone = factory(input_shape=input_shape, weights=weights, **kwargs)
    if not isinstance(backbone, Backbone):  # a plugin's slip, named where it happened
        raise TypeError(
            f"the factory of backbone {name!r} returned a {type(backbone).__name__}, not an "
            "sktransfer.backbones.Backbone; a backbone plugin returns "
            "Backbone(body, num_features, kind, input_shape, preprocess) (see the docs on "
            "plugins)"
        )
    return backbone


def _lookup_backbone(name: str) -> tuple[Any, str | None]:
    """``_backbone_table()[name]``, without listing the families' members when ``name`` is
    a factory: those win over family members anyway, and listing torchvision's models
    imports torchvision (two seconds in a fresh process) for nothing."""
    if name in _runtime_backbones:
        return _runtime_backbones[name], None
    obj = _backbone_entry_points().get(name)
    if obj is not None and not _is_family(obj):
        return obj, None
    table = _backbone_table()
    if name not in table:
        raise _unknown("backbone", name, sorted(table))
    return table[name]


def _build_exported(exported: ExportedBackbone, source: str | None = None) -> Backbone:
    import copy

    where = source or "the exported backbone"
    if exported.module is not None:
        backbone = copy.deepcopy(exported.module)
    else:
        if not isinstance(exported.name, str) or _is_explicit_path(exported.name):
            raise ValueError(
                f"{where} names its architecture {exported.name!r}, which is a path, not a "
                "registry name; a checkpoint must name the registry backbone it was made "
                "from (see sktransfer.available_backbones())"
            )
        try:
            backbone = _create_registered(
                exported.name, weights=None, input_shape=exported.input_shape,
                **exported.kwargs
            )
        except ValueError as exc:
            raise ValueError(
                f"{where} cannot rebuild its architecture {exported.name!r} with "
                f"{exported.kwargs}: {exc}"
            ) from exc
    if exported.image_size is not None and hasattr(backbone.preprocess, "image_size"):
        backbone.preprocess.image_size = tuple(exported.image_size)
    load_weights_into(backbone, exported.state_dict, source=where)
    return backbone


def resolve_freeze_policy(spec: Any):
    """Turn ``freeze=`` into a :class:`~sktransfer.freeze.FreezePolicy` instance.

    Strings are ``"<name>"`` or ``"<name>:<argument>"`` (``"last:2"``); policy objects are
    copied so that fitting never changes the estimator's parameter.

    Parameters
    ----------
    spec : str, FreezePolicy or None
        ``"none"``, ``"backbone"``, ``"last:k"``, ``"gradual"``, a plugin's name, or a
        policy object. ``None`` means ``"none"``.

    Returns
    -------
    FreezePolicy

    Examples
    --------
    >>> from sktransfer.registry import resolve_freeze_policy
    >>> resolve_freeze_policy("last:2")
    FreezeLast(k=2)
    """
    from sklearn.base import clone

    from .freeze import FreezePolicy

    if isinstance(spec, FreezePolicy):
        return clone(spec)
    if spec is None:
        spec = "none"
    if not isinstance(spec, str):
        raise TypeError(
            f"freeze must be a policy name like 'last:2' or a FreezePolicy, got {spec!r}"
        )
    name, _, arg = spec.partition(":")
    table = {**_policy_entry_points(), **_runtime_policies}
    if name not in table:
        raise _unknown("freeze policy", spec, sorted(table), what="freeze_policy")
    policy_class = table[name]
    if isinstance(policy_class, _BrokenPlugin):
        policy_class()  # raises the ImportError that names the plugin
    _check_policy_class(policy_class, f"freeze policy {name!r}")  # entry points too
    return policy_class.from_string(arg) if arg else policy_class()
