"""Random StyleGAN2 generators: network ops, determinism, grouping, variant statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import noisevision as nv
from noisevision.comparison.paper import PAPER_ROWS
from noisevision.errors import UserError
from noisevision.generators import _stylegan_net as net
from noisevision.generators import stylegan as sg

VARIANTS = ["stylegan/random", "stylegan/high-freq", "stylegan/sparse", "stylegan/oriented"]
# One image from each of 8 different networks, so statistics average over networks.
ACROSS_NETWORKS = np.arange(8) * 400 + 3


def _gray(imgs: np.ndarray) -> np.ndarray:
    return imgs.astype(np.float64).mean(-1)


def high_low_power_ratio(imgs: np.ndarray) -> float:
    """Mean over images of (power at radius > n/4) / (power at 0 < radius <= n/8)."""
    g = _gray(imgs)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(g)) ** 2
    n = g.shape[-1]
    f = np.fft.fftfreq(n) * n
    radius = np.hypot(f[:, None], f[None, :])
    return float(np.mean(power[:, radius > n / 4].sum(1) / power[:, (radius > 0) & (radius <= n / 8)].sum(1)))


def orientation_coherence(imgs: np.ndarray) -> float:
    """Mean structure-tensor coherence (|l1 - l2| / (l1 + l2)) of each image's gradients: 1 = one orientation."""
    gy, gx = np.gradient(_gray(imgs), axis=(1, 2))
    jxx, jyy, jxy = (gx * gx).mean((1, 2)), (gy * gy).mean((1, 2)), (gx * gy).mean((1, 2))
    return float(np.mean(np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-12)))


# ---------------------------------------------------------------- network ops


def test_demodulation_gives_unit_norm_per_output_channel():
    g = torch.Generator().manual_seed(0)
    weight, styles = torch.randn(6, 5, 3, 3, generator=g), torch.randn(4, 5, generator=g) * 3
    w = net.modulated_weights(weight, styles, demodulate=True)
    assert w.shape == (4, 6, 5, 3, 3)
    torch.testing.assert_close(w.square().sum(dim=(2, 3, 4)), torch.ones(4, 6))
    raw = net.modulated_weights(weight, styles, demodulate=False)
    torch.testing.assert_close(raw, weight[None] * styles[:, None, :, None, None])
    assert not torch.allclose(raw.square().sum(dim=(2, 3, 4)), torch.ones(4, 6), atol=0.1)


@pytest.mark.parametrize("up", [False, True])
def test_shared_weight_conv_equals_grouped_per_image_conv(up):
    g = torch.Generator().manual_seed(1)
    x, weight = torch.randn(3, 5, 8, 8, generator=g), torch.randn(7, 5, 3, 3, generator=g)
    styles = torch.randn(3, 5, generator=g)
    shared = net.modulated_conv2d(x, weight, styles, up=up)
    per_image = net.modulated_conv2d(x, weight.expand(3, -1, -1, -1, -1).contiguous(), styles, up=up)
    # direct reference: per image, an ordinary conv with the modulated, demodulated weights
    xs = net.upsample2x(x) if up else x
    ref = torch.cat([F.conv2d(xs[i : i + 1], net.modulated_weights(weight, styles)[i], padding=1) for i in range(3)])
    torch.testing.assert_close(shared, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(per_image, ref, rtol=1e-4, atol=1e-4)
    assert shared.shape == (3, 7, 16 if up else 8, 16 if up else 8)


def test_upsample_is_stylegan_fir_upsampling():
    x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(2))
    fir = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 4
    ref = F.conv_transpose2d(x, torch.outer(fir, fir).expand(3, 1, 4, 4), stride=2, padding=1, groups=3)
    torch.testing.assert_close(net.upsample2x(x), ref)
    # interior of a constant image stays constant (the filter preserves DC)
    assert torch.allclose(net.upsample2x(torch.ones(1, 1, 6, 6))[..., 2:-2, 2:-2], torch.ones(1))


