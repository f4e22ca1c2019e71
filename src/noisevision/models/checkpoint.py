"""The encoder checkpoint format: a plain dict loadable with ``torch.load(weights_only=True)``.

::
    {"format": "noisevision-encoder", "format_version": 1,
     "arch": "smallalexnet", "arch_kwargs": {...},
     "state_dict": {name: tensor}, "meta": {...plain types...}}
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..fileio import atomic_path
from .base import Encoder
from .factory import create_encoder

FORMAT = "noisevision-encoder"
FORMAT_VERSION = 1
RUN_DIR_FILE = "encoder.pt"


def _plain(obj: Any) -> Any:
    """Convert ``obj`` to types the weights-only unpickler accepts (dict/list/str/int/float/bool/None/tensor)."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def save_encoder(path: str | os.PathLike, encoder: Encoder, meta: dict | None = None) -> Path:
    """Write ``encoder`` (weights on CPU, plus arch and ``meta``) atomically to ``path``; return the path.

    Unwraps DDP / ``torch.compile`` wrappers. ``meta`` is converted to plain types
    (paths and unknown objects become strings) so the file loads with weights_only.
    """
    encoder = _unwrap(encoder)
    if not isinstance(encoder, Encoder):
        raise TypeError(f"save_encoder expects a noisevision Encoder, got {type(encoder).__name__}")
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in encoder.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": encoder.arch,
        "arch_kwargs": _plain(encoder.arch_kwargs),
        "state_dict": state,
        "meta": _plain(meta or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_encoder(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", expected_arch: str | None = None
) -> tuple[Encoder, dict]:
    """Load an encoder saved by :func:`save_encoder` (file, or run directory holding ``encoder.pt``).

    Returns ``(encoder, meta)`` with the encoder in eval mode on ``map_location``.

    Raises:
        UserError: missing or unreadable file, not a noisevision encoder, newer format,
            architecture other than ``expected_arch``, or weights that do not fit.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RUN_DIR_FILE
    if not path.is_file():
        raise UserError(f"encoder checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unpickling failure means "not readable")
        raise UserError(f"cannot read encoder checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a noisevision encoder checkpoint (expected format {FORMAT!r})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"{path} has encoder format version {version!r}; this noisevision reads up to {FORMAT_VERSION}")
    arch = payload.get("arch")
    if expected_arch is not None and arch != expected_arch:
        raise UserError(f"{path} holds a {arch!r} encoder, but {expected_arch!r} was expected")
    encoder = create_encoder(arch, **payload.get("arch_kwargs", {}))
    try:
        encoder.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"weights in {path} do not fit a {arch!r} encoder: {str(exc).splitlines()[0]}") from None
    encoder.to(map_location).eval()
    return encoder, dict(payload.get("meta", {}))


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """Strip DistributedDataParallel (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(module, "_orig_mod", None) or getattr(module, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return module
        module = inner
