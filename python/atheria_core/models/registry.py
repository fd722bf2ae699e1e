"""Registry of the learned-rule architectures ("Law M") by config name.

``MODEL_ARCHITECTURE`` in an experiment's ``config.json`` names one of the
classes registered here; ``MODEL_PARAMS`` holds its constructor arguments.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Mapping, Type, TypeVar

from torch import nn

__all__ = [
    "ModelConfigError", "UnknownArchitectureError", "ModelParamsError",
    "MODEL_REGISTRY", "register_model", "get_model_class", "available_architectures",
    "build_model", "normalize_architecture",
]

M = TypeVar("M", bound=Type[nn.Module])

#: architecture name (upper case) -> nn.Module subclass
MODEL_REGISTRY: Dict[str, Type[nn.Module]] = {}


class ModelConfigError(ValueError):
    """Base class of the errors raised while building a model from a config."""


class UnknownArchitectureError(ModelConfigError, KeyError):
    """``MODEL_ARCHITECTURE`` does not name a registered architecture."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelParamsError(ModelConfigError):
    """``MODEL_PARAMS`` is not a mapping, lacks a required key, has an unknown key
    or a value of the wrong type / out of range."""


def normalize_architecture(name: Any) -> str:
    """'unet_convlstm ' -> 'UNET_CONVLSTM'. Raises UnknownArchitectureError for non-strings."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownArchitectureError(
            f"model architecture must be a non-empty string, got {name!r}; "
            f"known architectures: {', '.join(available_architectures())}")
    return name.strip().upper()


def register_model(name: str) -> Callable[[M], M]:
    """Class decorator: registers ``cls`` under ``name`` and sets ``cls.architecture``."""
    key = name.strip().upper()

    def deco(cls: M) -> M:
        if key in MODEL_REGISTRY and MODEL_REGISTRY[key] is not cls:
            raise ValueError(f"architecture {key!r} is already registered to {MODEL_REGISTRY[key].__name__}")
        MODEL_REGISTRY[key] = cls
        # Set on the class itself (not inherited): subclasses register their own name.
        cls.architecture = key  # type: ignore[attr-defined]
        return cls

    return deco


def available_architectures() -> List[str]:
    """Sorted list of registered architecture names."""
    return sorted(MODEL_REGISTRY)


def get_model_class(architecture: str) -> Type[nn.Module]:
    """The class registered under ``architecture`` (case-insensitive)."""
    key = normalize_architecture(architecture)
    try:
        return MODEL_REGISTRY[key]
    except KeyError:
        raise UnknownArchitectureError(
            f"unknown model architecture {architecture!r}; "
            f"known architectures: {', '.join(available_architectures())}") from None


def _param_names(cls: Type[nn.Module]) -> tuple[list[str], list[str]]:
    """(required, optional) constructor keyword names of ``cls``."""
    sig = inspect.signature(cls.__init__)
    required, optional = [], []
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        (required if p.default is p.empty else optional).append(p.name)
    return required, optional


def build_model(architecture: str, model_params: Mapping[str, Any]) -> nn.Module:
    """Instantiates ``architecture`` with ``model_params`` (a mapping of constructor
    keyword arguments, e.g. ``{"d_state": 4, "hidden_channels": 16}``).

    Raises:
        UnknownArchitectureError: the name is not registered.
        ModelParamsError: params not a mapping, a missing required key, an unknown
            key, or a value rejected by the constructor (type or range).
    """
    cls = get_model_class(architecture)
    arch = cls.architecture  # type: ignore[attr-defined]
    if not isinstance(model_params, Mapping):
        raise ModelParamsError(
            f"MODEL_PARAMS for {arch} must be a mapping (JSON object), got {type(model_params).__name__}")
    required, optional = _param_names(cls)
    keys = set(model_params)
    bad = sorted(str(k) for k in keys if not isinstance(k, str))
    if bad:
        raise ModelParamsError(f"MODEL_PARAMS for {arch}: keys must be strings, got {bad}")
    missing = [k for k in required if k not in keys]
    if missing:
        raise ModelParamsError(f"MODEL_PARAMS for {arch} is missing required key(s) {missing}; "
                               f"required: {required}, optional: {optional}")
    unknown = sorted(keys - set(required) - set(optional))
    if unknown:
        raise ModelParamsError(f"MODEL_PARAMS for {arch} has unknown key(s) {unknown}; "
                               f"accepted: {required + optional}")
    try:
        return cls(**dict(model_params))
    except (TypeError, ValueError) as exc:
        raise ModelParamsError(f"invalid MODEL_PARAMS for {arch}: {exc}") from exc