def test_rank_one_conv_equals_full_per_image_weights():
    g = torch.Generator().manual_seed(3)
    bank = torch.tensor(net.oriented_filter_bank())
    n, c_in, c_out = 3, 6, 5
    x, styles = torch.randn(n, c_in, 8, 8, generator=g), torch.randn(n, c_in, generator=g)
    kernels = bank[torch.randint(0, 40, (n, c_in), generator=g)]
    gains = torch.randn(n, c_out, generator=g)
    full = gains[:, :, None, None, None] * kernels[:, None]  # W[n,o,i] = g[n,o] * bank[f[n,i]]
    ref = net.modulated_conv2d(x, full, styles)
    fast = net.rank1_modulated_conv2d(x, kernels, torch.sign(gains), styles)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_contract_channels_of_rank_one_activation_matches_dense():
    g = torch.Generator().manual_seed(4)
    n, c, k = 3, 50, 12
    act = net.RankOneActivation(
        y=torch.randn(n, 9, 9, generator=g),
        v=0.3 * torch.randn(n, 9, 9, generator=g),
        signs=torch.where(torch.randn(n, c, generator=g) < 0, -1.0, 1.0),
        bias=torch.rand(n, c, generator=g) * 0.4 - 0.2,
    )
    coeffs = torch.randn(n, c, k, generator=g)
    expected = net.contract_channels(act.dense(), coeffs)  # plain einsum over expanded channels
    torch.testing.assert_close(net.contract_channels(act, coeffs), expected, rtol=1e-4, atol=1e-4)


