"""The encoder registry and factory: ``create_encoder(name, **kwargs)``.

Adding an encoder: write its module (a subclass of :class:`~.base.Encoder`
and a builder decorated with ``@register_encoder("name")``), then add the
module's name to :data:`ENCODER_MODULES`.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from ..errors import UserError
from ..parsing import check_argument_types
from .base import ENCODERS, Encoder

__all__ = ["ENCODERS", "ENCODER_MODULES", "create_encoder", "encoder_kwargs", "list_encoders"]

# Encoder modules, imported here so their builders are registered (the order is the listing order).
# Adding an encoder: its module, and its name here.
ENCODER_MODULES: tuple[str, ...] = (
    "smallalexnet",
    "resnet",
    "vit",
)
for _module in ENCODER_MODULES:
    importlib.import_module(f"{__package__}.{_module}")


def create_encoder(arch: str, **kwargs: Any) -> Encoder:
    """Build a registered encoder; keyword arguments that are ``None`` mean "the default".

    Raises:
        UserError: unknown architecture, unknown or invalid keyword argument.
    """
    builder = ENCODERS.get(arch)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        check_argument_types(builder, kwargs)
        return builder(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid arguments for encoder {arch!r}: {exc}") from None


def list_encoders(pattern: str = "*") -> list[str]:
    """Registered encoder names matching a shell wildcard."""
    return ENCODERS.names(pattern)


def encoder_kwargs(arch: str) -> tuple[str, ...]:
    """The keyword arguments the builder of ``arch`` takes (e.g. ``stem`` and ``width`` for the ResNets).

    Raises:
        UserError: unknown architecture.
    """
    params = inspect.signature(ENCODERS.get(arch)).parameters.values()
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
