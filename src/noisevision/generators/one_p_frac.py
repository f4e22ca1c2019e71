"""1p-frac (Nakamura et al., "Scaling Backwards: Minimal Synthetic Pre-training?", ECCV 2024).

One fractal and its perturbations. The base system has ``num_maps`` affine
maps built from their singular value decomposition, as in the official code
(after Anderson & Farrell, 2022): random rotations and reflections around
singular values ``s1 >= s2`` in [0, 1] whose "sigma-factor" ``sum(s1 + 2 s2)``
equals ``sigma`` (the shape complexity), and translations uniform in [-1, 1].
It is drawn from the stream ``(seed, 0)`` and redrawn (at most ``max_tries``
times) until its attractor covers ``min_fill`` of the 64 px check canvas.

Class ``c`` is the base system with every parameter of every map multiplied by
its own factor uniform in [1 - delta, 1 + delta] (the official "local
perturbation", drawn from ``(seed, c)``), redrawn while the result covers less
than ``min_fill``; maps pushed past a contraction are shrunk back below a
largest singular value of 0.99. Map probabilities stay those of the base, as
in the official code. Image ``i`` shows class ``i % num_classes`` (its label)
with its own chaos-game walk: the official data set has one image per class,
so images of a class differ only by the walk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rng import image_rng
from . import fractal
from .base import register_generator
from .fractaldb import VARIANT_MAX_SCALE, ChaosGameRendering, render_systems

# memoised per process (pure functions of their keys): the fill search costs more than a render
_BASES: dict[tuple, np.ndarray] = {}
_CLASSES: dict[tuple, np.ndarray] = {}
_CACHE_LIMIT = 200_000  # classes kept (each a few hundred bytes)


@dataclass(frozen=True)
class OnePFracParams(ChaosGameRendering):
    """Parameters of the 1p-frac generator (and the rendering ones of :class:`ChaosGameRendering`).

    Attributes:
        num_classes: number of perturbations of the one system (classes).
        delta: perturbation size: each parameter is multiplied by U(1 - delta, 1 + delta).
        num_maps: affine maps of the base system (the official default is 2).
        sigma: sigma-factor of the base system, sum over maps of s1 + 2 s2, in (0, 3 num_maps).
        min_fill: least fraction of the 64 px check canvas the base and every class must cover.
        max_tries: draws per system before the best one seen is kept.
    """

    num_classes: int = 1000
    delta: float = 0.1
    num_maps: int = 2
    sigma: float = 4.0
    min_fill: float = 0.05
    max_tries: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if not 0.0 <= self.delta < 1.0:
            raise ValueError(f"delta must be in [0, 1), got {self.delta}")
        if not 2 <= self.num_maps <= fractal.MAX_MAPS:
            raise ValueError(f"num_maps must be in [2, {fractal.MAX_MAPS}], got {self.num_maps}")
        if not 0.0 < self.sigma < 3 * self.num_maps:
            raise ValueError(f"sigma must be in (0, 3 * num_maps) = (0, {3 * self.num_maps}), got {self.sigma}")
        if not 0.0 <= self.min_fill < 1.0:
            raise ValueError(f"min_fill must be in [0, 1), got {self.min_fill}")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")


# ---------------------------------------------------------------- sampling


def singular_values(rng: np.random.Generator, n_maps: int, sigma: float) -> np.ndarray:
    """(n_maps, 2) singular values ``1 >= s1 >= s2 >= 0`` with ``sum(s1 + 2 s2) == sigma``.

    Each map gets a share b of sigma (b in [0, 3], shares drawn one after the
    other within what the remaining maps can still take), then s2 uniform on
    its feasible range for that share and s1 = b - 2 s2.
    """
    out = np.empty((n_maps, 2))
    left = sigma
    for m in range(n_maps):
        rest = n_maps - m - 1
        share = left if rest == 0 else rng.uniform(max(0.0, left - 3.0 * rest), min(3.0, left))
        s2 = rng.uniform(max(0.0, (share - 1.0) / 2.0), share / 3.0)  # s1 = share - 2 s2 in [s2, 1]
        out[m] = share - 2.0 * s2, s2
        left -= share
    return out


def _random_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random 2x2 rotations, each with a random sign on its columns (reflections included)."""
    angle = rng.uniform(-np.pi, np.pi, n)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    return rot * rng.choice([-1.0, 1.0], size=(n, 1, 2))


