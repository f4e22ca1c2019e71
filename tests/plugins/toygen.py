"""A tiny, fast generator registered through NOISEVISION_PLUGINS, for engine tests.

Image i is a flat colour plus noise from image i's own stream; its label is i % 3.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from noisevision.generators import register_generator
from noisevision.rng import image_rng


@dataclass(frozen=True)
class ToyParams:
    noise: float = 20.0

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ValueError("noise must be >= 0")


def render_toy(indices: np.ndarray, seed: int, size: int, params: ToyParams, device: str = "cpu") -> np.ndarray:
    out = np.empty((len(indices), size, size, 3), np.uint8)
    for k, i in enumerate(indices):
        rng = image_rng(seed, int(i))
        base = rng.integers(0, 256, 3)
        img = base + rng.normal(0, params.noise, (size, size, 3))
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


register_generator(
    "test/toy", "flat colour plus noise (tests only)", family="test", params_cls=ToyParams, render=render_toy,
    batch_size=16, labels=lambda idx, seed, p: idx % 3,
)
