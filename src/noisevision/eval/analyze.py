"""``noisevision analyze``: what a dataset looks like, in the statistics the paper relates to accuracy.

On a fixed, seeded subset of a dataset (``num_images``, default 2,000) it measures:

* **power spectrum** (luminance ``0.299 R + 0.587 G + 0.114 B``): per image the
  exponent ``alpha`` of ``|F(f)| ~ f^-alpha`` (power ``~ f^-2 alpha``; natural
  images have ``alpha`` near 1, the same convention as the ``exponent_range`` of
  ``stat/spectrum``), reported as mean, spread and quantiles. Method: the FFT of
  the image's periodic component (Moisan's periodic + smooth decomposition,
  which removes the border cross without a window), power averaged in
  integer-radius rings ``k`` (cycles per image) from 2 to ``0.4 * size``;
  per ring the mean of ``log power`` over its modes and of ``log |f|``
  (the log of one mode's power is its log mean minus Euler's constant, so
  the ring means lie exactly on a line of slope ``-2 alpha``); least squares
  over the rings whose mean power is above ``FLOOR_FACTOR`` times the uint8
  quantisation floor ``sum(luma^2) / 12``, after subtracting that floor; at
  least 3 rings, otherwise the image counts as not fitted (flat images).
  Exponents above ~2.5 are measured low: a very smooth image's high
  frequencies are below the uint8 quantisation noise (``stat/spectrum`` with
  ``exponent_range=3,3`` reads 2.88 at 64 px).
* **colour**: per-channel mean and std (pooled over pixels, in [0, 1]), HSV
  saturation ``(max - min) / max`` (mean, std over pixels), per-image
  colourfulness (Hasler & Suesstrunk 2003, 0-255 scale) and RMS contrast
  (std of luminance / 255).
* **orientation and edges** (Sobel gradient of luminance / 255, interior pixels):
  per image the entropy of the magnitude-weighted ``ORIENTATION_BINS``-bin
  histogram of gradient orientation (mod 180 degrees), divided by its maximum
  (1 = no preferred orientation); the pooled histogram; edge density (fraction
  of pixels whose gradient magnitude exceeds ``EDGE_THRESHOLD`` intensity per
  pixel, i.e. steps of at least ~0.1); mean gradient magnitude.
* **wavelet sparsity**: excess kurtosis of the Haar detail coefficients (LH,
  HL, HH pooled) of luminance at levels 1 and 2, per image (0 for Gaussian
  noise; natural images are heavy-tailed, often > 5); mean and median.
* **diversity**: mean pairwise cosine distance between the features of a fixed
  encoder (default a seeded random-init ``smallalexnet32``, its probe layer
  ``fc6``; ``pixels`` for raw pixels; or a trained run).
* **distance to a real reference set** (``--reference``): Fréchet distance
  (the FID formula) and KID (unbiased MMD^2 with the kernel ``(x.y / d + 1)^3``)
  between the two feature sets. A random network has no natural feature
  scale, so both sets are divided by one scalar, the RMS feature value of the
  reference subset (recorded as ``feature_scale``): numbers are comparable
  between datasets analysed against the same reference, encoder and seed.

Output: a JSON (``out``; a flat ``summary`` holds one number per statistic)
and a picture sheet next to it (sample images, mean log power spectrum with the
fitted slope, colour and orientation histograms, the numbers).

>>> result = analyze(data="gen:dead-leaves/mixed", num_images=500, reference="cifar10", out="a/analysis.json")  # doctest: +SKIP
>>> result["summary"]["spectrum_alpha"], result["summary"]["fid"]                                              # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import accel
from .._version import __version__
from ..data.imagefolder import available_splits, decode_files, scan_image_folder
from ..data.roots import DatasetSource, load_split, resolve_dataset
from ..data.sources import GEN_PREFIX, open_source
from ..errors import UserError
from ..fileio import atomic_write_text, prepare_output_file
from ..generators.base import params_field
from ..parsing import make_config
from ..resources import max_workers
from ..rng import image_rng
from .analyze_sheet import write_sheet
from .features import extract_features, normalization_for, prepare_encoder
from .probe import build_encoder

LUMA = np.array([0.299, 0.587, 0.114])
QUANTIZATION_FLOOR = float((LUMA**2).sum() / 12.0)
"""Power per frequency (in 0-255 units, FFT normalised by the pixel count) of uint8 rounding noise on luminance."""
FLOOR_FACTOR = 10.0
SPECTRUM_MIN_RING = 2
SPECTRUM_MAX_RING_FRACTION = 0.4
ORIENTATION_BINS = 16
EDGE_THRESHOLD = 0.05
HAAR_LEVELS = 2
COLOUR_BINS = 32
ALPHA_BINS = np.round(np.arange(0.0, 4.01, 0.1), 2)
SHEET_SAMPLES = 16
DEFAULT_STORED_SIZE = 64
DEFAULT_ENCODER = "random:smallalexnet32"
MAX_IMAGE_BYTES = 4 * 2**30
"""Refuse subsets whose pixels would need more memory than this (checked before anything is decoded)."""
STATS_BATCH_PIXELS = 2**22
"""Statistics batches hold at most this many pixels (FFTs of 1024 px images are 16 MB each)."""
ANALYSIS_VERSION = 1


@dataclass(frozen=True)
class AnalyzeConfig:
    """``noisevision analyze``: which images, how many, against which reference (flags have the same names)."""

    data: str = field(default="", metadata={
        "help": "images to analyse: a dataset folder (packed images.npy or ImageFolder), FILE.npy, or gen:<generator>",
        "positional": True, "required": True})
    reference: str | None = field(default=None, metadata={
        "help": "real reference set for FID/KID: cifar10, tiny-imagenet-32 or imagefolder:PATH (default: none)",
        "metavar": "DATASET"})
    num_images: int = field(default=2000, metadata={
        "help": "images analysed: a seeded subset of stored data, or indices 0..N-1 of gen: (default 2000)",
        "flags": ("--num-images", "-n"), "metavar": "N"})
    image_size: int | None = field(default=None, metadata={
        "help": f"size images are decoded/rendered at (default: a .npy's own size, else {DEFAULT_STORED_SIZE})",
        "flags": ("--image-size", "-s"), "metavar": "PX"})
    params: dict[str, Any] = params_field("gen: only: generator parameter (repeatable), e.g. -p exponent_range=2,2",
                                          typed=True)
    seed: int = field(default=0, metadata={"help": "seed of the subsets, gen: images and the random encoder (default 0)"})
    encoder: str = field(default=DEFAULT_ENCODER, metadata={
        "help": f"feature encoder for diversity and FID/KID: random:<arch>, pixels, or a run dir (default {DEFAULT_ENCODER})",
        "metavar": "SPEC"})
    layer: str | None = field(default=None, metadata={"help": "encoder layer (default: its probe layer)"})
    reference_split: str = field(default="train", metadata={"help": "split of the reference set (default train)"})
    reference_size: int = field(default=32, metadata={
        "help": "size the reference images are decoded at (default 32, the size of cifar10 and tiny-imagenet-32)",
        "metavar": "PX"})
    data_root: str | None = field(default=None, metadata={"help": "folder of the real datasets (default $NOISEVISION_DATA)"})
    cache_dir: str | None = field(default=None, metadata={"help": "decoded-image cache (default $NOISEVISION_CACHE)"})
    out: str | None = field(default=None, metadata={
        "help": "write FILE.json (and FILE.png next to it), or into DIR/analysis.json and DIR/analysis.png",
        "flags": ("--out", "-o"), "metavar": "PATH"})
    sheet: bool = field(default=True, metadata={"help": "also write the picture sheet (default on)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda: feature extraction and gen: rendering"})
    batch_size: int = field(default=250, metadata={"help": "images per batch (default 250)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars (default on)"})

    def __post_init__(self) -> None:
        for name in ("data", "out", "data_root", "cache_dir"):  # pathlib paths are welcome from Python
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        if not isinstance(self.data, str) or not self.data:
            raise ValueError("name the data to analyse: a dataset folder, FILE.npy or gen:<generator>")
        if not 2 <= self.num_images <= 1_000_000:
            raise ValueError(f"num_images must be in 2..1000000, got {self.num_images}")
        for name in ("image_size", "reference_size"):
            value = getattr(self, name)
            if value is not None and not 8 <= value <= 1024:
                raise ValueError(f"{name} must be in 8..1024, got {value}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if not isinstance(self.params, dict):
            raise ValueError(f"params must be a mapping of name: value, got {self.params!r}")
        if self.params and not self.data.startswith(GEN_PREFIX):
            raise ValueError("generator parameters (-p) apply only to gen:<generator> data")
        if not self.encoder:
            raise ValueError(f"encoder must not be empty (default {DEFAULT_ENCODER})")


# ------------------------------------------------------------------ per-image statistics (numpy, batched)


def luminance(images: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) -> float64 (B, H, W) luminance in 0..255."""
    return images.astype(np.float64) @ LUMA


