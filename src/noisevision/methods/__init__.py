"""Pretraining methods (self-supervised, and supervised on the data's labels), one thin ``nn.Module``
per loss, registered in ``METHODS``.

Adding a method: write ``methods/<name>.py`` with a :class:`Method` subclass
decorated with ``@register_method``, and add the module's name to
:data:`METHOD_MODULES`.

>>> method = create_method("alignuniform", create_encoder("smallalexnet"))
>>> out = method(view1, view2); out["loss"].backward()
>>> optimizer = torch.optim.SGD(method.param_groups(weight_decay=1e-4), lr=0.36, momentum=0.9)
>>> optimizer.step(); method.on_train_step_end()
"""
from __future__ import annotations

import importlib
from typing import Any

from ..errors import UserError
from ..models import Encoder
from ..parsing import check_argument_types
from .alignuniform import AlignUniform
from .base import METHODS, Method, register_method
from .mocov2 import MoCoV2
from .simclr import SimCLR
from .supervised import Supervised

# Method modules, imported here so their classes are registered (the order is the listing order).
# Adding a method: its module, and its name here.
METHOD_MODULES: tuple[str, ...] = (
    "alignuniform",
    "mocov2",
    "simclr",
    "supervised",
)
for _module in METHOD_MODULES:
    importlib.import_module(f"{__package__}.{_module}")


def create_method(name: str, encoder: Encoder, **kwargs: Any) -> Method:
    """Build a registered method around ``encoder``; ``None`` keyword arguments mean "the default".

    Raises:
        UserError: unknown method, unknown or invalid keyword argument.
    """
    cls = METHODS.get(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    check_method_arguments(name, kwargs)
    try:
        return cls(encoder, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid arguments for method {name!r}: {exc}") from None


def check_method_arguments(name: str, kwargs: dict[str, Any]) -> None:
    """UserError for an unknown method or a keyword argument of the wrong type, without building it."""
    try:
        check_argument_types(METHODS.get(name).__init__, kwargs)
    except ValueError as exc:
        raise UserError(f"invalid arguments for method {name!r}: {exc}") from None


def list_methods(pattern: str = "*") -> list[str]:
    return METHODS.names(pattern)


__all__ = ["METHODS", "METHOD_MODULES", "AlignUniform", "Method", "MoCoV2", "SimCLR", "Supervised",
           "check_method_arguments", "create_method", "list_methods", "register_method"]
