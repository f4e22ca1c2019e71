"""Projection heads put on top of an encoder by SSL methods (lightly-style: one generic MLP)."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class ProjectionHead(nn.Sequential):
    """MLP ``dims[0] -> dims[1] -> ... -> dims[-1]``: Linear (+BN) + ReLU between layers, plain Linear last."""

    def __init__(self, dims: Sequence[int], batch_norm: bool = False) -> None:
        if len(dims) < 2:
            raise ValueError(f"a projection head needs at least 2 dims, got {list(dims)}")
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-2], dims[1:-1]):
            layers.append(nn.Linear(d_in, d_out, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(d_out))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Linear(dims[-2], dims[-1]))
        super().__init__(*layers)
        self.dims = tuple(dims)


class MoCoV2Head(ProjectionHead):
    """MoCo v2 head: in -> hidden (= in by default) -> ReLU -> out (128), no BN (2048-2048-128 for ResNet-50)."""

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128) -> None:
        super().__init__((in_dim, hidden_dim or in_dim, out_dim), batch_norm=False)


class SimCLRHead(ProjectionHead):
    """SimCLR head: in -> hidden (= in by default) -> BN -> ReLU -> out (128)."""

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128) -> None:
        super().__init__((in_dim, hidden_dim or in_dim, out_dim), batch_norm=True)
