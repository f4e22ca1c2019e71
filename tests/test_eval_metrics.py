"""Linear probe solver, kNN, top-k and alignment/uniformity against references and known values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisevision.eval.knn import knn_accuracy, knn_predict_scores
from noisevision.eval.linear import (
    fit_linear_probe,
    fit_logistic_regression,
    softmax_xent_and_grad,
    standardize,
    stratified_split,
    topk_accuracy,
)
from noisevision.eval.metrics import alignment_uniformity


def _blobs(n: int, d: int, k: int, sep: float, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g, dtype=dtype) * sep
    y = torch.randint(0, k, (n,), generator=g)
    return torch.randn(n, d, generator=g, dtype=dtype) + centres[y], y


def test_closed_form_gradient_matches_autograd():
    x, y = _blobs(40, 7, 4, 1.0)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    lam = 0.3
    loss_ref = F.cross_entropy(x @ w + b, y) + 0.5 * lam * w.pow(2).sum()
    loss_ref.backward()
    with torch.no_grad():
        loss, gw, gb = softmax_xent_and_grad(x, y, w, b, lam)
    torch.testing.assert_close(loss, loss_ref.detach())
    torch.testing.assert_close(gw, w.grad)
    torch.testing.assert_close(gb, b.grad)


def test_lbfgs_fit_matches_slow_autograd_reference():
    x, y = _blobs(60, 5, 3, 0.7, seed=2)
    lam = 0.05
    fast = fit_logistic_regression(x, y, 3, lam, max_iter=500, tol=1e-10)
    # slow reference: plain gradient descent with autograd until convergence
    w = torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=0.5)
    for _ in range(5000):
        opt.zero_grad()
        (F.cross_entropy(x @ w + b, y) + 0.5 * lam * w.pow(2).sum()).backward()
        opt.step()
    torch.testing.assert_close(fast.weight, w.detach(), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(fast.bias, b.detach(), atol=1e-4, rtol=1e-3)
    # and the gradient vanishes at the solution
    _, gw, gb = softmax_xent_and_grad(x, y, fast.weight, fast.bias, lam)
    assert gw.abs().max() < 1e-5 and gb.abs().max() < 1e-5


def test_regularisation_shrinks_weights_and_warm_start_helps():
    x, y = _blobs(200, 10, 4, 0.5, seed=3)
    strong = fit_logistic_regression(x, y, 4, 1.0)
    weak = fit_logistic_regression(x, y, 4, 1e-3)
    assert strong.weight.norm() < 0.5 * weak.weight.norm()
    warm = fit_logistic_regression(x, y, 4, 1e-3, init=weak)
    assert warm.iterations < weak.iterations


def test_fit_linear_probe_picks_lambda_on_validation_and_generalises():
    x, y = _blobs(600, 20, 5, 0.6, seed=4, dtype=torch.float32)
    xt, yt = _blobs(600, 20, 5, 0.6, seed=4, dtype=torch.float32)  # same centres (same seed), new draws
    xt, yt = xt[300:], yt[300:]
    x, xt = standardize(x.clone(), xt.clone())
    fit = fit_linear_probe(x, y, 5, lambdas=(1.0, 1e-2, 1e-4), seed=0)
    assert set(fit.val_top1) == {1.0, 1e-2, 1e-4}
    best = max(fit.val_top1, key=fit.val_top1.get)
    assert fit.lam == pytest.approx(best * fit.n_search_train / x.shape[0])
    assert fit.n_val == pytest.approx(60, abs=5)
    acc = topk_accuracy(fit.model.logits(xt), yt, ks=(1,))[1]
    assert acc > 80.0


def test_stratified_split_holds_out_each_class():
    labels = np.repeat(np.arange(4), [10, 20, 30, 2])
    rest, held = stratified_split(labels, 0.1, seed=0)
    assert len(np.intersect1d(rest, held)) == 0 and len(rest) + len(held) == len(labels)
    np.testing.assert_array_equal(np.bincount(labels[held], minlength=4), [1, 2, 3, 1])
    np.testing.assert_array_equal(stratified_split(labels, 0.1, seed=0)[1], held)  # deterministic


def test_topk_accuracy_known_values():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    y = torch.tensor([1, 1, 0])
    acc = topk_accuracy(logits, y, ks=(1, 2, 5))
    assert acc[1] == pytest.approx(100 / 3)
    assert acc[2] == pytest.approx(200 / 3)
    assert acc[5] == pytest.approx(100.0)  # k capped at the number of classes


def test_knn_weighted_votes_known_values():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.tensor([0, 1, 1])
    test = torch.tensor([[2.0, 0.0]])  # cosine similarities 1.0, 0.0, 0.6
    scores = knn_predict_scores(train, labels, test, n_classes=2, k=2, temperature=0.1)
    torch.testing.assert_close(scores, torch.tensor([[math.exp(10.0), math.exp(6.0)]]))
    # with k=3 the two class-1 neighbours still lose to the single close class-0 one
    scores3 = knn_predict_scores(train, labels, test, n_classes=2, k=3, temperature=0.1)
    assert scores3[0, 0] > scores3[0, 1]
    # a high temperature makes it a plain majority vote
    flat = knn_predict_scores(train, labels, test, n_classes=2, k=3, temperature=1e6)
    assert flat[0, 1] > flat[0, 0]


def test_knn_accuracy_on_clusters_and_chunking():
    x, y = _blobs(400, 16, 4, 3.0, seed=5, dtype=torch.float32)
    acc = knn_accuracy(x[:300], y[:300], x[300:], y[300:], 4, k=20)
    assert acc[1] > 95.0
    full = knn_predict_scores(x[:300], y[:300], x[300:], 4, k=20)
    chunked = knn_predict_scores(x[:300], y[:300], x[300:], 4, k=20, chunk_size=7)
    torch.testing.assert_close(full, chunked)


def test_alignment_uniformity_known_values():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    same = alignment_uniformity(x, x.clone())
    assert same["alignment"] == pytest.approx(0.0)
    assert same["uniformity"] == pytest.approx(-8.0)  # two antipodal points: log exp(-2 * 4)
    y = torch.tensor([[0.0, 3.0], [0.0, -2.0]])  # normalised inside: orthogonal to x, distance^2 = 2
    both = alignment_uniformity(x, y)
    assert both["alignment"] == pytest.approx(2.0)
    assert both["uniformity"] == pytest.approx(-8.0)
    collapsed = alignment_uniformity(torch.ones(5, 3), torch.ones(5, 3))
    assert collapsed["uniformity"] == pytest.approx(0.0, abs=1e-6)
