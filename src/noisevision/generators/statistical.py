"""Statistical image models: 1/f spectrum, colour histograms and wavelet marginals.

Paper section 2 ("Learning to See by Looking at Noise", Baradad et al. 2021).
Each image gets its own random

* **spectrum**: ``s ~ U(exponent_range)``, ``d ~ N(0, 1) * anisotropy_sd``,
  ``M(fx, fy) = 1 / (eps + |fx/N|^(s+d) + |fy/N|^(s-d))`` with DC 0, shared by
  the three channels (:func:`sample_spectrum_params`);
* **colour model** (:func:`sample_color_model`): ``K`` random RGB colours with
  random proportions laid out as raster blocks, box-blurred, plus U(0, 10)
  noise, rescaled to [0, 256]; its colour PCA gives an orthonormal basis and a
  mean colour, and the 256-bin histograms of its decorrelated channels are the
  colour targets;
* **WMM** target marginals: for every steerable-pyramid band but the low-pass
  residual ``h(x) = exp(-|x / s|^r)`` on ``x`` in [-200, 200] (step 0.5), with
  ``s = 4^(size / band_size)`` and one ``r ~ U(marginal_exponent_range)`` per image.

Synthesis starts from ``256 * U(0, 1)`` noise in the decorrelated colour space and
repeats ``iterations`` times the enabled steps (a) spectrum projection (keep the
phase of the mean-removed channel, impose ``M``, restore the channel's mean and
std), (b) WMM (histogram-match every band to its target marginal, reconstruct),
(c) colour (histogram-match every channel to the colour target). Finally the
image is rotated back by the colour basis, the mean colour is added, and the
image is min-max scaled (jointly over channels) to [0, 255].

Colour of the variants without step (c): they still apply the colour rotation
("all apply the colour rotation"), using the *same per-image colour model* as
the colour variants (basis and mean of the sampled colour image); only the
histogram targets are unused. Because the decorrelated channels keep the mean
128 of the initial noise, the rotation turns that offset into a per-image tint,
which is what the official Spectrum and WMM samples show.

WMM reading: a band takes its target marginal *including its scale*: after the
spec's "standardise, match moments, histogram-match, re-standardise" the band
has the target's mean and std, so ``s = 4^(size / band_size)`` sets each scale's
amplitude (4 at full resolution, 16 at half, 256 at a quarter; coarser bands
carry the pyramid's x4-per-scale crop gain as in Simoncelli's ``buildSFpyr``).
The alternative reading (only the shape matched, each band keeping its own
std) leaves the steep-spectrum bands of Spectrum+Color+WMM nearly empty and
its images without the visible wavelet texture of the official samples. The
quantile map produces the target's moments directly, so the standardisation
steps are folded into it.

Faithfulness notes and speed-ups that do not change the distribution:

* Step (a) alone is a projection (its output is its own fixed point), so the
  Spectrum dataset runs one iteration: further ones return the same image.
* Steps (a) and (b) hand each other Fourier spectra (the pyramid analyses and
  synthesises spectra), so consecutive Fourier steps skip an FFT pair.
* Histogram matching (:func:`match_histograms`) is a binned version of exact
  sort-based matching, O(n): one ``bincount`` per pyramid level gives every
  bin's rank range, and a bin maps to the target inverse CDF at its mid rank
  (plotting position ``rank / (n + 1)``, so the extreme pixels do not land on the
  ends of the +-200 target grid); it agrees with sorting to <1% of the band's std.
  Target inverse CDFs are tabulated once per image.
* Images are synthesised one at a time (see :func:`render`), so bytes never
  depend on the batch.
* For sizes that the pyramid cannot halve ``wmm_scales`` times the WMM variants
  synthesise on the next multiple of ``2^(wmm_scales + 1)`` and centre-crop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import uniform_filter

from ..errors import UserError
from ..rng import image_rng
from . import _pyramid
from .base import register_generator

SPECTRUM_EPS = 1e-12
"""The ``eps`` of ``M``: it only guards the DC division (DC is set to 0 anyway); a larger
value would flatten the lowest frequencies of steep (s ~ 3.5) spectra."""
MARGINAL_GRID = np.arange(-200.0, 200.0 + 0.25, 0.5)
"""Support of the WMM target marginals (paper: [-200, 200], step 0.5)."""
COLOR_BINS = 256
QUANTILE_TABLE = 16384  # resolution of the tabulated target inverse CDFs (nearest entry is used)


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class StatisticalParams:
    """Parameters of the statistical image models (paper section 2).

    Attributes:
        spectrum: run step (a), the 1/f^s spectrum projection.
        wmm: run step (b), the wavelet-marginal (steerable pyramid) matching.
        color: run step (c), the colour-histogram matching.
        exponent_range: range of the uniform spectrum exponent ``s``.
        anisotropy_sd: sd of the anisotropy ``d`` (``sx = s + d``, ``sy = s - d``).
        iterations: alternating-projection iterations.
        wmm_scales: steerable-pyramid scales; None = ``max(1, round(log2(size)) - 4)``
            (3 at 128 px, 4 at 256 px).
        orientations: oriented bands per pyramid scale.
        marginal_exponent_range: range of the uniform WMM marginal exponent ``r``.
        num_colors_range: inclusive range of the number of colours ``K`` (3 + floor(20u)).
        max_blur: the colour image's box blur side is ``ceil(max_blur * u)`` px.
    """

    spectrum: bool = True
    wmm: bool = False
    color: bool = False
    exponent_range: tuple[float, float] = (0.5, 3.5)
    anisotropy_sd: float = 3 / 60
    iterations: int = 10
    wmm_scales: int | None = None
    orientations: int = 4
    marginal_exponent_range: tuple[float, float] = (0.4, 0.8)
    num_colors_range: tuple[int, int] = (3, 22)
    max_blur: int = 10

    def __post_init__(self) -> None:
        if not (self.spectrum or self.wmm or self.color):
            raise ValueError("enable at least one of spectrum, wmm, color")
        lo, hi = self.exponent_range
        if not 0.0 <= lo <= hi <= 10.0:
            raise ValueError(f"exponent_range must satisfy 0 <= low <= high <= 10, got {self.exponent_range}")
        if not 0.0 <= self.anisotropy_sd <= 1.0:
            raise ValueError(f"anisotropy_sd must be in [0, 1], got {self.anisotropy_sd}")
        if not 1 <= self.iterations <= 1000:
            raise ValueError(f"iterations must be in 1..1000, got {self.iterations}")
        if self.wmm_scales is not None and not 1 <= self.wmm_scales <= 10:
            raise ValueError(f"wmm_scales must be in 1..10 (or None), got {self.wmm_scales}")
        if not 1 <= self.orientations <= 16:
            raise ValueError(f"orientations must be in 1..16, got {self.orientations}")
        lo, hi = self.marginal_exponent_range
        if not 0.05 <= lo <= hi <= 10.0:
            raise ValueError(
                f"marginal_exponent_range must satisfy 0.05 <= low <= high <= 10, got {self.marginal_exponent_range}"
            )
        lo, hi = self.num_colors_range
        if not 1 <= lo <= hi <= 4096:
            raise ValueError(f"num_colors_range must satisfy 1 <= low <= high <= 4096, got {self.num_colors_range}")
        if not 1 <= self.max_blur <= 256:
            raise ValueError(f"max_blur must be in 1..256, got {self.max_blur}")


def default_wmm_scales(size: int) -> int:
    """Pyramid scales for ``size`` px: 3 at 128 px and 4 at 256 px as in the paper, at least 1."""
    return max(1, round(math.log2(size)) - 4)


def wmm_geometry(size: int, params: StatisticalParams) -> tuple[int, int]:
    """(scales, synthesis side) of the WMM pyramid for ``size`` px images.

    Raises:
        UserError: if ``size`` is too small for the requested number of scales.
    """
    scales = params.wmm_scales if params.wmm_scales is not None else default_wmm_scales(size)
    padded = _padded_size(size, scales)
    if scales > _pyramid.max_scales(padded):
        most = max(s for s in range(1, 12) if s <= _pyramid.max_scales(_padded_size(size, s)))
        raise UserError(
            f"wmm_scales={scales} is too many for {size} px images (at most {most}); "
            f"lower wmm_scales or raise the size"
        )
    return scales, padded


def _padded_size(size: int, scales: int) -> int:
    """The next multiple of ``2^(scales + 1)``: every cropped scale needs a side divisible by 4."""
    step = 2 ** (scales + 1)
    return -(-size // step) * step


# ---------------------------------------------------------------- per-image sampling


@dataclass(frozen=True)
class SpectrumSample:
    """One image's spectrum exponents: ``sx = s + d``, ``sy = s - d``."""

    s: float
    d: float

    @property
    def sx(self) -> float:
        return self.s + self.d

    @property
    def sy(self) -> float:
        return self.s - self.d


