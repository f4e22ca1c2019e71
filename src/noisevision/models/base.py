"""The common encoder interface: an ordered chain of named stages.

Every encoder is an ``nn.ModuleDict`` of stages run in order; ``forward``
runs them all, ``features(x, layer)`` stops after the named one. So
SmallAlexNet and the ResNets share one implementation of the interface that
the training loop and the linear probe rely on.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


class L2Normalize(nn.Module):
    """Project rows onto the unit sphere (in fp32, so bf16 autocast keeps norms exact)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.float(), dim=1)


class Encoder(nn.Module):
    """Base class of all encoders.

    Attributes:
        stages: ordered named stages; the input of stage k is the output of stage k-1.
        layer_names: the stages that ``features`` may return (probe layers).
        default_probe_layer: the layer the linear probe uses by default.
        out_dim: dimension of ``forward``'s output (the embedding the SSL loss sees).
        input_size: the native square input size in pixels.
        arch, arch_kwargs: registry name and keyword arguments that rebuild this encoder.
        embedding_is_projected: True when ``forward`` already ends in a projection head
            (SmallAlexNet's fc7/fc8), so SSL methods add no extra head by default.
    """

    stages: nn.ModuleDict
    layer_names: tuple[str, ...]
    default_probe_layer: str
    out_dim: int
    input_size: int
    arch: str
    arch_kwargs: dict[str, Any]
    embedding_is_projected: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised float images -> (N, out_dim) embedding."""
        for stage in self.stages.values():
            x = stage(x)
        return x

    def features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C) flattened output of the named layer (stops there)."""
        self.check_layer(layer)
        for name, stage in self.stages.items():
            x = stage(x)
            if name == layer:
                return x.flatten(1)
        raise AssertionError("unreachable: layer validated above")

    def check_layer(self, layer: str) -> None:
        """Raise UserError for a layer name this encoder does not have."""
        if layer not in self.layer_names:
            raise UserError(
                f"encoder {self.arch!r} has no layer {layer!r}; valid layers: {', '.join(self.layer_names)}"
            )

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, arch_kwargs={self.arch_kwargs}, out_dim={self.out_dim}"