def periodic_fft(lum: np.ndarray) -> np.ndarray:
    """FFT (B, H, W) of the periodic component of each image (Moisan 2011, "Periodic plus smooth image
    decomposition"): the image minus the smooth image whose Laplacian matches the jumps across the borders.
    A periodic image is its own periodic component."""
    _, h, w = lum.shape
    v = np.zeros_like(lum)
    v[:, 0, :] += lum[:, -1, :] - lum[:, 0, :]
    v[:, -1, :] += lum[:, 0, :] - lum[:, -1, :]
    v[:, :, 0] += lum[:, :, -1] - lum[:, :, 0]
    v[:, :, -1] += lum[:, :, 0] - lum[:, :, -1]
    denom = 2 * np.cos(2 * np.pi * np.arange(h) / h)[:, None] + 2 * np.cos(2 * np.pi * np.arange(w) / w)[None, :] - 4
    denom[0, 0] = 1.0
    smooth = np.fft.fft2(v) / denom
    smooth[:, 0, 0] = 0.0
    return np.fft.fft2(lum) - smooth


@dataclass(frozen=True)
class _Rings:
    """Integer-radius frequency rings of a size x size spectrum (ring k: radius rounded to k cycles per image)."""

    index: np.ndarray       # (size*size,) ring of each mode; modes beyond size//2 (the corners) go to ring 0
    count: int              # rings 0..count-1; ring 0 (DC and the corners) is never used
    modes: np.ndarray       # (count,) modes per ring (at least 1, to divide safely)
    log_freq: np.ndarray    # (count,) mean log |f| of each ring
    band: np.ndarray        # (count,) bool: rings used for the fit


