"""Contrastive losses as pure functions on (N, D) embeddings (rows are samples).

All functions compute in fp32 (inputs from a bf16 autocast region are upcast),
build logits and use ``F.cross_entropy`` / ``logsumexp`` for stability, and
return a scalar tensor.

References:
    Wang & Isola, "Understanding Contrastive Representation Learning through
    Alignment and Uniformity on the Hypersphere", ICML 2020 (align / uniform).
    He et al. 2020 / Chen et al. 2020, MoCo and MoCo v2 (InfoNCE with a queue).
    Chen et al., "A Simple Framework for Contrastive Learning", ICML 2020 (NT-Xent).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def _full_precision(loss_fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Run ``loss_fn`` with autocast disabled, so its matmuls stay fp32 inside a bf16 region."""

    @functools.wraps(loss_fn)
    def wrapper(first: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        with torch.autocast(first.device.type, enabled=False):
            return loss_fn(first, *args, **kwargs)

    return wrapper


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> fp32; fp32/fp64 unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"expected two (N, D) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


@_full_precision
def align_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 2) -> torch.Tensor:
    """Alignment: ``mean_i ||x_i - y_i||_2^alpha`` over positive pairs.

    Args:
        x, y: (N, D) embeddings of two views of the same N images, L2-normalised
            (not normalised here, as in the paper).
        alpha: exponent (2 in the paper).
    Returns: scalar; 0 when the two views map to identical embeddings.
    """
    _check_pair(x, y)
    diff = _upcast(x) - _upcast(y)
    if alpha == 2:
        return diff.pow(2).sum(dim=1).mean()
    return diff.norm(dim=1).pow(alpha).mean()


@_full_precision
def uniform_loss(x: torch.Tensor, t: float = 2) -> torch.Tensor:
    """Uniformity: ``log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over all distinct pairs.

    Args:
        x: (N, D) L2-normalised embeddings, N >= 2.
        t: temperature (2 in the paper).
    Returns: scalar <= 0; lower means more uniformly spread on the sphere
        (two antipodal unit vectors give exactly -4t).
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"uniform_loss needs an (N, D) tensor with N >= 2, got {tuple(x.shape)}")
    x = _upcast(x)
    n = x.shape[0]
    sq_norms = x.pow(2).sum(dim=1)
    sq_dists = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)
    i, j = torch.triu_indices(n, n, offset=1, device=x.device)
    pair_logits = -t * sq_dists[i, j]
    return torch.logsumexp(pair_logits, dim=0) - math.log(pair_logits.numel())


def align_uniform_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 2,
    t: float = 2,
    align_weight: float = 1,
    unif_weight: float = 1,
) -> torch.Tensor:
    """The paper's small-scale loss: ``w_a * L_align(x, y) + w_u * (L_unif(x) + L_unif(y)) / 2``."""
    return align_weight * align_loss(x, y, alpha) + unif_weight * (uniform_loss(x, t) + uniform_loss(y, t)) / 2


@_full_precision
def info_nce_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo's InfoNCE: each query's positive is its key, negatives are the queue.

    Args:
        q: (N, D) queries (online encoder); L2-normalised here.
        k: (N, D) keys (momentum encoder, no gradient expected); L2-normalised here.
        queue: (K, D) L2-normalised negative keys from previous batches.
        temperature: softmax temperature (0.2 for MoCo v2).
    Returns: scalar, mean over the N queries of ``-log softmax([q.k, q.queue]/T)[0]``.
    """
    _check_pair(q, k)
    if queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"queue must be (K, {q.shape[1]}), got {tuple(queue.shape)}")
    q = F.normalize(_upcast(q), dim=1)
    k = F.normalize(_upcast(k), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)
    negatives = q @ queue.to(q.dtype).T
    logits = torch.cat([positive, negatives], dim=1) / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels)


@_full_precision
def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent over 2N views: for each view the other view of its image is the positive
    and the remaining 2N - 2 views are negatives (cosine similarity / temperature).

    Args:
        z1, z2: (N, D) projections of the two views; L2-normalised here.
        temperature: softmax temperature.
    Returns: scalar mean over all 2N views; equals ``log(2N - 1)`` when all embeddings are identical.
    """
    _check_pair(z1, z2)
    n = z1.shape[0]
    z = F.normalize(_upcast(torch.cat([z1, z2])), dim=1)
    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)
