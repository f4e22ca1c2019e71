"""IFS fractals in the style of FractalDB (Kataoka et al., ACCV 2020).

Each image shows the attractor of a random iterated function system (IFS):
2 to 8 affine maps ``x -> [[a, b], [c, d]] x + [e, f]`` with all six
parameters uniform in [-1, 1]. A map is kept only if it is a contraction (its
largest singular value is below ``max_scale``), so the attractor exists and is
bounded; a system is kept only if its attractor, drawn at a fixed 64 px check
resolution, covers at least ``min_fill`` (not a point or a thin line) and at
most ``max_fill`` (not a filled blob) of its bounding square. Rejected systems
are redrawn from the same stream, at most ``max_tries`` times (then the best
candidate seen is used), so the choice never depends on the render size or
the batch.

Rendering is the chaos game, vectorised over ``walkers`` points per image
and over all images of a batch: every walker starts on the fixed point of a
map (a point of the attractor, so no burn-in is needed), then applies maps
chosen with probabilities proportional to ``|det|``; all visited points are
fitted into the canvas (aspect ratio kept) and scattered with ``np.bincount``.

``num_systems``: if set, image ``i`` draws system ``i % num_systems`` (the
FractalDB category, which is also the image's label) and varies it per image
(each parameter times ``U(1 - jitter, 1 + jitter)``, a random horizontal
flip, its own colours). Otherwise every image is its own system and its label
is its index.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rng import image_rng
from .base import register_generator

COLOR_MODES = ("white", "single", "per-map")
MAX_MAPS = 8
CHECK_SIZE = 64  # resolution of the fill-ratio test (independent of the render size)
CHECK_WALKERS = 256
CHECK_STEPS = 48
DISCARD_STEPS = 8  # first chaos-game steps not drawn (walkers still bunched at their start)
_MAP_CANDIDATES = 32  # maps drawn per round of per-map rejection


@dataclass(frozen=True)
class FractalParams:
    """Parameters of the IFS fractal generator.

    Attributes:
        num_maps: inclusive range of the number of affine maps per system.
        max_scale: every map's largest singular value must be below this (contraction).
        min_fill: least fraction of the 64 px check canvas the attractor must cover.
        max_fill: largest fraction allowed (rejects space-filling blobs).
        max_tries: systems drawn per image before the best one seen is used.
        num_systems: number of distinct systems (categories); None = one per image.
        jitter: relative per-image variation of a shared system's parameters.
        points: chaos-game points drawn per image.
        walkers: points iterated in parallel per image.
        color: "white", "single" (one random colour per image) or "per-map"
            (each point takes the colour of the map that produced it).
        margin: fraction of the canvas left empty on each side.
    """

    num_maps: tuple[int, int] = (2, 8)
    max_scale: float = 0.95
    min_fill: float = 0.1
    max_fill: float = 0.6
    max_tries: int = 50
    num_systems: int | None = None
    jitter: float = 0.1
    points: int = 100_000
    walkers: int = 1024
    color: str = "per-map"
    margin: float = 0.05

    def __post_init__(self) -> None:
        lo, hi = self.num_maps
        if not 2 <= lo <= hi <= MAX_MAPS:
            raise ValueError(f"num_maps must satisfy 2 <= low <= high <= {MAX_MAPS}, got {self.num_maps}")
        if not 0.0 < self.max_scale < 1.0:
            raise ValueError(f"max_scale must be in (0, 1) for contractive maps, got {self.max_scale}")
        if not 0.0 <= self.min_fill < self.max_fill <= 1.0:
            raise ValueError(f"need 0 <= min_fill < max_fill <= 1, got {self.min_fill}, {self.max_fill}")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {self.max_tries}")
        if self.num_systems is not None and self.num_systems < 1:
            raise ValueError(f"num_systems must be >= 1 (or none), got {self.num_systems}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")
        if self.walkers < 1 or self.points < self.walkers:
            raise ValueError(f"need walkers >= 1 and points >= walkers, got {self.points}, {self.walkers}")
        if self.color not in COLOR_MODES:
            raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}, got {self.color!r}")
        if not 0.0 <= self.margin < 0.5:
            raise ValueError(f"margin must be in [0, 0.5), got {self.margin}")


# ---------------------------------------------------------------- sampling


def _draw_maps(rng: np.random.Generator, n_maps: int, max_scale: float) -> np.ndarray:
    """``n_maps`` contractive affine maps (n, 2, 3), parameters uniform in [-1, 1]."""
    kept: list[np.ndarray] = []
    while len(kept) < n_maps:
        cand = rng.uniform(-1.0, 1.0, size=(_MAP_CANDIDATES, 2, 3))
        sigma_max = np.linalg.svd(cand[:, :, :2], compute_uv=False)[:, 0]
        kept.extend(cand[sigma_max < max_scale])
    return np.stack(kept[:n_maps])


def map_probabilities(maps: np.ndarray) -> np.ndarray:
    """Chaos-game probabilities proportional to ``|det|`` of each map's linear part.

    A small floor keeps nearly singular maps (thin strokes) visible.
    """
    det = np.abs(np.linalg.det(maps[..., :2]))
    det = np.maximum(det, 1e-3 * det.max(axis=-1, keepdims=True) + 1e-12)
    return det / det.sum(axis=-1, keepdims=True)


def _pad_maps(systems: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack systems of different sizes into (B, MAX_MAPS, 2, 3) maps and (B, MAX_MAPS) probabilities."""
    maps = np.zeros((len(systems), MAX_MAPS, 2, 3))
    probs = np.zeros((len(systems), MAX_MAPS))
    for b, sys_ in enumerate(systems):
        maps[b, : len(sys_)] = sys_
        probs[b, : len(sys_)] = map_probabilities(sys_)
    return maps, probs


