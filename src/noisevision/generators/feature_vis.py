"""Feature visualisations: images that maximise units of a CNN (paper section 4).

Image ``i`` maximises one unit, or the mean of a pair of units, of the
spatially pooled features of ``layer`` (default: the encoder's probe layer,
``avgpool`` for ResNets): first every single unit in order, then random pairs
drawn from image ``i``'s stream. The image is parameterised Lucid-style: a
Fourier spectrum per colour channel (init sd 0.01, 1/f frequency scaling,
orthonormal inverse FFT, divided by 4), mapped through the colour
decorrelation matrix and a sigmoid. It is optimised with Adam (lr 0.05) for
``steps`` steps through the robustness transforms pad 12, jitter 8, scale
0.9..1.1, rotate -10..10 deg, jitter 4 (composed into one affine warp per
image and step, padding value 0.5), then min-max normalised.

The network is a random-init encoder (``feature-vis/random``; its weights
are drawn from the seed, one network per ``images_per_network`` images) or a
checkpoint written by ``save_encoder`` / ``noisevision pretrain``
(``feature-vis/checkpoint``). It runs in eval mode (BatchNorm uses its
running statistics), so images of a batch never interact. Images are
optimised in fixed-size chunks of ``chunk`` images (the last one padded):
float results of a convolution depend on the batch size but, at a fixed
size, not on the other images, so output bytes do not depend on how indices
are batched. They may differ between devices and thread counts.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UserError
from ..models import Encoder, create_encoder, encoder_kwargs, load_encoder
from ..rng import image_rng, seeded_torch, torch_generator
from .base import register_generator

if TYPE_CHECKING:  # torch is imported lazily: listing generators must not pay for it
    from torch import Tensor


SOURCES = ("random", "checkpoint")
INIT_SD = 0.01
PAD, JITTER1, JITTER2 = 12, 8, 4
SCALES = np.linspace(0.9, 1.1, 11)
MAX_ANGLE_DEG = 10
# Lucid's colour correlation (square root of the ImageNet RGB covariance), columns normalised to max norm 1.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_MATRIX = _COLOR_SQRT / np.linalg.norm(_COLOR_SQRT, axis=0).max()
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# CPU-friendly settings (preview --all, CPU benchmarks): a small network and fewer steps.
FAST_RANDOM = {"arch": "resnet18", "width": 0.5, "steps": 24}
FAST_CHECKPOINT = {"steps": 24}


@dataclass(frozen=True)
class FeatureVisParams:
    """Parameters of the feature-visualisation generator.

    Attributes:
        source: "random" (random-init network from the seed) or "checkpoint".
        checkpoint: encoder checkpoint (file or run directory) when source is "checkpoint".
        arch: encoder architecture (random), or the architecture the checkpoint must hold (None: any).
        stem, width: stem and width multiplier of the random network, for architectures that take them.
        layer: layer whose (spatially averaged) channels are the units; None = the encoder's probe layer.
        steps: Adam steps per image (paper: 128).
        lr: Adam learning rate.
        images_per_network: random networks: a fresh network every this many images (None: one network).
        chunk: images optimised together (fixed, so results do not depend on batching).
    """
    source: str = "random"
    checkpoint: str | None = None
    arch: str | None = "resnet50"
    stem: str = "imagenet"
    width: float = 1.0
    layer: str | None = None
    steps: int = 128
    lr: float = 0.05
    images_per_network: int | None = None
    chunk: int = 16

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source == "checkpoint":
            # a missing checkpoint is reported at render time (the registered defaults have none);
            # a given one is loaded now (cached for rendering) so a bad file fails before any work
            if self.checkpoint:
                try:
                    load_network(self, seed=0, group=0)
                except UserError as exc:
                    raise ValueError(str(exc)) from None
        elif self.checkpoint:
            raise ValueError("a random network takes no checkpoint; use feature-vis/checkpoint")
        elif self.arch is None:
            raise ValueError("a random network needs arch (e.g. resnet18, resnet50, smallalexnet)")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.images_per_network is not None and self.images_per_network < 1:
            raise ValueError(f"images_per_network must be >= 1 (or none), got {self.images_per_network}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")
        if self.width <= 0:
            raise ValueError(f"width must be > 0, got {self.width}")


# ---------------------------------------------------------------- networks


@functools.lru_cache(maxsize=2)
def _random_network(arch: str, stem: str, width: float, seed: int, group: int, device: str) -> Encoder:
    """Random-init encoder ``group`` of root ``seed``, eval mode, frozen.

    ``stem`` and ``width`` go to the architectures whose builder takes them (the ResNets take both).
    """
    kwargs = {k: v for k, v in {"stem": stem, "width": width}.items() if k in encoder_kwargs(arch)}
    # the encoders initialise from torch's global generator: seed it inside a fork so nothing leaks out
    with seeded_torch(seed, group, "feature-vis-network"):
        net = create_encoder(arch, **kwargs)
    return net.to(device).eval().requires_grad_(False)


@functools.lru_cache(maxsize=2)
def _checkpoint_network(path: str, mtime_ns: int, arch: str | None, device: str) -> Encoder:
    net, _ = load_encoder(path, map_location=device, expected_arch=arch)
    return net.eval().requires_grad_(False)


def load_network(params: FeatureVisParams, seed: int, group: int, device: str = "cpu") -> Encoder:
    """The encoder that image group ``group`` visualises (cached).

    Raises:
        UserError: checkpoint missing, unreadable, not a noisevision encoder, or of another ``arch``.
    """
    if params.source == "checkpoint":
        if not params.checkpoint:
            raise UserError("feature-vis/checkpoint needs -p checkpoint=PATH (an encoder file or run directory)")
        path = Path(params.checkpoint)
        file = path / "encoder.pt" if path.is_dir() else path
        mtime = file.stat().st_mtime_ns if file.exists() else 0
        return _checkpoint_network(str(path), mtime, params.arch, device)
    return _random_network(params.arch, params.stem, float(params.width), seed, group, device)


def layer_activation(net: Encoder, x: Tensor, layer: str) -> Tensor:
    """(N, C) activation of ``layer``'s channels, averaged over space for conv layers."""
    x = net.forward_features(x, layer)
    return x.mean(dim=(2, 3)) if x.ndim == 4 else x.flatten(1)


