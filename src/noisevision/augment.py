"""Batched SSL augmentations: one call turns a whole uint8 batch into one random view.

Two backends compute the same recipe (random resized crop, horizontal flip,
colour jitter, random grayscale, optional Gaussian blur, normalisation):

- ``"torch"`` (default, fast): our own batched ops. The crop and the flip are
  one affine ``F.grid_sample`` per batch; colour jitter is four fused per-sample
  tensor ops; blur is a per-sample separable grouped convolution. It takes an
  optional ``torch.Generator`` for reproducible views.
- ``"kornia"``: the same recipe with ``kornia.augmentation`` modules (slower;
  kept as a reference and for users who prefer kornia's semantics).

Deviations from torchvision's per-image PIL pipeline, all documented and small:
hue is rotated in YIQ space (a linear 3x3 per image, as NVIDIA DALI does)
instead of via HSV; sources larger than twice the output are first resized
(antialiased) to twice the output size, so bilinear crop-resizing never
downsamples by more than 2x (at 2x it is an exact 2x2 box filter); the
colour-jitter order is random per batch (kornia) rather than per image.

>>> aug = build_augmentation("small", 64)
>>> view1, view2 = aug(batch_uint8_nhwc), aug(batch_uint8_nhwc)   # (N, 3, 64, 64) float
>>> view1, view2 = aug.views(batch_uint8_nhwc, 2)                  # converts the batch once
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError
from .parsing import coerce
from .registry import Registry

STL10_MEAN = (0.44087801806139126, 0.42790631331699347, 0.3867879370752931)
STL10_STD = (0.26826768628079806, 0.2610450402318512, 0.26866836876860795)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# RGB <-> YIQ (NTSC); hue rotation = rotate the (I, Q) chroma plane.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
BACKENDS = ("torch", "kornia")


@dataclass(frozen=True)
class AugConfig:
    """One augmentation recipe. Probabilities are per image; ranges are (low, high).

    ``brightness``/``contrast``/``saturation`` s draw a factor in [1 - s, 1 + s];
    ``hue`` h draws a shift in [-h, h] turns (h <= 0.5), as torchvision.
    ``blur_sigma`` is in output pixels; ``blur_p = 0`` disables blur.
    """

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.4
    jitter_p: float = 1.0
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    mean: tuple[float, float, float] = STL10_MEAN
    std: tuple[float, float, float] = STL10_STD
    backend: str = "torch"

    def __post_init__(self) -> None:
        for name in ("scale", "ratio", "blur_sigma", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {self.scale}")
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {self.ratio}")
        if len(self.blur_sigma) != 2 or not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must be (low, high) with 0 < low <= high, got {self.blur_sigma}")
        for name in ("hflip_p", "jitter_p", "grayscale_p", "blur_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each with std > 0, got {self.mean}, {self.std}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")


AUG_PRESETS: Registry[AugConfig] = Registry("augmentation preset")
AUG_PRESETS.register("small", AugConfig())  # the paper's small scale (Wang & Isola STL-10 recipe)
AUG_PRESETS.register(
    "aug-plus",  # MoCo v2
    AugConfig(scale=(0.2, 1.0), hue=0.1, jitter_p=0.8, blur_p=0.5, mean=IMAGENET_MEAN, std=IMAGENET_STD),
)


def get_aug_config(preset: str, **overrides: Any) -> AugConfig:
    """The preset's config with ``overrides`` applied (``None`` values ignored); UserError if invalid."""
    base = AUG_PRESETS.get(preset)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(AugConfig)}
    if unknown:
        raise UserError(f"unknown augmentation option(s) {sorted(unknown)}; valid: {[f.name for f in dataclasses.fields(AugConfig)]}")
    hints = typing.get_type_hints(AugConfig)
    try:
        return dataclasses.replace(base, **{k: coerce(v, hints[k], k) for k, v in overrides.items()})
    except (TypeError, ValueError) as exc:
        raise UserError(f"invalid augmentation option: {exc}") from None


def to_float_images(batch: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) (tensor or array) -> float (N, 3, H, W) in [0, 1]; float NCHW passes through."""
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    if batch.dtype == torch.uint8:
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise UserError(f"expected a uint8 batch of shape (N, H, W, 3), got {tuple(batch.shape)}")
        return batch.permute(0, 3, 1, 2).float().mul_(1 / 255)
    if not batch.is_floating_point() or batch.ndim != 4 or batch.shape[1] != 3:
        raise UserError(f"expected uint8 (N, H, W, 3) or float (N, 3, H, W) images, got {batch.dtype} {tuple(batch.shape)}")
    return batch.float()


def _limit_source(x: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased resize of sources larger than 2 * size down to 2 * size (see module docstring)."""
    if max(x.shape[-2:]) <= 2 * size:
        return x
    h, w = x.shape[-2:]
    f = 2 * size / max(h, w)
    return F.interpolate(x, size=(max(1, round(h * f)), max(1, round(w * f))), mode="bilinear", antialias=True, align_corners=False)


