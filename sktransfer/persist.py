"""Save and load fitted estimators without pickle: tensors plus JSON, read weights-only.

A pickle runs code when it is loaded, so a model file from someone else is a program.
:func:`save` writes one file holding only data: the estimator's parameters and fitted
attributes as a JSON document, and its weights as tensors; :func:`load` reads it with
``torch.load(weights_only=True)``, rebuilds the network from the parameters through the
registry (no pretrained weights are needed, the saved ones replace them) and loads the
weights. Nothing in the file is imported or executed.

What cannot be written as data is refused with a message, never dropped silently: a
backbone built from your own ``torch.nn.Module`` (register it as a plugin, or pickle),
optimizer classes outside ``torch.optim``, a ``RandomState`` instance. ``callbacks``
are training-time objects: they are not saved, and :func:`save` says so.
"""

from __future__ import annotations

import json
import os
import warnings
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import HasMethods, validate_params
from skorch.history import History

from ._io import atomic_write
from .backbones.exported import ExportedBackbone
from .freeze import FreezePolicy
from .inputs import Inputs

__all__ = ["load", "save"]

FORMAT = "sktransfer-estimator"
FORMAT_VERSION = 2  # 2: the payload carries a SHA-256 of its JSON and tensors
_REQUIRED = ("class", "params", "fitted")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sktransfer")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _classes() -> dict[str, type]:
    from .encoder import PretrainedEncoder
    from .estimator import TransferClassifier
    from .regressor import TransferRegressor

    return {c.__name__: c for c in (TransferClassifier, TransferRegressor, PretrainedEncoder)}


# ---------------------------------------------------------------------------------- params
def _policy_name(policy: FreezePolicy) -> str:
    from .registry import _policy_entry_points, _runtime_policies

    for name, cls in {**_policy_entry_points(), **_runtime_policies}.items():
        if cls is type(policy):
            return name
    raise ValueError(
        f"freeze={policy!r} is a {type(policy).__name__}, which is not a registered freeze "
        "policy, so a file cannot name it: register it (register_freeze_policy or the "
        "'sktransfer.freeze_policies' entry point), or pickle the estimator"
    )