def _draw_walk(rng: np.random.Generator, probs: np.ndarray, steps: int, walkers: int) -> tuple[np.ndarray, int]:
    """Map choices (steps, walkers) drawn with ``probs``, and the start map index."""
    cdf = np.cumsum(probs)
    last_map = np.flatnonzero(probs)[-1]  # never pick a zero-probability (padding) entry, even on rounding
    u = rng.random((steps, walkers)) * cdf[-1]
    # the number of cdf entries <= u, at most last_map (searchsorted(side="right"), but ~10x faster for <= 8 maps)
    choices = np.zeros(u.shape, np.int8)
    for bound in cdf[:last_map]:
        choices += u >= bound
    return choices.astype(np.int64), int(choices[0, 0])


def _fixed_point(affine: np.ndarray) -> np.ndarray:
    """The point ``x = A x + t`` of a contraction (lies on the attractor)."""
    return np.linalg.solve(np.eye(2) - affine[:, :2], affine[:, 2])


def chaos_game(maps: np.ndarray, choices: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Iterate all walkers of all images: points (B, steps, walkers, 2) float32.

    Args:
        maps: (B, M, 2, 3) affine maps per image.
        choices: (B, steps, walkers) map index applied at each step.
        starts: (B, 2) start point per image (shared by its walkers).
    """
    n_img, steps, walkers = choices.shape
    coef = [maps[:, :, r, c].ravel() for r in range(2) for c in range(3)]  # a b e c d f: (B * M,)
    row = (np.arange(n_img) * maps.shape[1])[:, None]  # first map of each image in the flat tables
    x = np.repeat(starts[:, :1], walkers, axis=1)
    y = np.repeat(starts[:, 1:], walkers, axis=1)
    out = np.empty((n_img, steps, walkers, 2), dtype=np.float32)  # float32 is ample for pixels
    for t in range(steps):
        flat = choices[:, t] + row
        a, b, e, c, d, f = (k.take(flat) for k in coef)
        x, y = a * x + b * y + e, c * x + d * y + f
        out[:, t, :, 0] = x
        out[:, t, :, 1] = y
    return out


def rasterize(
    points: np.ndarray, size: int, margin: float, map_of_point: np.ndarray | None = None, palettes: np.ndarray | None = None
) -> np.ndarray:
    """Fit each image's points into a ``size`` canvas and scatter them.

    Args:
        points: (B, P, 2) attractor points.
        map_of_point: (B, P) palette entry of each point (the map that produced it).
        palettes: (B, K, 3) colours in [0, 1].
    Returns:
        (B, size, size, 3) mean colour of the points in each pixel (0 where
        empty), or (B, size, size) hit counts when no palette is given.
    """
    n_img = points.shape[0]
    # per coordinate: reducing the (B, P, 2) array over axis 1 directly is ~30x slower
    lo = np.stack([points[..., 0].min(axis=1), points[..., 1].min(axis=1)], axis=-1)[:, None]
    hi = np.stack([points[..., 0].max(axis=1), points[..., 1].max(axis=1)], axis=-1)[:, None]
    extent = np.maximum((hi - lo).max(axis=2, keepdims=True), 1e-12)
    inner = size * (1.0 - 2.0 * margin)
    centred = (points - (lo + hi) / 2) * (inner / extent).astype(points.dtype) + np.float32(size / 2)
    # fitted, aspect kept, centred; coordinates are >= 0, so truncation = floor
    pix = np.minimum(centred, np.float32(size - 1)).astype(np.int64)
    flat = (np.arange(n_img)[:, None] * size + pix[..., 1]) * size + pix[..., 0]  # row = y
    if palettes is None or map_of_point is None:
        return np.bincount(flat.ravel(), minlength=n_img * size * size).reshape(n_img, size, size).astype(np.float64)
    n_col = palettes.shape[1]
    # hits per (pixel, palette entry): one unweighted bincount, then a small matmul
    hits = np.bincount((flat * n_col + map_of_point).ravel(), minlength=n_img * size * size * n_col)
    hits = hits.reshape(n_img, size * size, n_col).astype(np.float64)
    rgb = hits @ palettes / np.maximum(hits.sum(axis=2, keepdims=True), 1.0)
    return rgb.reshape(n_img, size, size, 3)


def fill_ratio(systems: list[np.ndarray], rngs: list[np.random.Generator]) -> np.ndarray:
    """Fraction of the 64 px check canvas covered by each system's attractor (vectorised)."""
    maps, probs = _pad_maps(systems)
    walks = [_draw_walk(rng, p, CHECK_STEPS, CHECK_WALKERS) for rng, p in zip(rngs, probs)]
    choices = np.stack([w[0] for w in walks])
    starts = np.stack([_fixed_point(m[w[1]]) for m, w in zip(maps, walks)])
    pts = chaos_game(maps, choices, starts)[:, DISCARD_STEPS:].reshape(len(systems), -1, 2)
    hits = rasterize(pts, CHECK_SIZE, margin=0.0)
    return (hits > 0).mean(axis=(1, 2))


def sample_systems(system_ids: np.ndarray, seed: int, params: FractalParams) -> dict[int, np.ndarray]:
    """The IFS of each distinct system id: (n_maps, 2, 3), passing the fill filter.

    System ``s`` draws only from ``image_rng(seed, s, "ifs-system")``; all
    pending systems are tested together, round after round.
    """
    ids = [int(s) for s in np.unique(system_ids)]
    rngs = {s: image_rng(seed, s, "ifs-system") for s in ids}
    best: dict[int, tuple[float, np.ndarray]] = {}
    pending = list(ids)
    lo, hi = params.num_maps
    for _ in range(params.max_tries):
        if not pending:
            break
        cands = [_draw_maps(rngs[s], int(rngs[s].integers(lo, hi + 1)), params.max_scale) for s in pending]
        fills = fill_ratio(cands, [rngs[s] for s in pending])
        still: list[int] = []
        for s, cand, fill in zip(pending, cands, fills):
            ok = params.min_fill <= fill <= params.max_fill
            # distance to the accepted band; accepted systems score 0
            score = 0.0 if ok else min(abs(fill - params.min_fill), abs(fill - params.max_fill))
            if s not in best or score < best[s][0]:
                best[s] = (score, cand)
            if not ok:
                still.append(s)
        pending = still
    return {s: best[s][1] for s in ids}


def system_ids(indices: np.ndarray, params: FractalParams) -> np.ndarray:
    """The system (category) of each image: ``i % num_systems``, or ``i`` itself."""
    idx = np.asarray(indices, dtype=np.int64)
    return idx % params.num_systems if params.num_systems else idx


def fractal_labels(indices: np.ndarray, seed: int, params: FractalParams) -> np.ndarray:
    """Labels for supervised use: the IFS identity of each image."""
    return system_ids(indices, params)


def fractal_num_classes(params: FractalParams) -> int | None:
    """``num_systems``, or None when every image is its own system (labels unbounded)."""
    return params.num_systems


def contract(maps: np.ndarray, max_scale: float) -> np.ndarray:
    """A copy of ``maps`` (n, 2, 3) whose linear parts are scaled down to a largest singular value <= ``max_scale``.

    Keeps a perturbed system contractive (its chaos game bounded); maps already
    below the bound are unchanged.
    """
    out = np.array(maps, dtype=np.float64)
    sigma = np.linalg.svd(out[:, :, :2], compute_uv=False)[:, :1]
    shrink = np.minimum(1.0, max_scale / np.maximum(sigma, 1e-12))
    out[:, :, :2] *= shrink[:, :, None]
    return out


def _vary(system: np.ndarray, rng: np.random.Generator, params: FractalParams) -> np.ndarray:
    """Per-image variation of a shared system, kept contractive."""
    varied = system * rng.uniform(1 - params.jitter, 1 + params.jitter, size=system.shape)
    if rng.random() < 0.5:  # horizontal flip: conjugate every map by diag(-1, 1)
        varied = varied * np.array([[1.0, -1.0, -1.0], [-1.0, 1.0, 1.0]])
    return contract(varied, params.max_scale)


def draw_attractors(
    systems: list[np.ndarray],
    rngs: list[np.random.Generator],
    points: int,
    walkers: int,
    probs: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Chaos-game points of every system, all images at once.

    Each image draws its walk (``walkers`` parallel walkers) from its own
    ``rngs`` entry, with map probabilities ``probs`` (default ``|det|``).

    Returns:
        (B, points, 2) float32 attractor points and (B, points) the map that
        produced each point.
    """
    steps = DISCARD_STEPS + -(-points // walkers)
    if probs is None:
        probs = [map_probabilities(s) for s in systems]
    walks = [_draw_walk(rng, p, steps, walkers) for rng, p in zip(rngs, probs)]
    maps, _ = _pad_maps(systems)
    choices = np.stack([w[0] for w in walks])
    starts = np.stack([_fixed_point(m[w[1]]) for m, w in zip(maps, walks)])
    n_img = len(systems)
    pts = chaos_game(maps, choices, starts)[:, DISCARD_STEPS:].reshape(n_img, -1, 2)[:, :points]
    return pts, choices[:, DISCARD_STEPS:].reshape(n_img, -1)[:, :points]


def _bright_colors(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random RGB colours in [0, 1] whose brightest channel is 1 (visible on black)."""
    c = rng.uniform(0.0, 1.0, size=(n, 3))
    return c / c.max(axis=1, keepdims=True)


# ---------------------------------------------------------------- render


def render_fractal(
    indices: np.ndarray, seed: int, size: int, params: FractalParams, device: str = "cpu"
) -> np.ndarray:
    """Render IFS fractal images ``indices``: uint8 (N, size, size, 3), black background."""
    sys_of = system_ids(indices, params)
    systems = sample_systems(sys_of, seed, params)
    # per image: variation, then walk, then colours, each from the image's own stream
    rngs = [image_rng(seed, int(i), "ifs-image") for i in indices]
    per_image = [_vary(systems[int(s)], rng, params) if params.num_systems else systems[int(s)]
                 for s, rng in zip(sys_of, rngs)]
    pts, map_of_point = draw_attractors(per_image, rngs, params.points, params.walkers)
    if params.color == "white":
        img = (rasterize(pts, size, params.margin) > 0)[..., None] * np.ones(3)
    else:
        palettes = []
        for rng, system in zip(rngs, per_image):
            n_col = 1 if params.color == "single" else len(system)
            palettes.append(np.pad(_bright_colors(rng, n_col), ((0, MAX_MAPS - n_col), (0, 0))))
        if params.color == "single":
            map_of_point = np.zeros_like(map_of_point)
        img = rasterize(pts, size, params.margin, map_of_point, np.stack(palettes))
    return np.round(img * 255.0).astype(np.uint8)


register_generator(
    "fractal/ifs",
    "FractalDB-style IFS fractals: random contractive affine systems, chaos game, fill-ratio filter",
    family="fractal",
    params_cls=FractalParams,
    render=render_fractal,
    batch_size=32,
    labels=fractal_labels,
    num_classes=fractal_num_classes,
)