def draw_base(rng: np.random.Generator, n_maps: int, sigma: float) -> np.ndarray:
    """One system (n_maps, 2, 3) of the given sigma-factor: ``U diag(s) V`` plus a translation in [-1, 1]^2."""
    sv = singular_values(rng, n_maps, sigma)
    u, v = _random_orthogonal(rng, n_maps), _random_orthogonal(rng, n_maps)
    maps = np.empty((n_maps, 2, 3))
    maps[:, :, :2] = u * sv[:, None, :] @ v
    maps[:, :, 2] = rng.uniform(-1.0, 1.0, (n_maps, 2))
    return fractal.contract(maps, VARIANT_MAX_SCALE)


def _search(draw, rngs: dict[int, np.random.Generator], params: OnePFracParams) -> dict[int, np.ndarray]:
    """Draw ``draw(rng)`` per key until the fill reaches ``min_fill`` (all pending keys tested together)."""
    best: dict[int, tuple[float, np.ndarray]] = {}
    pending = list(rngs)
    for _ in range(params.max_tries):
        if not pending:
            break
        cands = [draw(rngs[k]) for k in pending]
        fills = fractal.fill_ratio(cands, [rngs[k] for k in pending])
        still = []
        for k, cand, fill in zip(pending, cands, fills):
            score = max(0.0, params.min_fill - float(fill))
            if k not in best or score < best[k][0]:
                best[k] = (score, cand)
            if score > 0:
                still.append(k)
        pending = still
    return {k: v[1] for k, v in best.items()}


def base_system(seed: int, params: OnePFracParams) -> np.ndarray:
    """The one system of the data set, a function of (seed, num_maps, sigma, min_fill, max_tries)."""
    key = (seed, params.num_maps, params.sigma, params.min_fill, params.max_tries)
    if key not in _BASES:
        draw = lambda rng: draw_base(rng, params.num_maps, params.sigma)  # noqa: E731
        _BASES[key] = _search(draw, {0: image_rng(seed, 0, "1p-frac-base")}, params)[0]
    return _BASES[key]


def class_systems(class_ids: np.ndarray, seed: int, params: OnePFracParams) -> dict[int, np.ndarray]:
    """The perturbed system of each distinct class in ``class_ids``; class c draws only from (seed, c)."""
    base = base_system(seed, params)
    key = (seed, params.num_maps, params.sigma, params.min_fill, params.max_tries, params.delta)
    ids = [int(c) for c in np.unique(class_ids)]
    missing = [c for c in ids if (key, c) not in _CLASSES]
    if missing:
        if len(_CLASSES) + len(missing) > _CACHE_LIMIT:
            _CLASSES.clear()

        def draw(rng: np.random.Generator) -> np.ndarray:
            weights = rng.uniform(1.0 - params.delta, 1.0 + params.delta, size=base.shape)
            return fractal.contract(base * weights, VARIANT_MAX_SCALE)

        found = _search(draw, {c: image_rng(seed, c, "1p-frac-class") for c in missing}, params)
        _CLASSES.update({(key, c): system for c, system in found.items()})
    return {c: _CLASSES[(key, c)] for c in ids}


def one_p_frac_labels(indices: np.ndarray, seed: int, params: OnePFracParams) -> np.ndarray:
    """Each image's class (perturbation)."""
    return np.asarray(indices, dtype=np.int64) % params.num_classes


# ---------------------------------------------------------------- render


def render_one_p_frac(
    indices: np.ndarray, seed: int, size: int, params: OnePFracParams, device: str = "cpu"
) -> np.ndarray:
    """Render 1p-frac images ``indices``: uint8 (N, size, size, 3)."""
    cls = one_p_frac_labels(indices, seed, params)
    systems = class_systems(cls, seed, params)
    probs = fractal.map_probabilities(base_system(seed, params))
    per_image = [systems[int(c)] for c in cls]
    rngs = [image_rng(seed, int(i), "1p-frac-image") for i in indices]
    return render_systems(per_image, rngs, size, params.points, params.walkers, params.color, params.margin,
                          probs=[probs] * len(per_image))


register_generator(
    "fractal/1p-frac",
    "1p-frac: one IFS fractal; classes are its local perturbations of size delta",
    family="fractal",
    params_cls=OnePFracParams,
    render=render_one_p_frac,
    batch_size=64,
    labels=one_p_frac_labels,
)