@functools.lru_cache(maxsize=8)
def _rings(size: int) -> _Rings:
    f = np.fft.fftfreq(size) * size
    radius = np.hypot(f[:, None], f[None, :]).ravel()
    count = size // 2 + 1
    index = np.rint(radius).astype(np.int64)
    index[index >= count] = 0
    used = index > 0
    modes = np.bincount(index[used], minlength=count).astype(np.float64)
    log_freq = np.bincount(index[used], weights=np.log(radius[used]), minlength=count) / np.maximum(modes, 1.0)
    ks = np.arange(count)
    band = (ks >= SPECTRUM_MIN_RING) & (ks <= SPECTRUM_MAX_RING_FRACTION * size) & (modes > 0)
    return _Rings(index, count, np.maximum(modes, 1.0), log_freq, band)


def _ring_means(values: np.ndarray, rings: _Rings) -> np.ndarray:
    """(B, size*size) per-mode values -> (B, count) means per ring (one bincount over the whole batch)."""
    b = len(values)
    offsets = (rings.index[None, :] + rings.count * np.arange(b)[:, None]).ravel()
    sums = np.bincount(offsets, weights=values.ravel(), minlength=b * rings.count).reshape(b, rings.count)
    sums[:, 0] = 0.0
    return sums / rings.modes