def _uniform(n: int, low: float, high: float, gen: torch.Generator | None) -> torch.Tensor:
    """(n,) uniform draws in [low, high) on the CPU (where the optional generator lives)."""
    return torch.rand(n, generator=gen) * (high - low) + low


def sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                      gen: torch.Generator | None = None, attempts: int = 10) -> torch.Tensor:
    """torchvision's RandomResizedCrop box sampling, vectorised: (n, 4) float boxes (x0, y0, w, h) in pixels.

    Each image tries ``attempts`` (area, log-aspect) draws and keeps the first that fits;
    images with none fall back to the central crop with the aspect clamped to ``ratio``.
    """
    area = height * width
    target_area = area * (torch.rand(n, attempts, generator=gen) * (scale[1] - scale[0]) + scale[0])
    log_r = torch.rand(n, attempts, generator=gen) * (math.log(ratio[1]) - math.log(ratio[0])) + math.log(ratio[0])
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.float().argmax(dim=1)
    any_ok = ok.any(dim=1)
    w = w.gather(1, first[:, None]).squeeze(1)
    h = h.gather(1, first[:, None]).squeeze(1)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    w = torch.where(any_ok, w, torch.full_like(w, fw))
    h = torch.where(any_ok, h, torch.full_like(h, fh))
    u = torch.rand(n, 2, generator=gen)
    x0 = torch.where(any_ok, torch.floor(u[:, 0] * (width - w + 1)), torch.full_like(w, (width - fw) // 2))
    y0 = torch.where(any_ok, torch.floor(u[:, 1] * (height - h + 1)), torch.full_like(h, (height - fh) // 2))
    return torch.stack([x0, y0, w, h], dim=1)


def crop_resize_flip(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """Crop ``boxes`` (n, 4: x0, y0, w, h pixels) of (n, C, H, W) images, resize to ``size`` (bilinear)
    and mirror where ``flip``: one affine grid_sample for the whole batch."""
    n, _, height, width = x.shape
    boxes = boxes.to(x.device, torch.float32)
    x0, y0, w, h = boxes.unbind(1)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = (w / width) * torch.where(flip.to(x.device), -1.0, 1.0)
    theta[:, 0, 2] = (2 * x0 + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * y0 + h) / height - 1
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma (ITU-R 601 weights, as torchvision)."""
    r, g, b = GRAY_WEIGHTS
    return x[:, 0:1] * r + x[:, 1:2] * g + x[:, 2:3] * b


def hue_matrices(shift_turns: torch.Tensor) -> torch.Tensor:
    """(N,) hue shifts in turns -> (N, 3, 3) RGB matrices rotating the YIQ chroma plane."""
    angle = shift_turns.double() * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(len(angle), 3, 3, dtype=torch.float64)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    return (_YIQ_TO_RGB @ rot @ _RGB_TO_YIQ).float()


def color_jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor,
                 hue: torch.Tensor, order: list[int]) -> torch.Tensor:
    """Per-image colour jitter of (N, 3, H, W) images in [0, 1], clamping after each step like torchvision.

    Factors are (N,) tensors (1, 1, 1, 0 = identity); ``order`` is a permutation of
    0..3 = brightness, contrast, saturation, hue.
    """
    per_image = (-1, 1, 1, 1)
    for step in order:
        if step == 0:
            x = (x * brightness.view(per_image)).clamp_(0, 1)
        elif step == 1:
            mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
            c = contrast.view(per_image)
            x = (x * c + mean * (1 - c)).clamp_(0, 1)
        elif step == 2:
            s = saturation.view(per_image)
            x = (x * s + _gray(x) * (1 - s)).clamp_(0, 1)
        else:
            x = torch.einsum("nij,njhw->nihw", hue_matrices(hue).to(x.device), x).clamp_(0, 1)
    return x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of (N, C, H, W) with its own sigma (N,) (separable, reflect padding)."""
    n, c, h, w = x.shape
    radius = max(1, min(int(math.ceil(3 * float(sigma.max()))), min(h, w) - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma.to(x.device)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (N*C, k)
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel[:, None, None, :], groups=n * c)
    y = F.conv2d(y, kernel[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


class BatchAugmentation(nn.Module):
    """Maps a batch of images to one random augmented, normalised view (N, 3, size, size) float32.

    Input: uint8 (N, H, W, 3) tensor/array, or float (N, 3, H, W) in [0, 1].
    """

    def __init__(self, config: AugConfig, size: int) -> None:
        super().__init__()
        if size < 1:
            raise UserError(f"augmentation size must be >= 1, got {size}")
        self.config, self.size = config, size
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self._kornia = _kornia_pipeline(config, size) if config.backend == "kornia" else None

    def forward(self, batch: torch.Tensor | np.ndarray, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.views(batch, 1, generator)[0]

    def views(self, batch: torch.Tensor | np.ndarray, n_views: int = 2,
              generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``n_views`` independent views of the batch, converting it to float only once."""
        x = _limit_source(to_float_images(batch), self.size)
        if self._kornia is not None:
            return [self._kornia(x) for _ in range(n_views)]
        return [self._augment(x, generator) for _ in range(n_views)]

    def _augment(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        cfg, n, dev = self.config, x.shape[0], x.device

        def coin(p: float) -> torch.Tensor:
            return torch.rand(n, generator=gen) < p

        boxes = sample_crop_boxes(n, x.shape[-2], x.shape[-1], cfg.scale, cfg.ratio, gen)
        x = crop_resize_flip(x, boxes, coin(cfg.hflip_p), self.size)
        jitter = coin(cfg.jitter_p)
        if jitter.any():
            one, zero = torch.ones(n), torch.zeros(n)
            factors = [
                torch.where(jitter, _uniform(n, 1 - cfg.brightness, 1 + cfg.brightness, gen), one),
                torch.where(jitter, _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, gen), one),
                torch.where(jitter, _uniform(n, 1 - cfg.saturation, 1 + cfg.saturation, gen), one),
                torch.where(jitter, _uniform(n, -cfg.hue, cfg.hue, gen), zero),
            ]
            active = [i for i, s in enumerate((cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)) if s > 0]
            order = [active[i] for i in torch.randperm(len(active), generator=gen).tolist()]
            x = color_jitter(x, *(f.to(dev) for f in factors), order=order)
        gray = coin(cfg.grayscale_p).to(dev)
        if gray.any():
            x = torch.where(gray.view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
        blur = coin(cfg.blur_p)
        if blur.any():
            idx = blur.nonzero().squeeze(1).to(dev)
            sigma = _uniform(len(idx), cfg.blur_sigma[0], cfg.blur_sigma[1], gen)
            x = x.index_copy(0, idx, gaussian_blur(x.index_select(0, idx), sigma))
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"size={self.size}, config={self.config}"


def _kornia_pipeline(cfg: AugConfig, size: int) -> nn.Module:
    """The same recipe with kornia.augmentation modules (reference backend)."""
    import kornia.augmentation as K

    steps: list[nn.Module] = [
        K.RandomResizedCrop((size, size), scale=cfg.scale, ratio=cfg.ratio),
        K.RandomHorizontalFlip(p=cfg.hflip_p),
        K.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, p=cfg.jitter_p),
        K.RandomGrayscale(p=cfg.grayscale_p),
    ]
    if cfg.blur_p > 0:
        k = 2 * max(1, min(math.ceil(3 * cfg.blur_sigma[1]), size - 1)) + 1
        steps.append(K.RandomGaussianBlur((k, k), cfg.blur_sigma, p=cfg.blur_p))
    steps.append(K.Normalize(mean=torch.tensor(cfg.mean), std=torch.tensor(cfg.std)))
    return nn.Sequential(*steps)


def build_augmentation(preset: str, size: int, **overrides: Any) -> BatchAugmentation:
    """The training augmentation of a registered preset ("small", "aug-plus") at output ``size``.

    ``overrides`` replace fields of :class:`AugConfig` (``None`` = keep the preset's value).
    """
    return BatchAugmentation(get_aug_config(preset, **overrides), size)


class NormalizeOnly(nn.Module):
    """Deterministic evaluation transform: resize the shorter side to ``round(size * resize_ratio)``
    (antialiased bilinear), centre-crop ``size``, normalise. The paper's test transform at 64 px
    is Resize(70) + CenterCrop(64), i.e. ``resize_ratio = 70 / 64``."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...], resize_ratio: float = 70 / 64) -> None:
        super().__init__()
        if resize_ratio < 1:
            raise UserError(f"resize_ratio must be >= 1, got {resize_ratio}")
        self.size, self.resize = size, max(size, round(size * resize_ratio))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = to_float_images(batch)
        h, w = x.shape[-2:]
        f = self.resize / min(h, w)
        new_h, new_w = max(self.size, round(h * f)), max(self.size, round(w * f))
        if (new_h, new_w) != (h, w):
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
        top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
        x = x[:, :, top : top + self.size, left : left + self.size]
        return ((x - self.mean) / self.std).contiguous()


def normalize_only(size: int, preset: str = "small", resize_ratio: float = 70 / 64) -> NormalizeOnly:
    """Evaluation transform using the preset's mean/std (see :class:`NormalizeOnly`)."""
    cfg = AUG_PRESETS.get(preset)
    return NormalizeOnly(size, cfg.mean, cfg.std, resize_ratio)


def list_aug_presets(pattern: str = "*") -> list[str]:
    return AUG_PRESETS.names(pattern)

__all__ = [
    "AUG_PRESETS", "AugConfig", "BatchAugmentation", "IMAGENET_MEAN", "IMAGENET_STD", "NormalizeOnly", "STL10_MEAN",
    "STL10_STD", "build_augmentation", "color_jitter", "crop_resize_flip", "gaussian_blur", "get_aug_config",
    "hue_matrices", "list_aug_presets", "normalize_only", "sample_crop_boxes", "to_float_images",
]
