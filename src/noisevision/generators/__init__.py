"""Procedural image generators, one module per family.

Adding a generator: write ``generators/<family>.py`` that calls
:func:`register_generator` for its variants, and add the module's name to
``FAMILY_MODULES`` below.
"""
from __future__ import annotations

import importlib
import os

from .base import (
    GENERATORS,
    Generator,
    GeneratorSpec,
    create_generator,
    dynamic_prefixes,
    get_spec,
    list_generators,
    parse_param_overrides,
    register_dynamic,
    register_generator,
)

# Family modules, imported on first use of the registry (the order is the listing order).
FAMILY_MODULES: tuple[str, ...] = (
    "dead_leaves",
    "statistical",
    "stylegan",
    "feature_vis",
    "fractal",
    "fractaldb",
    "one_p_frac",
    "rcdb",
    "visualatom",
    "combinators",
)

_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in FAMILY_MODULES:
        importlib.import_module(f"{__name__}.{mod}")
    # Third-party generators: NOISEVISION_PLUGINS="pkg.module,other.module" is imported
    # too (also in worker processes, which inherit the environment).
    for mod in filter(None, (m.strip() for m in os.environ.get("NOISEVISION_PLUGINS", "").split(","))):
        importlib.import_module(mod)


__all__ = [
    "GENERATORS",
    "Generator",
    "GeneratorSpec",
    "create_generator",
    "dynamic_prefixes",
    "get_spec",
    "list_generators",
    "parse_param_overrides",
    "register_dynamic",
    "register_generator",
]
