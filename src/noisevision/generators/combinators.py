"""Combinators: generators built from other generators by name.

``mixup/<name>``
    MixUp of ``k`` images of generator ``<name>`` (Shaders21k, Baradad et al.
    NeurIPS 2022: k = 6, Dirichlet(1) weights). Mixed image ``i`` draws, from
    its own stream, ``k`` distinct source indices in ``[0, source_pool)`` and
    Dirichlet(``alpha``) weights; the result is the weighted sum of those
    images of ``<name>`` (same root seed), rounded to uint8.
    Parameters ``k``, ``alpha`` and ``source_pool`` belong to the MixUp; every
    other parameter goes to the inner generator (write ``inner.<param>`` to
    reach an inner parameter whose name collides with the MixUp's own).

``mix:<a>[@w]+<b>[@w]+...``
    Image ``i`` is image ``i`` of one component, chosen from image ``i``'s
    stream with probabilities proportional to the weights (default 1), e.g.
    ``mix:dead-leaves/mixed@2+stylegan/oriented@1``. Its label is the index
    of the chosen component. A parameter ``<component>.<param>`` (or
    ``<position>.<param>``, counting from 1) goes to that component; a plain
    ``<param>`` goes to every component that has it (a prefixed one wins).

Both record their components' names and resolved parameters in their params
dataclass, so a manifest describes the whole dataset and
``create_generator(name, **manifest_params)`` rebuilds it.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError, did_you_mean
from ..parsing import resolve_params
from ..rng import image_rng
from .base import GENERATORS, Generator, GeneratorSpec, create_generator, generator_revision, register_dynamic

MIXUP_PREFIX = "mixup/"
MIX_PREFIX = "mix:"


@dataclass(frozen=True)
class MixupParams:
    """MixUp of ``k`` images of ``inner`` with Dirichlet(``alpha``) weights.

    Attributes:
        inner: the inner generator's name.
        inner_params: its resolved parameters (a params dataclass).
        k: images mixed per output image (>= 2).
        alpha: Dirichlet concentration of the weights (1 = uniform on the simplex).
        source_pool: source indices are drawn from ``[0, source_pool)`` of the
            inner dataset (default: the paper's small-scale dataset size).
    """

    inner: str
    inner_params: Any
    k: int = 6
    alpha: float = 1.0
    source_pool: int = 105_000

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ValueError(f"k must be >= 2 (images mixed per output image), got {self.k}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a positive number, got {self.alpha}")
        if self.source_pool < self.k:
            raise ValueError(f"source_pool must be >= k ({self.k}), got {self.source_pool}")


@dataclass(frozen=True)
class MixParams:
    """Per-image choice among ``components`` with normalised ``weights``."""

    components: tuple[str, ...]
    weights: tuple[float, ...]
    component_params: tuple[Any, ...]


# ---------------------------------------------------------------- MixUp


def mixup_sources(indices: np.ndarray, seed: int, params: MixupParams) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (N, k) int64 of the inner dataset and their weights (N, k), rows summing to 1."""
    sources = np.empty((len(indices), params.k), dtype=np.int64)
    weights = np.empty((len(indices), params.k), dtype=np.float64)
    for row, i in enumerate(np.asarray(indices, dtype=np.int64)):
        rng = image_rng(seed, int(i), "mixup")
        sources[row] = rng.choice(params.source_pool, size=params.k, replace=False)
        weights[row] = rng.dirichlet(np.full(params.k, params.alpha))
    return sources, weights


def _render_in_chunks(gen: Generator, indices: np.ndarray, seed: int, size: int, device: str) -> np.ndarray:
    """Render ``indices`` of ``gen`` in calls of at most ``gen.batch_size`` images."""
    step = max(1, gen.batch_size)
    return np.concatenate([gen.render(indices[s : s + step], seed, size, device=device) for s in range(0, len(indices), step)])


def _mixup_render(inner: Generator) -> Callable[..., np.ndarray]:
    def render(indices: np.ndarray, seed: int, size: int, params: MixupParams, device: str = "cpu") -> np.ndarray:
        sources, weights = mixup_sources(indices, seed, params)
        unique, where = np.unique(sources, return_inverse=True)
        images = _render_in_chunks(inner, unique, seed, size, device)[where.reshape(sources.shape)]
        mixed = np.einsum("nk,nkhwc->nhwc", weights.astype(np.float32), images.astype(np.float32))
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)

    return render