def sample_spectrum_params(seed: int, index: int, params: StatisticalParams) -> SpectrumSample:
    """The spectrum exponents of image ``index`` (drawn from its ``"spectrum"`` stream)."""
    rng = image_rng(seed, index, "spectrum")
    s = rng.uniform(*params.exponent_range)
    d = rng.standard_normal() * params.anisotropy_sd
    return SpectrumSample(s=float(s), d=float(d))


def sample_marginal_exponent(seed: int, index: int, params: StatisticalParams) -> float:
    """The WMM marginal exponent ``r`` of image ``index``."""
    return float(image_rng(seed, index, "wmm").uniform(*params.marginal_exponent_range))


@dataclass(frozen=True)
class ColorModel:
    """One image's colour model.

    Attributes:
        basis: (3, 3) orthonormal PCA basis, columns = components by decreasing
            variance, each signed so that its largest-magnitude entry is positive.
        mean: (3,) mean RGB colour (0..256 scale).
        histograms: (3, 256) counts of the decorrelated channels, or None if not requested.
        edges: (3, 257) bin edges of those histograms, or None.
    """

    basis: np.ndarray
    mean: np.ndarray
    histograms: np.ndarray | None = None
    edges: np.ndarray | None = None


def sample_color_model(
    seed: int, index: int, size: int, params: StatisticalParams, histograms: bool = True
) -> ColorModel:
    """The colour model of image ``index`` (from its ``"color"`` stream), built at ``size`` px."""
    rng = image_rng(seed, index, "color")
    lo, hi = params.num_colors_range
    num_colors = lo + int(rng.random() * (hi - lo + 1))
    colors = rng.random((num_colors, 3)) * 256.0
    weights = 0.001 + rng.random(num_colors)
    counts = rng.multinomial(size * size, weights / weights.sum())
    labels = np.repeat(np.arange(num_colors), counts).reshape(size, size)
    blur = max(1, math.ceil(params.max_blur * rng.random()))
    image = uniform_filter(colors[labels], size=(blur, blur, 1), mode="reflect")
    image += rng.random(image.shape) * 10.0
    image = (image - image.min()) * (256.0 / max(image.max() - image.min(), 1e-12))
    pixels = image.reshape(-1, 3)
    mean = pixels.mean(axis=0)
    centred = pixels - mean
    _, eigvecs = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    basis = eigvecs[:, ::-1]
    basis = basis * np.where(basis[np.abs(basis).argmax(axis=0), range(3)] < 0, -1.0, 1.0)
    if not histograms:
        return ColorModel(basis=basis, mean=mean)
    decorrelated = centred @ basis
    lo_v, hi_v = decorrelated.min(axis=0), decorrelated.max(axis=0)
    hi_v = np.maximum(hi_v, lo_v + 1e-6)
    edges = np.linspace(lo_v, hi_v, COLOR_BINS + 1, axis=1)
    scaled = (decorrelated - lo_v) * (COLOR_BINS / (hi_v - lo_v))
    bins = np.minimum(scaled.astype(np.int64), COLOR_BINS - 1) + np.arange(3) * COLOR_BINS
    hist = np.bincount(bins.ravel(), minlength=3 * COLOR_BINS).reshape(3, COLOR_BINS).astype(np.float64)
    return ColorModel(basis=basis, mean=mean, histograms=hist, edges=edges)


