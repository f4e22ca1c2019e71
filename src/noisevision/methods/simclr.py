"""SimCLR (Chen et al. 2020): NT-Xent over the two views of the (global) batch."""
from __future__ import annotations

import torch

from ..distributed import gather_with_grad
from ..losses import nt_xent_loss
from ..models import Encoder, SimCLRHead
from .base import Method, default_head, register_method


@register_method
class SimCLR(Method):
    """NT-Xent with an MLP head (in -> hidden -> BN -> ReLU -> 128); negatives are all
    other views of the global batch (gathered from every rank with gradients in DDP)."""

    name = "simclr"

    def __init__(self, encoder: Encoder, temperature: float = 0.5, head: bool | None = None,
                 hidden_dim: int | None = None, out_dim: int = 128) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        super().__init__(encoder, default_head(encoder, head, SimCLRHead, hidden_dim, out_dim))
        self.temperature = temperature

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1, z2 = self.embed_views(view1, view2)
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        loss = nt_xent_loss(z1, z2, self.temperature)
        return {"loss": loss, "pos_sim": (z1 * z2).sum(dim=1).mean().detach()}
