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
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import UserError, did_you_mean
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
        family: group used by tables and charts (e.g. ``"dead leaves"``).
        params_cls: frozen dataclass of parameters.
        defaults: this variant's parameter overrides of ``params_cls`` defaults.
        render: the batched render function.
        batch_size: images per render call that amortises setup well on a CPU.
        uses_torch: renders with torch (may run on CUDA); manifests record the device.
        labels: optional ``labels(indices, seed, params) -> int64 (N,)`` (e.g. IFS identity).
        paper_top1: the paper's small-scale ImageNet-100 top-1 for this family, if any.
        fast_overrides: parameters for a quick CPU look (``preview --all``, smoke
            benchmarks) where the defaults are slow (e.g. feature-vis steps).
        required: parameters the user must set (e.g. a checkpoint path).
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
    paper_top1: float | None = None
    fast_overrides: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()


GENERATORS: Registry[GeneratorSpec] = Registry("generator")

# Dynamic names such as ``mixup/<name>`` or ``mix:<a>+<b>``: prefix -> factory
# ``factory(name, overrides) -> Generator``. ``list`` shows their help lines.
_DYNAMIC: dict[str, tuple[Callable[[str, dict[str, Any]], "Generator"], str]] = {}


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
    paper_top1: float | None = None,
    fast_overrides: dict[str, Any] | None = None,
    required: tuple[str, ...] = (),
    **defaults: Any,
) -> GeneratorSpec:
    """Register one variant; ``defaults`` override the dataclass defaults."""
    bad = set(defaults) - {f.name for f in dataclasses.fields(params_cls)}
    if bad:
        raise TypeError(f"{name}: unknown default parameter(s) {sorted(bad)}")
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
        paper_top1=paper_top1,
        fast_overrides=dict(fast_overrides or {}),
        required=tuple(required),
    )
    params_cls(**defaults)  # defaults must validate
    return GENERATORS.register(name, spec)


def register_dynamic(prefix: str, factory: Callable[[str, dict[str, Any]], "Generator"], help: str) -> None:
    """Register a family of names built on the fly from a prefix (combinators)."""
    if prefix in _DYNAMIC:
        raise ValueError(f"dynamic generator prefix {prefix!r} is already registered")
    _DYNAMIC[prefix] = (factory, help)


def dynamic_prefixes() -> dict[str, str]:
    """Prefix -> help line of the dynamic (combinator) generators."""
    return {p: h for p, (_, h) in _DYNAMIC.items()}


# ---------------------------------------------------------------- parameters


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert a CLI string (or YAML value) to the dataclass field's type."""
    if isinstance(annotation, str):  # postponed annotations
        annotation = eval(annotation, vars(typing), {})  # noqa: S307 - our own source annotations
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], name)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        s = str(value).lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if annotation in (int, float, str):
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if annotation is int and isinstance(value, str):
            f = float(value)
            if not f.is_integer():
                raise ValueError(f"{name} must be an integer, got {value!r}")
            return int(f)
        return annotation(value)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        if args and args[-1] is not Ellipsis and len(items) != len(args):
            raise ValueError(f"{name} needs {len(args)} comma-separated values, got {value!r}")
        types_ = [args[0]] * len(items) if (args and args[-1] is Ellipsis) else list(args)
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, t, name) for v, t in zip(items, types_))
    return value


def resolve_params(params_cls: type, defaults: dict[str, Any], overrides: dict[str, Any], where: str) -> Any:
    """Build a params instance from variant defaults plus (possibly string) overrides."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = typing.get_type_hints(params_cls)
    values = dict(defaults)
    for key, raw in overrides.items():
        key_ = key.replace("-", "_")
        if key_ not in fields:
            raise UserError(
                f"{where} has no parameter {key!r}{did_you_mean(key_, fields)}; "
                f"its parameters are: {', '.join(fields)}"
            )
        try:
            values[key_] = _coerce(raw, hints[key_], key_)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: bad value for {key_}: {exc}") from None
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {exc}") from None


def parse_param_overrides(items: Iterable[str] | None) -> dict[str, str]:
    """Parse CLI ``key=value`` strings into a dict (values stay strings)."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"parameter override {item!r} must look like key=value")
        k, v = item.split("=", 1)
        if not k.strip():
            raise UserError(f"parameter override {item!r} has an empty name")
        out[k.strip()] = v.strip()
    return out


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

    @property
    def batch_size(self) -> int:
        return self.spec.batch_size

    @property
    def uses_torch(self) -> bool:
        return self.spec.uses_torch

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
    for prefix, (factory, _) in _DYNAMIC.items():
        if name.startswith(prefix):
            return factory(name, overrides)
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


def get_spec(name: str) -> GeneratorSpec:
    _ensure_loaded()
    return GENERATORS.get(name)


def _ensure_loaded() -> None:
    from . import _load_all  # registers every family module on first use

    _load_all()


def split_name_list(names: str | Sequence[str]) -> list[str]:
    return [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