def unit_objective(acts: Tensor, units: Tensor) -> Tensor:
    """Per-image objective (N,): mean activation of each image's two target units (N, 2)."""
    return acts.gather(1, units).mean(dim=1)


# ---------------------------------------------------------------- sampling


def network_groups(indices: np.ndarray, params: FeatureVisParams) -> np.ndarray:
    """Which network each image visualises (always 0 for a checkpoint or a single random network)."""
    if params.source == "checkpoint" or params.images_per_network is None:
        return np.zeros(len(indices), dtype=np.int64)
    return np.asarray(indices, dtype=np.int64) // params.images_per_network


def target_units(indices: np.ndarray, seed: int, params: FeatureVisParams, num_units: int) -> np.ndarray:
    """(N, 2) target units: all single units first (as a pair (u, u)), then random distinct pairs."""
    idx = np.asarray(indices, dtype=np.int64)
    local = idx % params.images_per_network if (params.source == "random" and params.images_per_network) else idx
    units = np.empty((len(idx), 2), dtype=np.int64)
    for row, (i, j) in enumerate(zip(idx, local)):
        if j < num_units:
            units[row] = j
        else:
            units[row] = image_rng(seed, int(i), "feature-vis-units").choice(num_units, size=2, replace=False)
    return units


def transform_thetas(indices: np.ndarray, seed: int, steps: int, size: int) -> np.ndarray:
    """(N, steps, 2, 3) ``affine_grid`` matrices of the robustness transforms, from each image's stream.

    Pad 12, crop with jitter 8 (shift t1), scale s, rotate by a, crop with
    jitter 4 (shift t2), composed: output pixel ``u`` (centred coordinates of
    the ``transformed_size`` output) reads the image at ``R(-a) (u + t2) / s + t1``.
    """
    out_size = transformed_size(size)
    thetas = np.empty((len(indices), steps, 2, 3), dtype=np.float32)
    for row, i in enumerate(np.asarray(indices)):
        rng = image_rng(seed, int(i), "feature-vis-transforms")
        t1 = rng.integers(0, JITTER1 + 1, size=(steps, 2)) - JITTER1 / 2
        scale = rng.choice(SCALES, size=steps)
        angle = np.deg2rad(rng.integers(-MAX_ANGLE_DEG, MAX_ANGLE_DEG + 1, size=steps))
        t2 = rng.integers(0, JITTER2 + 1, size=(steps, 2)) - JITTER2 / 2
        cos, sin = np.cos(-angle), np.sin(-angle)
        rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (steps, 2, 2)
        linear = rot / scale[:, None, None]
        shift = np.einsum("sij,sj->si", linear, t2) + t1  # pixels, centred
        thetas[row, :, :, :2] = linear * out_size / size  # normalised output -> normalised input
        thetas[row, :, :, 2] = shift / (size / 2)
    return thetas


