"""The common encoder interface: an ordered chain of named stages.

Every encoder is an ``nn.ModuleDict`` of stages run in order; ``forward``
runs them all, ``forward_features(x, layer)`` stops after the named one (the
one implementation of "run up to a layer" that the probe, feature extraction
and feature visualisation use). Encoders declare what callers need to know
instead of being recognised by name or class: ``fixed_input_size`` (fully
connected layers on a fixed grid) and ``embedding_is_projected``.

Encoders register a builder with ``@register_encoder("name")`` in their own
module; ``factory.ENCODER_MODULES`` lists the modules.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..registry import Registry

# The largest input side checked by ``Encoder.check_input_size`` (a 100,000 px side would need 120 GB per image).
MAX_INPUT_SIZE = 1024


def upcast(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> fp32; fp32 and fp64 (``--precision fp64``) unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class L2Normalize(nn.Module):
    """Project rows onto the unit sphere (in fp32 at least, so bf16 autocast keeps norms exact)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(upcast(x), dim=1)


@dataclass(frozen=True)
class ExportNaming:
    """How an encoder's state-dict keys map to the keys of an exported backbone (``noisevision export``).

    Attributes:
        name: recorded as ``naming`` in the exported file's metadata (and looked up when loading it).
        renames: ``(our prefix, exported prefix)`` pairs, first match wins.
        dropped: stages that are not part of the backbone (their keys are left out).
    """

    name: str
    renames: tuple[tuple[str, str], ...]
    dropped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        EXPORT_NAMINGS[self.name] = self

    def export_key(self, key: str) -> str | None:
        """Exported name of our ``key``; None for a dropped stage."""
        if any(key.startswith(f"stages.{stage}.") for stage in self.dropped):
            return None
        for ours, theirs in self.renames:
            if key.startswith(ours):
                return theirs + key[len(ours):]
        raise RuntimeError(f"no exported name for {key!r} in naming {self.name!r}")  # a bug: a new layer

    def our_key(self, key: str) -> str | None:
        """Our name of an exported ``key`` (the inverse of :meth:`export_key`); None if unknown."""
        for ours, theirs in self.renames:
            if key.startswith(theirs):
                return ours + key[len(theirs):]
        return None


# Every naming scheme by name, filled as the encoder modules define theirs.
EXPORT_NAMINGS: dict[str, ExportNaming] = {}


class Encoder(nn.Module):
    """Base class of all encoders.

    Attributes:
        stages: ordered named stages; the input of stage k is the output of stage k-1.
        layer_names: the stages that ``features`` may return (probe layers).
        default_probe_layer: the layer the linear probe uses by default.
        out_dim: dimension of ``forward``'s output (the embedding the SSL loss sees).
        input_size: the native square input size in pixels.
        fixed_input_size: the only input size the encoder accepts (fully connected layers
            on a fixed spatial grid, e.g. SmallAlexNet's fc6), or None when any size
            large enough works (global pooling, e.g. the ResNets).
        arch, arch_kwargs: registry name and keyword arguments that rebuild this encoder.
        embedding_is_projected: True when ``forward`` already ends in a projection head
            (SmallAlexNet's fc7/fc8), so SSL methods add no extra head by default.
    """

    stages: nn.ModuleDict
    layer_names: tuple[str, ...]
    default_probe_layer: str
    out_dim: int
    input_size: int
    fixed_input_size: int | None = None
    export_naming: ClassVar[ExportNaming | None] = None  # how `noisevision export` names its backbone

    @property
    def num_features(self) -> int:
        """Width of the features a classifier on the exported backbone sees (default: the embedding)."""
        return self.out_dim

    def export_compatibility(self) -> tuple[bool, str]:
        """(whether the exported backbone loads into another library's model of the same name, a note)."""
        naming = self.export_naming.name if self.export_naming else "none"
        return False, f"noisevision naming ({naming}); load it with noisevision.train.export.build_backbone"
    arch: str
    arch_kwargs: dict[str, Any]
    embedding_is_projected: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised float images -> (N, out_dim) embedding."""
        for stage in self.stages.values():
            x = stage(x)
        return x

    def forward_features(
        self, x: torch.Tensor, layer: str, with_embedding: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Output of the named layer as the stage returns it ((N, C, H, W) or (N, C)).

        Runs the stages up to ``layer`` and stops there; with ``with_embedding``
        it runs on to the end and returns ``(layer output, forward's embedding)``
        from one pass.

        Raises:
            UserError: a layer name this encoder does not have.
        """
        self.check_layer(layer)
        feat = None
        for name, stage in self.stages.items():
            x = stage(x)
            if name == layer:
                if not with_embedding:
                    return x
                feat = x
        if feat is None:
            raise AssertionError("unreachable: layer validated above")
        return feat, x

    def features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C) flattened output of the named layer (stops there)."""
        return self.forward_features(x, layer).flatten(1)

    def check_layer(self, layer: str) -> None:
        """Raise UserError for a layer name this encoder does not have."""
        if layer not in self.layer_names:
            raise UserError(
                f"encoder {self.arch!r} has no layer {layer!r}; valid layers: {', '.join(self.layer_names)}"
            )

    def check_input_size(self, size: int, flag: str) -> None:
        """UserError unless ``size`` px inputs fit (``flag`` names the option).

        Sizes above ``MAX_INPUT_SIZE`` are refused before anything is allocated, an
        encoder with a ``fixed_input_size`` takes only that size, and any other size
        is tried with one forward pass of a zero image in eval mode (no statistics change).
        """
        if not 1 <= size <= MAX_INPUT_SIZE:
            raise UserError(f"{flag} {size} is out of range: inputs of 1 to {MAX_INPUT_SIZE} px are accepted "
                            f"({self.arch}'s native size is {self.input_size} px)")
        if self.fixed_input_size is not None and size != self.fixed_input_size:
            raise UserError(f"encoder {self.arch!r} takes only {self.fixed_input_size} px inputs; "
                            f"pass {flag} {self.fixed_input_size} (or leave it out)")
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


EncoderBuilder = Callable[..., Encoder]
ENCODERS: Registry[EncoderBuilder] = Registry("encoder")


def register_encoder(name: str) -> Callable[[EncoderBuilder], EncoderBuilder]:
    """``@register_encoder("resnet18")`` on a builder ``(**arch_kwargs) -> Encoder`` registers it under ``name``."""
    return ENCODERS.decorator(name)
