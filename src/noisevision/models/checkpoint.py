"""The encoder checkpoint format: a plain dict loadable with ``torch.load(weights_only=True)``.

::
    {"format": "noisevision-encoder", "format_version": 1,
     "arch": "smallalexnet", "arch_kwargs": {...},
     "state_dict": {name: tensor}, "meta": {...plain types...}}
"""
from __future__ import annotations

import os
import pickle
import warnings
import zipfile
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
    save_torch_file(path, payload)
    return path


def save_torch_file(path: Path, obj: Any) -> None:
    """``torch.save`` atomically; a full disk or a read-only folder is a one-line UserError.

    Written through a Python file object, so a failed write is an ``OSError``
    with its errno (torch's own file writer reports it as a generic RuntimeError).
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())


def read_torch_file(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with our own one-line UserErrors.

    torch's messages are not passed on: they advise retrying with
    ``weights_only=False`` (never do that with a file from elsewhere) and carry
    terminal colour codes.
    """
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": a foreign file, refused below
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except MemoryError:
        raise UserError(f"{what} {path} is too large to load into memory") from None
    except pickle.UnpicklingError:
        if zipfile.is_zipfile(path):
            raise UserError(
                f"cannot read {what} {path}: it holds Python objects other than tensors and plain values, which "
                "noisevision never loads (it was not written by noisevision); use a checkpoint noisevision wrote"
            ) from None
        raise UserError(f"cannot read {what} {path}: it is damaged, truncated or not a torch file; "
                        "use an intact checkpoint") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None
    except Exception:  # noqa: BLE001 - torch reports damaged zip archives as RuntimeError, others as EOFError...
        raise UserError(f"cannot read {what} {path}: it is damaged, truncated or not a torch file; "
                        "use an intact checkpoint") from None


def read_versioned_torch_file(path: Path, what: str, fmt: str, max_version: int) -> dict[str, Any]:
    """:func:`read_torch_file`, then the checks every noisevision file shares: a dict that names its
    format ``fmt`` and a format version this release reads (at most ``max_version``)."""
    payload = read_torch_file(path, what)
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise UserError(f"{path} is not a noisevision {what} (expected format {fmt!r})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > max_version:
        raise UserError(f"{path} has {what} format version {version!r}; this noisevision reads up to {max_version}")
    return payload


def check_state_dict(state: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """``state`` if it is a non-empty mapping of names to tensors, else a UserError."""
    if not isinstance(state, dict) or not state:
        raise UserError(f"{path} holds no weights ({what} is {type(state).__name__}, not a mapping of tensors)")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"{path} is damaged: {what} entry {bad[0]!r} is not a named tensor")
    return state


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str | None:
    """What differs between two state dicts' names and shapes (one phrase), or None if they fit."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        return " and ".join(parts)
    for key, value in expected.items():
        if tuple(found[key].shape) != tuple(value.shape):
            return f"{key} has shape {tuple(found[key].shape)}, expected {tuple(value.shape)}"
    return None


_PLAIN = (bool, int, float, str, type(None))


def build_on_meta(arch: str, kwargs: Mapping[str, Any], path: Path | str) -> Encoder:
    """The architecture a file describes, built on the meta device (shapes, no memory).

    Files from elsewhere are checked against it before the real build, so ``arch_kwargs`` that ask for
    a huge model are caught by comparing shapes with the weights the file holds.

    Raises:
        UserError: unknown architecture or arguments that do not describe a buildable encoder.
    """
    try:
        with torch.device("meta"):
            return create_encoder(arch, **kwargs)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except (RuntimeError, OverflowError, MemoryError):
        raise UserError(f"{path} is damaged: its arch_kwargs {dict(kwargs)} do not describe a buildable {arch!r}") from None


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
    payload = read_versioned_torch_file(path, "encoder checkpoint", FORMAT, FORMAT_VERSION)
    arch = payload.get("arch")
    if not isinstance(arch, str):
        raise UserError(f"{path} is damaged: its arch is {arch!r}, not an encoder name")
    if expected_arch is not None and arch != expected_arch:
        raise UserError(f"{path} holds a {arch!r} encoder, but {expected_arch!r} was expected")
    kwargs = payload.get("arch_kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) and isinstance(v, _PLAIN) for k, v in kwargs.items()):
        raise UserError(f"{path} is damaged: its arch_kwargs ({kwargs!r:.80}) are not a mapping of names to plain values")
    meta = payload.get("meta", {})
    if not isinstance(meta, dict):
        raise UserError(f"{path} is damaged: its meta is {type(meta).__name__}, not a mapping")
    state = check_state_dict(payload.get("state_dict"), path, "state_dict")
    skeleton = build_on_meta(arch, kwargs, path)  # the real build needs no more memory than the weights took
    mismatch = state_dict_mismatch(skeleton.state_dict(), state)
    if mismatch is not None:
        raise UserError(f"weights in {path} do not fit a {arch!r} encoder with {kwargs}: {mismatch}")
    encoder = create_encoder(arch, **kwargs)
    try:
        encoder.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"weights in {path} do not fit a {arch!r} encoder: {str(exc).splitlines()[0]}") from None
    encoder.to(map_location).eval()
    return encoder, dict(meta)


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """Strip DistributedDataParallel (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(module, "_orig_mod", None) or getattr(module, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return module
        module = inner