def transformed_size(size: int) -> int:
    """Side of the network input: the image padded by 12 and cropped by the two jitters."""
    return size + 2 * PAD - JITTER1 - JITTER2


def init_spectra(indices: np.ndarray, seed: int, size: int) -> Tensor:
    """(N, 3, size, size // 2 + 1, 2) initial Fourier coefficients, N(0, 0.01) from each image's stream."""
    import torch

    shape = (3, size, size // 2 + 1, 2)
    return torch.stack([torch.randn(shape, generator=torch_generator(seed, int(i), "feature-vis-init")) for i in indices]) * INIT_SD


# ---------------------------------------------------------------- image parameterisation


@functools.lru_cache(maxsize=8)
def _frequency_scale(size: int, device: str) -> Tensor:
    """1 / max(|f|, 1 / size): the 1/f scaling of the Fourier coefficients, (size, size // 2 + 1)."""
    import torch

    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    return (1.0 / torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / size)).to(device)


def spectra_to_rgb(spectra: Tensor) -> Tensor:
    """(N, 3, H, H//2+1, 2) coefficients -> (N, 3, H, H) images in (0, 1) (decorrelated colour, sigmoid)."""
    import torch

    size = spectra.shape[2]
    coeffs = torch.view_as_complex(spectra.contiguous()) * _frequency_scale(size, str(spectra.device))
    decorrelated = torch.fft.irfft2(coeffs, s=(size, size), norm="ortho") / 4.0
    color = torch.as_tensor(COLOR_MATRIX, dtype=decorrelated.dtype, device=decorrelated.device)
    return torch.sigmoid(torch.einsum("nchw,dc->ndhw", decorrelated, color))


def network_input_size(net: Encoder, size: int) -> int:
    """Side of the warped views fed to ``net``: the transformed field of view, resampled to the
    encoder's fixed input size where it declares one (fully connected layers on a fixed grid)."""
    return net.fixed_input_size or transformed_size(size)


