"""Statistical image models (stat/*): steerable pyramid, spectrum, WMM marginals, colour model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kurtosis

from noisevision.comparison.paper import PAPER_ROWS
from noisevision.errors import UserError
from noisevision.generators import _pyramid as pyramid
from noisevision.generators import create_generator, list_generators
from noisevision.generators import statistical as stat

VARIANTS = ["stat/spectrum", "stat/wmm", "stat/spectrum-color", "stat/spectrum-color-wmm"]


# ---------------------------------------------------------------- steerable pyramid


@pytest.mark.parametrize("size,scales,orientations", [(64, 2, 4), (32, 1, 4), (48, 3, 4), (64, 3, 2), (32, 2, 6)])
def test_pyramid_reconstructs_perfectly(size, scales, orientations):
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    coefficients = pyramid.analyze(images, scales, orientations)
    rebuilt = pyramid.synthesize(coefficients)
    assert float((rebuilt - images).norm() / images.norm()) < 1e-5


def test_pyramid_band_count_and_shapes():
    coefficients = pyramid.analyze(torch.zeros(2, 3, 128, 128), scales=3, orientations=4)
    assert coefficients.highpass.shape == (2, 3, 128, 128)
    assert [tuple(b.shape) for b in coefficients.bands] == [(2, 3, 4, n, n) for n in (128, 64, 32)]
    assert coefficients.lowpass_spectrum.shape == (2, 3, 16, 9)  # rfft2 of the 16 px low-pass residual
    assert pyramid.max_scales(128) == 5 and pyramid.max_scales(48) == 3 and pyramid.max_scales(8) == 1
    assert pyramid.max_scales(52) == 1 and pyramid.max_scales(6) == 0
    with pytest.raises(ValueError):
        pyramid.pyramid_filters(32, 4, 4)


def test_pyramid_bands_are_oriented():
    """Vertical stripes land in orientation 0, horizontal ones in orientation K/2."""
    x = torch.arange(64, dtype=torch.float32)
    wave = torch.cos(2 * torch.pi * 10 * x / 64)  # 10 cycles per image: a scale-0 frequency
    vertical = wave[None, :].expand(64, 64)  # varies along x
    coefficients = pyramid.analyze(torch.stack([vertical, vertical.T]), scales=2, orientations=4)
    energy = coefficients.bands[0].square().sum(dim=(-2, -1))  # (2 images, 4 orientations)
    assert energy[0].argmax() == 0 and energy[1].argmax() == 2
    assert float(energy[0, 2]) < 1e-6 * float(energy[0, 0])


# ---------------------------------------------------------------- contract


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_range_determinism_and_batch_independence(name):
    gen = create_generator(name)
    size = 48  # not a power of two: the pyramid halves it 2 times (48 -> 24 -> 12)
    whole = gen.render(np.arange(4), seed=5, size=size)
    assert whole.shape == (4, size, size, 3) and whole.dtype == np.uint8
    assert whole.min() == 0 and whole.max() == 255  # per-image min-max to [0, 255]
    shuffled = np.concatenate([gen.render([3, 1], 5, size), gen.render([0], 5, size), gen.render([2], 5, size)])
    np.testing.assert_array_equal(shuffled, whole[[3, 1, 0, 2]])
    assert not np.array_equal(gen.render([0], 6, size)[0], whole[0])
    assert not np.array_equal(whole[0], whole[1])


def test_registered_with_paper_numbers():
    assert set(VARIANTS) <= set(list_generators("stat/*"))
    assert [PAPER_ROWS[n].top1 for n in VARIANTS] == [30.6, 31.4, 36.7, 39.9]


def test_sizes_the_pyramid_cannot_halve_are_padded_and_cropped():
    gen = create_generator("stat/wmm", wmm_scales=2, iterations=2)
    assert stat.wmm_geometry(50, gen.params) == (2, 56)
    assert gen.render([0], 0, 50).shape == (1, 50, 50, 3)
    assert stat.default_wmm_scales(128) == 3 and stat.default_wmm_scales(256) == 4
    assert stat.default_wmm_scales(64) == 2 and stat.default_wmm_scales(16) == 1


# ---------------------------------------------------------------- spectrum


def _radial_power(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of the image's mean over channels: (frequency, power)."""
    grey = image.astype(np.float64).mean(-1)
    power = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    freqs = np.fft.fftfreq(grey.shape[0]) * grey.shape[0]
    ring = np.rint(np.hypot(freqs[:, None], freqs[None, :])).astype(int).ravel()
    sums, counts = np.bincount(ring, power.ravel()), np.bincount(ring)
    return np.arange(len(sums)), sums / np.maximum(counts, 1)


def _loglog_slope(image: np.ndarray, low: int, high: int) -> float:
    f, p = _radial_power(image)
    keep = (f >= low) & (f <= high)
    return float(np.polyfit(np.log(f[keep]), np.log(p[keep]), 1)[0])


