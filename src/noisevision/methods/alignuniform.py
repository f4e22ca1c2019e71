"""Alignment + Uniformity (Wang & Isola 2020): the paper's small-scale method."""
from __future__ import annotations

import torch

from ..distributed import gather_with_grad
from ..losses import align_loss, uniform_loss
from ..models import Encoder, SimCLRHead
from .base import Method, default_head, register_method


@register_method
class AlignUniform(Method):
    """``align_weight * L_align(x, y) + unif_weight * (L_unif(x) + L_unif(y)) / 2``.

    x, y are the L2-normalised embeddings of the two views (SmallAlexNet: fc8, no
    extra head). In DDP the uniformity term uses the embeddings of all ranks
    (gathered with gradients), so it matches one process on the global batch.
    """

    name = "alignuniform"

    def __init__(self, encoder: Encoder, alpha: float = 2.0, t: float = 2.0, align_weight: float = 1.0,
                 unif_weight: float = 1.0, head: bool | None = None, hidden_dim: int | None = None,
                 out_dim: int = 128) -> None:
        if alpha <= 0 or t <= 0:
            raise ValueError(f"alpha and t must be > 0, got alpha={alpha}, t={t}")
        super().__init__(encoder, default_head(encoder, head, SimCLRHead, hidden_dim, out_dim))
        self.alpha, self.t = alpha, t
        self.align_weight, self.unif_weight = align_weight, unif_weight

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        x, y = self.embed_views(view1, view2)
        align = align_loss(x, y, self.alpha)
        uniform = (uniform_loss(gather_with_grad(x), self.t) + uniform_loss(gather_with_grad(y), self.t)) / 2
        loss = self.align_weight * align + self.unif_weight * uniform
        return {"loss": loss, "align": align.detach(), "uniform": uniform.detach()}
