"""Randomly initialised StyleGAN2 generators (paper section 3): no training at all.

Images come from a StyleGAN2 synthesis network (skip architecture, modulated
convolutions with demodulation, noise inputs, ReLU; see :mod:`._stylegan_net`)
whose weights are random. The mapping network is bypassed: each of the
per-layer ``w`` vectors is ``LeakyReLU_0.2(N(0, I))``, drawn independently per
image. Image ``i`` uses network ``i // images_per_network`` (400 by default),
whose weights are drawn from ``torch_generator(seed, group, "stylegan-net")``
on the CPU, so every worker and every device builds the identical network.
Everything a variant redraws "every forward pass" in the paper (bank-based
conv weights, toRGB weights, biases, noise maps and strengths) is drawn per
image from the image's own stream ``image_rng(seed, i, "stylegan")``, so an
image never depends on its batch. Output colours: each RGB channel is
standardised, then given a sampled mean and std (:func:`sample_color_stats`,
stream ``"stylegan-color"``) and clipped to [0, 1].

Variants (``conv_weights`` / ``noise`` / ``bias_range`` / ``redraw_torgb``):

* ``stylegan/random``: default StyleGAN2 initialisation: conv, affine and
  toRGB weights N(0, 1), constant input N(0, 1), affine bias 1, no noise.
* ``stylegan/high-freq``: each 3x3 kernel is ``g[o] * bank[f[i]]`` with the
  40-filter high-frequency bank (one random filter per input channel, shared
  by all output channels, ``g ~ N(0, 1)`` per output channel; demodulation
  leaves only its sign), toRGB redrawn N(0, 1), per-layer pink noise
  ``1/f^alpha`` (alpha ~ U(0.5, 1.5)) with strength U(0, 0.3).
* ``stylegan/sparse``: high-freq, plus every noise map multiplied by a
  Laplacian envelope (4x4 Laplace(0, 1) grid, bilinearly upsampled, the
  product restandardised) and biases U(0, 0.2).
* ``stylegan/oriented``: the second bank (20 oriented/sparse filters and
  their negatives), a random subset of 5..40 filters per layer, biases
  U(-0.2, 0.2), one pink x envelope map per image resized to every layer with
  strength U(0, 0.3) per layer.

Reading of the spec's ambiguity about "sparse": the official code chooses
its network variant with a chain of branches of which one is unreachable (see
the project's style notes), so the released Sparse data may well have come
from the high-frequency code path; its reported top-1 (42.0) is within noise
of High-frequency's (42.1). We implement the process the paper describes
(envelope and U(0, 0.2) biases), the only reading under which Sparse is a
distinct dataset; ``-p noise=pink -p bias_range=0,0`` gives the other reading
(which is exactly ``stylegan/high-freq``).

Network size: the synthesis network is built for the requested size (the
next power of two, then area-resized if the size is not one). Channels at
resolution ``r`` are ``min(channel_base // r, channel_max)``. The CPU default
(``channel_base=4096, channel_max=64``) gives 64 channels up to 64 px, 32 at
128 px; the paper's 256 px network is ``channel_base=32768,
channel_max=512`` (512 up to 64 px, 256 at 128, 128 at 256).

Filter banks (our construction from the paper's description): edges are the
projection of each tap on a direction (binarised to +-1 in the high-frequency
bank), lines are anti-aliased (``max(0, 1 - distance)``), and the sparse
filters are centre / plus / diagonal cross / ring / corner patterns. With this
rank-1 reading of the spec (one filter per input channel, shared by all
outputs), a sum over many channels tends to the bank's mean filter, a blur for
the high-frequency bank (which is not mean-free): at the paper's widths
high-freq and sparse images come out smoother than at the default 64 channels.

Computation: the filter-bank variants never expand their channels (see
:class:`._stylegan_net.RankOneActivation`), so their cost does not depend on
the width; ``stylegan/random`` runs real convolutions (``bf16=True``
autocasts them). Bit-for-bit independence of the batch: styles and noise
spectra are computed in float64 (float32 matmul/FFT kernels round differently
for different batch sizes) and a batch of one runs through oneDNN as two.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..rng import image_rng, torch_generator
from . import _stylegan_net as net
from .base import register_generator

CONV_WEIGHTS = ("gaussian", "highfreq", "oriented")
NOISE_KINDS = ("none", "pink", "pink-envelope", "shared-pink-envelope")

# Per-channel (R, G, B) normals of the output mean and std (paper section 3).
COLOR_MEAN_MU = np.array([0.483, 0.455, 0.401])
COLOR_MEAN_SIGMA = np.array([0.145, 0.142, 0.161])
COLOR_STD_MU = np.array([0.219, 0.213, 0.213])
COLOR_STD_SIGMA = np.array([0.063, 0.062, 0.069])
MIN_COLOR_STD = 1e-3  # a (rare) negative std draw is reflected, then floored here

NET_PURPOSE = "stylegan-net"
IMAGE_PURPOSE = "stylegan"
COLOR_PURPOSE = "stylegan-color"


def _check_range(name: str, lo_hi: tuple[float, float], lo: float | None = None, hi: float | None = None) -> None:
    a, b = lo_hi
    if not a <= b:
        raise ValueError(f"{name} must be low,high with low <= high, got {a},{b}")
    if lo is not None and a < lo:
        raise ValueError(f"{name} must be >= {lo}, got {a}")
    if hi is not None and b > hi:
        raise ValueError(f"{name} must be <= {hi}, got {b}")


@dataclass(frozen=True)
class StyleGANParams:
    """Parameters of a random StyleGAN2 generator.

    Attributes:
        conv_weights: "gaussian" (N(0,1) per network), "highfreq" or "oriented" (filter banks, per image).
        filter_subset: inclusive range of how many bank filters (of 40) each layer draws from.
        noise: "none", "pink" (per layer), "pink-envelope" (per layer, times a Laplacian
            envelope) or "shared-pink-envelope" (one map per image resized to every layer).
        noise_strength: per-layer noise strength range, U(low, high).
        noise_alpha: pink-noise exponent range, U(low, high).
        bias_range: conv biases U(low, high) per image; (0, 0) keeps StyleGAN2's zero init.
        redraw_torgb: draw the toRGB weights N(0,1) per image instead of per network.
        images_per_network: images rendered by each random network.
        channel_base, channel_max: channel widths, ``min(channel_base // res, channel_max)``.
        w_dim: length of each style vector ``w``.
        envelope_grid: side of the Laplace(0, 1) grid of the noise envelope.
        bf16: run the convolutions of ``conv_weights="gaussian"`` networks under bf16 autocast
            (1.1-1.7x faster on CPUs with AVX512-BF16/AMX, pixels within a few levels of fp32;
            off by default so that a dataset does not depend on the CPU it was rendered on).
    """

    conv_weights: str = "gaussian"
    filter_subset: tuple[int, int] = (40, 40)
    noise: str = "none"
    noise_strength: tuple[float, float] = (0.0, 0.3)
    noise_alpha: tuple[float, float] = (0.5, 1.5)
    bias_range: tuple[float, float] = (0.0, 0.0)
    redraw_torgb: bool = False
    images_per_network: int = 400
    channel_base: int = 4096
    channel_max: int = 64
    w_dim: int = 512
    envelope_grid: int = 4
    bf16: bool = False

    def __post_init__(self) -> None:
        if self.conv_weights not in CONV_WEIGHTS:
            raise ValueError(f"conv_weights must be one of {', '.join(CONV_WEIGHTS)}, got {self.conv_weights!r}")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {self.noise!r}")
        _check_range("filter_subset", self.filter_subset, 1, 40)
        _check_range("noise_strength", self.noise_strength, 0.0)
        _check_range("noise_alpha", self.noise_alpha, 0.0, 4.0)
        _check_range("bias_range", self.bias_range)
        if self.images_per_network < 1:
            raise ValueError(f"images_per_network must be >= 1, got {self.images_per_network}")
        if self.channel_base < 4 or self.channel_max < 1:
            raise ValueError("channel_base must be >= 4 and channel_max >= 1")
        if self.channel_max > 1024 or self.channel_base > 2**17:
            raise ValueError("channel_max must be <= 1024 and channel_base <= 131072")
        if not 1 <= self.w_dim <= 4096:
            raise ValueError(f"w_dim must be in 1..4096, got {self.w_dim}")
        if not 1 <= self.envelope_grid <= 64:
            raise ValueError(f"envelope_grid must be in 1..64, got {self.envelope_grid}")

    @property
    def uses_bank(self) -> bool:
        return self.conv_weights != "gaussian"


# ---------------------------------------------------------------- sampling (numpy / seeded torch, on the CPU)


def synthesis_size(size: int) -> int:
    """The network's native resolution for an output ``size``: the next power of two."""
    return max(4, 1 << (int(size) - 1).bit_length())


def sample_color_stats(indices: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image target (mean, std) of the R, G, B channels, each float64 ``(N, 3)``."""
    means, stds = [], []
    for i in np.asarray(indices, dtype=np.int64):
        rng = image_rng(seed, int(i), COLOR_PURPOSE)
        means.append(rng.normal(COLOR_MEAN_MU, COLOR_MEAN_SIGMA))
        stds.append(rng.normal(COLOR_STD_MU, COLOR_STD_SIGMA))
    return np.stack(means), np.maximum(np.abs(np.stack(stds)), MIN_COLOR_STD)


def _leaky_relu(x: np.ndarray, slope: float = 0.2) -> np.ndarray:
    return np.where(x >= 0, x, slope * x)


def sample_image(layout, params: StyleGANParams, seed: int, index: int) -> dict[str, list | np.ndarray]:
    """Everything image ``index`` draws from its own stream (latents, bank choices, biases, noise)."""
    rng = image_rng(seed, index, IMAGE_PURPOSE)
    out: dict[str, list | np.ndarray] = {
        "ws": _leaky_relu(rng.standard_normal((layout.num_ws, layout.w_dim))),
        "filters": [],
        "signs": [],
        "biases": [],
        "strengths": [],
        "alphas": [],
        "whites": [],
        "grids": [],
        "torgb": [],
    }
    per_layer_noise = params.noise in ("pink", "pink-envelope")
    envelope = params.noise in ("pink-envelope", "shared-pink-envelope")
    for conv in layout.convs:
        if params.uses_bank:
            k = int(rng.integers(params.filter_subset[0], params.filter_subset[1] + 1))
            subset = rng.permutation(40)[:k]
            out["filters"].append(subset[rng.integers(0, k, size=conv.in_channels)])
            out["signs"].append(np.where(rng.standard_normal(conv.out_channels) < 0, -1.0, 1.0))
        out["biases"].append(rng.uniform(*params.bias_range, size=conv.out_channels))
        out["strengths"].append(rng.uniform(*params.noise_strength) if params.noise != "none" else 0.0)
        if per_layer_noise:
            out["alphas"].append(rng.uniform(*params.noise_alpha))
            out["whites"].append(rng.standard_normal((conv.resolution, conv.resolution)))
            if envelope:
                out["grids"].append(rng.laplace(0.0, 1.0, (params.envelope_grid,) * 2))
    if params.noise == "shared-pink-envelope":
        out["alphas"].append(rng.uniform(*params.noise_alpha))
        out["whites"].append(rng.standard_normal((layout.size, layout.size)))
        out["grids"].append(rng.laplace(0.0, 1.0, (params.envelope_grid,) * 2))
    if params.redraw_torgb:
        out["torgb"] = [rng.standard_normal((3, rgb.in_channels)) for rgb in layout.torgbs]
    return out


@functools.lru_cache(maxsize=4)
def build_network(layout, params: StyleGANParams, seed: int, group: int) -> dict:
    """The random weights of network ``group`` (CPU tensors), drawn from its own torch stream.

    ``affine`` packs the affine (style) layers of the convs then the toRGBs,
    zero-padded to ``(L, C_max, w_dim)`` float64 so one batched product gives
    every style of a batch.
    """
    gen = torch_generator(seed, group, NET_PURPOSE)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    const = randn(layout.const_channels, 4, 4)
    conv_affine = [randn(c.in_channels, layout.w_dim) for c in layout.convs]
    conv_weight = [None if params.uses_bank else randn(c.out_channels, c.in_channels, 3, 3) for c in layout.convs]
    rgb_affine = [randn(r.in_channels, layout.w_dim) for r in layout.torgbs]
    rgb_weight = [randn(3, r.in_channels) for r in layout.torgbs]
    affines = conv_affine + rgb_affine
    packed = torch.zeros(len(affines), max(a.shape[0] for a in affines), layout.w_dim, dtype=torch.float64)
    for row, a in zip(packed, affines):
        row[: a.shape[0]] = a
    w_index = [c.w_index for c in layout.convs] + [r.w_index for r in layout.torgbs]
    return {"const": const, "conv_weight": conv_weight, "rgb_weight": rgb_weight, "affine": packed, "w_index": w_index}


# ---------------------------------------------------------------- rendering (torch, deterministic)


def _noise_maps(layout, params: StyleGANParams, draws: list[dict], device) -> list:
    """Per conv layer, the unit-std float32 noise maps ``(N, H, W)`` of the batch (or None without noise)."""
    if params.noise == "none":
        return [None] * len(layout.convs)

    def stacked(key: str, j: int):  # float64: a batched float32 irfft2 rounds differently per batch size
        return torch.from_numpy(np.stack([d[key][j] for d in draws])).to(device)

    envelope = params.noise in ("pink-envelope", "shared-pink-envelope")

    def make(j: int, res: int):
        maps = net.pink_noise(stacked("whites", j), stacked("alphas", j))
        if envelope:
            maps = net.standardise_maps(maps * net.laplacian_envelope(stacked("grids", j), res))
        return maps

    if params.noise == "shared-pink-envelope":
        shared = make(0, layout.size)
        return [net.resize_maps(shared, c.resolution).float() for c in layout.convs]
    return [make(j, c.resolution).float() for j, c in enumerate(layout.convs)]


class _Batch:
    """The stacked per-image draws of one batch as tensors on ``device`` (sampling is already done)."""

    def __init__(self, layout, params: StyleGANParams, network: dict, draws: list[dict], device) -> None:
        self.layout, self.params, self.network, self.draws, self.device = layout, params, network, draws, device
        self.n = len(draws)
        self.ws = torch.as_tensor(np.stack([d["ws"] for d in draws]), dtype=torch.float64, device=device)
        self.noise = _noise_maps(layout, params, draws, device)
        # Every style of the batch at once (float64: a float32 product rounds differently per batch size).
        ws = self.ws[:, network["w_index"]]  # (N, L, w_dim)
        affine = network["affine"].to(device)
        self.all_styles = (torch.einsum("nld,lcd->nlc", ws, affine) / math.sqrt(layout.w_dim) + 1.0).float()

    def tensor(self, array: np.ndarray):
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)

    def stacked(self, key: str, j: int):
        """Per-image entry ``j`` of draw list ``key`` stacked to a float tensor ``(N, ...)``."""
        return self.tensor(np.stack([d[key][j] for d in self.draws]))

    def styles(self, kind: str, j: int):
        """``s = A w / sqrt(w_dim) + 1`` (StyleGAN2's affine layer, bias initialised to 1) of conv or toRGB
        layer ``j``: ``(N, C_in)``."""
        layer = j if kind == "conv" else len(self.layout.convs) + j
        c_in = (self.layout.convs[j] if kind == "conv" else self.layout.torgbs[j]).in_channels
        return self.all_styles[:, layer, :c_in]

    def noise_term(self, j: int, resolution: int):
        """Strength times noise map of conv layer ``j``: ``(N, H, W)`` (zeros without noise)."""
        if self.noise[j] is None:
            return torch.zeros(self.n, resolution, resolution, device=self.device)
        strength = self.tensor(np.array([d["strengths"][j] for d in self.draws]))
        return strength[:, None, None] * self.noise[j]

    def rgb_weight(self, b: int):
        """toRGB weights of block ``b``: ``(N, 3, C)`` redrawn per image, else the network's ``(3, C)``."""
        return self.stacked("torgb", b) if self.params.redraw_torgb else self.network["rgb_weight"][b].to(self.device)

    def bank(self):
        """The variant's 40 fixed filters, ``(40, 3, 3)``."""
        return torch.tensor(net.FILTER_BANKS[self.params.conv_weights](), device=self.device)

    def bank_kernels(self, bank, j: int):
        """The bank filter of every input channel of conv ``j``: ``(N, C_in, 3, 3)``."""
        index = torch.from_numpy(np.stack([d["filters"][j] for d in self.draws])).to(self.device)
        return bank[index]


def synthesize(
    layout, params: StyleGANParams, network: dict, draws: list[dict], device, reference: bool = False
) -> torch.Tensor:
    """Run one network on a batch of sampled images: float ``(N, 3, size, size)`` before colour matching.

    Filter-bank variants use the width-free form (:class:`RankOneActivation`)
    unless ``reference``, which expands every channel and runs the grouped
    modulated convolution (same result up to float rounding; used by tests).
    """
    batch = _Batch(layout, params, network, draws, device)
    if params.uses_bank and not reference:
        return _synthesize_rank_one(batch)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=params.bf16):
        return _synthesize_dense(batch).float()


def _synthesize_dense(batch: _Batch) -> torch.Tensor:
    """Skip-architecture forward pass with explicit channels (gaussian weights, or the bank reference)."""
    layout, params, network = batch.layout, batch.params, batch.network
    bank = batch.bank() if params.uses_bank else None
    x = network["const"].to(batch.device)[None].expand(batch.n, -1, -1, -1)
    img = None
    convs = iter(enumerate(layout.convs))
    for b, rgb in enumerate(layout.torgbs):
        for _ in range(1 if b == 0 else 2):
            j, conv = next(convs)
            s = batch.styles("conv", j)
            if bank is not None:
                signs = batch.stacked("signs", j)
                y = net.rank1_modulated_conv2d(x, batch.bank_kernels(bank, j), signs, s, up=conv.up)
            else:
                y = net.modulated_conv2d(x, network["conv_weight"][j].to(batch.device), s, up=conv.up)
            y = y + batch.noise_term(j, conv.resolution)[:, None] + batch.stacked("biases", j)[:, :, None, None]
            x = torch.relu(y) * net.RELU_GAIN
        out = net.to_rgb(x, batch.rgb_weight(b), batch.styles("rgb", b))
        img = out if img is None else net.upsample2x(img) + out
    return img


def _synthesize_rank_one(batch: _Batch) -> torch.Tensor:
    """Forward pass of a filter-bank network without expanding channels.

    Each conv contracts its input to 9 tap maps (plus 3 toRGB maps when the
    input also ends a block), up-samples the tap maps if needed (linear, so it
    commutes with the contraction) and sums them shifted: one map ``Y`` whose
    signed, biased, noisy copies are the layer's channels.
    """
    layout, network = batch.layout, batch.network
    bank = batch.bank()

    def rgb_coeffs(b: int):
        weight = batch.rgb_weight(b)
        weight = weight if weight.ndim == 3 else weight[None]
        s = batch.styles("rgb", b) / math.sqrt(layout.torgbs[b].in_channels)
        return (weight * s[:, None, :]).transpose(1, 2)  # (N, C, 3)

    x = network["const"].to(batch.device)[None].expand(batch.n, -1, -1, -1)
    img = None
    block = 0
    for j, conv in enumerate(layout.convs):
        s = batch.styles("conv", j)
        coeffs = net.demodulated_bank_taps(batch.bank_kernels(bank, j), s)  # (N, C_in, 9)
        if conv.up:  # the input also ends block `block`: its toRGB shares the contraction
            coeffs = torch.cat([coeffs, rgb_coeffs(block)], dim=2)
        maps = net.contract_channels(x, coeffs)
        if conv.up:
            rgb = maps[:, 9:]
            img = rgb if img is None else net.upsample2x(img) + rgb
            block += 1
            maps = net.upsample2x(maps[:, :9])
        y = net.shift_sum(maps)
        noise = batch.noise_term(j, conv.resolution)
        x = net.RankOneActivation(y, noise, batch.stacked("signs", j), batch.stacked("biases", j))
    rgb = net.contract_channels(x, rgb_coeffs(block))
    return rgb if img is None else net.upsample2x(img) + rgb


def impose_color_stats(img: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """Standardise each RGB channel of ``(N, 3, H, W)``, then give it ``mean``/``std`` ``(N, 3)`` (not yet clipped)."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=img.device)[:, :, None, None]
    s = torch.as_tensor(std, dtype=torch.float32, device=img.device)[:, :, None, None]
    return net.standardise_maps(img.float()) * s + m


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """Clip ``(N, 3, H, W)`` to [0, 1] and quantise to uint8 ``(N, H, W, 3)``."""
    return (img.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def render(
    indices: np.ndarray, seed: int, size: int, params: StyleGANParams, device: str = "cpu", *, reference: bool = False
) -> np.ndarray:
    """Render images ``indices``: uint8 ``(N, size, size, 3)``; image i uses network ``i // images_per_network``.

    ``reference`` runs filter-bank variants with every channel expanded (the
    plain StyleGAN2 computation; for tests and the batching benchmark).
    """
    indices = np.asarray(indices, dtype=np.int64)
    layout = net.build_layout(synthesis_size(size), params.channel_base, params.channel_max, params.w_dim)
    mean, std = sample_color_stats(indices, seed)
    groups = indices // params.images_per_network
    out = np.empty((len(indices), size, size, 3), np.uint8)
    with torch.inference_mode():
        for group in np.unique(groups):
            sel = np.flatnonzero(groups == group)
            draws = [sample_image(layout, params, seed, int(i)) for i in indices[sel]]
            network = build_network(layout, params, seed, int(group))
            img = synthesize(layout, params, network, draws, device, reference=reference)
            if layout.size != size:
                img = F.interpolate(img, size=(size, size), mode="area")
            out[sel] = to_uint8(impose_color_stats(img, mean[sel], std[sel]))
    return out


# ---------------------------------------------------------------- variants

_COMMON = dict(family="stylegan", params_cls=StyleGANParams, render=render, uses_torch=True)

register_generator(
    "stylegan/random",
    "randomly initialised StyleGAN2 (default init, no noise), a new network every 400 images",
    batch_size=16,  # real convolutions: larger batches gain nothing on a CPU and leave the cache
    **_COMMON,
)
register_generator(
    "stylegan/high-freq",
    "random StyleGAN2 with 3x3 kernels from a 40-filter high-frequency bank and pink noise",
    conv_weights="highfreq",
    noise="pink",
    redraw_torgb=True,
    batch_size=32,
    **_COMMON,
)
register_generator(
    "stylegan/sparse",
    "high-freq StyleGAN2 plus Laplacian-envelope noise and U(0, 0.2) biases",
    conv_weights="highfreq",
    noise="pink-envelope",
    bias_range=(0.0, 0.2),
    redraw_torgb=True,
    batch_size=32,
    **_COMMON,
)
register_generator(
    "stylegan/oriented",
    "random StyleGAN2 with oriented filter-bank kernels, shared sparse pink noise, U(-0.2, 0.2) biases (paper's best)",
    conv_weights="oriented",
    filter_subset=(5, 40),
    noise="shared-pink-envelope",
    bias_range=(-0.2, 0.2),
    redraw_torgb=True,
    batch_size=32,
    **_COMMON,
)
