"""noisevision analyze: the statistics recover known values, FID/KID behave, results are deterministic."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from noisevision import create_generator
from noisevision.cli import main
from noisevision.errors import UserError
from noisevision.eval.analyze import (
    AnalyzeConfig,
    analyze,
    colour_statistics,
    frechet_distance,
    gradient_statistics,
    haar_kurtosis,
    kernel_inception_distance,
    luminance,
    mean_cosine_distance,
    periodic_fft,
)


def _write_npy(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "images.npy", images)
    return folder


def _write_folder(root, images):
    for i, img in enumerate(images):
        cls = root / "train" / f"c{i % 2}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(cls / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def leaves() -> np.ndarray:
    return create_generator("dead-leaves/mixed").render(np.arange(24), 0, 32)


# ------------------------------------------------------------------ spectrum


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_spectrum_exponent_is_recovered_from_stat_spectrum(exponent):
    # stat/spectrum with a fixed exponent s has |F| ~ f^-s exactly (anisotropy off). Per-image estimates
    # at 64 px scatter by ~0.06 (measured), so the mean of 32 images has a standard error of ~0.011; the
    # estimator's own bias at 64 px is ~0.02 (uint8 quantisation, ring discretisation). 0.07 covers both.
    result = analyze(data="gen:stat/spectrum", params={"exponent_range": f"{exponent},{exponent}", "anisotropy_sd": "0"},
                     num_images=32, image_size=64, encoder="pixels", progress=False)
    spectrum = result["statistics"]["spectrum"]
    assert spectrum["images_fitted"] == 32
    assert abs(spectrum["alpha_mean"] - exponent) < 0.07
    assert spectrum["alpha_std"] < 0.15
    assert abs(spectrum["alpha_of_mean_spectrum"] - exponent) < 0.1
    assert result["data"]["params"]["exponent_range"] == [exponent, exponent]


def test_periodic_component_removes_border_jumps_only():
    lum = np.random.default_rng(0).uniform(0, 255, (2, 16, 16))
    lum[:, -1, :], lum[:, :, -1] = lum[:, 0, :], lum[:, :, 0]  # no jump across the borders: nothing to remove
    np.testing.assert_allclose(periodic_fft(lum), np.fft.fft2(lum), atol=1e-6)
    ramp = np.broadcast_to(np.arange(16.0), (1, 16, 16)).copy()  # a jump of 15 from the last column to the first
    periodic = np.fft.ifft2(periodic_fft(ramp)).real
    assert np.abs(periodic[:, :, -1] - periodic[:, :, 0]).max() < 1.0


# ------------------------------------------------------------------ colour, orientation, edges, wavelets


def test_colour_statistics_of_known_images():
    img = np.zeros((2, 8, 8, 3), np.uint8)
    img[0] = (255, 0, 0)
    img[1] = (128, 128, 128)
    s = colour_statistics(img)
    np.testing.assert_allclose(s["channel_sum"] / s["pixels"], [(255 + 128) / 510, 128 / 510, 128 / 510])
    assert s["saturation_sum"] / s["pixels"] == pytest.approx(0.5)  # red: 1, grey: 0
    np.testing.assert_allclose(s["contrast"], [0.0, 0.0])
    assert s["colourfulness"][1] == 0.0 and s["colourfulness"][0] == pytest.approx(0.3 * math.hypot(255, 127.5))


def test_orientation_entropy_and_edges():
    stripes = np.tile((np.arange(32) // 4 % 2 * 255.0)[None, :], (32, 1))[None]  # vertical stripes: one orientation
    noise = np.random.default_rng(0).uniform(0, 255, (1, 32, 32))
    flat = np.full((1, 32, 32), 100.0)
    g = gradient_statistics(np.concatenate([stripes, noise, flat]))
    assert g["orientation_entropy"][0] < 0.01
    assert g["orientation_entropy"][1] > 0.95
    assert math.isnan(g["orientation_entropy"][2])  # no gradient, no orientation
    assert g["edge_density"][0] == pytest.approx(2 * 7 / 30)  # 2 columns per each of the 7 interior edges
    assert g["edge_density"][2] == 0.0


def test_haar_kurtosis_separates_gaussian_from_sparse():
    rng = np.random.default_rng(1)
    gaussian = rng.normal(128, 20, (1, 128, 128))
    sparse = np.zeros((1, 128, 128))
    sparse[0, rng.integers(0, 128, 40), rng.integers(0, 128, 40)] = 255
    k = haar_kurtosis(np.concatenate([gaussian, sparse, np.zeros((1, 128, 128))]))
    # excess kurtosis of 12,288 Gaussian coefficients has a standard error of sqrt(24 / 12288) ~ 0.044
    assert abs(k[0, 0]) < 0.2
    assert k[1, 0] > 50
    assert np.isnan(k[2]).all()


def test_luminance_weights():
    assert luminance(np.array([[[[255, 255, 255]]]], np.uint8))[0, 0, 0] == pytest.approx(255.0)


# ------------------------------------------------------------------ diversity, FID, KID


def test_mean_cosine_distance_matches_brute_force():
    f = np.random.default_rng(2).normal(size=(30, 7))
    u = f / np.linalg.norm(f, axis=1, keepdims=True)
    sim = u @ u.T
    brute = 1 - (sim.sum() - np.trace(sim)) / (30 * 29)
    assert mean_cosine_distance(f) == pytest.approx(brute, abs=1e-12)
    assert mean_cosine_distance(np.ones((5, 3))) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n, m, d", [(60, 50, 6), (12, 9, 40)])  # covariance route, and the rank-deficient route
def test_frechet_distance_matches_scipy_sqrtm(n, m, d):
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    y = rng.normal(0.5, 1.0, size=(m, d))
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    cross = np.trace(sqrtm(sx @ sy)).real
    reference = np.square(x.mean(0) - y.mean(0)).sum() + np.trace(sx) + np.trace(sy) - 2 * cross
    assert frechet_distance(x, y) == pytest.approx(reference, rel=1e-6)


def test_frechet_distance_zero_for_a_set_with_itself_and_grows_with_a_shift():
    x = np.random.default_rng(4).normal(size=(200, 16))
    assert frechet_distance(x, x) < 1e-8
    assert frechet_distance(x, x + 0.5) == pytest.approx(16 * 0.25, rel=1e-9)  # a pure shift adds |mu|^2
    assert frechet_distance(x, x[::-1].copy()) < 1e-8  # order does not matter


def test_kid_is_unbiased_and_detects_a_shift():
    rng = np.random.default_rng(5)
    kids, biased = [], []
    for _ in range(40):
        x, y = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
        kids.append(kernel_inception_distance(x, y))
        k = lambda a, b: (a @ b.T / 8 + 1) ** 3  # noqa: E731
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())  # the V-statistic, diagonal included
    se = np.std(kids) / math.sqrt(len(kids))
    assert abs(np.mean(kids)) < 4 * se  # same distribution: zero on average
    assert np.mean(biased) > 4 * se  # the biased estimator would fail the line above
    x = rng.normal(size=(40, 8))
    assert kernel_inception_distance(x, x + 1.0) > 20 * se


# ------------------------------------------------------------------ end to end


def test_fid_against_the_same_images_is_zero_and_larger_for_shifted_ones(tmp_path, leaves):
    data = _write_npy(tmp_path / "data", leaves)
    same = _write_folder(tmp_path / "same", leaves)
    darker = _write_folder(tmp_path / "darker", (leaves // 2).astype(np.uint8))
    common = dict(data=str(data), num_images=24, reference_size=32, cache_dir=str(tmp_path / "cache"), progress=False,
                  sheet=False)
    r_same = analyze(reference=f"imagefolder:{same}", **common)
    r_dark = analyze(reference=f"imagefolder:{darker}", **common)
    assert r_same["summary"]["fid"] < 1e-6
    assert r_dark["summary"]["fid"] > 1.0
    assert r_dark["summary"]["kid"] > r_same["summary"]["kid"] + 0.01
    assert r_same["reference"]["statistics"]["spectrum"] == r_same["statistics"]["spectrum"]
    assert r_same["features"]["encoder"]["arch"] == "smallalexnet32" and r_same["features"]["layer"] == "fc6"


def test_results_are_deterministic_and_written_with_a_sheet(tmp_path, leaves):
    data = _write_npy(tmp_path / "data", leaves)
    cfg = AnalyzeConfig(data=data, num_images=16, seed=3, progress=False)  # a Path is fine
    a = analyze(cfg, out=str(tmp_path / "a"))
    b = analyze(cfg, sheet=False)
    for key in ("summary", "statistics", "curves", "data"):
        assert a[key] == b[key]
    assert a["data"]["subset"] == "seeded random subset" and a["data"]["analysed"] == 16
    saved = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert saved["summary"] == a["summary"] and saved["config"]["seed"] == 3
    with Image.open(tmp_path / "a" / "analysis.png") as sheet:
        assert sheet.size[0] > 600
    c = analyze(cfg, seed=4, sheet=False)
    assert c["summary"] != a["summary"]  # another seed, another subset and encoder


def test_bad_input_is_a_one_line_error(tmp_path, leaves, capsys):
    data = str(_write_npy(tmp_path / "data", leaves))
    with pytest.raises(UserError, match="does not exist"):
        analyze(data=str(tmp_path / "nope"), progress=False)
    with pytest.raises(UserError, match="num_images"):
        analyze(data=data, num_images=1)
    with pytest.raises(UserError, match="apply only to gen:"):
        analyze(data=data, params={"sigma": "2"})
    with pytest.raises(UserError, match="unknown dataset"):
        analyze(data=data, reference="cifar11", progress=False)
    with pytest.raises(UserError, match="no layer"):
        analyze(data=data, layer="conv9", progress=False)
    with pytest.raises(UserError, match="generator"):
        analyze(data="gen:no-such/generator", num_images=4, progress=False)
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        analyze(data=data, out=str(tmp_path / "dir.json"))
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(UserError, match="a_file is a file, not a folder"):
        analyze(data=data, out=str(tmp_path / "a_file" / "r.json"))
    with pytest.raises(UserError, match="analyze has no parameter .colour."):
        analyze(data=data, colour="red")
    np.save(tmp_path / "wide.npy", np.zeros((4, 8, 16, 3), np.uint8))
    with pytest.raises(UserError, match="square"):
        analyze(data=str(tmp_path / "wide.npy"), progress=False)
    assert main(["analyze", data, "--num-images", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("noisevision: error:") and "\n" not in err


def test_cli_analyze(tmp_path, leaves, capsys):
    data = str(_write_npy(tmp_path / "data", leaves))
    out = tmp_path / "res" / "x.json"
    assert main(["analyze", data, "-n", "8", "--encoder", "pixels", "--out", str(out), "--no-sheet", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "spectrum alpha" in printed and str(out) in printed
    assert out.is_file() and not out.with_suffix(".png").exists()
    assert json.loads(out.read_text())["features"]["encoder"]["arch"] == "pixels"


def test_imagefolder_subset_and_flat_images(tmp_path, leaves):
    folder = _write_folder(tmp_path / "folder", leaves)
    r = analyze(data=str(folder), num_images=10, image_size=32, encoder="pixels", progress=False, sheet=False)
    assert r["data"]["kind"] == "folder" and r["data"]["available"] == 24 and r["data"]["analysed"] == 10
    assert r["data"]["subset"] == "seeded random subset" and r["data"]["data"].endswith("train")
    flat = _write_npy(tmp_path / "flat", np.full((6, 16, 16, 3), 77, np.uint8))
    r = analyze(data=str(flat), encoder="pixels", out=str(tmp_path / "flat.json"), progress=False)
    assert r["summary"]["spectrum_alpha"] is None and r["statistics"]["spectrum"]["images_fitted"] == 0
    assert r["summary"]["orientation_entropy"] is None and r["summary"]["edge_density"] == 0.0
    assert (tmp_path / "flat.png").is_file()


def test_memory_is_checked_before_rendering():
    with pytest.raises(UserError, match="GiB"):
        analyze(data="gen:dead-leaves/mixed", num_images=1_000_000, image_size=1024, progress=False)
