"""MoCo v2 (He et al. 2020; Chen et al. 2020): momentum key encoder + queue of negatives."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather_no_grad
from ..losses import info_nce_loss
from ..models import Encoder, MoCoV2Head
from ..models.base import upcast
from .base import Method, default_head, register_method


@register_method
class MoCoV2(Method):
    """InfoNCE between online queries and momentum keys, with a FIFO queue of past keys.

    - Key encoder/head: a copy of the online ones, updated after every optimiser step
      as ``k = m * k + (1 - m) * q`` (:meth:`on_train_step_end`), never by gradients.
    - Queue: a (queue_size, D) registered buffer used as a ring buffer, so any batch
      size works (the original code requires queue_size % batch == 0); a global batch
      larger than the queue keeps only its last queue_size keys. Keys of the step are
      enqueued in :meth:`on_train_step_end` (after backward, which still needs the
      queue as it was during forward). In DDP the keys of all ranks are enqueued.
    - Shuffle-BN (MoCo's trick against BN leaking batch statistics) is not
      implemented; the key encoder uses the statistics of its own (local) batch.
    - ``symmetric=True`` adds the loss with the views swapped (averaged).
    """

    name = "mocov2"

    def __init__(self, encoder: Encoder, queue_size: int = 65536, momentum: float = 0.999,
                 temperature: float = 0.2, symmetric: bool = False, head: bool | None = None,
                 hidden_dim: int | None = None, out_dim: int = 128) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        super().__init__(encoder, default_head(encoder, head, MoCoV2Head, hidden_dim, out_dim))
        self.momentum, self.temperature, self.symmetric = momentum, temperature, symmetric
        self.momentum_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.momentum_head = copy.deepcopy(self.head).requires_grad_(False)
        dim = self.encoder.out_dim if isinstance(self.head, nn.Identity) else out_dim
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending_keys: torch.Tensor | None = None

    @torch.no_grad()
    def embed_keys(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D) L2-normalised keys from the momentum encoder."""
        return F.normalize(upcast(self.momentum_head(self.momentum_encoder(x))), dim=1)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.symmetric:  # both directions, each encoder run once on the concatenated views
            q1, q2 = self.embed_views(view1, view2)
            k1, k2 = self.embed_keys(torch.cat([view1, view2])).split(view1.shape[0])
            loss = (info_nce_loss(q1, k2, self.queue, self.temperature) + info_nce_loss(q2, k1, self.queue, self.temperature)) / 2
            keys = [k2, k1]
        else:
            q1, k2 = self.embed(view1), self.embed_keys(view2)
            loss = info_nce_loss(q1, k2, self.queue, self.temperature)
            keys = [k2]
        if self.training:
            self._pending_keys = gather_no_grad(torch.cat(keys))
        return {"loss": loss, "pos_sim": (q1.detach() * k2).sum(dim=1).mean()}

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, momentum) module pairs updated by EMA."""
        return [(self.encoder, self.momentum_encoder), (self.head, self.momentum_head)]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``key = m * key + (1 - m) * online`` for every parameter pair."""
        for online, target in self.momentum_pairs():
            pairs = [(t, o) for t, o in zip(target.parameters(), online.parameters())]
            if pairs:
                targets, onlines = zip(*pairs)
                torch._foreach_lerp_(list(targets), list(onlines), 1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (B, D) into the ring buffer at the pointer; keep the last K if B > K."""
        size = self.queue.shape[0]
        keys = keys[-size:].to(self.queue.dtype)
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=self.queue.device)) % size
        self.queue[idx] = keys
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % size)

    def on_train_step_end(self) -> None:
        self.momentum_update()
        if self._pending_keys is not None:
            self.enqueue(self._pending_keys)
            self._pending_keys = None
