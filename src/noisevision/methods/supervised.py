"""Supervised pretraining: a linear classifier on the embedding, cross-entropy on the data's labels.

Formula-driven supervised learning (FractalDB, RCDB, VisualAtom) trains on the
classes that the generator defines; labelled stored data (``labels.npy``,
ImageFolder classes) works the same way. One augmented view per image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather_no_grad, gather_with_grad
from ..models import Encoder
from .base import Method, register_method


@register_method
class Supervised(Method):
    """``cross_entropy(Linear(encoder(view)), labels)`` over the global batch.

    The head is one linear layer on the encoder's output (``out_dim``); only the
    encoder is saved. In DDP the logits and labels of all ranks are gathered
    (logits with gradients), so every rank computes the global-batch loss that
    one process would, and the logged loss is that of the global batch.
    """

    name = "supervised"
    num_views = 1
    needs_labels = True

    def __init__(self, encoder: Encoder, num_classes: int, label_smoothing: float = 0.0) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        super().__init__(encoder, nn.Linear(encoder.out_dim, num_classes))
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def forward(self, view: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        logits = gather_with_grad(self.head(self.encoder(view)).float())
        labels = gather_no_grad(labels)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "accuracy": accuracy}
