"""noisevision: train vision models without real images.

Generate synthetic datasets from procedural noise, pretrain encoders on them
with contrastive learning, and probe them on real labelled images.

>>> import noisevision as nv
>>> gen = nv.create_generator("dead-leaves/mixed")
>>> images = gen.render(range(4), seed=0, size=64)   # uint8 (4, 64, 64, 3)
"""
from __future__ import annotations

# _env first: it sets OpenMP defaults before anything imports torch.
from . import _env  # noqa: F401  (imported for its side effect)
from ._version import __version__
from .errors import UserError
from .generators import create_generator, list_generators

__all__ = ["UserError", "create_generator", "list_generators", "__version__"]
