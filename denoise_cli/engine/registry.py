"""Architectures by name, so weights files and the manifest can say what to build.

A model module registers its class with ``@register("name")``; the class takes one config
object built by ``ConfigClass.from_dict(options)`` and exposes it as ``.config``.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

_ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {}


def register(name: str, config_class: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def add(model_class: type[nn.Module]) -> type[nn.Module]:
        _ARCHITECTURES[name] = (model_class, config_class)
        model_class.arch_name = name
        return model_class

    return add


def architectures() -> list[str]:
    _load_models()
    return sorted(_ARCHITECTURES)


def build(arch: str, options: dict) -> nn.Module:
    """A freshly initialised model of architecture ``arch`` with ``options``."""
    _load_models()
    if arch not in _ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(sorted(_ARCHITECTURES))})")
    model_class, config_class = _ARCHITECTURES[arch]
    try:
        config = config_class.from_dict(options)
    except TypeError as exc:
        raise ValueError(f"bad options for architecture {arch!r}: {exc}") from None
    return model_class(config)


def describe(model: nn.Module) -> dict:
    """The ``arch`` and ``options`` record that rebuilds ``model``."""
    return {"arch": model.arch_name, "options": model.config.to_dict()}


def _load_models() -> None:
    from . import models  # noqa: F401  (importing the package registers every architecture)
