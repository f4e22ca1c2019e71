"""A StyleGAN2 synthesis network in plain PyTorch, run with random (untrained) weights.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (2020):
learned-constant 4x4 input, modulated 3x3 convolutions with weight
demodulation, per-layer noise inputs with a strength, ReLU activations, and
the *skip* architecture (each resolution block's toRGB output is added to the
upsampled image of the previous blocks). No custom CUDA ops and no trained
weights: everything is a few batched ``torch`` ops, so the same code runs on
CPU and CUDA.

All shapes put the batch first: activations ``(N, C, H, W)``, per-image styles
``(N, C_in)``, per-image weights ``(N, C_out, C_in, k, k)``.

Two forms of the modulated convolution are provided:

* :func:`modulated_conv2d`: the general form. Per-image weights run as one
  grouped convolution (``groups=N``); a weight shared by the batch runs as an
  ordinary convolution on style-scaled inputs with demodulation applied to the
  outputs (mathematically the same operation, much cheaper).
* :func:`rank1_modulated_conv2d`: the filter-bank variants build weights
  ``W[o, i] = g[o] * bank[f[i]]`` (one bank filter per input channel, shared by
  every output channel). After demodulation every output channel equals
  ``sign(g[o]) * Y`` for a single map ``Y``, so the convolution reduces exactly
  to one ``C_in -> 1`` grouped convolution; tests check it against the general
  form.
* :class:`RankOneActivation` / :func:`contract_channels` go one step further:
  the channels after such a layer are ``relu(+-Y + noise + bias_i)``, so the
  next layer's channel sums are piecewise-linear functions of two maps,
  evaluated without expanding the channels at all.

The 2x up-sampling convolution is written as StyleGAN2's [1, 3, 3, 1] FIR
up-sampling followed by a 3x3 convolution (StyleGAN2 runs a transposed
convolution, then the FIR filter): the same linear map away from the border.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

DEMOD_EPS = 1e-8
RELU_GAIN = math.sqrt(2.0)  # StyleGAN2's activation gain for (leaky) ReLU



# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class ConvLayer:
    """One modulated 3x3 convolution; ``up`` doubles the resolution first."""

    in_channels: int
    out_channels: int
    resolution: int  # output resolution
    up: bool
    w_index: int


@dataclass(frozen=True)
class RGBLayer:
    """One modulated 1x1 toRGB convolution (no demodulation, linear)."""

    in_channels: int
    resolution: int
    w_index: int


@dataclass(frozen=True)
class Layout:
    """Resolutions, channel widths and style indices of a synthesis network.

    Channels at resolution ``r`` are ``min(channel_base // r, channel_max)``
    (StyleGAN2-ADA's rule); the paper's 256 px network is
    ``channel_base=32768, channel_max=512``.
    """

    size: int
    w_dim: int
    const_channels: int
    convs: tuple[ConvLayer, ...]
    torgbs: tuple[RGBLayer, ...]  # one per resolution block, 4, 8, ..., size

    @property
    def num_ws(self) -> int:
        return len(self.convs) + 1

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(rgb.resolution for rgb in self.torgbs)


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_base // resolution, channel_max))


@functools.lru_cache(maxsize=16)
def build_layout(size: int, channel_base: int, channel_max: int, w_dim: int) -> Layout:
    """The layer list of a skip-architecture synthesis network for ``size`` (a power of 2, >= 4)."""
    log2 = int(round(math.log2(size)))
    if 2**log2 != size or size < 4:
        raise ValueError(f"synthesis size must be a power of two >= 4, got {size}")
    convs: list[ConvLayer] = []
    torgbs: list[RGBLayer] = []
    c4 = channels_at(4, channel_base, channel_max)
    convs.append(ConvLayer(c4, c4, 4, False, 0))
    torgbs.append(RGBLayer(c4, 4, 1))
    for res in (2**k for k in range(3, log2 + 1)):
        c_in, c_out = channels_at(res // 2, channel_base, channel_max), channels_at(res, channel_base, channel_max)
        convs.append(ConvLayer(c_in, c_out, res, True, len(convs)))
        convs.append(ConvLayer(c_out, c_out, res, False, len(convs)))
        torgbs.append(RGBLayer(c_out, res, len(convs)))
    return Layout(size=size, w_dim=w_dim, const_channels=c4, convs=tuple(convs), torgbs=tuple(torgbs))


# ---------------------------------------------------------------- filter banks


def _offsets() -> tuple[np.ndarray, np.ndarray]:
    """x (right) and y (up) coordinates of a 3x3 kernel's taps."""
    ys, xs = np.mgrid[1:-2:-1, -1:2]
    return xs.astype(np.float64), ys.astype(np.float64)


def _edges(angles_deg: np.ndarray, binarise: bool) -> np.ndarray:
    xs, ys = _offsets()
    t = np.deg2rad(angles_deg)[:, None, None]
    proj = xs * np.cos(t) + ys * np.sin(t)
    proj = np.where(np.abs(proj) < 1e-9, 0.0, proj)
    return np.sign(proj) if binarise else proj


def _lines(angles_deg: np.ndarray) -> np.ndarray:
    """Anti-aliased lines through the centre: max(0, 1 - distance to the line)."""
    xs, ys = _offsets()
    t = np.deg2rad(angles_deg)[:, None, None]
    dist = np.abs(-xs * np.sin(t) + ys * np.cos(t))
    return np.clip(1.0 - dist, 0.0, None)


def _sparse(names: tuple[str, ...]) -> np.ndarray:
    patterns = {
        "centre": [(1, 1)],
        "plus": [(1, 1), (0, 1), (2, 1), (1, 0), (1, 2)],
        "cross": [(1, 1), (0, 0), (0, 2), (2, 0), (2, 2)],
        "ring": [(0, 1), (2, 1), (1, 0), (1, 2)],
        "corners": [(0, 0), (0, 2), (2, 0), (2, 2)],
        "corner-tl": [(0, 0)],
        "corner-tr": [(0, 2)],
        "corner-bl": [(2, 0)],
        "corner-br": [(2, 2)],
    }
    out = np.zeros((len(names), 3, 3))
    for k, name in enumerate(names):
        for r, c in patterns[name]:
            out[k, r, c] = 1.0
    return out


@functools.lru_cache(maxsize=None)
def highfreq_filter_bank() -> np.ndarray:
    """The 40 fixed 3x3 filters of the High-frequency variant, float32 (40, 3, 3).

    16 binarised edges (sign of the projection on a direction, 22.5 deg steps
    over 360 deg), 8 lines (22.5 deg steps over 180 deg) with both signs, and 8
    sparse filters (centre, plus, diagonal cross, ring, four single corners).
    """
    lines = _lines(np.arange(8) * 22.5)
    bank = np.concatenate(
        [
            _edges(np.arange(16) * 22.5, binarise=True),
            lines,
            -lines,
            _sparse(("centre", "plus", "cross", "ring", "corner-tl", "corner-tr", "corner-bl", "corner-br")),
        ]
    )
    return _read_only(bank.astype(np.float32))


@functools.lru_cache(maxsize=None)
def oriented_filter_bank() -> np.ndarray:
    """The 40 filters of the Oriented variant, float32 (40, 3, 3).

    8 edges and 8 lines over 180 deg (22.5 deg steps), each mean-subtracted,
    plus 4 sparse filters (centre, plus, cross, corners), then the negatives
    of all 20.
    """
    angles = np.arange(8) * 22.5
    oriented = np.concatenate([_edges(angles, binarise=False), _lines(angles)])
    oriented = oriented - oriented.mean(axis=(1, 2), keepdims=True)
    half = np.concatenate([oriented, _sparse(("centre", "plus", "cross", "corners"))])
    return _read_only(np.concatenate([half, -half]).astype(np.float32))


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # cached: callers share one array
    return a


FILTER_BANKS = {"highfreq": highfreq_filter_bank, "oriented": oriented_filter_bank}


# ---------------------------------------------------------------- ops


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's 2x up-sampling of ``(..., H, W)``: zero insertion then the [1,3,3,1] FIR filter, zero padding.

    Written separably as two element-wise blends per axis (``out[2j] = (x[j-1] + 3 x[j]) / 4``,
    ``out[2j+1] = (3 x[j] + x[j+1]) / 4``): cheaper than a transposed convolution and
    independent of the batch size bit for bit.
    """
    for dim in (-2, -1):
        size = x.shape[dim]
        padded = F.pad(x, (1, 1) if dim == -1 else (0, 0, 1, 1))  # zeros outside
        x = 0.75 * x
        even = x + 0.25 * padded.narrow(dim, 0, size)
        odd = x + 0.25 * padded.narrow(dim, 2, size)
        x = _interleave(even, odd, dim)
    return x


def _interleave(even: torch.Tensor, odd: torch.Tensor, dim: int) -> torch.Tensor:
    """Interleave two tensors along ``dim`` (-2 or -1): even, odd, even, odd, ..."""
    stacked = torch.stack([even, odd], dim=dim)  # (..., H, 2, W) or (..., H, W, 2)
    shape = list(even.shape)
    shape[dim] *= 2
    return stacked.reshape(shape)


def modulated_weights(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True) -> torch.Tensor:
    """Per-image weights ``W'[n,o,i] = W[o,i] * s[n,i]``, demodulated to unit norm per output channel.

    Args:
        weight: ``(O, I, k, k)`` shared, or ``(N, O, I, k, k)`` per image.
        styles: ``(N, I)``.
    Returns:
        ``(N, O, I, k, k)``; with ``demodulate`` each ``W'[n, o]`` has L2 norm 1 (up to eps).
    """
    w = (weight if weight.ndim == 5 else weight[None]) * styles[:, None, :, None, None]
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + DEMOD_EPS)
    return w


def modulated_conv2d(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True, up: bool = False
) -> torch.Tensor:
    """Modulated (and demodulated) convolution with 'same' padding, optionally after 2x up-sampling.

    ``weight`` shared ``(O, I, k, k)``: styles scale the inputs, an ordinary
    convolution follows, and demodulation scales the outputs (the exact
    equivalent of per-image weights). Per-image ``(N, O, I, k, k)``: one
    grouped convolution with ``groups=N``.
    """
    n, c_in, _, _ = x.shape
    k = weight.shape[-1]
    if up:
        x = upsample2x(x)
    h, w_ = x.shape[-2:]
    if n == 1 and x.device.type == "cpu":
        # oneDNN runs a batch of one with another kernel (different rounding): run it as a batch of
        # two so that an image's pixels never depend on its batch.
        return modulated_conv2d(x.expand(2, -1, -1, -1), weight, styles.expand(2, -1), demodulate)[:1]
    if weight.ndim == 4:
        y = F.conv2d(x * styles[:, :, None, None], weight, padding=k // 2)
        if demodulate:
            norms = (weight.square().sum(dim=(2, 3))[None] * styles[:, None, :].square()).sum(dim=2)  # (N, O)
            y = y * torch.rsqrt(norms + DEMOD_EPS)[:, :, None, None]
        return y
    wts = modulated_weights(weight, styles, demodulate)
    c_out = wts.shape[1]
    y = F.conv2d(x.reshape(1, n * c_in, h, w_), wts.reshape(n * c_out, c_in, k, k), padding=k // 2, groups=n)
    return y.reshape(n, c_out, h, w_)


def rank1_modulated_conv2d(
    x: torch.Tensor, kernels: torch.Tensor, signs: torch.Tensor, styles: torch.Tensor, up: bool = False
) -> torch.Tensor:
    """Demodulated convolution with per-image weights ``W[n,o,i] = g[n,o] * kernels[n,i]``.

    Demodulation removes ``|g[n,o]|``, so every output channel is
    ``sign(g[n,o]) * Y[n]`` with ``Y[n] = conv(x[n], s[n,i] * kernels[n,i]) / norm``:
    one ``C_in -> 1`` grouped convolution instead of ``C_in -> C_out``.

    Args:
        x: ``(N, I, H, W)``; kernels: ``(N, I, k, k)``; signs: ``(N, O)`` of +-1; styles: ``(N, I)``.
    """
    n, c_in, _, _ = x.shape
    k = kernels.shape[-1]
    if up:
        x = upsample2x(x)
    h, w_ = x.shape[-2:]
    kern = demodulated_bank_taps(kernels, styles).reshape(n, c_in, k, k)
    y = F.conv2d(x.reshape(1, n * c_in, h, w_), kern, padding=k // 2, groups=n)
    return y.reshape(n, 1, h, w_) * signs[:, :, None, None]


def to_rgb(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """Modulated 1x1 toRGB without demodulation: ``(N, I, H, W) -> (N, 3, H, W)``.

    ``weight`` is ``(3, I)`` shared or ``(N, 3, I)`` per image; StyleGAN2's
    weight gain ``1 / sqrt(I)`` is applied to the styles.
    """
    per_image = (weight if weight.ndim == 3 else weight[None]) * (styles / math.sqrt(x.shape[1]))[:, None, :]
    return torch.einsum("nchw,nkc->nkhw", x, per_image)


def pink_noise(white: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Shape white noise ``(N, H, W)`` to a 1/f^alpha amplitude spectrum (``alpha (N,)``), unit std per map."""
    n, h, w = white.shape
    radius = torch.tensor(_frequency_radius(h, w), device=white.device, dtype=white.dtype)
    amplitude = radius[None].pow(-alpha[:, None, None])
    amplitude[:, 0, 0] = 0.0  # no DC
    out = torch.fft.irfft2(torch.fft.rfft2(white) * amplitude, s=(h, w))
    return standardise_maps(out)


@functools.lru_cache(maxsize=32)
def _frequency_radius(h: int, w: int) -> np.ndarray:
    """|f| in cycles per image on the ``rfft2`` grid of an ``h x w`` map, with the DC entry set to 1."""
    radius = np.hypot(np.fft.fftfreq(h)[:, None] * h, np.fft.rfftfreq(w)[None, :] * w)
    radius[0, 0] = 1.0
    return _read_only(radius)


def standardise_maps(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit std over the last two dims."""
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return x * torch.rsqrt(x.square().mean(dim=(-2, -1), keepdim=True) + 1e-12)


def laplacian_envelope(grid: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinearly upsample ``(N, g, g)`` Laplace samples to ``(N, size, size)``."""
    return F.interpolate(grid[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def resize_maps(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area-resize square ``(N, H, W)`` maps to ``size`` (``H`` a multiple of it) and restandardise."""
    n, h, _ = x.shape
    if h == size:
        return x
    f = h // size
    return standardise_maps(x.reshape(n, size, f, size, f).mean(dim=(2, 4)))


# ---------------------------------------------------------------- width-free form of the filter-bank layers


@dataclass(frozen=True)
class RankOneActivation:
    """Activations ``x[n, i] = RELU_GAIN * relu(signs[n, i] * y[n] + v[n] + bias[n, i])`` kept unexpanded.

    After a rank-1 (filter-bank) layer every channel is a signed copy of one map
    ``y`` plus the layer's noise ``v`` and a per-channel bias, so any linear
    combination over channels is a piecewise-linear function of ``+y + v`` and
    ``-y + v`` with knots at ``-bias``: :func:`contract_channels` evaluates it
    with a sort and a table lookup, at a cost independent of the channel count.

    Shapes: ``y`` and ``v`` ``(N, H, W)``; ``signs`` (+-1) and ``bias`` ``(N, C)``.
    """

    y: torch.Tensor
    v: torch.Tensor
    signs: torch.Tensor
    bias: torch.Tensor

    def dense(self) -> torch.Tensor:
        """The expanded ``(N, C, H, W)`` activations (reference path and tests)."""
        pre = self.signs[:, :, None, None] * self.y[:, None] + self.v[:, None] + self.bias[:, :, None, None]
        return torch.relu(pre) * RELU_GAIN


def contract_channels(x: torch.Tensor | RankOneActivation, coeffs: torch.Tensor) -> torch.Tensor:
    """``out[n, k] = sum_i coeffs[n, i, k] * x[n, i]``: ``x`` ``(N, C, H, W)`` or rank-1, ``coeffs`` ``(N, C, K)``.

    Returns ``(N, K, H, W)``.

    For a :class:`RankOneActivation`, ``sum_i c_i relu(t + b_i)`` over the
    channels of one sign equals ``t * A(t) + B(t)`` where ``A`` and ``B`` are
    cumulative sums of ``c_i`` and ``c_i b_i`` over the channels whose knot
    ``-b_i`` lies below ``t``: sort the knots, build the cumulative tables, then
    look up each pixel's segment with ``searchsorted``.
    """
    if isinstance(x, torch.Tensor):
        return torch.einsum("nchw,nck->nkhw", x, coeffs)
    n, h, w = x.y.shape
    c, k = coeffs.shape[1:]
    knots, order = torch.sort(-x.bias, dim=1)  # (N, C) ascending
    cs = torch.gather(coeffs * RELU_GAIN, 1, order[:, :, None].expand(-1, -1, k))
    ab = torch.cat([cs, cs * -knots[:, :, None]], dim=2)  # per channel: c_i | c_i * b_i
    positive = (torch.gather(x.signs, 1, order) > 0)[:, :, None]
    zero_row = torch.zeros(n, 1, 2 * k, dtype=ab.dtype, device=ab.device)
    # rows 0..C: +y channels, first j knots active; rows C+1..2C+1: the same for the -y channels
    table = torch.cat(
        [zero_row, torch.where(positive, ab, 0.0).cumsum(1), zero_row, torch.where(positive, 0.0, ab).cumsum(1)], dim=1
    )
    t = torch.cat([(x.y + x.v).reshape(n, h * w), (x.v - x.y).reshape(n, h * w)], dim=1)  # (N, 2HW)
    segment = torch.searchsorted(knots, t)  # number of knots strictly below t
    segment[:, h * w :] += c + 1
    segment += torch.arange(n, device=t.device)[:, None] * (2 * c + 2)  # rows of the flattened tables
    looked_up = table.reshape(-1, 2 * k).index_select(0, segment.reshape(-1)).reshape(n, 2 * h * w, 2 * k)
    value = torch.addcmul(looked_up[..., k:], t[:, :, None], looked_up[..., :k])
    return (value[:, : h * w] + value[:, h * w :]).permute(0, 2, 1).reshape(n, k, h, w)


def shift_sum(taps: torch.Tensor) -> torch.Tensor:
    """``(N, 9, H, W)`` per-tap maps -> ``(N, H, W)``: finishes a 3x3 'same' convolution.

    A 3x3 cross-correlation is ``Y[p] = sum_k M_k[p + d_k]`` with
    ``M_k = sum_i w[i, k] x_i``; tap ``k = 3 * dy + dx``, zero padding.
    """
    n, _, h, w = taps.shape
    padded = F.pad(taps, (1, 1, 1, 1))
    out = torch.zeros(n, h, w, dtype=taps.dtype, device=taps.device)
    for k in range(9):
        dy, dx = divmod(k, 3)
        out = out + padded[:, k, dy : dy + h, dx : dx + w]
    return out


def demodulated_bank_taps(kernels: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """``(N, I, 3, 3)`` bank kernels times styles ``(N, I)``, demodulated per image -> taps ``(N, I, 9)``."""
    kern = kernels * styles[:, :, None, None]
    kern = kern * torch.rsqrt(kern.square().sum(dim=(1, 2, 3), keepdim=True) + DEMOD_EPS)
    return kern.reshape(kern.shape[0], kern.shape[1], -1)