# ---------------------------------------------------------------- histogram matching


def inverse_cdf_table(edges: np.ndarray, counts: np.ndarray, resolution: int = QUANTILE_TABLE) -> np.ndarray:
    """Tabulate the inverse CDF of a histogram at quantiles ``linspace(0, 1, resolution + 1)``.

    Args:
        edges: (B + 1,) increasing bin edges.
        counts: (B,) non-negative bin weights (the CDF is linear inside a bin).
    Returns:
        float32 (resolution + 1,) values.
    """
    weights = counts + counts.mean() * 1e-8  # no flat CDF steps (as histoMatch does)
    cdf = np.concatenate([[0.0], np.cumsum(weights)])
    cdf /= cdf[-1]
    return np.interp(np.linspace(0.0, 1.0, resolution + 1), cdf, edges).astype(np.float32)


def marginal_tables(size: int, band_sizes: list[int], exponent: float) -> np.ndarray:
    """Target inverse CDFs of the WMM marginals ``exp(-|x/s|^r)``, ``s = 4^(size/band_size)``.

    Returns:
        float32 (len(band_sizes), QUANTILE_TABLE + 1), one row per band size.
    """
    edges = np.concatenate([MARGINAL_GRID - 0.25, [MARGINAL_GRID[-1] + 0.25]])
    rows = []
    for band_size in band_sizes:
        scale = 4.0 ** (size / band_size)
        density = np.exp(-np.abs(MARGINAL_GRID / scale) ** exponent)
        rows.append(inverse_cdf_table(edges, density))
    return np.stack(rows)