def _encode_param(name: str, value: Any, tensors: dict) -> Any:
    """A parameter value as JSON (tensors of an exported backbone go to ``tensors``)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, (bool, str, Integral, Real)) for v in value
    ):
        return {"tuple": [v.item() if isinstance(v, np.generic) else v for v in value]}
    if isinstance(value, dict) and name == "backbone_kwargs":
        return {"dict": json.loads(json.dumps(value, default=_plain))}
    if isinstance(value, dict) and all(
        isinstance(v, (bool, str, Integral, Real, np.bool_, np.str_))
        for item in value.items() for v in item
    ):  # e.g. class_weight={0: 1.0, 1: 5.0}: pairs, so int and str keys stay what they are
        return {"mapping": [[k.item() if isinstance(k, np.generic) else k,
                             v.item() if isinstance(v, np.generic) else v]
                            for k, v in value.items()]}
    if isinstance(value, os.PathLike):
        return {"path": os.fspath(value)}
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, ExportedBackbone):
        if value.module is not None:
            raise ValueError(
                "backbone is an exported custom torch.nn.Module, which a data-only file "
                "cannot rebuild: register the architecture as a backbone plugin, or pickle "
                "the estimator"
            )
        for key, tensor in value.state_dict.items():
            tensors[f"param.backbone.{key}"] = tensor
        return {"exported_backbone": {
            "name": value.name, "kwargs": json.loads(json.dumps(value.kwargs, default=_plain)),
            "input_shape": list(value.input_shape),
            "image_size": list(value.image_size) if value.image_size else None,
            "meta": {k: v for k, v in value.meta.items() if isinstance(v, (int, float, str))},
        }}
    if isinstance(value, FreezePolicy):
        params = {k: _encode_param(k, v, tensors) for k, v in value.get_params().items()}
        return {"freeze_policy": _policy_name(value), "params": params}
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
        if not value.__module__.startswith("torch.optim"):
            raise ValueError(
                f"optimizer={value.__name__} is not a torch.optim class, so a data-only file "
                "cannot name it safely; pickle the estimator instead"
            )
        return {"torch_optimizer": value.__name__}
    if name == "accelerator":
        # the launch's handle on its processes is no part of the model: the file holds a
        # plain model, which load() rebuilds without starting any distributed state
        return None
    if name == "cache_dir" and hasattr(value, "location"):
        return {"path": os.fspath(value.location)}
    if name == "random_state" and isinstance(value, np.random.RandomState):
        raise ValueError(
            "random_state is a RandomState instance, whose state a data-only file does not "
            "keep: set an int (or None) before saving"
        )
    if isinstance(value, torch.nn.Module):
        raise ValueError(
            f"{name} is a torch.nn.Module ({type(value).__name__}), which a data-only file "
            "cannot rebuild: register the architecture as a backbone plugin, or pickle the "
            "estimator"
        )
    raise ValueError(
        f"parameter {name}={value!r} cannot be written as data; set it to a plain value, "
        "or pickle the estimator"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{value!r} is not JSON data")


def _decode_param(value: Any, tensors: dict) -> Any:
    if not isinstance(value, dict):
        return value
    if "tuple" in value:
        return tuple(value["tuple"])
    if "dict" in value:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value["dict"].items()}
    if "mapping" in value:
        return {k: v for k, v in value["mapping"]}
    if "path" in value:
        return value["path"]
    if "exported_backbone" in value:
        spec = value["exported_backbone"]
        prefix = "param.backbone."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["kwargs"].items()}
        return ExportedBackbone(spec["name"], kwargs, tuple(spec["input_shape"]), state,
                                spec["image_size"], spec["meta"])
    if "freeze_policy" in value:
        from .registry import resolve_freeze_policy

        policy = resolve_freeze_policy(value["freeze_policy"])
        return policy.set_params(**{k: _decode_param(v, tensors)
                                    for k, v in value["params"].items()})
    if "torch_optimizer" in value:
        cls = getattr(torch.optim, value["torch_optimizer"], None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ValueError(f"unknown torch optimizer {value['torch_optimizer']!r} in the file")
        return cls
    raise ValueError(f"unreadable parameter value {value!r} in the file")


class _ChangedBeforeSave:
    """In a loaded model's record of its fit settings: a setting changed by ``set_params``
    after fit and before save, so the next continued fit applies it (equal to nothing)."""

    def __repr__(self) -> str:
        return "<changed after fit, before save>"


# ---------------------------------------------------------------------------------- save
@validate_params(
    {"estimator": [HasMethods(["fit", "get_params"])], "path": [str, os.PathLike]},
    prefer_skip_nested_validation=True,
)
def save(estimator, path: str | os.PathLike) -> Path:
    """Write a fitted estimator to ``path`` as data only (tensors + JSON), no pickle.

    Parameters
    ----------
    estimator : TransferClassifier, TransferRegressor or PretrainedEncoder
        A fitted estimator.
    path : str or path-like
        The file to write (by convention ``.skt``); written atomically.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import numpy as np
    >>> import sktransfer
    >>> X, y = np.random.rand(40, 4), np.arange(40) % 2
    >>> clf = sktransfer.TransferClassifier(max_epochs=2, random_state=0).fit(X, y)
    >>> path = sktransfer.save(clf, "model.skt")  # doctest: +SKIP
    >>> sktransfer.load(path).predict(X[:3])       # doctest: +SKIP
    array([...])
    """
    classes = _classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(
            f"save() writes TransferClassifier, TransferRegressor and PretrainedEncoder "
            f"models; got a {name}. Pickle other objects (only from trusted sources)."
        )
    fitted_attr = "backbone_" if name == "PretrainedEncoder" else "net_"
    if not hasattr(estimator, fitted_attr):
        raise ValueError(f"this {name} is not fitted yet: call fit before save")
    changed: list[str] = []
    if hasattr(estimator, "_changed_since_fit") and hasattr(estimator, "net_"):
        # settings changed by set_params since fit (a continued fit applies them); a
        # changed network setting, or a freeze value that names no policy, is refused
        try:
            changed = [k for k in estimator._changed_since_fit(saving=True)
                       if k != "callbacks"]
        except (ValueError, TypeError, ImportError) as exc:
            raise type(exc)(f"cannot save: {exc}") from None
    tensors: dict[str, torch.Tensor] = {}
    params = estimator.get_params(deep=False)
    if params.get("callbacks"):
        warnings.warn(
            f"callbacks={params['callbacks']!r} are training-time objects and are not saved; "
            "the loaded model predicts the same, and has callbacks=None",
            UserWarning,
            stacklevel=2,
        )
        params["callbacks"] = None
    doc: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "sktransfer_version": _version(),
        "class": name,
        "params": {k: _encode_param(k, v, tensors) for k, v in params.items()},
        "fitted": _fitted_attributes(estimator, tensors),
        "changed_since_fit": changed,
    }
    module = estimator.backbone_ if name == "PretrainedEncoder" else estimator.net_.module_
    for key, tensor in module.state_dict().items():
        tensors[f"module.{key}"] = tensor.detach().cpu()
    path = Path(path)
    text = json.dumps(doc, allow_nan=True)
    with atomic_write(path) as f:
        torch.save({"json": text, "tensors": tensors, "sha256": _digest(text, tensors)}, f)
    return path


def _digest(text: str, tensors: dict) -> str:
    """SHA-256 of the JSON and of every tensor (name, dtype, shape, bytes).

    torch's zip container does not check its CRCs when reading, so without this a flipped
    byte in a weight loads silently as another weight.
    """
    import hashlib

    h = hashlib.sha256(text.encode("utf-8"))
    for name in sorted(tensors):
        value = tensors[name]
        h.update(f"\0{name}\0".encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def _array(values: np.ndarray) -> dict:
    return {"values": values.tolist(), "dtype": values.dtype.str if values.dtype.kind != "O"
            else "object"}


def _unarray(spec: dict) -> np.ndarray:
    if spec["dtype"] == "object":
        return np.array(spec["values"], dtype=object)
    return np.asarray(spec["values"], dtype=np.dtype(spec["dtype"]))


def _fitted_attributes(est, tensors: dict) -> dict:
    backbone = est.backbone_ if hasattr(est, "backbone_") else est.net_.module_.backbone
    info = backbone.info
    if info is None or info.name == "<module>":
        raise ValueError(
            "the backbone was built from a custom torch.nn.Module, which a data-only file "
            "cannot rebuild: register the architecture as a backbone plugin (see the docs "
            "on plugins), or pickle the estimator (only load pickles you trust)"
        )
    out: dict[str, Any] = {
        "architecture": {
            "name": info.name, "kwargs": json.loads(json.dumps(info.kwargs, default=_plain)),
            "input_shape": list(backbone.input_shape),
            "image_size": list(backbone.image_size) if backbone.image_size else None,
        },
        "input_kind_": est.input_kind_,
        "input_shape_": list(est.input_shape_) if est.input_shape_ is not None else None,
        "backbone_digest_": est.backbone_digest_,
    }
    if hasattr(est, "n_features_in_"):
        out["n_features_in_"] = int(est.n_features_in_)
    if hasattr(est, "feature_names_in_"):
        out["feature_names_in_"] = _array(est.feature_names_in_)
    if hasattr(est, "net_"):
        out["feature_cache_used_"] = bool(est.feature_cache_used_)
        out["freeze_policy_"] = _encode_param("freeze", est.freeze_policy_, tensors)
        out["history"] = json.loads(json.dumps(est.net_.history.to_list(), default=_plain))
        # which layers train now (a fitted LP-FT model is past its frozen head stage)
        out["trainable"] = est.net_.module_.trainable_flags()
    if hasattr(est, "classes_"):
        out["classes_"] = _array(np.asarray(est.classes_))
    if hasattr(est, "n_outputs_"):
        out.update(n_outputs_=int(est.n_outputs_), y_mean_=est.y_mean_.tolist(),
                   y_scale_=est.y_scale_.tolist(), y_1d=bool(est._y_1d))
    return out


# ---------------------------------------------------------------------------------- load
@validate_params({"path": [str, os.PathLike], "device": [str, None]},
                 prefer_skip_nested_validation=True)
def load(path: str | os.PathLike, *, device: str | None = None):
    """Read an estimator written by :func:`save` (weights-only: no code runs).

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    device : str, optional
        Torch device to put the model on, instead of the saved ``device`` parameter:
        ``"cpu"`` reads a model saved with ``device="cuda"`` on a machine without a GPU.
        A ``mixed_precision="fp16"`` the device cannot run becomes ``"auto"`` (float32
        on the CPU), with or without this argument.

    Returns
    -------
    TransferClassifier, TransferRegressor or PretrainedEncoder
        Fitted, predicting as the saved one did.

    Examples
    --------
    >>> model = sktransfer.load("model.skt")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(
            f"{path} is not an sktransfer model file written by sktransfer.save(), or it is "
            f"damaged ({type(exc).__name__}: {exc}); files are read weights-only, so pickled "
            "objects are refused"
        ) from exc
    not_ours = f"{path} is not an sktransfer model file written by sktransfer.save()"
    if not isinstance(payload, dict) or not isinstance(payload.get("json"), str):
        raise ValueError(not_ours)
    tensors = payload.get("tensors", {})
    try:
        doc = json.loads(payload["json"])
    except ValueError as exc:
        raise ValueError(f"{path} is damaged: its JSON part does not parse ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(tensors, dict):
        raise ValueError(not_ours)
    version = doc.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer sktransfer ({doc.get('sktransfer_version')}, "
            f"format {version}); upgrade sktransfer to read it"
        )
    if version >= 2 and payload.get("sha256") != _digest(payload["json"], tensors):
        raise ValueError(
            f"{path} is damaged: its content does not match the SHA-256 written with it "
            "(a changed byte: a bad disk, an incomplete copy or an edit). Save the model again."
        )
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise ValueError(f"{path} is damaged or incomplete: it has no {', '.join(missing)}")
    classes = _classes()
    if doc["class"] not in classes:
        raise ValueError(f"{path} holds an unknown estimator class {doc['class']!r}")
    bad = [k for k, v in tensors.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(
            f"{path} holds non-finite weights ({', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''}); a fitted model never has them, so the file "
            "is damaged"
        )
    cls = classes[doc["class"]]
    try:
        params = {k: _decode_param(v, tensors) for k, v in doc["params"].items()}
        _choose_device(params, device, path)
        est = cls(**params)
        est._validate_params()  # a bad value names its parameter
        fitted = doc["fitted"]
        state = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
        _restore(est, fitted, state, tensors)
        if hasattr(est, "net_"):  # the settings the weights were fitted with, as fit records
            est._fit_params_ = est._params_snapshot()
            for key in doc.get("changed_since_fit", []):  # set after fit, before save
                est._fit_params_[key] = _ChangedBeforeSave()
    except ValueError as exc:  # InvalidParameterError included: it names the parameter
        if str(path) in str(exc):
            raise
        raise ValueError(f"cannot load {path}: {exc}") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{path} is damaged or was written by an incompatible sktransfer: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return est


def _choose_device(params: dict, device: str | None, path) -> None:
    """The device the model is loaded on: ``device`` if given, else the saved one, which
    must exist here."""
    if "device" not in params:
        return
    from ._training import resolve_device

    if device is None:
        saved = str(params["device"])
        if saved.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"cannot load {path}: it was saved with device={saved!r} and CUDA is not "
                "available here; read it onto the CPU with sktransfer.load(path, "
                "device='cpu')"
            )
    else:
        params["device"] = device
    # float16 autocast needs CUDA: a model saved on a GPU machine with device="auto"
    # runs here in float32 ("auto")
    if (params.get("mixed_precision") in ("fp16", "float16")
            and not resolve_device(params["device"]).startswith("cuda")):
        params["mixed_precision"] = "auto"


def _restore(est, fitted: dict, state: dict, tensors: dict) -> None:
    from ._training import resolve_amp, resolve_device

    shape = tuple(fitted["input_shape_"]) if fitted["input_shape_"] is not None else None
    kind = fitted["input_kind_"]
    if kind == "tabular":
        inputs = Inputs("tabular", torch.zeros((2, *shape)), shape, shape[0])
    elif kind == "image":
        inputs = Inputs("image", torch.zeros((2, *shape), dtype=torch.uint8), shape)
    else:
        inputs = Inputs("paths", np.array([], dtype=object), None, 1)
    _restore_target(est, fitted)
    # Rebuild the architecture from the fitted backbone's registry name, never from the
    # published weights or a checkpoint path (neither may exist where the file is read):
    # the saved weights replace whatever the registry initialises.
    arch = fitted["architecture"]
    prefix = "" if type(est).__name__ == "PretrainedEncoder" else "backbone."
    backbone_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch["kwargs"].items()}
    source = ExportedBackbone(arch["name"], kwargs, tuple(arch["input_shape"]), backbone_state,
                              arch["image_size"])
    builder = clone(est).set_params(backbone=source)
    _restore_target(builder, fitted)
    if "weights" in builder.get_params(deep=False):
        builder.set_params(weights=None)
    device = resolve_device(est.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "frozen random weights": not so here
        if type(est).__name__ == "PretrainedEncoder":
            backbone = builder._make_backbone(inputs)
            _load_state(backbone, state)
            backbone.requires_grad_(False)
            backbone.eval()
            est.backbone_ = backbone.to(device)
        else:
            policy = _decode_param(fitted["freeze_policy_"], tensors)
            network = builder._build_network(inputs, policy, device)
            _load_state(network, state)
            trainable = fitted.get("trainable")  # absent from files of earlier versions
            if trainable is not None:
                params = list(network.parameters())
                if (not isinstance(trainable, list) or len(trainable) != len(params)
                        or not all(isinstance(flag, bool) for flag in trainable)):
                    raise ValueError(f"'trainable' must be one true/false per parameter "
                                     f"({len(params)}), got {str(trainable)[:80]}")
                network.set_trainable_flags(trainable)
            elif hasattr(policy, "unfreeze") and any(
                    row.get("unfrozen") for row in fitted["history"]):
                policy.unfreeze(network)  # an earlier file: its LP-FT fit had unfrozen
            amp_dtype = resolve_amp(est.mixed_precision, device)
            recipe = est._training_recipe(network, policy)
            net = est._make_net(network, policy, 0, device, amp_dtype, None, recipe)
            net.initialize()
            net.history = History(fitted["history"])
            net.head_only = bool(fitted["feature_cache_used_"])
            est.net_ = net
            est.freeze_policy_ = policy
            est.training_recipe_ = recipe
            est.stages_ = []
            est.feature_cache_used_ = bool(fitted["feature_cache_used_"])
            est.history_ = _history_frame(net.history)
    est.backbone_digest_ = fitted["backbone_digest_"]
    est.input_kind_ = kind
    est.input_shape_ = shape
    if "n_features_in_" in fitted:
        est.n_features_in_ = fitted["n_features_in_"]
    if "feature_names_in_" in fitted:
        est.feature_names_in_ = _unarray(fitted["feature_names_in_"])


def _restore_target(est, fitted: dict) -> None:
    """What the head's size and the predictions need: classes, or the target's scaling."""
    if "classes_" in fitted:
        est.classes_ = _unarray(fitted["classes_"])
        est._label_encoder = LabelEncoder().fit(est.classes_)
    if "n_outputs_" in fitted:
        est.n_outputs_ = fitted["n_outputs_"]
        est.y_mean_ = np.asarray(fitted["y_mean_"], dtype=np.float64)
        est.y_scale_ = np.asarray(fitted["y_scale_"], dtype=np.float64)
        est._y_1d = fitted["y_1d"]


def _load_state(module: torch.nn.Module, state: dict) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"the saved weights do not fit the architecture rebuilt from the saved "
            f"parameters ({exc}); the file may come from another sktransfer version"
        ) from exc


def _history_frame(history) -> pd.DataFrame:
    from ._training import history_frame

    return history_frame(history)
