"""Batched augmentations: exact crops/flips, jitter/blur known values, statistics, presets and errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from noisevision.augment import (
    AUG_PRESETS,
    IMAGENET_MEAN,
    STL10_MEAN,
    STL10_STD,
    build_augmentation,
    color_jitter,
    crop_resize_flip,
    gaussian_blur,
    get_aug_config,
    hue_matrices,
    normalize_only,
    sample_crop_boxes,
)
from noisevision.errors import UserError


def _images(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("preset", AUG_PRESETS.names())
@pytest.mark.parametrize("backend", ["torch", "kornia"])
def test_presets_produce_normalised_views(preset: str, backend: str) -> None:
    aug = build_augmentation(preset, 16, backend=backend)
    batch = _images()
    for inp in (batch, batch.numpy(), batch.permute(0, 3, 1, 2).float() / 255):
        out = aug(inp)
        assert out.shape == (8, 3, 16, 16) and out.dtype == torch.float32
    v1, v2 = aug.views(batch, 2)
    assert not torch.allclose(v1, v2)  # random per call
    mean = torch.tensor(AUG_PRESETS.get(preset).mean).view(1, 3, 1, 1)
    std = torch.tensor(AUG_PRESETS.get(preset).std).view(1, 3, 1, 1)
    pixels = v1 * std + mean
    assert pixels.min() >= -1e-4 and pixels.max() <= 1 + 1e-4


def test_generator_makes_views_reproducible() -> None:
    aug = build_augmentation("aug-plus", 16)
    batch = _images()
    a = aug(batch, generator=torch.Generator().manual_seed(5))
    b = aug(batch, generator=torch.Generator().manual_seed(5))
    c = aug(batch, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_crop_boxes_follow_scale_and_ratio() -> None:
    boxes = sample_crop_boxes(4000, 40, 60, (0.2, 0.6), (0.5, 2.0), torch.Generator().manual_seed(0))
    x0, y0, w, h = boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 60).all() and (y0 + h <= 40).all()
    area = w * h / (40 * 60)
    assert area.min() > 0.17 and area.max() < 0.64  # rounding of w, h
    assert ((w / h) > 0.45).all() and ((w / h) < 2.2).all()
    assert abs(area.mean().item() - 0.4) < 0.03  # area is uniform on the scale range
    assert abs(x0.mean().item() - (60 - w).mean().item() / 2) < 1.0  # position uniform
    # impossible requests fall back to the central crop with the aspect clamped
    fb = sample_crop_boxes(5, 10, 100, (0.9, 1.0), (1.0, 1.0))
    torch.testing.assert_close(fb, torch.tensor([[45.0, 0.0, 10.0, 10.0]]).expand(5, 4))


def test_crop_resize_flip_known_values() -> None:
    x = torch.rand(2, 3, 8, 8)
    whole = torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2)
    torch.testing.assert_close(crop_resize_flip(x, whole, torch.tensor([False, False]), 8), x)
    torch.testing.assert_close(crop_resize_flip(x, whole, torch.tensor([True, True]), 8), x.flip(-1))
    quadrant = torch.tensor([[4.0, 0.0, 4.0, 4.0]] * 2)  # top-right 4x4
    torch.testing.assert_close(crop_resize_flip(x, quadrant, torch.tensor([False, True]), 4),
                               torch.stack([x[0, :, :4, 4:], x[1, :, :4, 4:].flip(-1)]))
    # 2x downscale of the whole image is an exact 2x2 box filter
    torch.testing.assert_close(crop_resize_flip(x, whole, torch.tensor([False, False]), 4),
                               torch.nn.functional.avg_pool2d(x, 2))


def test_hue_rotation_keeps_luma_and_greys() -> None:
    mats = hue_matrices(torch.tensor([0.0, 1.0, 0.25, -0.4]))
    torch.testing.assert_close(mats[0], torch.eye(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(mats[1], torch.eye(3), atol=1e-6, rtol=0)
    luma = torch.tensor([0.299, 0.587, 0.114])
    torch.testing.assert_close(luma @ mats, luma.expand(4, 3), atol=1e-5, rtol=0)  # Y unchanged
    grey = torch.full((3,), 0.4)
    torch.testing.assert_close(mats @ grey, grey.expand(4, 3), atol=1e-5, rtol=0)
    assert not torch.allclose(mats[2], torch.eye(3), atol=0.1)


def test_color_jitter_known_values() -> None:
    x = torch.rand(3, 3, 5, 5)
    ones, zeros = torch.ones(3), torch.zeros(3)
    torch.testing.assert_close(color_jitter(x, ones, ones, ones, zeros, [0, 1, 2, 3]), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(color_jitter(x, ones * 0.5, ones, ones, zeros, [0]), x * 0.5)
    gray = color_jitter(x, ones, ones, zeros, zeros, [2])
    torch.testing.assert_close(gray[:, 0], gray[:, 1]) and torch.testing.assert_close(gray[:, 0], gray[:, 2])
    flat = color_jitter(x, ones, zeros, ones, zeros, [1])
    assert flat.std(dim=(1, 2, 3)).max() < 1e-6
    assert color_jitter(x, ones * 1.8, ones, ones, zeros, [0]).max() <= 1.0  # clamped


def test_gaussian_blur_matches_scipy() -> None:
    x = torch.rand(2, 3, 20, 20, dtype=torch.float32)
    sigma = torch.tensor([0.7, 1.5])
    got = gaussian_blur(x, sigma)
    radius = math.ceil(3 * 1.5)
    for i, s in enumerate(sigma.tolist()):
        want = ndimage.gaussian_filter(x[i].numpy(), sigma=(0, s, s), mode="mirror", truncate=radius / s)
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-5)


def test_augmentation_statistics() -> None:
    """Grayscale and flip happen with their configured probabilities; no jitter leaves colours intact."""
    aug = build_augmentation("small", 8, brightness=0, contrast=0, saturation=0, hue=0, scale=(1, 1), ratio=(1, 1))
    ramp = torch.zeros(600, 8, 8, 3, dtype=torch.uint8)
    ramp[..., 0] = torch.arange(8, dtype=torch.uint8).mul(30)[None, None, :]  # red ramp, left to right
    out = aug(ramp, generator=torch.Generator().manual_seed(0))
    pixels = out * torch.tensor(STL10_STD).view(1, 3, 1, 1) + torch.tensor(STL10_MEAN).view(1, 3, 1, 1)
    grey = (pixels[:, 0] - pixels[:, 1]).abs().amax(dim=(1, 2)) < 1e-4
    assert abs(grey.float().mean().item() - 0.2) < 0.05
    flipped = pixels[:, :, :, 0].mean(dim=(1, 2)) > pixels[:, :, :, -1].mean(dim=(1, 2))
    assert abs(flipped.float().mean().item() - 0.5) < 0.06
    colour = ~grey & ~flipped
    torch.testing.assert_close(pixels[colour][:, 0], (ramp[colour][..., 0].float() / 255), atol=1e-4, rtol=0)


def test_jitter_probability_and_blur_in_aug_plus() -> None:
    cfg = get_aug_config("aug-plus")
    assert (cfg.scale, cfg.hue, cfg.jitter_p, cfg.blur_p, cfg.mean) == ((0.2, 1.0), 0.1, 0.8, 0.5, IMAGENET_MEAN)
    aug = build_augmentation("aug-plus", 8, scale=(1, 1), ratio=(1, 1), hflip_p=0, grayscale_p=0, jitter_p=0, blur_p=1)
    noise = _images(16, 8, 1)
    out = aug(noise)
    plain = build_augmentation("aug-plus", 8, scale=(1, 1), ratio=(1, 1), hflip_p=0, grayscale_p=0, jitter_p=0, blur_p=0)(noise)
    assert out.std() < 0.9 * plain.std()  # blurred noise has less variance


def test_large_sources_are_limited_before_cropping() -> None:
    aug = build_augmentation("small", 4, scale=(1, 1), ratio=(1, 1), hflip_p=0, grayscale_p=0, jitter_p=0)
    const = torch.full((2, 64, 64, 3), 128, dtype=torch.uint8)
    out = aug(const)
    torch.testing.assert_close(out, ((128 / 255 - torch.tensor(STL10_MEAN)) / torch.tensor(STL10_STD)).view(1, 3, 1, 1).expand(2, 3, 4, 4))


def test_normalize_only_is_the_paper_test_transform() -> None:
    tf = normalize_only(64, "small")
    assert tf.resize == 70
    x = _images(2, 64)
    out = tf(x)
    assert out.shape == (2, 3, 64, 64)
    torch.testing.assert_close(out, tf(x))  # deterministic
    # equivalent to: resize 64 -> 70 (antialiased bilinear), centre crop 64, normalise
    ref = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2).float() / 255, size=(70, 70), mode="bilinear",
                                          antialias=True, align_corners=False).clamp(0, 1)[:, :, 3:67, 3:67]
    torch.testing.assert_close(out, (ref - torch.tensor(STL10_MEAN).view(1, 3, 1, 1)) / torch.tensor(STL10_STD).view(1, 3, 1, 1))
    assert normalize_only(32, "aug-plus")(_images(1, 100)).shape == (1, 3, 32, 32)


def test_errors() -> None:
    with pytest.raises(UserError, match="small"):
        build_augmentation("tiny", 32)
    with pytest.raises(UserError, match="scale"):
        build_augmentation("small", 32, scale=(0.5, 0.2))
    with pytest.raises(UserError, match="unknown augmentation option"):
        build_augmentation("small", 32, colour=0.3)
    with pytest.raises(UserError, match="backend"):
        build_augmentation("small", 32, backend="pil")
    with pytest.raises(UserError, match="blur_p must be a number, got 'abc'"):
        build_augmentation("small", 32, blur_p="abc")
    with pytest.raises(UserError, match="scale needs 2 comma-separated values, got 0.5"):
        build_augmentation("small", 32, scale=0.5)
    with pytest.raises(UserError, match="uint8"):
        build_augmentation("small", 8)(torch.zeros(2, 8, 8, 4, dtype=torch.uint8))