def test_spectrum_slope_matches_sampled_exponent():
    """Power falls as 1/f^(2s), for steep and for shallow sampled exponents.

    Tolerances come from 40 images at 128 px: steep spectra (s > 2.8) fitted over
    2..8 cycles/image (above that, uint8 quantisation noise flattens them) had a
    relative slope error of mean -4%, sd 3%, max 7%; shallow ones (s < 1.5) over
    2..48 cycles had mean 0.5%, sd 1.6%, max 4%. A wrong exponent (amplitude
    instead of power ~ 1/f^s, or 1/f^(2s) amplitude) is off by 50-100%.
    """
    gen = create_generator("stat/spectrum")
    samples = {i: stat.sample_spectrum_params(0, i, gen.params) for i in range(60)}
    steep = [i for i, s in samples.items() if s.s > 2.8][:4]
    shallow = [i for i, s in samples.items() if s.s < 1.5][:4]
    assert len(steep) == 4 and len(shallow) == 4
    images = dict(zip(steep + shallow, gen.render(steep + shallow, 0, 128)))
    for i in steep:
        assert _loglog_slope(images[i], 2, 8) / (-2 * samples[i].s) == pytest.approx(1.0, abs=0.15)
    for i in shallow:
        assert _loglog_slope(images[i], 2, 48) / (-2 * samples[i].s) == pytest.approx(1.0, abs=0.1)


def test_spectrum_exponent_parameters_are_used():
    """A fixed exponent (range of width 0, no anisotropy) gives that exponent's slope."""
    gen = create_generator("stat/spectrum", exponent_range="1.0,1.0", anisotropy_sd="0")
    sample = stat.sample_spectrum_params(0, 3, gen.params)
    assert (sample.sx, sample.sy) == (1.0, 1.0)
    slopes = [_loglog_slope(img, 2, 48) for img in gen.render(range(3), 0, 128)]
    assert np.mean(slopes) == pytest.approx(-2.0, abs=0.12)


def test_sampled_exponents_follow_the_paper_distributions():
    params = create_generator("stat/spectrum").params
    samples = [stat.sample_spectrum_params(1, i, params) for i in range(400)]
    s = np.array([x.s for x in samples])
    d = np.array([x.d for x in samples])
    assert 0.5 <= s.min() and s.max() <= 3.5 and s.mean() == pytest.approx(2.0, abs=0.15)
    assert d.std() == pytest.approx(3 / 60, rel=0.15)
    assert samples[0].sx == samples[0].s + samples[0].d and samples[0].sy == samples[0].s - samples[0].d


def test_spectrum_projection_is_idempotent():
    """Step (a) alone is a projection, which is why stat/spectrum runs one iteration."""
    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.random((1, 3, 32, 32), dtype=np.float32) * 256)
    magnitudes = stat.spectrum_magnitudes(stat.SpectrumSample(s=2.0, d=0.03), 32)
    once = stat.synthesize(noise, magnitudes, None, None, iterations=1)
    ten = stat.synthesize(noise, magnitudes, None, None, iterations=10)
    torch.testing.assert_close(ten, once, rtol=0, atol=1e-3)
    # the mean and std of every channel are those of the noise
    torch.testing.assert_close(once.mean(dim=(-2, -1)), noise.mean(dim=(-2, -1)), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(once.std(dim=(-2, -1)), noise.std(dim=(-2, -1)), rtol=1e-3, atol=0)


# ---------------------------------------------------------------- histogram matching


def test_match_histograms_agrees_with_exact_sort_based_matching():
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((3, 16384)) * 3 + 1).astype(np.float32)
    tables = stat.marginal_tables(128, [128, 64, 32], exponent=0.6)  # s = 4, 16, 256
    matched = stat.match_histograms(values, tables)
    quantiles = np.linspace(0, 1, tables.shape[1])
    for row in range(3):
        ranks = np.argsort(np.argsort(values[row]))
        exact = np.interp((ranks + 1) / (values.shape[1] + 1), quantiles, tables[row])
        assert np.sqrt(np.mean((matched[row] - exact) ** 2)) < 0.01 * exact.std()
    # the target's scale is imposed: s = 4, r = 0.6 -> std = s * sqrt(G(5/r) / G(1/r)) ~ 20.6
    assert matched[0].std() == pytest.approx(20.6, rel=0.05)
    assert matched[0].std() < matched[1].std() < matched[2].std()
    assert kurtosis(matched[0], fisher=False) > 10  # generalised Gaussian r = 0.6: ~15
    # a row's result does not depend on the other rows of the call
    np.testing.assert_array_equal(stat.match_histograms(values[2:], tables[2:]), matched[2:])


def test_match_histograms_reproduces_an_absolute_target_histogram():
    """The output histogram is the target's, bin by bin."""
    rng = np.random.default_rng(1)
    values = rng.random((2, 16384)).astype(np.float32)  # uniform source
    edges = np.linspace(-50, 50, 257)
    target = np.exp(-np.abs((edges[1:] + edges[:-1]) / 2) / 10)  # Laplacian counts
    tables = np.stack([stat.inverse_cdf_table(edges, target)] * 2)
    matched = stat.match_histograms(values, tables, bins=4096)  # as the colour step
    for row in matched:
        counts = np.histogram(row, edges)[0]
        assert np.abs(counts / counts.sum() - target / target.sum()).sum() < 0.05  # L1 of the two histograms


