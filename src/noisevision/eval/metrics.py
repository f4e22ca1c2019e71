"""Representation-quality metrics of Wang & Isola (2020) on a test set.

alignment = mean ||f(a(x)) - f(a'(x))||^2 over two random augmentations of the
same image; uniformity = log mean_{i<j} exp(-2 ||f(x_i) - f(x_j)||^2). Both on
L2-normalised encoder outputs; lower is better for both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import align_loss, uniform_loss


def alignment_uniformity(view1: torch.Tensor, view2: torch.Tensor, t: float = 2.0) -> dict[str, float]:
    """Alignment (alpha = 2) between paired rows and uniformity (temperature ``t``).

    Args:
        view1, view2: (N, D) encoder outputs of two augmentations of the same N images;
            L2-normalised here. Uniformity is the mean over both views.
    """
    z1 = F.normalize(view1.float(), dim=1)
    z2 = F.normalize(view2.float(), dim=1)
    uniformity = 0.5 * (uniform_loss(z1, t=t) + uniform_loss(z2, t=t))
    return {"alignment": float(align_loss(z1, z2, alpha=2)), "uniformity": float(uniformity)}