def _transform(images: Tensor, thetas: Tensor, out_size: int | None = None) -> Tensor:
    """Warp each image by its affine matrix (N, 2, 3) into ``out_size`` px views; outside reads 0.5.

    The matrices fix the field of view (see :func:`transform_thetas`); ``out_size``
    (default :func:`transformed_size`) only sets how densely it is sampled.
    """
    import torch.nn.functional as F

    n, ch, size, _ = images.shape
    out = out_size or transformed_size(size)
    grid = F.affine_grid(thetas, [n, ch, out, out], align_corners=False)
    return F.grid_sample(images - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5


def _normalise(images: Tensor) -> Tensor:
    """ImageNet mean/std normalisation, the input convention of the encoders."""
    import torch

    mean = torch.as_tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def optimise_spectra(
    net: Encoder, layer: str, units: Tensor, spectra: Tensor, thetas: Tensor, lr: float
) -> tuple[Tensor, Tensor]:
    """Adam on the Fourier coefficients to maximise each image's units through the transforms.

    Args:
        units: (N, 2) long tensor of target units.
        spectra: (N, 3, H, H//2+1, 2) initial coefficients (not modified).
        thetas: (N, steps, 2, 3) transform matrices, one per step.
    Returns:
        (final coefficients, (steps, N) objective at each step, measured through that step's transform).
    """
    import torch

    param = spectra.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([param], lr=lr)
    view_size = network_input_size(net, spectra.shape[2])
    history = []
    for step in range(thetas.shape[1]):
        opt.zero_grad(set_to_none=True)
        view = _transform(spectra_to_rgb(param), thetas[:, step], view_size)
        objective = unit_objective(layer_activation(net, _normalise(view), layer), units)
        (-objective.sum()).backward()  # images are independent: each one's gradient is its own
        opt.step()
        history.append(objective.detach())
    return param.detach(), torch.stack(history)


def minmax_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) floats -> uint8 (N, H, W, 3), each image stretched to the full range."""
    flat = images.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    scaled = (images - lo) / (hi - lo).clamp_min(1e-12)
    return (scaled.permute(0, 2, 3, 1) * 255.0).round().clamp(0, 255).to("cpu").numpy().astype(np.uint8)


# ---------------------------------------------------------------- render


def render_feature_vis(
    indices: np.ndarray, seed: int, size: int, params: FeatureVisParams, device: str = "cpu"
) -> np.ndarray:
    """Render feature visualisations ``indices``: uint8 (N, size, size, 3)."""
    import torch

    out = np.empty((len(indices), size, size, 3), dtype=np.uint8)
    groups = network_groups(indices, params)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        net = load_network(params, seed, int(group), device)
        layer = params.layer or net.default_probe_layer
        with torch.no_grad():
            side = network_input_size(net, size)
            num_units = layer_activation(net, torch.zeros(1, 3, side, side, device=device), layer).shape[1]
        units = target_units(indices[rows], seed, params, num_units)
        thetas = transform_thetas(indices[rows], seed, params.steps, size)
        spectra = init_spectra(indices[rows], seed, size)
        for start in range(0, len(rows), params.chunk):
            take = np.arange(start, min(start + params.chunk, len(rows)))
            padded = np.concatenate([take, np.full(params.chunk - len(take), take[0])])  # fixed chunk size
            final, _ = optimise_spectra(
                net,
                layer,
                torch.as_tensor(units[padded], device=device),
                spectra[padded].to(device),
                torch.as_tensor(thetas[padded], device=device),
                params.lr,
            )
            with torch.no_grad():
                out[rows[take]] = minmax_uint8(spectra_to_rgb(final[: len(take)]))
    return out


register_generator(
    "feature-vis/random",
    "images maximising single units / pairs of a random-init CNN's pooled features (Lucid-style Fourier parameterisation)",
    family="feature vis",
    params_cls=FeatureVisParams,
    render=render_feature_vis,
    batch_size=16,
    uses_torch=True,
    fast_overrides=FAST_RANDOM,
)
register_generator(
    "feature-vis/checkpoint",
    "feature visualisations of a pretrained encoder checkpoint (checkpoint=PATH; the paper used dead-leaves MoCo v2)",
    family="feature vis",
    params_cls=FeatureVisParams,
    render=render_feature_vis,
    batch_size=16,
    uses_torch=True,
    fast_overrides=FAST_CHECKPOINT,
    required=("checkpoint",),
    source="checkpoint",
    arch=None,
)
