"""Weighted k-nearest-neighbour classification on L2-normalised features.

The InstDisc (Wu et al. 2018) / solo-learn protocol: cosine similarity to every
training feature, the ``k`` most similar neighbours vote for their label with
weight ``exp(similarity / temperature)``; the class with the largest vote wins.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .linear import topk_accuracy


def knn_predict_scores(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    n_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class vote scores (M, n_classes) for each test row.

    Args:
        train: (N, D) features (normalised here); train_labels: (N,) int64.
        test: (M, D) features (normalised here).
        k: neighbours (capped at N); temperature: vote sharpness.
        chunk_size: test rows per similarity block (bounds memory to chunk x N).
    """
    train = F.normalize(train.float(), dim=1)
    test = F.normalize(test.float(), dim=1)
    k = min(k, train.shape[0])
    scores = torch.zeros(test.shape[0], n_classes)
    for start in range(0, test.shape[0], chunk_size):
        sims = test[start : start + chunk_size] @ train.T
        top_sims, top_idx = sims.topk(k, dim=1)
        weights = (top_sims / temperature).exp_()
        scores[start : start + chunk_size].scatter_add_(1, train_labels[top_idx], weights)
    return scores


def knn_accuracy(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    n_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    ks: Sequence[int] = (1, 5),
) -> dict[int, float]:
    """Top-k accuracies (percent) of the weighted kNN classifier."""
    scores = knn_predict_scores(train, train_labels, test, n_classes, k=k, temperature=temperature)
    return topk_accuracy(scores, test_labels, ks=ks)
