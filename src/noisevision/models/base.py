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

# The largest input side checked by ``Encoder.check_input_size`` (a 100,000 px side would need 120 GB per image).
MAX_INPUT_SIZE = 1024


def upcast(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> fp32; fp32 and fp64 (``--precision fp64``) unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class L2Normalize(nn.Module):
    """Project rows onto the unit sphere (in fp32 at least, so bf16 autocast keeps norms exact)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(upcast(x), dim=1)


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

    def check_input_size(self, size: int, flag: str) -> None:
        """UserError unless ``size`` px inputs fit (SmallAlexNet's fc6 fixes its input size; ``flag`` names the option).

        Sizes above ``MAX_INPUT_SIZE`` are refused before anything is allocated; others
        are tried with one forward pass of a zero image in eval mode (no statistics change).
        """
        if not 1 <= size <= MAX_INPUT_SIZE:
            raise UserError(f"{flag} {size} is out of range: inputs of 1 to {MAX_INPUT_SIZE} px are accepted "
                            f"({self.arch}'s native size is {self.input_size} px)")
        param = next(self.parameters(), None)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                self(torch.zeros(1, 3, size, size, dtype=param.dtype if param is not None else torch.float32,
                                 device=param.device if param is not None else "cpu"))
        except RuntimeError:
            raise UserError(
                f"encoder {self.arch} does not take {size} px inputs (its native size is "
                f"{self.input_size} px); set {flag} {self.input_size} or choose another encoder"
            ) from None
        finally:
            self.train(was_training)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, arch_kwargs={self.arch_kwargs}, out_dim={self.out_dim}"
