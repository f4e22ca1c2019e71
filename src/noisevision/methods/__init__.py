"""Pretraining methods (self-supervised, and supervised on the data's labels), one thin ``nn.Module``
per loss, listed in ``METHODS``.

>>> method = create_method("alignuniform", create_encoder("smallalexnet"))
>>> out = method(view1, view2); out["loss"].backward()
>>> optimizer = torch.optim.SGD(method.param_groups(weight_decay=1e-4), lr=0.36, momentum=0.9)
>>> optimizer.step(); method.on_train_step_end()
"""
from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..models import Encoder
from ..registry import Registry
from .alignuniform import AlignUniform
from .base import Method
from .mocov2 import MoCoV2
from .simclr import SimCLR
from .supervised import Supervised

METHODS: Registry[type[Method]] = Registry("method")
for _cls in (AlignUniform, MoCoV2, SimCLR, Supervised):
    METHODS.register(_cls.name, _cls)


def create_method(name: str, encoder: Encoder, **kwargs: Any) -> Method:
    """Build a registered method around ``encoder``; ``None`` keyword arguments mean "the default".

    Raises:
        UserError: unknown method, unknown or invalid keyword argument.
    """
    cls = METHODS.get(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return cls(encoder, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid arguments for method {name!r}: {exc}") from None


def list_methods(pattern: str = "*") -> list[str]:
    return METHODS.names(pattern)


__all__ = ["METHODS", "AlignUniform", "Method", "MoCoV2", "SimCLR", "Supervised", "create_method", "list_methods"]
