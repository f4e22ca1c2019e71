"""Frozen-encoder feature extraction and BatchNorm re-estimation.

One pass over the encoder's stages (``Encoder.forward_features`` with
``with_embedding``) yields both the probe layer's flattened features and the
final embedding (``forward``'s output), so the linear probe,
kNN and alignment/uniformity share a single extraction. Batches run under
``torch.inference_mode`` with bf16 autocast and channels_last where the CPU
supports them (:mod:`noisevision.accel`). Features are returned as fp32 (N, D).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import accel
from ..augment import AUG_PRESETS, NormalizeOnly, get_aug_config
from ..errors import UserError
from ..models import Encoder

DEFAULT_PRESET = "small"


def normalization_for(meta: Mapping[str, Any] | None) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """(preset, mean, std) the encoder was trained with, read from its checkpoint meta.

    A run's ``meta["config"]`` records ``aug`` and ``aug_kwargs`` (which may override
    ``mean``/``std``); a random-init encoder, or a preset this version does not
    know, uses the paper's small-scale (STL-10) statistics.
    """
    config = dict((meta or {}).get("config") or {})
    preset = str(config.get("aug") or DEFAULT_PRESET)
    if preset not in AUG_PRESETS:
        preset = DEFAULT_PRESET
    overrides = {k: v for k, v in dict(config.get("aug_kwargs") or {}).items() if k in ("mean", "std")}
    try:
        aug = get_aug_config(preset, **overrides)
    except UserError:
        aug = get_aug_config(preset)
    return preset, tuple(aug.mean), tuple(aug.std)


def eval_transform(size: int, mean: tuple[float, ...], std: tuple[float, ...], resize_ratio: float = 1.0) -> nn.Module:
    """Deterministic uint8 (B, H, W, 3) -> normalised (B, 3, size, size): resize the shorter side to
    ``size * resize_ratio``, centre-crop ``size`` (ratio 1: plain resize; the paper's test uses 70/64)."""
    return NormalizeOnly(size, mean, std, resize_ratio)


def to_model_input(
    images: np.ndarray | torch.Tensor,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    resize_ratio: float = 1.0,
) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> normalised float (B, 3, size, size) on ``device`` (see :func:`eval_transform`)."""
    x = eval_transform(size, mean, std, resize_ratio)(torch.as_tensor(images)).to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def prepare_encoder(encoder: Encoder, device: torch.device) -> Encoder:
    """Eval mode on ``device``; channels_last on conv nets (faster oneDNN/cuDNN kernels)."""
    encoder = encoder.to(device).eval()
    return accel.to_channels_last(encoder)


def extract_features(
    encoder: Encoder,
    images: np.ndarray,
    layer: str,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | str = "cpu",
    batch_size: int = 500,
    amp: bool = True,
    progress: bool = True,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of ``layer`` and the embedding for every image.

    Args:
        images: uint8 (N, H, W, 3).
    Returns:
        (probe features fp32 (N, C) on CPU, embedding fp32 (N, D) on CPU).
    """
    from tqdm import tqdm

    device = torch.device(device)
    encoder.eval()
    n = len(images)
    feats: torch.Tensor | None = None
    embs: torch.Tensor | None = None
    with torch.inference_mode(), accel.autocast(device, enabled=amp):
        for sl in tqdm(list(_batches(n, batch_size)), desc=desc, unit="batch", disable=not progress or None, leave=False):
            x = to_model_input(images[sl], size, mean, std, device, channels_last=True)
            f, e = encoder.forward_features(x, layer, with_embedding=True)
            f = f.flatten(1)
            if feats is None:
                with torch.inference_mode(False):  # normal tensors: callers may update them in place
                    feats = torch.empty(n, f.shape[1], dtype=torch.float32)
                    embs = torch.empty(n, e.shape[1], dtype=torch.float32)
            feats[sl] = f.float().cpu()
            embs[sl] = e.float().cpu()
    assert feats is not None and embs is not None, "no images to extract features from"
    return feats, embs


def embed(
    encoder: Encoder, inputs: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 500, amp: bool = True
) -> torch.Tensor:
    """Encoder outputs fp32 (N, D) for already-normalised float inputs (N, 3, S, S)."""
    device = torch.device(device)
    out = []
    with torch.inference_mode(), accel.autocast(device, enabled=amp):
        for sl in _batches(len(inputs), batch_size):
            x = inputs[sl].to(device).contiguous(memory_format=torch.channels_last)
            out.append(encoder(x).float().cpu())
    return torch.cat(out)


def recalibrate_batchnorm(
    encoder: Encoder,
    images: np.ndarray,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    amp: bool = True,
) -> int:
    """Re-estimate every BatchNorm's running mean/var on ``images`` (no gradients); returns #BN layers.

    Running statistics are reset and accumulated as an exact average over the
    batches (``momentum=None``); learned affine parameters are untouched. The
    encoder is left in eval mode.
    """
    device = torch.device(device)
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    saved_momentum = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    encoder.train()
    try:
        with torch.no_grad(), accel.autocast(device, enabled=amp):
            for sl in _batches(len(images), batch_size):
                if sl.stop - sl.start < 2:
                    continue  # BatchNorm1d needs more than one sample per batch in train mode
                encoder(to_model_input(images[sl], size, mean, std, device, channels_last=True))
    finally:
        for m, mom in zip(norms, saved_momentum):
            m.momentum = mom
        encoder.eval()
    return len(norms)
