"""Per-image random streams.

Image ``i`` of a dataset with root seed ``s`` draws from its own stream,
``SeedSequence(s, spawn_key=(i,))`` (child ``i`` of ``SeedSequence(s).spawn``),
so it depends only on (seed, i): never on batch size, worker count or order.
Sub-streams (``purpose``) separate independent uses, e.g. the network weights
of a StyleGAN group from the per-image latents.
"""
from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator

import numpy as np


def _purpose_key(purpose: str) -> int:
    return zlib.crc32(purpose.encode("utf-8"))


def seed_sequence(root_seed: int, index: int, purpose: str = "") -> np.random.SeedSequence:
    """The SeedSequence of item ``index`` (optionally of a named sub-stream)."""
    if root_seed < 0 or index < 0:
        raise ValueError("seeds and indices must be non-negative")
    key: tuple[int, ...] = (int(index),) if not purpose else (int(index), _purpose_key(purpose))
    return np.random.SeedSequence(int(root_seed), spawn_key=key)


def image_rng(root_seed: int, index: int, purpose: str = "") -> np.random.Generator:
    """A numpy Generator for image ``index`` (PCG64, independent per index/purpose)."""
    return np.random.default_rng(seed_sequence(root_seed, index, purpose))


def torch_seed(root_seed: int, index: int, purpose: str = "") -> int:
    """A 63-bit integer seed for ``torch.Generator().manual_seed`` for item ``index``."""
    return int(seed_sequence(root_seed, index, purpose).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def torch_generator(root_seed: int, index: int, purpose: str = "", device: str = "cpu"):
    """A seeded ``torch.Generator`` on ``device`` for item ``index``."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(torch_seed(root_seed, index, purpose))
    return g


@contextlib.contextmanager
def seeded_torch(root_seed: int, index: int, purpose: str = "") -> Iterator[None]:
    """Run a block whose library code draws from torch's global CPU generator (``nn.init``,
    kornia) reproducibly, seeded for item ``index``; the global state is restored afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(root_seed, index, purpose))
        yield