def spectrum_slopes(lum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image spectrum exponent ``alpha`` (``|F| ~ f^-alpha``) of square luminance images (B, N, N).

    Returns:
        (alpha (B,) with NaN where fewer than 3 rings rise above the quantisation floor,
         mean log power per ring (B, N//2 + 1), natural log, ring k = k cycles per image).
    """
    b, n, _ = lum.shape
    rings = _rings(n)
    power = np.abs(periodic_fft(lum)).reshape(b, -1) ** 2 / (n * n)
    ring_power = _ring_means(power, rings)
    log_power = _ring_means(np.log(np.maximum(power, 1e-30)), rings)
    fitted = rings.band[None, :] & (ring_power > FLOOR_FACTOR * QUANTIZATION_FLOOR)
    # the floor is additive power: remove its share from each ring's log mean
    y = log_power + np.log(np.clip(1.0 - QUANTIZATION_FLOOR / np.maximum(ring_power, 1e-30), 1e-3, None))
    w = fitted.astype(np.float64)
    count = w.sum(1)
    safe = np.maximum(count, 1.0)
    x = rings.log_freq[None, :]
    x_mean = (w * x).sum(1) / safe
    y_mean = (w * y).sum(1) / safe
    sxx = (w * (x - x_mean[:, None]) ** 2).sum(1)
    sxy = (w * (x - x_mean[:, None]) * (y - y_mean[:, None])).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(count >= 3, -sxy / np.where(sxx > 0, sxx, np.nan) / 2.0, np.nan)
    return alpha, log_power


def colour_statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-batch sums and per-image values of the colour statistics (see :class:`_Accumulator`)."""
    x = images.astype(np.float64) / 255.0
    flat = x.reshape(len(x), -1, 3)
    mx, mn = flat.max(-1), flat.min(-1)
    saturation = np.where(mx > 0, (mx - mn) / np.where(mx > 0, mx, 1.0), 0.0)
    rgb = images.reshape(len(images), -1, 3).astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = np.hypot(rg.std(1), yb.std(1)) + 0.3 * np.hypot(rg.mean(1), yb.mean(1))
    hist = np.stack([np.bincount((images[..., c].ravel().astype(np.int64) * COLOUR_BINS) // 256, minlength=COLOUR_BINS)
                     for c in range(3)])
    return {
        "channel_sum": flat.sum((0, 1)), "channel_sumsq": (flat**2).sum((0, 1)), "pixels": np.array(flat.shape[0] * flat.shape[1]),
        "saturation_sum": saturation.sum(), "saturation_sumsq": (saturation**2).sum(), "colour_hist": hist,
        "colourfulness": colourfulness, "contrast": (flat @ LUMA).std(1),
    }


def gradient_statistics(lum: np.ndarray) -> dict[str, np.ndarray]:
    """Sobel gradients of luminance / 255 (interior pixels): orientation entropy, edge density, magnitude."""
    u = lum / 255.0
    gx = (u[:, :-2, 2:] + 2 * u[:, 1:-1, 2:] + u[:, 2:, 2:] - u[:, :-2, :-2] - 2 * u[:, 1:-1, :-2] - u[:, 2:, :-2]) / 8.0
    gy = (u[:, 2:, :-2] + 2 * u[:, 2:, 1:-1] + u[:, 2:, 2:] - u[:, :-2, :-2] - 2 * u[:, :-2, 1:-1] - u[:, :-2, 2:]) / 8.0
    b = len(u)
    magnitude = np.hypot(gx, gy).reshape(b, -1)
    theta = np.mod(np.arctan2(gy, gx), np.pi).reshape(b, -1)
    bins = np.minimum((theta / np.pi * ORIENTATION_BINS).astype(np.int64), ORIENTATION_BINS - 1)
    offsets = bins + ORIENTATION_BINS * np.arange(b)[:, None]
    hist = np.bincount(offsets.ravel(), weights=magnitude.ravel(), minlength=b * ORIENTATION_BINS).reshape(b, ORIENTATION_BINS)
    total = hist.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = hist / total
        entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(1) / math.log(ORIENTATION_BINS)
    entropy = np.where(total[:, 0] > 1e-6 * magnitude.shape[1], entropy, np.nan)  # flat (up to rounding): undefined
    return {
        "orientation_entropy": entropy, "orientation_hist": hist.sum(0),
        "edge_density": (magnitude > EDGE_THRESHOLD).mean(1), "gradient_mean": magnitude.mean(1),
    }


def haar_kurtosis(lum: np.ndarray, levels: int = HAAR_LEVELS) -> np.ndarray:
    """Excess kurtosis (B, levels) of the pooled Haar detail coefficients (LH, HL, HH) per level; NaN for
    a level with no variance (a flat image) or too small to split."""
    out = np.full((len(lum), levels), np.nan)
    approx = lum
    for level in range(levels):
        h, w = approx.shape[1] // 2 * 2, approx.shape[2] // 2 * 2
        if h < 2 or w < 2:
            break
        a, b_ = approx[:, 0:h:2, 0:w:2], approx[:, 0:h:2, 1:w:2]
        c, d = approx[:, 1:h:2, 0:w:2], approx[:, 1:h:2, 1:w:2]
        detail = np.concatenate([(a + b_ - c - d), (a - b_ + c - d), (a - b_ - c + d)], axis=1).reshape(len(lum), -1) / 2.0
        centred = detail - detail.mean(1, keepdims=True)
        m2 = (centred**2).mean(1)
        m4 = (centred**4).mean(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:, level] = np.where(m2 > 1e-12, m4 / np.where(m2 > 1e-12, m2, 1.0) ** 2 - 3.0, np.nan)
        approx = (a + b_ + c + d) / 4.0
    return out


class _Accumulator:
    """Collects the statistics of a dataset batch by batch (so memory does not grow with image size)."""

    def __init__(self) -> None:
        self.per_image: dict[str, list[np.ndarray]] = {}
        self.sums: dict[str, np.ndarray] = {}

    def _keep(self, name: str, value: np.ndarray) -> None:
        self.per_image.setdefault(name, []).append(np.asarray(value, np.float64))

    def _add(self, name: str, value: np.ndarray) -> None:
        self.sums[name] = self.sums.get(name, 0) + np.asarray(value, np.float64)

    def add(self, images: np.ndarray) -> None:
        """Add a uint8 (B, N, N, 3) batch."""
        lum = luminance(images)
        alpha, log_power = spectrum_slopes(lum)
        self._keep("alpha", alpha)
        self._add("log_power", log_power.sum(0))
        for name, value in colour_statistics(images).items():
            (self._keep if name in ("colourfulness", "contrast") else self._add)(name, value)
        for name, value in gradient_statistics(lum).items():
            (self._add if name == "orientation_hist" else self._keep)(name, value)
        self._keep("kurtosis", haar_kurtosis(lum))

    def result(self, size: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(statistics for the JSON, curves for the sheet)."""
        v = {k: np.concatenate(parts) for k, parts in self.per_image.items()}
        s = self.sums
        n = len(v["alpha"])
        pixels = float(s["pixels"])
        mean = s["channel_sum"] / pixels
        std = np.sqrt(np.maximum(s["channel_sumsq"] / pixels - mean**2, 0.0))
        sat_mean = float(s["saturation_sum"] / pixels)
        sat_std = math.sqrt(max(float(s["saturation_sumsq"] / pixels) - sat_mean**2, 0.0))
        rings = _rings(size)
        mean_log_power = s["log_power"] / n
        ks = np.flatnonzero(rings.band)
        fit_mean = np.polyfit(rings.log_freq[ks], mean_log_power[ks], 1)[0] if len(ks) >= 2 else float("nan")
        orient = s["orientation_hist"] / max(float(s["orientation_hist"].sum()), 1e-30)
        pooled_entropy = float(-(orient[orient > 0] * np.log(orient[orient > 0])).sum() / math.log(ORIENTATION_BINS))
        alpha = v["alpha"][np.isfinite(v["alpha"])]
        stats = {
            "num_images": n,
            "image_size": size,
            "spectrum": {
                "alpha_mean": _r(_mean(alpha)), "alpha_std": _r(float(alpha.std()) if len(alpha) else None),
                "alpha_median": _r(_quantile(alpha, 0.5)), "alpha_q10": _r(_quantile(alpha, 0.1)),
                "alpha_q90": _r(_quantile(alpha, 0.9)), "alpha_of_mean_spectrum": _r(-fit_mean / 2.0),
                "images_fitted": int(len(alpha)),
                "rings_cycles_per_image": [SPECTRUM_MIN_RING, int(ks[-1]) if len(ks) else None],
            },
            "colour": {
                "mean_rgb": [_r(x) for x in mean], "std_rgb": [_r(x) for x in std],
                "saturation_mean": _r(sat_mean), "saturation_std": _r(sat_std),
                "colourfulness_mean": _r(_mean(v["colourfulness"])), "contrast_mean": _r(_mean(v["contrast"])),
            },
            "orientation": {
                "entropy_mean": _r(_mean(v["orientation_entropy"])), "pooled_entropy": _r(pooled_entropy),
                "histogram": [_r(x) for x in orient], "bins": ORIENTATION_BINS,
            },
            "edges": {
                "density_mean": _r(_mean(v["edge_density"])), "gradient_mean": _r(_mean(v["gradient_mean"])),
                "threshold": EDGE_THRESHOLD,
            },
            "wavelet": {
                f"kurtosis_level{lv + 1}_{how}": _r(fn(v["kurtosis"][:, lv]))
                for lv in range(HAAR_LEVELS) for how, fn in (("mean", _mean), ("median", lambda a: _quantile(a, 0.5)))
            },
        }
        hist = s["colour_hist"] / max(float(s["colour_hist"][0].sum()), 1.0)
        alpha_counts, _ = np.histogram(alpha, bins=ALPHA_BINS)
        curves = {
            "alpha_bins": [_r(x) for x in ALPHA_BINS], "alpha_counts": [int(c) for c in alpha_counts],
            "spectrum_rings": [int(k) for k in np.arange(1, len(mean_log_power))],
            "spectrum_log10_power": [_r(x / math.log(10)) for x in mean_log_power[1:]],
            "colour_histogram": [[_r(x) for x in row] for row in hist],
        }
        return stats, curves


def _finite(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a[np.isfinite(a)]


def _mean(a: np.ndarray) -> float | None:
    a = _finite(a)
    return float(a.mean()) if len(a) else None


def _quantile(a: np.ndarray, q: float) -> float | None:
    a = _finite(a)
    return float(np.quantile(a, q)) if len(a) else None


def _r(x: Any, digits: int = 6) -> float | None:
    """Round for the JSON (None and NaN become None)."""
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def image_statistics(images: np.ndarray, batch_size: int = 250, progress: bool = False,
                     desc: str = "statistics") -> tuple[dict[str, Any], dict[str, Any]]:
    """All image statistics of uint8 (N, S, S, 3) images: (statistics dict, curves for the sheet)."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2] or images.dtype != np.uint8:
        raise UserError(f"expected square uint8 RGB images (N, S, S, 3), got {images.dtype} {images.shape}")
    acc = _Accumulator()
    batch_size = max(1, min(batch_size, STATS_BATCH_PIXELS // (images.shape[1] * images.shape[2])))
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", disable=not progress or None, leave=False):
        acc.add(np.asarray(images[start:start + batch_size]))
    return acc.result(images.shape[1])


# ------------------------------------------------------------------ feature-space statistics


def mean_cosine_distance(features: np.ndarray) -> float:
    """Mean of ``1 - cos(f_i, f_j)`` over all pairs i != j of (N, D) features, in O(N D).

    Uses ``sum_{i,j} u_i.u_j = |sum_i u_i|^2`` for unit rows ``u``; all-zero rows count as
    orthogonal to everything."""
    f = np.asarray(features, np.float64)
    n = len(f)
    if n < 2:
        raise ValueError("mean_cosine_distance needs at least 2 feature vectors")
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    u = np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)
    total = float(np.square(u.sum(0)).sum())
    self_pairs = float(np.square(u).sum())
    return 1.0 - (total - self_pairs) / (n * (n - 1))


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (N, D) and (M, D) features (the FID formula):
    ``|mu_x - mu_y|^2 + tr(S_x) + tr(S_y) - 2 tr((S_x S_y)^(1/2))``.

    The trace of the matrix square root is computed exactly without ``sqrtm``:
    for D <= min(N, M) as ``sum sqrt(eig(S_x^(1/2) S_y S_x^(1/2)))`` (symmetric, so
    ``eigh``); otherwise as the nuclear norm of ``A B^T / sqrt((N-1)(M-1))`` for
    the centred feature matrices A, B (the non-zero eigenvalues of ``S_x S_y``
    are the squared singular values of that N x M matrix), cheaper and exact for
    rank-deficient covariances.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {x.shape} and {y.shape}")
    n, m, d = len(x), len(y), x.shape[1]
    if n < 2 or m < 2:
        raise ValueError("the Fréchet distance needs at least 2 samples per set")
    a, b = x - x.mean(0), y - y.mean(0)
    mean_term = float(np.square(x.mean(0) - y.mean(0)).sum())
    trace_x, trace_y = float(np.square(a).sum()) / (n - 1), float(np.square(b).sum()) / (m - 1)
    if d <= min(n, m):
        sx, sy = a.T @ a / (n - 1), b.T @ b / (m - 1)
        w, v = np.linalg.eigh(sx)
        root_x = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
        middle = root_x @ sy @ root_x
        cross = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum())
    else:
        cross = float(np.linalg.svd(a @ b.T, compute_uv=False).sum() / math.sqrt((n - 1) * (m - 1)))
    return max(mean_term + trace_x + trace_y - 2.0 * cross, 0.0)


def _kernel_sum(x: np.ndarray, y: np.ndarray, skip_diagonal: bool, block: int = 1024) -> float:
    """Sum of ``(x_i.y_j / d + 1)^3`` over all pairs (without i == j when ``skip_diagonal``), in blocks."""
    d = x.shape[1]
    total = 0.0
    for i in range(0, len(x), block):
        k = (x[i:i + block] @ y.T / d + 1.0) ** 3
        if skip_diagonal:
            rows = np.arange(k.shape[0])
            k[rows, rows + i] = 0.0
        total += float(k.sum())
    return total


def kernel_inception_distance(x: np.ndarray, y: np.ndarray) -> float:
    """KID (Bińkowski et al. 2018): the unbiased estimate of MMD^2 with the polynomial kernel
    ``k(a, b) = (a.b / D + 1)^3`` between (N, D) and (M, D) features. Its expectation is 0 when both
    sets come from the same distribution, so small negative values occur."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {x.shape} and {y.shape}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    kxx = _kernel_sum(x, x, True) / (n * (n - 1))
    kyy = _kernel_sum(y, y, True) / (m * (m - 1))
    kxy = _kernel_sum(x, y, False) / (n * m)
    return kxx + kyy - 2.0 * kxy


# ------------------------------------------------------------------ loading


def _subset(total: int, n: int, seed: int, purpose: str) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``n`` of ``total`` items (all of them if n >= total)."""
    if total <= n:
        return np.arange(total, dtype=np.int64)
    return np.sort(image_rng(seed, 0, purpose).choice(total, n, replace=False)).astype(np.int64)


def _check_memory(n: int, size: int, what: str) -> None:
    need = n * size * size * 3
    if need > MAX_IMAGE_BYTES:
        raise UserError(f"{what}: {n} images of {size} px need {need / 2**30:.1f} GiB in memory (limit "
                        f"{MAX_IMAGE_BYTES / 2**30:.0f} GiB); lower --num-images or --image-size")


def _load_folder(path: Path, cfg: AnalyzeConfig, size: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode only the subset's files of an ImageFolder (``path/train/<class>/`` or ``path/<class>/``)."""
    train = path / "train"
    split_dir = train if train.is_dir() and available_splits(train) else path
    _, files, _, _ = scan_image_folder(split_dir)
    pick = _subset(len(files), cfg.num_images, cfg.seed, "analyze-subset")
    _check_memory(len(pick), size, str(path))
    chosen = [files[i] for i in pick]
    images, bad = decode_files(split_dir, chosen, size, workers=max_workers(), progress=cfg.progress)
    if bad:
        images = np.delete(images, bad, axis=0)
    if len(images) < 2:
        raise UserError(f"{split_dir}: fewer than 2 of the chosen images could be decoded")
    return images, {"kind": "folder", "data": str(split_dir), "image_size": size, "available": len(files),
                    "bad_images": len(bad)}


def _load_data(cfg: AnalyzeConfig, render_device: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The analysed images, uint8 (n, S, S, 3), and what the JSON records about them."""
    if cfg.data.startswith(GEN_PREFIX):
        size = cfg.image_size or DEFAULT_STORED_SIZE
        _check_memory(cfg.num_images, size, cfg.data)
        source = open_source(cfg.data, seed=cfg.seed, num_images=cfg.num_images, image_size=size, fixed=True,
                             gen_params=cfg.params, render_device=render_device, progress=cfg.progress)
        images = source.load(np.arange(cfg.num_images, dtype=np.int64))
        return images, {**source.info(), "available": None, "analysed": len(images), "subset": "indices 0..n-1"}
    path = Path(cfg.data).expanduser()
    if not path.exists():
        raise UserError(f"data {path} does not exist: pass a dataset folder, FILE.npy or gen:<generator>")
    if (path.is_file() and path.suffix == ".npy") or (path.is_dir() and (path / "images.npy").is_file()):
        source = open_source(str(path), seed=cfg.seed, image_size=cfg.image_size)
        if source.num_images < 2:
            raise UserError(f"{source.description} holds {source.num_images} image(s); the statistics need at least 2")
        pick = _subset(source.num_images, cfg.num_images, cfg.seed, "analyze-subset")
        _check_memory(len(pick), source.image_size, source.description)
        images = source.load(pick)
        info = {**source.info(), "available": source.num_images}
    elif path.is_dir():
        images, info = _load_folder(path, cfg, cfg.image_size or DEFAULT_STORED_SIZE)
    else:
        raise UserError(f"data {path} is neither a dataset folder nor a .npy file")
    subset = "all" if len(images) == info["available"] else "seeded random subset"
    return images, {**info, "num_images": len(images), "analysed": len(images), "subset": subset}


def _load_reference(cfg: AnalyzeConfig, source: DatasetSource, n: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A seeded subset of at most ``n`` images of the reference split, at ``reference_size``."""
    split = load_split(source, cfg.reference_split, cfg.reference_size, cfg.cache_dir, skip_bad_images=True,
                       progress=cfg.progress)
    if len(split.images) < 2:
        raise UserError(f"reference {cfg.reference} ({cfg.reference_split}) holds fewer than 2 images")
    images = split.images[_subset(len(split.images), n, cfg.seed, "analyze-reference")]
    info = {"dataset": cfg.reference, "split": cfg.reference_split, "path": str(source.path),
            "available": len(split.images), "analysed": len(images), "image_size": cfg.reference_size}
    return np.ascontiguousarray(images), info


def _output_paths(out: str | None) -> tuple[Path | None, Path | None]:
    """(json, png) paths of ``--out`` (FILE.json, or a directory)."""
    if out is None:
        return None, None
    path = Path(out).expanduser()
    json_path = path if path.suffix == ".json" else path / "analysis.json"
    if json_path.is_dir():
        raise UserError(f"--out {json_path} is a directory; name a .json file or a directory to write into")
    prepare_output_file(json_path)
    return json_path, json_path.with_suffix(".png")


# ------------------------------------------------------------------ the verb


def analyze(config: AnalyzeConfig | Mapping[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
    """Measure a dataset (see the module docstring); ``config`` is an :class:`AnalyzeConfig` or a mapping
    of its fields, ``fields`` override it.

    Returns the result dict that is also written to ``out`` (with the sheet next to it).

    Raises:
        UserError: bad arguments, unreadable or missing data/reference, an unknown
            encoder or layer, an unwritable ``out`` (one line, for the CLI).
    """
    cfg = make_config(AnalyzeConfig, config, fields, "analyze")
    json_path, png_path = _output_paths(cfg.out)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    device = accel.select_device(cfg.device)
    encoder, meta, encoder_info = build_encoder(cfg.encoder, cfg.seed, None)
    layer = cfg.layer or encoder.default_probe_layer
    encoder.check_layer(layer)
    _, mean, std = normalization_for(meta)
    encoder = prepare_encoder(encoder, device)
    lap("encoder_s")

    # the reference's name and location are checked before minutes of loading or rendering
    ref_source = resolve_dataset(cfg.reference, cfg.data_root, cfg.cache_dir) if cfg.reference else None
    images, data_info = _load_data(cfg, str(device))
    reference, reference_info = _load_reference(cfg, ref_source, len(images)) if ref_source else (None, None)
    lap("load_s")

    stats, curves = image_statistics(images, cfg.batch_size, cfg.progress, "statistics")
    ref_stats = ref_curves = None
    if reference is not None:
        ref_stats, ref_curves = image_statistics(reference, cfg.batch_size, cfg.progress, "reference statistics")
    lap("statistics_s")

    def features(x: np.ndarray, desc: str) -> np.ndarray:
        # fp32 (no autocast): the numbers must not depend on whether this CPU has bf16 units
        feats, _ = extract_features(encoder, x, layer, encoder.input_size, mean, std, device, cfg.batch_size,
                                    amp=False, progress=cfg.progress, desc=desc)
        return feats.numpy().astype(np.float64)

    data_feats = features(images, "features")
    ref_feats = features(reference, "reference features") if reference is not None else None
    stats["diversity"] = {"mean_cosine_distance": _r(mean_cosine_distance(data_feats))}
    distance = None
    if ref_feats is not None:
        assert ref_stats is not None
        ref_stats["diversity"] = {"mean_cosine_distance": _r(mean_cosine_distance(ref_feats))}
        scale = float(np.sqrt(np.mean(np.square(ref_feats))))
        if not scale > 0:
            raise UserError(f"the reference features of layer {layer!r} are all zero; choose another --encoder or --layer")
        distance = {
            "fid": _r(frechet_distance(data_feats / scale, ref_feats / scale)),
            "kid": _r(kernel_inception_distance(data_feats / scale, ref_feats / scale), 8),
            "feature_scale": _r(scale, 10),
        }
    lap("features_s")

    summary = {
        "spectrum_alpha": stats["spectrum"]["alpha_mean"], "spectrum_alpha_std": stats["spectrum"]["alpha_std"],
        "saturation": stats["colour"]["saturation_mean"], "colourfulness": stats["colour"]["colourfulness_mean"],
        "contrast": stats["colour"]["contrast_mean"], "orientation_entropy": stats["orientation"]["entropy_mean"],
        "edge_density": stats["edges"]["density_mean"], "wavelet_kurtosis": stats["wavelet"]["kurtosis_level1_median"],
        "diversity": stats["diversity"]["mean_cosine_distance"],
        "fid": distance["fid"] if distance else None, "kid": distance["kid"] if distance else None,
    }
    result: dict[str, Any] = {
        "noisevision_analysis_version": ANALYSIS_VERSION,
        "data": {"spec": cfg.data, **data_info},
        "summary": summary,
        "statistics": stats,
        "features": {"encoder": encoder_info, "layer": layer, "dim": int(data_feats.shape[1]),
                     "input_size": encoder.input_size, "normalization": {"mean": list(mean), "std": list(std)}},
        "reference": None if reference is None else {**(reference_info or {}), "statistics": ref_stats,
                                                      "distance": distance},
        "curves": {"data": curves, "reference": ref_curves},
        "definitions": {
            "spectrum_alpha": "|F(f)| ~ f^-alpha on luminance, rings 2..0.4*size cycles/image above 10x the uint8 floor",
            "saturation": "HSV (max-min)/max per pixel", "colourfulness": "Hasler & Suesstrunk 2003, 0-255 scale",
            "orientation_entropy": f"entropy of the magnitude-weighted {ORIENTATION_BINS}-bin gradient-orientation "
                                   "histogram / its maximum, per image",
            "edge_density": f"fraction of pixels with Sobel gradient magnitude > {EDGE_THRESHOLD} (intensity in [0,1] per px)",
            "wavelet_kurtosis": "median over images of the excess kurtosis of level-1 Haar detail coefficients",
            "diversity": "mean pairwise cosine distance of the encoder features",
            "fid": "Fréchet distance of features divided by feature_scale (RMS of the reference features)",
            "kid": "unbiased MMD^2, kernel (x.y/d + 1)^3, same scaled features",
        },
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "noisevision_version": __version__,
        "torch": torch.__version__,
        "device": str(device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if json_path is not None and png_path is not None and cfg.sheet:
        write_sheet(png_path, result, images[:SHEET_SAMPLES], summary_lines(result))
        result["sheet"] = str(png_path)
    lap("write_s")
    timings["total_s"] = round(sum(timings.values()), 3)
    result["timings_s"] = timings
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")
        result["json"] = str(json_path)
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A few plain-text lines of an analysis (what the CLI prints)."""
    s, d = result["summary"], result["data"]
    fmt = lambda v, spec=".3f": "-" if v is None else format(v, spec)  # noqa: E731
    lines = [
        f"{d['spec']}: {d['analysed']} images at {result['statistics']['image_size']} px",
        f"  spectrum alpha {fmt(s['spectrum_alpha'], '.2f')} +- {fmt(s['spectrum_alpha_std'], '.2f')}   "
        f"saturation {fmt(s['saturation'])}   colourfulness {fmt(s['colourfulness'], '.1f')}   contrast {fmt(s['contrast'])}",
        f"  orientation entropy {fmt(s['orientation_entropy'])}   edge density {fmt(s['edge_density'])}   "
        f"wavelet kurtosis {fmt(s['wavelet_kurtosis'], '.2f')}   diversity {fmt(s['diversity'])}",
    ]
    if result["reference"] is not None:
        ref = result["reference"]
        lines.append(f"  vs {ref['dataset']} ({ref['analysed']} {ref['split']} images): FID {fmt(s['fid'], '.4f')}   "
                     f"KID {fmt(s['kid'], '.5f')}   (reference alpha "
                     f"{fmt(ref['statistics']['spectrum']['alpha_mean'], '.2f')}, diversity "
                     f"{fmt(ref['statistics']['diversity']['mean_cosine_distance'])})")
    return lines
