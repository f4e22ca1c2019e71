"""Losses: against slow NumPy loop references, exact known values, autocast and gradients."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisevision.losses import align_loss, align_uniform_loss, info_nce_loss, nt_xent_loss, uniform_loss


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


# ---- slow references (plain loops over samples) --------------------------------------------------

def ref_align(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    return float(np.mean([np.linalg.norm(a - b) ** alpha for a, b in zip(x, y)]))


def ref_uniform(x: np.ndarray, t: float) -> float:
    terms = [math.exp(-t * np.sum((x[i] - x[j]) ** 2)) for i in range(len(x)) for j in range(i + 1, len(x))]
    return math.log(sum(terms) / len(terms))


def ref_info_nce(q: np.ndarray, k: np.ndarray, queue: np.ndarray, temp: float) -> float:
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    k = k / np.linalg.norm(k, axis=1, keepdims=True)
    losses = []
    for qi, ki in zip(q, k):
        logits = np.concatenate([[qi @ ki], queue @ qi]) / temp
        losses.append(-logits[0] + math.log(np.sum(np.exp(logits))))
    return float(np.mean(losses))


def ref_nt_xent(z1: np.ndarray, z2: np.ndarray, temp: float) -> float:
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    losses = []
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        denom = sum(math.exp(z[i] @ z[j] / temp) for j in range(2 * n) if j != i)
        losses.append(-(z[i] @ z[pos]) / temp + math.log(denom))
    return float(np.mean(losses))


# ---- against the references ---------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [2.0, 1.0, 3.0])
def test_align_matches_reference(alpha: float) -> None:
    x, y = _unit(7, 5, 0), _unit(7, 5, 1)
    assert align_loss(x, y, alpha).item() == pytest.approx(ref_align(x.numpy(), y.numpy(), alpha), rel=1e-9)


@pytest.mark.parametrize("t", [2.0, 0.5])
def test_uniform_matches_reference(t: float) -> None:
    x = _unit(9, 4, 2)
    assert uniform_loss(x, t).item() == pytest.approx(ref_uniform(x.numpy(), t), rel=1e-9)


def test_info_nce_matches_reference() -> None:
    q, k, queue = _unit(6, 8, 3) * 3.0, _unit(6, 8, 4) * 0.5, _unit(11, 8, 5)  # q, k normalised inside
    got = info_nce_loss(q, k, queue, 0.2).item()
    assert got == pytest.approx(ref_info_nce(q.numpy(), k.numpy(), queue.numpy(), 0.2), rel=1e-9)


@pytest.mark.parametrize("temp", [0.5, 0.1])
def test_nt_xent_matches_reference(temp: float) -> None:
    z1, z2 = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)
    assert nt_xent_loss(z1, z2, temp).item() == pytest.approx(ref_nt_xent(z1.numpy(), z2.numpy(), temp), rel=1e-9)


def test_align_uniform_is_the_weighted_sum() -> None:
    x, y = _unit(8, 3, 6), _unit(8, 3, 7)
    expected = 0.5 * align_loss(x, y) + 3.0 * (uniform_loss(x) + uniform_loss(y)) / 2
    torch.testing.assert_close(align_uniform_loss(x, y, align_weight=0.5, unif_weight=3.0), expected)


# ---- exact known values -------------------------------------------------------------------------

def test_known_values() -> None:
    x = _unit(10, 16, 8)
    assert align_loss(x, x).item() == 0.0
    antipodal = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    assert uniform_loss(antipodal, t=2).item() == pytest.approx(-8.0)  # ||x - y||^2 = 4
    assert uniform_loss(torch.ones(4, 3) / math.sqrt(3)).item() == pytest.approx(0.0, abs=1e-6)  # all identical
    n = 6
    same = torch.ones(n, 4)
    assert nt_xent_loss(same, same, 0.3).item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)
    # query == key, queue orthogonal to it: loss = log(1 + K exp(-1/T))
    q = torch.tensor([[1.0, 0.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    assert info_nce_loss(q, q, queue, 0.2).item() == pytest.approx(math.log(1 + 3 * math.exp(-5.0)), rel=1e-6)


def test_uniform_prefers_spread_points() -> None:
    spread = F.normalize(torch.randn(64, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    clustered = F.normalize(torch.ones(64, 8) + 0.1 * spread, dim=1)
    assert uniform_loss(spread) < uniform_loss(clustered) - 1.0


# ---- gradients, precision, errors ---------------------------------------------------------------

def test_gradients_match_autograd_of_reference_formula() -> None:
    x = _unit(6, 4, 9).requires_grad_(True)
    torch.autograd.gradcheck(lambda a: uniform_loss(a, 2.0), (x,))
    z1, z2 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True), torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b: nt_xent_loss(a, b, 0.5), (z1, z2))


def test_losses_stay_fp32_inside_bf16_autocast() -> None:
    x, y = _unit(32, 16, 10).float(), _unit(32, 16, 11).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = [uniform_loss(x), nt_xent_loss(x, y, 0.2), info_nce_loss(x, y, y, 0.2), align_loss(x.bfloat16(), y)]
    want = [uniform_loss(x), nt_xent_loss(x, y, 0.2), info_nce_loss(x, y, y, 0.2), align_loss(x.bfloat16().float(), y)]
    for g, w in zip(got, want):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_shape_errors() -> None:
    with pytest.raises(ValueError):
        align_loss(torch.ones(3, 2), torch.ones(4, 2))
    with pytest.raises(ValueError):
        uniform_loss(torch.ones(1, 2))
    with pytest.raises(ValueError):
        info_nce_loss(torch.ones(3, 2), torch.ones(3, 2), torch.ones(5, 3))
