"""Procedural image generators, one module per family.

Adding a generator: write ``generators/<family>.py`` that calls
:func:`register_generator` for its variants, and add the module's name to
``FAMILY_MODULES`` in ``generators/base.py``.
"""
from __future__ import annotations

from .base import (
    FAMILY_MODULES,
    GENERATORS,
    Generator,
    GeneratorSpec,
    create_generator,
    dynamic_prefixes,
    fast_overrides,
    generator_revision,
    get_spec,
    list_generators,
    parse_param_overrides,
    register_dynamic,
    register_generator,
)

__all__ = [
    "FAMILY_MODULES",
    "GENERATORS",
    "Generator",
    "GeneratorSpec",
    "create_generator",
    "dynamic_prefixes",
    "fast_overrides",
    "generator_revision",
    "get_spec",
    "list_generators",
    "parse_param_overrides",
    "register_dynamic",
    "register_generator",
]
