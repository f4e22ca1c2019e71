"""FractalDB (Kataoka et al., "Pre-training without Natural Images", ACCV 2020).

A category is an iterated function system found by a fill-ratio search: 2 to
8 affine maps with parameters uniform in [-1, 1] are drawn until the rendered
attractor covers at least ``min_fill`` of the canvas. The search is
``fractal.sample_systems`` (the one ``fractal/ifs`` uses): category ``c``
draws only from the stream ``(seed, c)``, keeps contractive maps, measures
the fill on a fixed 64 px check canvas (about 10,000 points) and, after
``max_tries`` rejected systems, keeps the one closest to the threshold. The
official search measures the fill at 512 px with 100,000 one-pixel points,
which reads lower: the default 0.2 here accepts about the systems whose
official fill is >= 0.1 (93 % agreement on 300 random systems); the
official README's recipe, >= 0.2, is about ``min_fill=0.4`` here, which
accepts one system in eight and makes the search about seven times longer.

Instances follow the official renderer: one of 25 "weight" variants (one
parameter, a to f, of every map multiplied by 1 - 2s, 1 - s, 1 + s or 1 + 2s
for ``weight_step`` s; or none), one of four flips (none, vertical,
horizontal, both), and the image's own chaos-game walk. Instance ``k`` of a
category takes variant ``k % 25`` and flip ``(k // 25) % 4``, so 1000
instances cover the official grid (25 weights x 4 flips x 10 renders).

Image ``i`` is instance ``(i // num_classes) % instances_per_class`` of
category ``i % num_classes`` (its label): like FractalDB-1k (1000 categories x
1000 instances), the dataset repeats after ``num_classes *
instances_per_class`` images, and any ``num_classes`` consecutive images hold
one image of every category.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rng import image_rng
from . import fractal
from .base import class_and_instance, register_generator

COLOR_MODES = ("gray", "per-map")
GRAY = 127  # the official renderer draws grey (127) points on black
N_WEIGHTS = 25  # identity + 6 parameters x 4 factors
N_FLIPS = 4
VARIANT_MAX_SCALE = 0.99  # a weighted map is shrunk back below this (kept contractive)
_CACHE_LIMIT = 200_000  # categories kept in memory per process (each a few hundred bytes)
_CATEGORIES: dict[tuple, np.ndarray] = {}


def auto_points(size: int) -> int:
    """Chaos-game points for a ``size`` px image: one per pixel, within [4096, 100000].

    100,000 (the official count at 512 px) would take most of the render
    time at 128 px without changing the picture much.
    """
    return int(min(100_000, max(4096, size * size)))


@dataclass(frozen=True)
class ChaosGameRendering:
    """How FractalDB and 1p-frac draw an attractor: the parameters both generators share.

    Attributes:
        points: chaos-game points per image; None = ``auto_points(size)``.
        walkers: points iterated in parallel per image.
        color: "gray" (the official grey points on black) or "per-map" (each map its colour).
        margin: fraction of the canvas left empty on each side (the official 6 px of 512).
    """

    points: int | None = None
    walkers: int = 512
    color: str = "gray"
    margin: float = 0.012

    def __post_init__(self) -> None:
        if self.points is not None and self.points < 1:
            raise ValueError(f"points must be >= 1 (or none for one per pixel), got {self.points}")
        if self.walkers < 1:
            raise ValueError(f"walkers must be >= 1, got {self.walkers}")
        if self.color not in COLOR_MODES:
            raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}, got {self.color!r}")
        if not 0.0 <= self.margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {self.margin}")


@dataclass(frozen=True)
class FractalDBParams(ChaosGameRendering):
    """Parameters of the FractalDB generator (and the rendering ones of :class:`ChaosGameRendering`).

    Attributes:
        num_classes: number of categories (IFS systems); labels are 0..num_classes-1.
        instances_per_class: distinct images per category; the dataset repeats after
            ``num_classes * instances_per_class`` images.
        num_maps: inclusive range of the number of affine maps per system.
        min_fill: least fraction of the 64 px check canvas a category's attractor must cover.
        max_scale: every map of a category must have its largest singular value below this.
        max_tries: systems drawn per category before the one closest to ``min_fill`` is kept.
        weight_step: step s of the instance weights 1 +- s, 1 +- 2s (0 turns them off).
        flips: whether instances are flipped (the official four flips).
    """

    num_classes: int = 1000
    instances_per_class: int = 1000
    num_maps: tuple[int, int] = (2, 8)
    min_fill: float = 0.2
    max_scale: float = 0.95
    max_tries: int = 100
    weight_step: float = 0.1
    flips: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.instances_per_class < 1:
            raise ValueError(f"instances_per_class must be >= 1, got {self.instances_per_class}")
        if not 0.0 <= self.weight_step <= 0.25:
            raise ValueError(f"weight_step must be in [0, 0.25] (weights stay in [0.5, 1.5]), got {self.weight_step}")
        self.search()  # num_maps, min_fill, max_scale, max_tries are checked by the shared search

    def search(self) -> fractal.FractalParams:
        """The category search as ``fractal/ifs`` parameters (no upper fill bound, as in FractalDB)."""
        return fractal.FractalParams(
            num_maps=self.num_maps, max_scale=self.max_scale, min_fill=self.min_fill, max_fill=1.0,
            max_tries=self.max_tries,
        )


# ---------------------------------------------------------------- sampling


def categories(class_ids: np.ndarray, seed: int, params: FractalDBParams) -> dict[int, np.ndarray]:
    """The IFS of each distinct category in ``class_ids``: (n_maps, 2, 3).

    A function of (seed, category, search parameters) only, memoised per
    process because the search costs more than a render.
    """
    search = params.search()
    ids = [int(c) for c in np.unique(class_ids)]
    missing = [c for c in ids if (seed, search, c) not in _CATEGORIES]
    if missing:
        if len(_CATEGORIES) + len(missing) > _CACHE_LIMIT:
            _CATEGORIES.clear()
        for c, system in fractal.sample_systems(np.asarray(missing), seed, search).items():
            _CATEGORIES[(seed, search, c)] = system
    return {c: _CATEGORIES[(seed, search, c)] for c in ids}


def weight_variant(system: np.ndarray, variant: int, step: float) -> np.ndarray:
    """Variant ``variant`` (0..24) of a system: 0 is the system, then parameter p of every map times 1 + m*step.

    Variants 1..24 run over the parameters a, b, c, d, e, f (p = (v - 1) // 4)
    and the factors m = -2, -1, 1, 2, as in the official weight files.
    """
    if variant == 0:
        return system
    p, m = divmod(variant - 1, 4)
    row, col = ((0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (1, 2))[p]  # x' = a x + b y + e, y' = c x + d y + f
    varied = np.array(system, dtype=np.float64)
    varied[:, row, col] *= 1.0 + (-2, -1, 1, 2)[m] * step
    return fractal.contract(varied, VARIANT_MAX_SCALE)


def fractaldb_labels(indices: np.ndarray, seed: int, params: FractalDBParams) -> np.ndarray:
    """Each image's category."""
    return class_and_instance(indices, params.num_classes, params.instances_per_class)[0]


# ---------------------------------------------------------------- render


def flip_images(images: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """Apply flip code 0 (none), 1 (vertical), 2 (horizontal) or 3 (both) per image, in place."""
    for code, axes in ((1, (1,)), (2, (2,)), (3, (1, 2))):
        sel = np.flatnonzero(flips == code)
        if len(sel):
            images[sel] = np.flip(images[sel], axis=axes)
    return images


def render_systems(
    systems: list[np.ndarray],
    rngs: list[np.random.Generator],
    size: int,
    points: int | None,
    walkers: int,
    color: str,
    margin: float,
    probs: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Chaos-game render of one system per image, grey or per-map colours on black: uint8 (B, size, size, 3).

    Shared with ``fractal/1p-frac``; each image draws its walk, then its colours, from its ``rngs`` entry.
    """
    pts, map_of_point = fractal.draw_attractors(systems, rngs, points or auto_points(size), walkers, probs)
    if color == "gray":
        lit = fractal.rasterize(pts, size, margin) > 0
        return np.repeat((lit * np.uint8(GRAY))[..., None], 3, axis=-1)
    palettes = np.stack([np.pad(fractal._bright_colors(rng, len(s)), ((0, fractal.MAX_MAPS - len(s)), (0, 0)))
                         for rng, s in zip(rngs, systems)])
    img = fractal.rasterize(pts, size, margin, map_of_point, palettes)
    return np.round(img * 255.0).astype(np.uint8)


def render_fractaldb(
    indices: np.ndarray, seed: int, size: int, params: FractalDBParams, device: str = "cpu"
) -> np.ndarray:
    """Render FractalDB images ``indices``: uint8 (N, size, size, 3)."""
    cls, inst = class_and_instance(indices, params.num_classes, params.instances_per_class)
    systems = categories(cls, seed, params)
    per_image = [weight_variant(systems[int(c)], int(k) % N_WEIGHTS, params.weight_step) for c, k in zip(cls, inst)]
    # the walk is the instance's: images i and i + num_classes * instances_per_class are the same
    rngs = [image_rng(seed, int(c * params.instances_per_class + k), "fractaldb-image") for c, k in zip(cls, inst)]
    images = render_systems(per_image, rngs, size, params.points, params.walkers, params.color, params.margin)
    if params.flips:
        flip_images(images, (inst // N_WEIGHTS) % N_FLIPS)
    return images


register_generator(
    "fractal/fractaldb",
    "FractalDB: IFS categories found by a fill-ratio search; instances are weight variants and flips",
    family="fractal",
    params_cls=FractalDBParams,
    render=render_fractaldb,
    batch_size=64,
    labels=fractaldb_labels,
)
