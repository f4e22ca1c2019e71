"""A real, tight-frame steerable pyramid computed in the Fourier domain.

Simoncelli & Freeman (1995) / Portilla & Simoncelli (2000) construction, on
``rfft2`` half spectra so that every band is real:

* a high-pass residual ``H0`` and a low-pass ``L0`` split at half Nyquist,
* per scale ``K`` oriented bands ``B_k = (-i)^(K-1) * c_K * cos^(K-1)(theta - pi k / K) * H(r)``
  at that scale's resolution,
* a low-pass ``L(r)`` that is zero beyond half of the scale's Nyquist, so the
  spectrum is cropped (= downsampled by 2, no aliasing) before the next scale;
  the cropped values are not rescaled, so coefficient amplitudes grow 4x per
  scale (as in Simoncelli's ``buildSFpyr``),
* the low-pass residual after the last scale.

Radial masks are raised cosines in log2 radius with ``H^2 + L^2 = 1`` and the
angular masks satisfy ``sum_k |A_k|^2 = 1``, so the pyramid is a tight frame:
reconstruction (the adjoint) multiplies each band spectrum by the conjugate
filter and sums, which is the identity up to float rounding. Boundaries are
circular (FFT). Everything is batched over arbitrary leading dimensions
(images, channels); filters are cached per (size, scales, orientations).

The pyramid works on spectra at both ends (:func:`analyze_spectrum`,
:func:`synthesize_spectrum`) so an iterative synthesis that also edits the
spectrum can skip a pair of FFTs per iteration; :func:`analyze` and
:func:`synthesize` are the image-domain conveniences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class PyramidFilters:
    """Fourier-domain masks of one pyramid geometry (rfft2 layout ``(n, n // 2 + 1)``).

    Attributes:
        size: image side N.
        scales: number of oriented scales.
        orientations: oriented bands per scale K.
        levels: per scale, the complex filters (F, n, n//2+1) of the real coefficient
            images at resolution n = N / 2^scale. Scale 0 stacks the high-pass
            residual ``H0`` first and then its K oriented bands (with ``L0`` folded
            in), so one FFT call handles all full-resolution coefficients; the
            other scales hold K oriented bands.
        lows: per scale, the low-pass mask already cropped to the next scale, float
            (n/2, n/4+1); scale 0 includes ``L0``.
        adjoints: the conjugates of ``levels`` (used by synthesis).
    """

    size: int
    scales: int
    orientations: int
    levels: tuple[torch.Tensor, ...]
    lows: tuple[torch.Tensor, ...]
    adjoints: tuple[torch.Tensor, ...]

    def level_sizes(self) -> list[int]:
        """Side of the coefficient images of each level (level 0 includes the high-pass)."""
        return [self.size >> j for j in range(self.scales)]


@dataclass
class Pyramid:
    """Coefficients of a batch of real images, batched over any leading dims.

    ``levels[0]`` (..., 1 + K, N, N) is the high-pass residual followed by the K
    oriented bands of scale 0; ``levels[j]`` (..., K, n_j, n_j) for j >= 1. The
    low-pass residual is kept as its rfft2 spectrum (..., m, m//2+1) because
    iterative synthesis never edits it.
    """

    levels: list[torch.Tensor]
    lowpass_spectrum: torch.Tensor

    @property
    def highpass(self) -> torch.Tensor:
        """High-pass residual (..., N, N)."""
        return self.levels[0][..., 0, :, :]

    @property
    def bands(self) -> list[torch.Tensor]:
        """Oriented bands per scale, (..., K, n_j, n_j)."""
        return [self.levels[0][..., 1:, :, :]] + self.levels[1:]


def max_scales(size: int) -> int:
    """Most scales a ``size`` px pyramid supports.

    Every scale's spectrum is cropped to half its side, which needs a side divisible
    by 4 (even after halving), and the low-pass residual keeps at least 4 px.
    """
    scales = 0
    while size % 4 == 0 and size // 2 >= 4:
        size //= 2
        scales += 1
    return scales


def _polar_grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log2 radius (Nyquist = 0) and angle on the rfft2 grid of an ``n`` x ``n`` image."""
    fy = torch.fft.fftfreq(n, dtype=torch.float64)[:, None] * 2.0
    fx = torch.fft.rfftfreq(n, dtype=torch.float64)[None, :] * 2.0
    radius = torch.sqrt(fx**2 + fy**2)
    radius[0, 0] = radius.flatten()[1] / 2.0 if n > 1 else 1.0  # DC: any value below the first ring
    return torch.log2(radius), torch.atan2(fy.expand_as(radius), fx.expand_as(radius))


def _raised_cosine(log_radius: torch.Tensor, start: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) masks with a one-octave raised-cosine transition from ``start`` to ``start + 1``."""
    t = torch.clamp(log_radius - start, 0.0, 1.0) * (math.pi / 2)
    return torch.sin(t), torch.cos(t)


def _crop_half(spec: torch.Tensor) -> torch.Tensor:
    """Keep the central half of an rfft2 spectrum (..., n, n//2+1) -> (..., n/2, n/4+1)."""
    n = spec.shape[-2]
    q = n // 4
    return torch.cat([spec[..., :q, : q + 1], spec[..., n - q :, : q + 1]], dim=-2)


def _pad_double(spec: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_crop_half`: zero-pad (..., m, m//2+1) to (..., 2m, m+1)."""
    m = spec.shape[-2]
    q = m // 2
    out = spec.new_zeros(spec.shape[:-2] + (2 * m, m + 1))
    out[..., :q, : q + 1] = spec[..., :q, :]
    out[..., 2 * m - q :, : q + 1] = spec[..., q:, :]
    return out


@lru_cache(maxsize=32)
def pyramid_filters(size: int, scales: int, orientations: int) -> PyramidFilters:
    """Build (once per geometry) the masks of a ``scales``-scale, ``orientations``-band pyramid."""
    if scales < 1 or scales > max_scales(size):
        raise ValueError(f"a {size} px pyramid supports 1..{max_scales(size)} scales, got {scales}")
    if orientations < 1:
        raise ValueError("orientations must be >= 1")
    order = orientations - 1
    # c_K makes sum_k c_K cos^(2 order)(theta - pi k / K) == 1 for every theta.
    const = (2 ** (2 * order)) * math.factorial(order) ** 2 / (orientations * math.factorial(2 * order))
    phase = (-1j) ** order  # makes each oriented filter Hermitian -> real bands
    log_r, angle = _polar_grid(size)
    hi0, lo0 = _raised_cosine(log_r, -1.0)  # split between Nyquist/2 and Nyquist
    levels, lows = [], []
    n = size
    for scale in range(scales):
        log_r, angle = _polar_grid(n)
        hi, lo = _raised_cosine(log_r, -2.0)  # split between Nyquist/4 and Nyquist/2 of this scale
        if scale == 0:
            hi, lo = hi * lo0, lo * lo0
        ks = torch.arange(orientations, dtype=torch.float64)[:, None, None]
        angular = math.sqrt(const) * torch.cos(angle[None] - math.pi * ks / orientations) ** order
        level = phase * angular * hi[None]
        if scale == 0:
            level = torch.cat([hi0[None].to(level.dtype), level])
        levels.append(level.to(torch.complex64))
        lows.append(_crop_half(lo).to(torch.float32))
        n //= 2
    return PyramidFilters(
        size=size,
        scales=scales,
        orientations=orientations,
        levels=tuple(levels),
        lows=tuple(lows),
        adjoints=tuple(level.conj().resolve_conj() for level in levels),
    )


def irfft2(spectrum: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of ``torch.fft.rfft2`` for ``size`` x ``size`` images.

    Done as a complex ifft over rows then a c2r ifft over columns: same result
    as ``torch.fft.irfft2`` and about 25% faster on CPU for batches of 128 px planes.
    """
    return torch.fft.irfft(torch.fft.ifft(spectrum, dim=-2), n=size, dim=-1)


def analyze_spectrum(spectrum: torch.Tensor, filters: PyramidFilters) -> Pyramid:
    """Pyramid coefficients from an rfft2 spectrum (..., N, N//2+1) of real images."""
    levels = []
    low = spectrum
    for n, level_filters, low_mask in zip(filters.level_sizes(), filters.levels, filters.lows):
        levels.append(irfft2(low.unsqueeze(-3) * level_filters, n))
        low = _crop_half(low) * low_mask
    return Pyramid(levels=levels, lowpass_spectrum=low)


def synthesize_spectrum(pyramid: Pyramid, filters: PyramidFilters) -> torch.Tensor:
    """The rfft2 spectrum of the image whose (possibly edited) coefficients are ``pyramid``.

    The adjoint of :func:`analyze_spectrum` (conjugate filters, zero-padding for
    cropping); for unedited coefficients it returns the analysed spectrum.
    """
    low = pyramid.lowpass_spectrum
    for j in reversed(range(filters.scales)):
        low = _pad_double(low * filters.lows[j])
        low = low + (torch.fft.rfft2(pyramid.levels[j]) * filters.adjoints[j]).sum(dim=-3)
    return low


def analyze(images: torch.Tensor, scales: int, orientations: int = 4) -> Pyramid:
    """Steerable pyramid of real images (..., N, N) (float32)."""
    filters = pyramid_filters(images.shape[-1], scales, orientations)
    return analyze_spectrum(torch.fft.rfft2(images), filters)


def synthesize(pyramid: Pyramid) -> torch.Tensor:
    """Images (..., N, N) reconstructed from pyramid coefficients."""
    size = pyramid.levels[0].shape[-1]
    filters = pyramid_filters(size, len(pyramid.levels), pyramid.levels[0].shape[-3] - 1)
    return irfft2(synthesize_spectrum(pyramid, filters), size)
