"""The encoder registry and factory: ``create_encoder(name, **kwargs)``.

Adding an encoder: write its module (a subclass of :class:`~.base.Encoder`),
then one registered builder below.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UserError
from ..registry import Registry
from .base import Encoder
from .resnet import BasicBlock, Bottleneck, ResNet
from .smallalexnet import SmallAlexNet
from .vit import VisionTransformer

ENCODERS: Registry[Callable[..., Encoder]] = Registry("encoder")


@ENCODERS.decorator("smallalexnet")
def smallalexnet(input_size: int = 64, fc_dim: int = 4096, out_dim: int = 128, width: float = 1.0) -> Encoder:
    """The paper's small-scale encoder for 64 px input (fc6 sees 192x7x7)."""
    return SmallAlexNet(input_size=input_size, fc_dim=fc_dim, out_dim=out_dim, width=width, arch="smallalexnet")


@ENCODERS.decorator("smallalexnet32")
def smallalexnet32(input_size: int = 32, fc_dim: int = 4096, out_dim: int = 128, width: float = 1.0) -> Encoder:
    """SmallAlexNet for 32 px input: same layers, fc6 sees 192x3x3."""
    return SmallAlexNet(input_size=input_size, fc_dim=fc_dim, out_dim=out_dim, width=width, arch="smallalexnet32")


@ENCODERS.decorator("resnet18")
def resnet18(stem: str = "imagenet", width: float = 1.0) -> Encoder:
    """ResNet-18 (BasicBlock, 2-2-2-2), 512*width-d features."""
    return ResNet(BasicBlock, (2, 2, 2, 2), arch="resnet18", stem=stem, width=width)


@ENCODERS.decorator("resnet50")
def resnet50(stem: str = "imagenet", width: float = 1.0) -> Encoder:
    """ResNet-50 (Bottleneck, 3-4-6-3), 2048*width-d features."""
    return ResNet(Bottleneck, (3, 4, 6, 3), arch="resnet50", stem=stem, width=width)


@ENCODERS.decorator("vit_tiny")
def vit_tiny(input_size: int = 32, patch_size: int | None = None, embed_dim: int = 192, depth: int = 12,
             num_heads: int = 3, mlp_ratio: float = 4.0) -> Encoder:
    """ViT-Tiny (192-d, 12 blocks, 3 heads, MLP 4x); patch input_size/8 by default (4 at 32 px, 8 at 64 px)."""
    return VisionTransformer(input_size=input_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, mlp_ratio=mlp_ratio, arch="vit_tiny")


def create_encoder(arch: str, **kwargs: Any) -> Encoder:
    """Build a registered encoder; keyword arguments that are ``None`` mean "the default".

    Raises:
        UserError: unknown architecture, unknown or invalid keyword argument.
    """
    builder = ENCODERS.get(arch)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise UserError(f"invalid arguments for encoder {arch!r}: {exc}") from None
    except ValueError as exc:
        raise UserError(f"invalid arguments for encoder {arch!r}: {exc}") from None


def list_encoders(pattern: str = "*") -> list[str]:
    """Registered encoder names matching a shell wildcard."""
    return ENCODERS.names(pattern)