def _make_mixup(name: str, overrides: dict[str, Any]) -> Generator:
    inner_name = name[len(MIXUP_PREFIX) :]
    if not inner_name:
        raise UserError(f"{name!r} needs a generator after {MIXUP_PREFIX!r}, e.g. mixup/dead-leaves/mixed")
    own_fields = {f.name for f in dataclasses.fields(MixupParams)} - {"inner", "inner_params"}
    own: dict[str, Any] = {}
    inner_overrides: dict[str, Any] = {}
    for key, value in overrides.items():
        key_ = key.replace("-", "_")
        if key_ == "inner":  # from a manifest: must name the same generator
            if value != inner_name:
                raise UserError(f"{name}: parameter inner={value!r} does not match the name's {inner_name!r}")
        elif key_ == "inner_params":  # from a manifest: the inner generator's parameters
            if not isinstance(value, dict):
                raise UserError(f"{name}: inner_params must be a mapping of the inner generator's parameters")
            inner_overrides.update(value)
        elif key_ in own_fields:
            own[key_] = value
        else:
            inner_overrides[key.removeprefix("inner.")] = value
    inner = create_generator(inner_name, **inner_overrides)
    params = resolve_params(MixupParams, {"inner": inner_name, "inner_params": inner.params}, own, name)
    spec = GeneratorSpec(
        name=name,
        description=f"MixUp of {params.k} images of {inner_name} (Dirichlet({params.alpha}) weights)",
        family="mixup",
        params_cls=MixupParams,
        render=_mixup_render(inner),
        batch_size=max(1, inner.batch_size // params.k),
        uses_torch=inner.uses_torch,
        revision=generator_revision(name),
    )
    return Generator(name=name, spec=spec, params=params)


# ---------------------------------------------------------------- mix


def _is_known(name: str) -> bool:
    """Whether ``name`` is a registered generator or a MixUp of one."""
    if name.startswith(MIXUP_PREFIX):
        return _is_known(name[len(MIXUP_PREFIX) :])
    return name in GENERATORS


def _parse_weight(text: str, part: str, name: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise UserError(f"{name}: weight {text!r} of {part!r} is not a number (write name@2.5)") from None
    if not math.isfinite(weight) or weight < 0:
        raise UserError(f"{name}: weight of {part!r} must be a finite non-negative number, got {text!r}")
    return weight


def parse_mix(name: str) -> tuple[list[str], list[float]]:
    """Split ``mix:a@w+b@w`` into component names and raw weights.

    Registered names may themselves contain ``+``: the longest run of
    ``+``-separated pieces that forms a known name is taken as one component.
    """
    body = name[len(MIX_PREFIX) :]
    if not body.strip():
        raise UserError(f"{name!r} needs components, e.g. mix:dead-leaves/mixed@2+stylegan/oriented@1")
    pieces = body.split("+")
    names: list[str] = []
    weights: list[float] = []
    start = 0
    while start < len(pieces):
        end = start + 1
        for cand_end in range(len(pieces), start + 1, -1):  # longest known name first
            if any("@" in p for p in pieces[start : cand_end - 1]):
                continue  # only a component's last piece may carry its weight
            if _is_known("+".join(pieces[start:cand_end]).rsplit("@", 1)[0].strip()):
                end = cand_end
                break
        part = "+".join(pieces[start:end]).strip()
        comp, weight_text = part.rsplit("@", 1) if "@" in part else (part, "1")
        comp = comp.strip()
        if not comp:
            raise UserError(f"{name}: empty component in {body!r} (write mix:a@2+b@1)")
        if MIX_PREFIX in comp:
            raise UserError(f"{name}: a mix: cannot be nested inside another mix: (use weights instead)")
        names.append(comp)
        weights.append(_parse_weight(weight_text.strip(), part, name))
        start = end
    if sum(weights) <= 0:
        raise UserError(f"{name}: the weights are all zero; at least one must be positive")
    return names, weights


def mix_choices(indices: np.ndarray, seed: int, params: MixParams) -> np.ndarray:
    """The component of each image (int64 (N,)), drawn from its own stream with ``params.weights``."""
    cdf = np.cumsum(params.weights)
    draws = np.array([image_rng(seed, int(i), "mix-choice").random() for i in np.asarray(indices)]) * cdf[-1]
    return np.minimum(np.searchsorted(cdf, draws, side="right"), len(cdf) - 1).astype(np.int64)


def _mix_render(components: list[Generator]) -> Callable[..., np.ndarray]:
    def render(indices: np.ndarray, seed: int, size: int, params: MixParams, device: str = "cpu") -> np.ndarray:
        choice = mix_choices(indices, seed, params)
        out = np.empty((len(indices), size, size, 3), dtype=np.uint8)
        for c, gen in enumerate(components):
            rows = np.flatnonzero(choice == c)
            if len(rows):
                out[rows] = _render_in_chunks(gen, indices[rows], seed, size, device)
        return out

    return render


def _param_names(name: str) -> set[str]:
    """Parameter names a component accepts (a MixUp also forwards its inner's)."""
    if name.startswith(MIXUP_PREFIX):
        own = {f.name for f in dataclasses.fields(MixupParams)} - {"inner", "inner_params"}
        return own | _param_names(name[len(MIXUP_PREFIX) :])
    return {f.name for f in dataclasses.fields(GENERATORS.get(name).params_cls)}


def _route_mix_overrides(name: str, comps: list[str], overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Send each override to its component(s); see the module docstring."""
    routed: list[dict[str, Any]] = [{} for _ in comps]
    # manifest values first, then plain keys, so that <component>.<param> wins over a plain <param>
    ordered = sorted(overrides.items(), key=lambda kv: (kv[0] != "component_params") + ("." in kv[0]))
    for key, value in ordered:
        if key in ("components", "weights"):
            continue  # from a manifest: checked by the caller
        if key == "component_params":  # from a manifest: one mapping per component
            if not isinstance(value, (list, tuple)) or len(value) != len(comps) or not all(isinstance(v, dict) for v in value):
                raise UserError(f"{name}: component_params must be a list of {len(comps)} parameter mappings")
            for target, values in zip(routed, value):
                target.update(values)
            continue
        by_position = re.match(r"^(\d+)\.(.+)$", key)
        prefixed = [c for c in sorted(set(comps), key=len, reverse=True) if key.startswith(c + ".")]
        if by_position:
            pos = int(by_position.group(1))
            if not 1 <= pos <= len(comps):
                raise UserError(f"{name}: parameter {key!r} names component {pos}, but there are {len(comps)}")
            routed[pos - 1][by_position.group(2)] = value
        elif prefixed:
            for target, comp in zip(routed, comps):
                if comp == prefixed[0]:
                    target[key[len(comp) + 1 :]] = value
        else:
            key_ = key.replace("-", "_")
            takers = [n for n, comp in enumerate(comps) if key_ in _param_names(comp)]
            if not takers:
                every = sorted(set().union(*(_param_names(c) for c in comps)))
                raise UserError(
                    f"{name}: no component has a parameter {key!r}{did_you_mean(key_, every)}; "
                    f"write <component>.<param> or <position>.<param>"
                )
            for n in takers:
                routed[n][key] = value
    return routed


def _make_mix(name: str, overrides: dict[str, Any]) -> Generator:
    comps, raw_weights = parse_mix(name)
    for comp in comps:
        base = comp
        while base.startswith(MIXUP_PREFIX):
            base = base[len(MIXUP_PREFIX) :]
        GENERATORS.get(base)  # unknown name -> UserError with did-you-mean
    total = sum(raw_weights)
    weights = tuple(w / total for w in raw_weights)
    if "components" in overrides and list(overrides["components"]) != comps:
        raise UserError(f"{name}: parameter components={overrides['components']!r} does not match the name")
    if "weights" in overrides and not np.allclose(np.asarray(overrides["weights"], dtype=float), weights):
        raise UserError(f"{name}: parameter weights={overrides['weights']!r} does not match the name")
    per_component = _route_mix_overrides(name, comps, overrides)
    gens = [create_generator(comp, **ov) for comp, ov in zip(comps, per_component)]
    params = MixParams(components=tuple(comps), weights=weights, component_params=tuple(g.params for g in gens))
    spec = GeneratorSpec(
        name=name,
        description="per-image choice among " + ", ".join(f"{c} ({w:.0%})" for c, w in zip(comps, weights)),
        family="mix",
        params_cls=MixParams,
        render=_mix_render(gens),
        batch_size=min(g.batch_size for g in gens),
        uses_torch=any(g.uses_torch for g in gens),
        labels=lambda idx, seed, p: mix_choices(idx, seed, p),
        num_classes=lambda p: len(p.components),
        revision=generator_revision(name),
    )
    return Generator(name=name, spec=spec, params=params)


register_dynamic(
    MIXUP_PREFIX,
    _make_mixup,
    "mixup/<name>: MixUp of k (default 6) images of <name> with Dirichlet(alpha=1) weights (params k, alpha, source_pool; others go to <name>)",
    parts=lambda name: [name[len(MIXUP_PREFIX):]],
)
register_dynamic(
    MIX_PREFIX,
    _make_mix,
    "mix:<a>[@w]+<b>[@w]+...: each image from one generator, chosen with probability proportional to its weight (params <component>.<param>)",
    parts=lambda name: parse_mix(name)[0],
)
