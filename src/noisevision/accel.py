"""Device selection and CPU/GPU speed switches (bf16 autocast, channels_last).

bf16 autocast is only worth it on CPUs whose bf16 kernels beat fp32. The flags
are not enough: with AMX, bf16 matmuls ran 6x faster than fp32 on one of this
project's machines (2.6 vs 0.43 TFLOP/s), while another with AVX512-BF16 but no
AMX ran them at half the fp32 speed (0.14 vs 0.26 TFLOP/s) and trained 1.8x
slower in bf16. So the automatic choice times one small matmul in both dtypes
(once per process, about 0.1 s); ``NOISEVISION_CPU_BF16=0|1`` overrides it, and
:func:`pinned_precision` pins fp32 for a block of work whose numbers must not
depend on the machine (a comparison resumed on another machine).
"""
from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import functools
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from .errors import UserError

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def select_device(name: str | None = None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU; otherwise the named device."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UserError(f"device {name!r}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    return device


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmul instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return any(f in flags for f in _BF16_CPU_FLAGS)
    return False


BF16_MIN_SPEEDUP = 1.3  # bf16 must beat fp32 by this factor to be chosen automatically on CPU


@functools.lru_cache(maxsize=1)
def cpu_bf16_is_faster() -> bool:
    """True when this CPU has bf16 instructions and a bf16 matmul measurably beats fp32.

    ``NOISEVISION_CPU_BF16=1`` / ``0`` skips the measurement (for reproducible
    runs across machines, or when the timing is disturbed by other load).
    """
    import os
    import time

    forced = os.environ.get("NOISEVISION_CPU_BF16", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return cpu_supports_bf16()
    if forced in ("0", "false", "no", "off"):
        return False
    if not cpu_supports_bf16():
        return False

    def best_seconds(dtype: torch.dtype) -> float:
        a = torch.ones(512, 512, dtype=dtype)
        a @ a  # warm-up: kernel selection, page faults
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - start)
        return best

    return best_seconds(torch.float32) > BF16_MIN_SPEEDUP * best_seconds(torch.bfloat16)


PINNABLE_PRECISIONS = ("auto", "fp32")
_pinned_precision: contextvars.ContextVar[str] = contextvars.ContextVar("noisevision_pinned_precision", default="auto")


def check_pinnable_precision(precision: str) -> str:
    """``precision`` if :func:`pinned_precision` accepts it, else a ValueError naming the choices."""
    if precision not in PINNABLE_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PINNABLE_PRECISIONS)}, got {precision!r}")
    return precision


@contextlib.contextmanager
def pinned_precision(precision: str) -> Iterator[None]:
    """Within the block, ``auto`` precision (training, probe features, the monitor) resolves to ``precision``.

    ``"fp32"`` makes results independent of the machine: without it a suite resumed on a CPU with
    AMX would train and probe its remaining entries in bf16 and the rest in fp32. ``"auto"`` changes
    nothing. An explicit ``--precision bf16`` is not overridden.
    """
    token = _pinned_precision.set(check_pinnable_precision(precision))
    try:
        yield
    finally:
        _pinned_precision.reset(token)


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The reduced-precision dtype ``--precision auto`` uses on ``device``, or None (fp32)."""
    if _pinned_precision.get() == "fp32":
        return None
    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16_is_faster() else None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def precision_label(dtype: torch.dtype | None) -> str:
    """How results name an arithmetic: ``"bfloat16"``, ``"float16"``, or ``"fp32"`` for no autocast."""
    return str(dtype).replace("torch.", "") if dtype is not None else "fp32"


@contextlib.contextmanager
def autocast(device: torch.device | str, enabled: bool = True, dtype: torch.dtype | None = None) -> Iterator[None]:
    """Mixed-precision region in ``dtype`` (default: :func:`autocast_dtype`), or a no-op for fp32.

    fp16 on CUDA needs a ``torch.amp.GradScaler`` in the training loop; bf16 does not.
    """
    device = torch.device(device)
    dtype = (dtype or autocast_dtype(device)) if enabled else None
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store 4-D conv weights in NHWC order (faster oneDNN/cuDNN convs); returns ``model``."""
    return model.to(memory_format=torch.channels_last)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@functools.lru_cache(maxsize=1)
def tune_cpu_allocator() -> bool:
    """Keep freed large blocks in glibc's heap instead of returning them to the OS.

    By default glibc serves every allocation above 32 MiB with a fresh ``mmap`` and
    unmaps it on free, so each training step page-faults its whole batch of
    activations and augmented images again (measured: 2-3x slower elementwise ops
    on 50 MB tensors). This sets ``M_MMAP_MAX=0`` and a 2 GiB trim threshold
    (what jemalloc/tcmalloc achieve in the PyTorch CPU tuning guides). The
    process keeps its peak memory. Returns False where glibc's ``mallopt`` is
    unavailable (then nothing changes). Idempotent.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1)))
