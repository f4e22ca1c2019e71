"""The method interface: an ``nn.Module`` that turns augmented views (and labels) into a loss dict.

A method owns the encoder to save (``.encoder``), its projection head and any
extra state (momentum encoder, queue as a registered buffer), so one
``DistributedDataParallel(method)`` wraps everything the optimiser trains.

A method registers itself with ``@register_method`` on its class (under its
``name``); ``METHOD_MODULES`` in ``methods/__init__.py`` lists the modules.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import Encoder, ProjectionHead
from ..models.base import upcast
from ..registry import Registry


class Method(nn.Module):
    """Base class. Subclasses implement ``forward(*views) -> {"loss": scalar, ...}``.

    Capabilities the training loop reads (class attributes):
        num_views: augmented views per image passed to ``forward`` (2 for the SSL methods).
        needs_labels: ``forward`` also takes ``labels=`` (int64 class labels of the batch), and
            the method is built with ``num_classes`` taken from the data.
    """

    name: str = ""
    num_views: int = 2
    needs_labels: bool = False

    def __init__(self, encoder: Encoder, head: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head if head is not None else nn.Identity()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) views -> (N, D) L2-normalised projections (fp32, or fp64 with fp64 weights)."""
        return F.normalize(upcast(self.head(self.encoder(x))), dim=1)

    def embed_views(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed both views in ONE forward pass of the concatenated batch (as the paper's
        AlignUniform code does): BN statistics cover both views and the GEMMs are twice as big."""
        both = self.embed(torch.cat([view1, view2]))
        return both[: view1.shape[0]], both[view1.shape[0] :]

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Trainable parameters split into two optimiser groups: decayed weights, and
        biases / normalisation parameters (all 0-d and 1-d tensors) with no weight decay."""
        decay, no_decay = [], []
        for param in self.parameters():
            if param.requires_grad:
                (no_decay if param.ndim <= 1 else decay).append(param)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def on_train_step_end(self) -> None:
        """Called by the training loop after each optimiser step (MoCo: momentum update, enqueue)."""


METHODS: Registry[type[Method]] = Registry("method")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register a :class:`Method` subclass under its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a class attribute name (the --method value)")
    return METHODS.register(cls.name, cls)


def default_head(encoder: Encoder, head: bool | None, kind: type[ProjectionHead], hidden_dim: int | None,
                 out_dim: int) -> nn.Module | None:
    """The method's projection head: none when the encoder already ends in one
    (SmallAlexNet's fc7/fc8, as in the paper) unless ``head=True``; otherwise ``kind``."""
    use_head = (not encoder.embedding_is_projected) if head is None else head
    return kind(encoder.out_dim, hidden_dim, out_dim) if use_head else None
