"""The generator abstraction: a pure, batched function of image indices.

A generator family module defines

* a frozen ``@dataclass`` of parameters whose ``__post_init__`` raises
  ``ValueError`` for out-of-range values,
* a render function ``render(indices, seed, size, params, device) -> uint8
  (N, H, W, 3)`` in which image ``i`` depends only on (params, seed, i): it
  draws each image's randomness from ``noisevision.rng.image_rng(seed, i)``,
* and registers variants with :func:`register_generator`, each a name, a
  one-line description and parameter defaults.

``create_generator(name, **overrides)`` resolves the defaults and overrides
(CLI strings are coerced to the field types) into a :class:`Generator`.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from ..errors import UserError
from ..parsing import parse_kv, resolve_params
from ..registry import Registry

MIN_SIZE = 8
MAX_SIZE = 4096


class RenderFn(Protocol):
    def __call__(
        self, indices: np.ndarray, seed: int, size: int, params: Any, device: str = "cpu"
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class GeneratorSpec:
    """A registered generator variant.

    Attributes:
        name: registry name, ``family/variant``.
        description: one line for ``noisevision list``.
        family: the group ``noisevision list`` shows it under (e.g. ``"dead leaves"``).
        params_cls: frozen dataclass of parameters.
        defaults: this variant's parameter overrides of ``params_cls`` defaults.
        render: the batched render function.
        batch_size: images per render call that amortises setup well on a CPU.
        uses_torch: renders with torch (may run on CUDA); manifests record the device.
        labels: optional ``labels(indices, seed, params) -> int64 (N,)`` (e.g. IFS identity).
        num_classes: optional ``num_classes(params) -> int | None``: how many classes the labels
            index into (None: unbounded, e.g. one class per image); without it a ``num_classes``
            parameter is the count. Supervised pretraining sizes its classifier with it.
        fast_overrides: parameters for a quick CPU look (``preview --all``, smoke
            benchmarks) where the defaults are slow (e.g. feature-vis steps).
        required: parameters the user must set (e.g. a checkpoint path).
        revision: bumped by a release that changes the images this variant renders from the same
            parameters and seed. A dataset records it, so a resumed or repaired dataset never mixes
            the renders of two revisions, and the comparison's cache keys change with it.
    """

    name: str
    description: str
    family: str
    params_cls: type
    render: RenderFn
    defaults: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    uses_torch: bool = False
    labels: Callable[[np.ndarray, int, Any], np.ndarray] | None = None
    fast_overrides: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    num_classes: Callable[[Any], int | None] | None = None
    revision: int = 1


GENERATORS: Registry[GeneratorSpec] = Registry("generator")


class _Dynamic(NamedTuple):
    """A family of names such as ``mixup/<name>`` or ``mix:<a>+<b>``, built on the fly."""

    factory: Callable[[str, dict[str, Any]], "Generator"]  # (name, overrides) -> Generator
    help: str  # the line ``list`` shows
    parts: Callable[[str], list[str]]  # name -> the generators it renders from


_DYNAMIC: dict[str, _Dynamic] = {}


def register_generator(
    name: str,
    description: str,
    *,
    family: str,
    params_cls: type,
    render: RenderFn,
    batch_size: int = 64,
    uses_torch: bool = False,
    labels: Callable[[np.ndarray, int, Any], np.ndarray] | None = None,
    fast_overrides: dict[str, Any] | None = None,
    required: tuple[str, ...] = (),
    num_classes: Callable[[Any], int | None] | None = None,
    revision: int = 1,
    **defaults: Any,
) -> GeneratorSpec:
    """Register one variant; ``defaults`` override the dataclass defaults."""
    bad = set(defaults) - {f.name for f in dataclasses.fields(params_cls)}
    if bad:
        raise TypeError(f"{name}: unknown default parameter(s) {sorted(bad)}")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
        raise TypeError(f"{name}: revision must be a positive integer, got {revision!r}")
    spec = GeneratorSpec(
        name=name,
        description=description,
        family=family,
        params_cls=params_cls,
        render=render,
        defaults=dict(defaults),
        batch_size=batch_size,
        uses_torch=uses_torch,
        labels=labels,
        fast_overrides=dict(fast_overrides or {}),
        required=tuple(required),
        num_classes=num_classes,
        revision=revision,
    )
    params_cls(**defaults)  # defaults must validate
    return GENERATORS.register(name, spec)


def register_dynamic(prefix: str, factory: Callable[[str, dict[str, Any]], "Generator"], help: str,
                     parts: Callable[[str], list[str]] | None = None) -> None:
    """Register a family of names built on the fly from a prefix (combinators); ``parts(name)`` names
    the registered generators one of them renders from (its revision follows theirs)."""
    if prefix in _DYNAMIC:
        raise ValueError(f"dynamic generator prefix {prefix!r} is already registered")
    _DYNAMIC[prefix] = _Dynamic(factory, help, parts or (lambda name: []))


def dynamic_prefixes() -> dict[str, str]:
    """Prefix -> help line of the dynamic (combinator) generators."""
    return {p: d.help for p, d in _DYNAMIC.items()}


def _dynamic(name: str) -> _Dynamic | None:
    return next((d for prefix, d in _DYNAMIC.items() if name.startswith(prefix)), None)


# ---------------------------------------------------------------- parameters


def parse_param_overrides(items: Iterable[str] | None) -> dict[str, str]:
    """Parse CLI ``key=value`` strings into a dict (values stay strings, typed by :func:`resolve_params`)."""
    return parse_kv(items, "parameter override", typed=False)


PARAMS_HELP = "override a generator parameter (repeatable), e.g. -p sigma=2.5 -p exponent_range=1,3"


def params_field(help_text: str = PARAMS_HELP, *, typed: bool = False) -> Any:
    """The ``params`` field of a config that takes generator parameters (``--param/-p KEY=VALUE``, repeatable).

    ``typed=False`` keeps the values strings, for the generator's own typing (:func:`resolve_params`).
    """
    return field(default_factory=dict, metadata={"help": help_text, "flags": ("--param", "-p"), "typed": typed})


def params_to_dict(params: Any) -> dict[str, Any]:
    """JSON-friendly dict of a params dataclass (tuples become lists)."""
    return json_safe(dataclasses.asdict(params))


def json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


# ---------------------------------------------------------------- generator


@dataclass(frozen=True)
class Generator:
    """A generator with resolved parameters; call :meth:`render`."""

    name: str
    spec: GeneratorSpec
    params: Any

    def render(self, indices: Iterable[int] | np.ndarray, seed: int, size: int, device: str = "cpu") -> np.ndarray:
        """Render images ``indices`` of the dataset with root ``seed``: uint8 (N, size, size, 3)."""
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        if idx.ndim != 1:
            raise ValueError("indices must be one-dimensional")
        if (idx < 0).any():
            raise UserError("image indices must be non-negative")
        check_size(size)
        check_seed(seed)
        if len(idx) == 0:
            return np.zeros((0, size, size, 3), np.uint8)
        out = self.spec.render(idx, int(seed), int(size), self.params, device=device)
        if out.shape != (len(idx), size, size, 3) or out.dtype != np.uint8:
            raise RuntimeError(f"{self.name} returned {out.shape} {out.dtype}, expected ({len(idx)}, {size}, {size}, 3) uint8")
        return out

    def labels(self, indices: Iterable[int] | np.ndarray, seed: int) -> np.ndarray | None:
        """Integer labels of images (e.g. IFS identity), or None if the generator has none."""
        if self.spec.labels is None:
            return None
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        return np.asarray(self.spec.labels(idx, int(seed), self.params), dtype=np.int64)

    def num_classes(self) -> int | None:
        """How many classes :meth:`labels` indexes into: the spec's ``num_classes(params)``, else a
        ``num_classes`` parameter; None for unlabelled generators or an unbounded label set."""
        if self.spec.labels is None:
            return None
        if self.spec.num_classes is not None:
            return self.spec.num_classes(self.params)
        count = getattr(self.params, "num_classes", None)
        return int(count) if isinstance(count, (int, np.integer)) and not isinstance(count, bool) else None

    @property
    def batch_size(self) -> int:
        return self.spec.batch_size

    @property
    def uses_torch(self) -> bool:
        return self.spec.uses_torch

    @property
    def revision(self) -> int:
        return self.spec.revision

    def params_dict(self) -> dict[str, Any]:
        return params_to_dict(self.params)


def check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise UserError(f"size must be an integer, got {size!r}")
    if size < MIN_SIZE:
        raise UserError(f"size {size} is too small: the minimum is {MIN_SIZE} px")
    if size > MAX_SIZE:
        raise UserError(f"size {size} is too large: the maximum is {MAX_SIZE} px")


def check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")


def class_and_instance(indices: np.ndarray, num_classes: int, instances_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ``i % num_classes`` and instance ``(i // num_classes) % instances_per_class`` of each image ``i``.

    The layout of the labelled (formula-driven) families: any ``num_classes``
    consecutive images hold one image of every class, and the data set repeats
    after ``num_classes * instances_per_class`` images.
    """
    idx = np.asarray(indices, dtype=np.int64)
    return idx % num_classes, (idx // num_classes) % instances_per_class


def create_generator(name: str, **overrides: Any) -> Generator:
    """Build a generator from its registry name and parameter overrides.

    ``None`` overrides are dropped (a CLI default of None means "the
    generator's own default"); strings are coerced to the field types.
    """
    _ensure_loaded()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    dynamic = _dynamic(name)
    if dynamic is not None:
        return dynamic.factory(name, overrides)
    spec = GENERATORS.get(name)
    params = resolve_params(spec.params_cls, spec.defaults, overrides, name)
    missing = [r for r in spec.required if getattr(params, r) in (None, "")]
    if missing:
        raise UserError(f"{name} needs {', '.join(f'-p {m}=...' for m in missing)}")
    return Generator(name=name, spec=spec, params=params)


def list_generators(pattern: str = "*") -> list[str]:
    """Registered generator names matching a wildcard, e.g. ``"stylegan/*"``."""
    _ensure_loaded()
    return GENERATORS.names(pattern)


def generator_revision(name: str) -> int:
    """The revision of what ``name`` renders (:attr:`GeneratorSpec.revision`), without building its
    parameters; a combinator's moves whenever one of its parts' does.

    Raises:
        UserError: unknown generator.
    """
    _ensure_loaded()
    dynamic = _dynamic(name)
    if dynamic is None:
        return GENERATORS.get(name).revision
    return 1 + sum(generator_revision(part) - 1 for part in dynamic.parts(name))


def get_spec(name: str) -> GeneratorSpec:
    _ensure_loaded()
    return GENERATORS.get(name)


def fast_overrides(name: str) -> dict[str, Any]:
    """The generator's CPU-friendly parameter overrides (``GeneratorSpec.fast_overrides``); none for a
    dynamic (combinator) name, which has no spec of its own.

    Raises:
        UserError: unknown generator.
    """
    _ensure_loaded()
    if _dynamic(name) is not None:
        return {}
    return dict(GENERATORS.get(name).fast_overrides)


# Family modules, imported on first use of the registry (the order is the listing order).
# Adding a generator family: its module, and its name here.
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


def _ensure_loaded() -> None:
    """Import every family module (and ``NOISEVISION_PLUGINS``) once, so their variants are registered."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in FAMILY_MODULES:
        importlib.import_module(f"{__package__}.{mod}")
    # Third-party generators: NOISEVISION_PLUGINS="pkg.module,other.module" is imported
    # too (also in worker processes, which inherit the environment).
    for mod in filter(None, (m.strip() for m in os.environ.get("NOISEVISION_PLUGINS", "").split(","))):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            _loaded = False  # try again (e.g. after the environment is fixed) on the next use
            raise UserError(
                f"NOISEVISION_PLUGINS names {mod!r}, which cannot be imported ({exc}); "
                "put the module on PYTHONPATH (or install it), or remove it from NOISEVISION_PLUGINS"
            ) from None


def split_name_list(names: str | Sequence[str]) -> list[str]:
    return [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