def test_shift_sum_finishes_a_3x3_convolution():
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(2, 4, 7, 7, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    taps = net.contract_channels(x, w.reshape(2, 4, 9))
    ref = torch.cat([F.conv2d(x[i : i + 1], w[i : i + 1], padding=1) for i in range(2)])[:, 0]
    torch.testing.assert_close(net.shift_sum(taps), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", VARIANTS[1:])
def test_width_free_synthesis_equals_reference(name):
    params = nv.create_generator(name, channel_max=16).params
    layout = net.build_layout(32, params.channel_base, params.channel_max, params.w_dim)
    draws = [sg.sample_image(layout, params, 0, i) for i in range(3)]
    network = sg.build_network(layout, params, 0, 0)
    with torch.inference_mode():
        fast = sg.synthesize(layout, params, network, draws, "cpu")
        ref = sg.synthesize(layout, params, network, draws, "cpu", reference=True)
    scale = ref.abs().amax(dim=(1, 2, 3), keepdim=True)
    assert ((fast - ref).abs() / scale).max() < 1e-4


def test_pink_noise_has_the_requested_spectral_slope():
    white = torch.randn(16, 64, 64, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    alpha = 1.2
    maps = net.pink_noise(white, torch.full((16,), alpha, dtype=torch.float64))
    torch.testing.assert_close(maps.std(dim=(1, 2), unbiased=False), torch.ones(16, dtype=torch.float64))
    power = (torch.fft.fft2(maps).abs() ** 2).mean(0).numpy()
    f = np.fft.fftfreq(64) * 64
    radius = np.hypot(f[:, None], f[None, :])
    band = (radius >= 2) & (radius <= 24)
    slope = np.polyfit(np.log(radius[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-2 * alpha, abs=0.15)


def test_filter_banks():
    hf, ori = net.highfreq_filter_bank(), net.oriented_filter_bank()
    assert hf.shape == ori.shape == (40, 3, 3)
    assert len({f.tobytes() for f in hf}) == 40  # no duplicate filters
    assert set(np.unique(hf[:16])) <= {-1.0, 0.0, 1.0}  # binarised edges
    np.testing.assert_allclose(ori[20:], -ori[:20])  # negatives
    np.testing.assert_allclose(ori[:16].mean(axis=(1, 2)), 0, atol=1e-6)  # mean-subtracted edges and lines


def test_layout_matches_the_paper_network_at_256px():
    layout = net.build_layout(256, 32768, 512, 512)
    assert layout.num_ws == 14
    widths = {c.resolution: c.out_channels for c in layout.convs}
    assert widths == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}
    assert layout.resolutions == (4, 8, 16, 32, 64, 128, 256)
    assert max(c.w_index for c in layout.convs) < layout.num_ws and layout.torgbs[-1].w_index == 13


# ---------------------------------------------------------------- generator contract


def test_variants_are_registered():
    assert nv.list_generators("stylegan/*") == VARIANTS
    specs = {n: nv.generators.get_spec(n) for n in VARIANTS}
    assert [PAPER_ROWS[n].top1 for n in VARIANTS] == [34.0, 42.1, 42.0, 43.4]
    assert all(s.uses_torch for s in specs.values())


@pytest.mark.parametrize("name, overrides", [(n, {}) for n in VARIANTS] + [("stylegan/random", {"bf16": True})])
def test_deterministic_and_independent_of_batching(name, overrides):
    gen = nv.create_generator(name, **overrides)
    idx = np.arange(396, 404)  # straddles the network boundary at 400
    whole = gen.render(idx, 5, 16)
    assert whole.dtype == np.uint8 and whole.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(gen.render(idx, 5, 16), whole)
    perm = np.random.default_rng(0).permutation(len(idx))
    shuffled = np.empty_like(whole)
    shuffled[perm] = gen.render(idx[perm], 5, 16)
    np.testing.assert_array_equal(shuffled, whole)
    split = np.concatenate([gen.render(idx[:3], 5, 16), gen.render(idx[3:5], 5, 16), gen.render(idx[5:], 5, 16)])
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(gen.render(idx[4:5], 5, 16), whole[4:5])  # a batch of one
    assert not np.array_equal(gen.render(idx, 6, 16), whole)  # another seed, other images


@pytest.mark.parametrize("resolution", [4, 8, 16])
def test_modulated_conv_of_one_image_is_bitwise_the_batched_result(resolution):
    # oneDNN runs a batch of one with other kernels (other rounding) unless we avoid it
    g = torch.Generator().manual_seed(7)
    x, weight = torch.randn(6, 64, resolution, resolution, generator=g), torch.randn(64, 64, 3, 3, generator=g)
    styles = torch.randn(6, 64, generator=g)
    batched = net.modulated_conv2d(x, weight, styles)
    for i in range(6):
        assert torch.equal(net.modulated_conv2d(x[i : i + 1], weight, styles[i : i + 1]), batched[i : i + 1])


@pytest.mark.parametrize("name", ["stylegan/sparse", "stylegan/oriented"])
def test_noise_maps_and_styles_are_bitwise_independent_of_the_batch(name):
    # float32 FFT and matmul kernels round differently for other batch sizes: both run in float64
    params = nv.create_generator(name).params
    layout = net.build_layout(32, params.channel_base, params.channel_max, params.w_dim)
    draws = [sg.sample_image(layout, params, 0, i) for i in range(6)]
    network = sg.build_network(layout, params, 0, 0)
    batched = sg._Batch(layout, params, network, draws, "cpu")
    alone = sg._Batch(layout, params, network, draws[4:5], "cpu")
    for a, b in zip(batched.noise, alone.noise):
        assert torch.equal(a[4:5], b)
    assert torch.equal(batched.all_styles[4:5], alone.all_styles)


@pytest.mark.parametrize("name", VARIANTS)
def test_images_use_the_value_range_and_differ_within_a_network(name):
    imgs = nv.create_generator(name).render(range(4), 0, 32)
    assert imgs.std(axis=(1, 2, 3)).min() > 10  # not flat
    assert 40 < imgs.mean() < 170
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(imgs[a].astype(int) - imgs[b]).mean() > 5


def test_a_new_network_every_images_per_network():
    per_two = nv.create_generator("stylegan/random", images_per_network=2).render(range(4), 0, 16)
    per_400 = nv.create_generator("stylegan/random").render(range(4), 0, 16)
    np.testing.assert_array_equal(per_two[:2], per_400[:2])  # images 0, 1: network 0 in both
    assert not np.array_equal(per_two[2:], per_400[2:])  # images 2, 3: network 1 vs network 0
    params = nv.create_generator("stylegan/random").params
    layout = net.build_layout(16, params.channel_base, params.channel_max, params.w_dim)
    a, b = sg.build_network(layout, params, 0, 0), sg.build_network(layout, params, 0, 1)
    assert not torch.equal(a["const"], b["const"])
    assert torch.equal(a["const"], sg.build_network(layout, params, 0, 0)["const"])


def test_non_power_of_two_size():
    imgs = nv.create_generator("stylegan/oriented").render([0, 1], 0, 24)
    assert imgs.shape == (2, 24, 24, 3)


# ---------------------------------------------------------------- output colour statistics


def test_sampled_color_stats_follow_the_paper_normals():
    mean, std = sg.sample_color_stats(np.arange(3000), 0)
    np.testing.assert_allclose(mean.mean(0), sg.COLOR_MEAN_MU, atol=0.01)
    np.testing.assert_allclose(mean.std(0), sg.COLOR_MEAN_SIGMA, atol=0.01)
    np.testing.assert_allclose(std.mean(0), sg.COLOR_STD_MU, atol=0.01)
    np.testing.assert_allclose(std.std(0), sg.COLOR_STD_SIGMA, atol=0.01)
    assert (std > 0).all()


@pytest.mark.parametrize("name", ["stylegan/random", "stylegan/oriented"])
def test_output_channels_have_the_sampled_mean_and_std_before_clipping(name):
    gen = nv.create_generator(name)
    idx = np.arange(6)
    layout = net.build_layout(32, gen.params.channel_base, gen.params.channel_max, gen.params.w_dim)
    draws = [sg.sample_image(layout, gen.params, 3, i) for i in idx]
    mean, std = sg.sample_color_stats(idx, 3)
    with torch.inference_mode():
        raw = sg.synthesize(layout, gen.params, sg.build_network(layout, gen.params, 3, 0), draws, "cpu")
        colored = sg.impose_color_stats(raw, mean, std)
    np.testing.assert_allclose(colored.mean(dim=(2, 3)).numpy(), mean, atol=1e-5)
    np.testing.assert_allclose(colored.std(dim=(2, 3), unbiased=False).numpy(), std, rtol=1e-4)
    imgs = gen.render(idx, 3, 32)
    np.testing.assert_array_equal(imgs, sg.to_uint8(colored))  # render = clip + quantise of exactly this
    # channels that hardly clip keep the sampled statistics in the uint8 output
    x = imgs.astype(np.float64) / 255
    unclipped = ((x > 0.002) & (x < 0.998)).mean(axis=(1, 2)) > 0.995
    np.testing.assert_allclose(x.mean(axis=(1, 2))[unclipped], mean[unclipped], atol=0.01)


# ---------------------------------------------------------------- what distinguishes the variants


def test_bank_variants_have_more_high_frequency_power_than_random():
    ratios = {n: high_low_power_ratio(nv.create_generator(n).render(ACROSS_NETWORKS, 0, 64)) for n in VARIANTS}
    assert ratios["stylegan/high-freq"] > 3 * ratios["stylegan/random"]
    assert ratios["stylegan/oriented"] > 3 * ratios["stylegan/random"]
    assert ratios["stylegan/sparse"] > 3 * ratios["stylegan/random"]


def test_oriented_images_have_a_stronger_dominant_orientation():
    coherence = {
        n: orientation_coherence(nv.create_generator(n).render(ACROSS_NETWORKS, 0, 64))
        for n in ("stylegan/random", "stylegan/oriented")
    }
    assert coherence["stylegan/oriented"] > 1.25 * coherence["stylegan/random"]


# ---------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    "overrides",
    [
        {"conv_weights": "bogus"},
        {"noise": "white"},
        {"noise_strength": "0.3,0.1"},
        {"images_per_network": "0"},
        {"filter_subset": "0,50"},
        {"bias_range": "0.2"},
        {"channel_max": "0"},
        {"unknown_param": "1"},
    ],
)
def test_bad_params_raise_user_error(overrides):
    with pytest.raises(UserError):
        nv.create_generator("stylegan/oriented", **overrides)


def test_cli_strings_are_parsed():
    gen = nv.create_generator(
        "stylegan/oriented", noise_strength="0,0.1", images_per_network="100", redraw_torgb="false"
    )
    assert gen.params.noise_strength == (0.0, 0.1)
    assert gen.params.images_per_network == 100 and gen.params.redraw_torgb is False
    assert math.isclose(gen.params.bias_range[0], -0.2)