# ---------------------------------------------------------------- WMM


def _decorrelated_band_kurtosis(name: str, size: int = 64, count: int = 3) -> np.ndarray:
    """Kurtosis of the high-pass and scale-0 bands of each output's decorrelated channels."""
    gen = create_generator(name)
    out = []
    for i, image in enumerate(gen.render(range(count), 0, size)):
        basis = stat.sample_color_model(0, i, size, gen.params, histograms=False).basis
        pixels = image.reshape(-1, 3).astype(np.float64)
        channels = ((pixels - pixels.mean(0)) @ basis).T.reshape(3, size, size)
        coefficients = pyramid.analyze(torch.from_numpy(channels.astype(np.float32)), scales=2)
        fine = (coefficients.highpass, coefficients.bands[0])
        out.append([kurtosis(b.reshape(-1).numpy(), fisher=False) for b in fine])
    return np.array(out)


@pytest.mark.parametrize("name", ["stat/wmm", "stat/spectrum-color-wmm"])
def test_wmm_bands_are_heavy_tailed(name):
    """Fine-scale targets have s = 4, r ~ U(0.4, 0.8): kurtosis ~10-30 before reconstruction."""
    assert _decorrelated_band_kurtosis(name).min() > 5


def test_spectrum_bands_are_close_to_gaussian():
    """Random-phase 1/f noise is Gaussian: band kurtosis ~3 (measured 2.6-3.1)."""
    k = _decorrelated_band_kurtosis("stat/spectrum")
    assert 2.2 < k.min() and k.max() < 3.6


# ---------------------------------------------------------------- colour model


def test_color_model_sampling():
    params = create_generator("stat/spectrum-color").params
    model = stat.sample_color_model(0, 7, 64, params)
    np.testing.assert_allclose(model.basis.T @ model.basis, np.eye(3), atol=1e-10)
    assert np.all(model.mean >= 0) and np.all(model.mean <= 256)
    assert model.histograms.shape == (3, 256) and model.histograms.sum() == 3 * 64 * 64
    variances = [np.cov(model.edges[c][:-1], aweights=model.histograms[c] + 1e-12) for c in range(3)]
    assert variances[0] >= variances[1] >= variances[2]  # PCA order
    again = stat.sample_color_model(0, 7, 64, params)
    np.testing.assert_array_equal(again.histograms, model.histograms)


def _ks_to_color_targets(name: str, size: int = 64, count: int = 4) -> np.ndarray:
    """KS distance between each output decorrelated channel and its colour target (both standardised)."""
    gen = create_generator(name)
    out = []
    for i, image in enumerate(gen.render(range(count), 0, size)):
        model = stat.sample_color_model(0, i, size, gen.params)
        pixels = image.reshape(-1, 3).astype(np.float64)
        channels = (pixels - pixels.mean(0)) @ model.basis
        for c in range(3):
            values = np.sort((channels[:, c] - channels[:, c].mean()) / channels[:, c].std())
            weights = model.histograms[c] / model.histograms[c].sum()
            mids = (model.edges[c][1:] + model.edges[c][:-1]) / 2
            mean = (weights * mids).sum()
            sd = np.sqrt((weights * (mids - mean) ** 2).sum())
            target_cdf = np.interp(values, (model.edges[c] - mean) / sd, np.concatenate([[0], np.cumsum(weights)]))
            empirical = np.arange(1, len(values) + 1) / len(values)
            out.append(np.abs(empirical - target_cdf).max())
    return np.array(out)


def test_color_histograms_are_matched():
    """Measured KS: 0.002-0.014 with step (c), 0.04-0.27 for plain spectrum (same colour model)."""
    matched = _ks_to_color_targets("stat/spectrum-color")
    unmatched = _ks_to_color_targets("stat/spectrum")
    assert matched.max() < 0.03
    assert unmatched.mean() > 5 * matched.mean()


def test_variants_without_color_step_still_use_the_color_rotation():
    """stat/spectrum and stat/spectrum-color share the per-image colour basis: pixels vary
    along the sampled colour model's axes, so images of different indices get different tints."""
    means = create_generator("stat/spectrum").render(range(6), 0, 32).reshape(6, -1, 3).mean(1)
    assert np.ptp(means, axis=0).max() > 30


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "overrides",
    [
        {"exponent_range": "3,1"},
        {"exponent_range": "-1,2"},
        {"anisotropy_sd": "-0.1"},
        {"iterations": "0"},
        {"wmm_scales": "0"},
        {"orientations": "0"},
        {"marginal_exponent_range": "0,0.5"},
        {"num_colors_range": "0,5"},
        {"max_blur": "0"},
        {"spectrum": "false"},
        {"iterations": "2.5"},
    ],
)
def test_bad_parameters_are_user_errors(overrides):
    with pytest.raises(UserError):
        create_generator("stat/spectrum", **overrides)


def test_too_many_scales_for_the_size_is_a_user_error():
    gen = create_generator("stat/wmm", wmm_scales=4)
    with pytest.raises(UserError, match="wmm_scales"):
        gen.render([0], 0, 16)