def source_bins(n: int) -> int:
    """Histogram bins for matching ``n`` values: n/8, clipped to 256..1024.

    Measured against exact sort-based matching (rms error relative to the std):
    0.4% for 128 px bands, 0.7% for 64 px, 1.8% for 32 px.
    """
    return int(np.clip(n // 8, 256, 1024))


def match_histograms(
    values: np.ndarray,
    tables: np.ndarray,
    table_of_row: np.ndarray | None = None,
    bins: int | None = None,
) -> np.ndarray:
    """Histogram-match each row of ``values`` to the distribution tabulated in ``tables``.

    A binned version of exact (sort-based) histogram matching, O(n): each row is
    cut into ``bins`` equal bins between its min and max, one ``bincount`` over
    all rows gives every bin's rank range, and each bin maps to the target
    inverse CDF at its mid rank (plotting position ``rank / (n + 1)``). Values in
    one bin share an output value; with :func:`source_bins` bins that
    quantisation is far below the band's own variation.

    Args:
        values: float32 (G, n), one group (band or channel) per row.
        tables: float32 (T, Q + 1) target inverse CDFs at quantiles ``linspace(0, 1, Q + 1)``.
        table_of_row: int (G,) the table of each row (default: row g uses table g).
        bins: bins per row (default :func:`source_bins`).
    Returns:
        float32 (G, n) matched values.
    """
    groups, n = values.shape
    bins = source_bins(n) if bins is None else bins
    slots = bins + 2  # slot 0 and slot bins+1 catch float rounding at the row's min / max
    quantiles = tables.shape[1] - 1
    low = values.min(axis=1).astype(np.float64)
    width = np.maximum(values.max(axis=1) - low, 1e-20)
    gain = bins * (1.0 - 1e-6) / width  # the max lands just inside the last bin
    # bin position within the row (1..bins, the same whatever the row's place in the batch),
    # then the row's slot offset as an exact integer
    index = np.empty((groups, n), dtype=np.intp)
    np.add(values * gain.astype(np.float32)[:, None], (1.0 - low * gain).astype(np.float32)[:, None],
           out=index, casting="unsafe")
    index += (np.arange(groups) * slots)[:, None]
    with_guards = np.bincount(index.ravel(), minlength=groups * slots).reshape(groups, slots)
    counts = with_guards[:, 1:-1].copy()
    counts[:, 0] += with_guards[:, 0]
    counts[:, -1] += with_guards[:, -1]
    # target value of each bin: the inverse CDF at its mid rank (nearest table entry)
    twice_mid_rank = 2 * np.cumsum(counts, axis=1) - counts + 1
    table_index = np.rint(twice_mid_rank * (quantiles / (2.0 * (n + 1)))).astype(np.intp)
    rows = np.arange(groups) if table_of_row is None else table_of_row
    table_index += (rows * (quantiles + 1))[:, None]
    mapped = np.take(tables, table_index)  # (G, bins)
    lut = np.empty((groups, slots), dtype=np.float32)
    lut[:, 1:-1] = mapped
    lut[:, 0], lut[:, -1] = lut[:, 1], lut[:, -2]
    return np.take(lut.ravel(), index)


# ---------------------------------------------------------------- synthesis


def spectrum_magnitudes(sample: SpectrumSample, size: int) -> torch.Tensor:
    """``M`` of one image on the rfft2 grid, scaled so its inverse FFT has unit std: (1, 1, N, N//2+1).

    ``M(fx, fy) = 1 / (eps + |fx/N|^sx + |fy/N|^sy)`` with integer frequencies
    ``fx, fy`` and ``M(0, 0) = 0``.
    """
    fy = torch.fft.fftfreq(size, dtype=torch.float64).abs()[:, None]  # = |fy / N|
    fx = torch.fft.rfftfreq(size, dtype=torch.float64)[None, :]
    magnitude = 1.0 / (SPECTRUM_EPS + fx**sample.sx + fy**sample.sy)
    magnitude[0, 0] = 0.0
    # Parseval on the half spectrum: columns other than 0 and Nyquist count twice.
    energy = (magnitude**2 * _half_spectrum_weights(size)).sum()
    magnitude *= size**2 / torch.sqrt(energy)
    return magnitude.to(torch.float32)[None, None]


def _half_spectrum_weights(size: int) -> torch.Tensor:
    weights = torch.full((size // 2 + 1,), 2.0, dtype=torch.float64)
    weights[0] = 1.0
    if size % 2 == 0:
        weights[-1] = 1.0
    return weights


def _spectrum_step(spectrum: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
    """Step (a) on rfft2 spectra (B, C, N, N//2+1): impose ``|X| = M``, keep phase, mean and std."""
    size = spectrum.shape[-2]
    dc = spectrum[..., 0, 0].real.clone()
    power = torch.view_as_real(spectrum).square().sum(-1)
    power[..., 0, 0] = 0.0
    variance = (power * _half_spectrum_weights(size).to(power.dtype)).sum(dim=(-2, -1)) / float(size) ** 4
    gain = magnitudes * (torch.sqrt(variance)[..., None, None] / torch.sqrt(power).clamp_min(1e-30))
    out = spectrum * gain
    out[..., 0, 0] = dc
    return out


def _wmm_step(spectrum: torch.Tensor, filters: _pyramid.PyramidFilters, tables: np.ndarray) -> torch.Tensor:
    """Step (b): histogram-match every band but the low-pass residual to its target marginal.

    ``tables`` (B, scales, Q + 1): per image one table per pyramid level (the
    high-pass residual shares scale 0's, both have the image's size).
    """
    pyramid = _pyramid.analyze_spectrum(spectrum, filters)
    batch, levels = tables.shape[:2]
    flat_tables = tables.reshape(batch * levels, -1)
    for level, coefficients in enumerate(pyramid.levels):
        flat = coefficients.numpy().reshape(-1, coefficients.shape[-2] * coefficients.shape[-1])
        image_of_row = np.arange(flat.shape[0]) // (flat.shape[0] // batch)
        matched = match_histograms(flat, flat_tables, table_of_row=image_of_row * levels + level)
        pyramid.levels[level] = torch.from_numpy(matched).view(coefficients.shape)
    return _pyramid.synthesize_spectrum(pyramid, filters)


def _color_step(images: torch.Tensor, tables: np.ndarray) -> torch.Tensor:
    """Step (c): match each decorrelated channel (B, 3, N, N) to its colour histogram (B*3 tables)."""
    flat = images.numpy().reshape(-1, images.shape[-2] * images.shape[-1])
    bins = int(np.clip(flat.shape[1] // 4, 256, 4096))  # finer than for bands (only 3 rows): the
    # output's 256-bin histogram should follow the target's bin by bin
    return torch.from_numpy(match_histograms(flat, tables, bins=bins)).view(images.shape)


def synthesize(
    noise: torch.Tensor,
    magnitudes: torch.Tensor | None,
    wmm: tuple[_pyramid.PyramidFilters, np.ndarray] | None,
    color_tables: np.ndarray | None,
    iterations: int,
) -> torch.Tensor:
    """Run the alternating projections on decorrelated-colour images.

    Each step takes whichever representation (image or rfft2 spectrum) is current
    and converts only when needed, so Fourier steps chain without FFT round trips.

    Args:
        noise: float32 (B, 3, N, N) start images.
        magnitudes: step (a) targets (B, 1, N, N//2+1) from :func:`spectrum_magnitudes`, or None.
        wmm: step (b) pyramid filters and marginal tables (B, scales, Q+1), or None.
        color_tables: step (c) inverse CDFs (B * 3, Q+1), or None.
        iterations: number of passes over the enabled steps.
    Returns:
        float32 (B, 3, N, N) synthesised decorrelated channels.
    """
    size = noise.shape[-1]
    image: torch.Tensor | None = noise
    spectrum: torch.Tensor | None = None
    for _ in range(iterations):
        if magnitudes is not None:
            spectrum = _spectrum_step(torch.fft.rfft2(image) if spectrum is None else spectrum, magnitudes)
            image = None
        if wmm is not None:
            filters, tables = wmm
            spectrum = _wmm_step(torch.fft.rfft2(image) if spectrum is None else spectrum, filters, tables)
            image = None
        if color_tables is not None:
            image = _color_step(_pyramid.irfft2(spectrum, size) if image is None else image, color_tables)
            spectrum = None
    return _pyramid.irfft2(spectrum, size) if image is None else image


def render(indices: np.ndarray, seed: int, size: int, params: StatisticalParams, device: str = "cpu") -> np.ndarray:
    """Render images ``indices``: uint8 (N, size, size, 3). Runs on the CPU whatever ``device``.

    Images are synthesised one at a time: every FFT and reduction then has the
    same shape whatever the batch, so image bytes cannot depend on the batch
    (batched FFTs may round differently per batch size), and one image's
    working set stays in the CPU cache.
    """
    scales, work_size = wmm_geometry(size, params) if params.wmm else (0, size)
    filters = _pyramid.pyramid_filters(work_size, scales, params.orientations) if params.wmm else None
    with torch.no_grad():
        return np.stack([_render_one(seed, int(i), size, work_size, params, filters) for i in indices])


def _render_one(
    seed: int,
    index: int,
    size: int,
    work_size: int,
    params: StatisticalParams,
    filters: _pyramid.PyramidFilters | None,
) -> np.ndarray:
    """Sample image ``index``'s model, synthesise it at ``work_size`` px, return uint8 (size, size, 3)."""
    color = sample_color_model(seed, index, size, params, histograms=params.color)
    noise = image_rng(seed, index, "noise").random((1, 3, work_size, work_size), dtype=np.float32)
    noise *= np.float32(256.0)
    magnitudes = None
    if params.spectrum:
        magnitudes = spectrum_magnitudes(sample_spectrum_params(seed, index, params), work_size)
    wmm = None
    if filters is not None:
        exponent = sample_marginal_exponent(seed, index, params)
        wmm = (filters, marginal_tables(work_size, filters.level_sizes(), exponent)[None])
    color_tables = None
    if params.color:
        color_tables = np.stack([inverse_cdf_table(e, h) for e, h in zip(color.edges, color.histograms)])
    # Step (a) alone is a projection: one pass reaches its fixed point.
    only_spectrum = params.spectrum and not (params.wmm or params.color)
    iterations = 1 if only_spectrum else params.iterations
    decorrelated = synthesize(torch.from_numpy(noise), magnitudes, wmm, color_tables, iterations)[0].numpy()
    if work_size != size:
        start = (work_size - size) // 2
        decorrelated = decorrelated[:, start : start + size, start : start + size]
    return to_rgb_uint8(decorrelated, color)


def to_rgb_uint8(decorrelated: np.ndarray, color: ColorModel) -> np.ndarray:
    """Rotate decorrelated channels (3, N, N) back to RGB, add the mean colour, min-max to uint8 (N, N, 3)."""
    basis = color.basis.astype(np.float32)  # (rgb, component)
    rgb = np.empty(decorrelated.shape[1:] + (3,), dtype=np.float32)
    for k in range(3):  # three channels, elementwise: exact and batch-independent
        rgb[..., k] = (
            basis[k, 0] * decorrelated[0] + basis[k, 1] * decorrelated[1] + basis[k, 2] * decorrelated[2]
        ) + np.float32(color.mean[k])
    low, high = rgb.min(), rgb.max()
    rgb -= low
    rgb *= np.float32(255.0 / max(float(high - low), 1e-12))
    return np.rint(rgb).astype(np.uint8)


# ---------------------------------------------------------------- variants

_FAMILY = "statistical"


def _register(name: str, description: str, **defaults: object) -> None:
    register_generator(
        name,
        description,
        family=_FAMILY,
        params_cls=StatisticalParams,
        render=render,
        batch_size=32,
        **defaults,
    )


_register("stat/spectrum", "random 1/f^s spectrum (random phase), colour-model rotation")
_register("stat/wmm", "wavelet marginal model: heavy-tailed steerable-pyramid bands", spectrum=False, wmm=True)
_register("stat/spectrum-color", "1/f^s spectrum + colour-histogram matching", color=True)
_register(
    "stat/spectrum-color-wmm", "1/f^s spectrum + colour histograms + wavelet marginals", wmm=True, color=True
)
