"""Dead-leaves images: random shapes occluding each other (the paper's first family).

The process (Baradad et al. 2021, after Lee, Mumford and Huang 2001), per image:

* a black ``res x res`` canvas;
* up to ``max_shapes`` shapes, each with a radius ``r`` drawn from
  ``num_radii`` evenly spaced values in ``[rmin, rmax]`` (fractions of
  ``res``) with probability proportional to ``r**-sigma - rmax**-sigma``
  (``r**-3 - 1`` at the defaults), by inverting the discrete CDF; radius in
  pixels ``R = max(int(r * res), 1)``; colour uniform in 0..255 per channel;
  centre a uniform pixel; kind uniform among ``shapes``;
* **occlusion order**: as in the official process, each new shape paints only
  the pixels that are still unpainted, so the *first* shape is in front, and
  drawing stops as soon as no pixel is unpainted. Pixel ``p`` therefore shows
  the first shape of the sequence that covers it, ``owner[p] = min{k : shape k
  covers p}``, and stays black if none of the ``max_shapes`` shapes does.

Shape kinds (centre ``c``, radius ``R`` px; a pixel belongs to a shape when
its centre lies in the closed shape):

* ``circle``: ``|p - c|^2 <= R^2``;
* ``square``: axis-aligned, side ``R * sqrt(2)`` (inscribed in the circle);
* ``oriented_square``: that square rotated by ``theta ~ U(0, 2 pi)``;
* ``rectangle``: axis-aligned, corners ``(+-R cos a, +-R sin a)``, ``a ~ U(0, pi/2)``;
* ``triangle`` / ``quadrilateral``: the convex polygon through 3 / 4 sorted
  angles ``~ U(0, 2 pi)`` on the circle of radius ``R``.

Speed. The official code draws one shape at a time and rescans the canvas
(about 3 images/s per core at 128 px). Here all shapes of an image are sampled
up front; they are then rasterised in growing chunks as horizontal spans (every
shape is convex, so each of its rows is one interval), and ``np.minimum.at``
keeps the lowest shape index per pixel. Before each chunk, shapes whose
bounding box and rows whose span hold no unpainted pixel are dropped (summed
area tables), and rendering stops after the first chunk that leaves nothing
unpainted. Shapes after the covering one cannot change any pixel, so this is
exactly the "first shape in front, stop when covered" process applied to the
sampled sequence (``tests/test_dead_leaves.py`` compares it pixel for pixel
with a one-shape-at-a-time reference).

Textured variant: the mixed process, each shape's region filled with a texture
image (resized to ``res``) instead of a flat colour, sampled at the same
canvas coordinates, optionally circularly shifted by a per-shape random offset
(``texture_shift``; the synthetic textures are periodic, so shifts are
seamless). The official code draws one random image of a pre-generated
Spectrum+Color+WMM dataset per shape. Rendering a texture per shape on the
fly would cost thousands of syntheses per image, so consecutive images share
a *pool*: images ``i`` with the same ``g = i // texture_group`` use the same
``texture_pool`` textures (rendered once per process and cached), and every
shape picks one texture of the pool and an offset from the image's own stream.
Pool textures come from ``texture_generator`` (textures ``g * texture_pool +
j`` of that generator, with a root seed derived from this dataset's seed), or,
if ``texture_dir`` is set, from the image files found under that folder
(each file's centre square, resized; sorted by path; pool ``g`` draws file
numbers uniformly from ``image_rng(seed, g, "texture-files")``). Effect: within one image at most
``texture_pool`` distinct textures appear (each under many offsets), and the
textures repeat across the images of a group, like each image of the official
dataset being reused by many shapes.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..imagefiles import IMAGE_EXTENSIONS, decode_image, is_image_file
from ..rng import image_rng, seed_sequence
from .base import create_generator, register_generator

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "oriented_square", "rectangle", "triangle", "quadrilateral")
CIRCLE, SQUARE, ORIENTED_SQUARE, RECTANGLE, TRIANGLE, QUADRILATERAL = range(len(SHAPE_KINDS))
_IS_POLYGON = np.isin(np.arange(len(SHAPE_KINDS)), (ORIENTED_SQUARE, TRIANGLE, QUADRILATERAL))
_IS_BOX = np.isin(np.arange(len(SHAPE_KINDS)), (SQUARE, RECTANGLE))

# Tolerance of the half-plane tests (in units of edge length x pixels), so that
# pixel centres lying exactly on an edge count as inside.
EDGE_TOL = 1e-9
# Shapes rasterised together: the first chunk, and the growth of later ones.
FIRST_CHUNK = 256
CHUNK_GROWTH = 2


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class DeadLeavesParams:
    """Parameters of the flat-colour dead-leaves process.

    Attributes:
        sigma: radius exponent: p(r) proportional to ``r**-sigma - rmax**-sigma``
            (the paper's ``r**-3 - 1`` at the defaults; zero at ``rmax``).
        rmin, rmax: radius range as a fraction of the image side.
        num_radii: number of evenly spaced radius values in ``[rmin, rmax]``.
        max_shapes: most shapes drawn per image (fewer once the canvas is covered).
        shapes: shape kinds drawn with equal probability (see ``SHAPE_KINDS``).
    """

    sigma: float = 3.0
    rmin: float = 0.03
    rmax: float = 1.0
    num_radii: int = 200
    max_shapes: int = 5000
    shapes: tuple[str, ...] = SHAPE_KINDS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {self.sigma}")
        if not (0 < self.rmin < self.rmax):
            raise ValueError(f"need 0 < rmin < rmax, got rmin={self.rmin}, rmax={self.rmax}")
        if self.rmax > 4:
            raise ValueError(f"rmax is a fraction of the image side and must be <= 4, got {self.rmax}")
        if not (2 <= self.num_radii <= 100_000):
            raise ValueError(f"num_radii must be in 2..100000, got {self.num_radii}")
        if not (1 <= self.max_shapes <= 1_000_000):
            raise ValueError(f"max_shapes must be in 1..1000000, got {self.max_shapes}")
        if not self.shapes:
            raise ValueError("shapes must name at least one shape kind")
        unknown = [s for s in self.shapes if s not in SHAPE_KINDS]
        if unknown:
            raise ValueError(f"unknown shape kind(s) {unknown}; choose from {', '.join(SHAPE_KINDS)}")
        if len(set(self.shapes)) != len(self.shapes):
            raise ValueError(f"shapes lists a kind twice: {self.shapes}")


@dataclass(frozen=True)
class TexturedDeadLeavesParams(DeadLeavesParams):
    """Dead leaves whose regions show textures (see the module docstring).

    Attributes:
        texture_generator: registered generator rendering the textures (with its default parameters).
        texture_dir: folder of texture images used instead of the generator.
        texture_pool: textures available to the shapes of one image.
        texture_group: consecutive images sharing one pool (1: a pool per image).
        texture_shift: shift each shape's texture circularly by a random offset.
    """

    texture_generator: str = "stat/spectrum-color-wmm"
    texture_dir: str | None = None
    texture_pool: int = 32
    texture_group: int = 1000
    texture_shift: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (1 <= self.texture_pool <= 100_000):
            raise ValueError(f"texture_pool must be in 1..100000, got {self.texture_pool}")
        if self.texture_group < 1:
            raise ValueError(f"texture_group must be >= 1, got {self.texture_group}")
        if self.texture_generator.startswith("dead-leaves/textured"):
            raise ValueError("texture_generator cannot be dead-leaves/textured itself")
        if self.texture_dir is not None and not Path(self.texture_dir).is_dir():
            raise ValueError(f"texture_dir {self.texture_dir!r} is not a directory")


# ---------------------------------------------------------------- sampling


@dataclass(frozen=True)
class ShapeSet:
    """The sampled shape sequence of one image (index k = drawing order, 0 in front).

    Arrays have one row per shape (``n = max_shapes``): ``kind`` (int, index
    into ``SHAPE_KINDS``), ``radius_index`` (into the radius grid), ``radius``
    (px), ``cx``, ``cy`` (px), ``colour`` (uint8, (n, 3)) and ``angles``
    (``U(0, 1)``, (n, 4): theta / a / polygon angles, scaled per kind).
    """

    kind: np.ndarray
    radius_index: np.ndarray
    radius: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    colour: np.ndarray
    angles: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)


def radius_grid(params: DeadLeavesParams) -> tuple[np.ndarray, np.ndarray]:
    """The radius values (fractions of the side) and their probabilities."""
    radii = np.linspace(params.rmin, params.rmax, params.num_radii)
    weights = radii ** -params.sigma - params.rmax ** -params.sigma
    return radii, weights / weights.sum()


def sample_shapes(seed: int, index: int, size: int, params: DeadLeavesParams) -> ShapeSet:
    """Draw all ``max_shapes`` shapes of image ``index`` from its own stream."""
    rng = image_rng(seed, index)
    n = params.max_shapes
    radii, probs = radius_grid(params)
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    radius_index = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), params.num_radii - 1)
    centre = rng.integers(0, size, size=(n, 2))
    colour = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    kind_codes = np.array([SHAPE_KINDS.index(s) for s in params.shapes], dtype=np.int64)
    kind = kind_codes[rng.integers(0, len(kind_codes), size=n)]
    angles = rng.random((n, 4))
    radius_px = np.maximum((radii * size).astype(np.int64), 1)
    return ShapeSet(
        kind=kind,
        radius_index=radius_index,
        radius=radius_px[radius_index],
        cx=centre[:, 0],
        cy=centre[:, 1],
        colour=colour,
        angles=angles,
    )


# ---------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """Pixel-exact description of shapes, relative to their centres.

    A pixel at offset ``(dx, dy)`` from the centre belongs to shape k when it is
    inside the bounding box ``dx_lo..dx_hi, dy_lo..dy_hi`` and

    * circle: ``dx^2 + dy^2 <= R^2``;
    * square / rectangle: always (the box is the shape);
    * polygons: for each of the 4 edges (``edge_*`` are (4, shapes), zeros for other kinds),
      ``inside_half_plane(edge_a, half_plane_offset(edge_b, edge_c, dy), dx)``.
    """

    kind: np.ndarray
    radius: np.ndarray
    dx_lo: np.ndarray
    dx_hi: np.ndarray
    dy_lo: np.ndarray
    dy_hi: np.ndarray
    edge_a: np.ndarray
    edge_b: np.ndarray
    edge_c: np.ndarray


def half_plane_offset(b: np.ndarray, c: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The part ``b * dy + c`` of an edge equation that is constant along a row."""
    return b * dy + c


def inside_half_plane(a: np.ndarray, offset: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """``a * dx + offset >= -EDGE_TOL``: written once, so every caller rounds identically."""
    return a * dx + offset >= -EDGE_TOL


def shape_geometry(shapes: ShapeSet, select: slice | np.ndarray = slice(None)) -> Geometry:
    """Bounding boxes and edge equations of the selected shapes (vectorised)."""
    kind = shapes.kind[select]
    radius = shapes.radius[select]
    u = shapes.angles[select]
    dx_lo, dx_hi = -radius, radius.copy()  # circles; boxes and polygons overwrite below
    dy_lo, dy_hi = -radius, radius.copy()

    box = np.flatnonzero(_IS_BOX[kind])
    if len(box):  # axis-aligned: squares are rectangles with a = pi/4
        a = np.where(kind[box] == SQUARE, np.pi / 4, u[box, 0] * (np.pi / 2))
        dx_hi[box] = np.floor(radius[box] * np.cos(a)).astype(np.int64)
        dy_hi[box] = np.floor(radius[box] * np.sin(a)).astype(np.int64)
        dx_lo[box], dy_lo[box] = -dx_hi[box], -dy_hi[box]

    edge_a, edge_b, edge_c = (np.zeros((4, len(kind))) for _ in range(3))
    poly = np.flatnonzero(_IS_POLYGON[kind])
    if len(poly):  # vertices on the circle in increasing angle (counter-clockwise in x, y)
        pk, pu = kind[poly], u[poly].T * (2 * np.pi)  # (4, shapes): one row per vertex
        oriented = pu[0] + np.pi / 4 + np.arange(4)[:, None] * (np.pi / 2)
        triangle = np.sort(pu[:3], axis=0)[[0, 1, 2, 2]]
        phi = np.where(pk == ORIENTED_SQUARE, oriented, np.where(pk == TRIANGLE, triangle, np.sort(pu, axis=0)))
        r = radius[poly].astype(np.float64)
        vx, vy = r * np.cos(phi), r * np.sin(phi)
        ex, ey = vx[[1, 2, 3, 0]] - vx, vy[[1, 2, 3, 0]] - vy
        # cross(e, p - v) = ex * (dy - vy) - ey * (dx - vx) = a dx + b dy + c
        edge_a[:, poly], edge_b[:, poly], edge_c[:, poly] = -ey, ex, ey * vx - ex * vy
        dx_lo[poly] = np.ceil(np.minimum.reduce(vx) - EDGE_TOL)
        dx_hi[poly] = np.floor(np.maximum.reduce(vx) + EDGE_TOL)
        dy_lo[poly] = np.ceil(np.minimum.reduce(vy) - EDGE_TOL)
        dy_hi[poly] = np.floor(np.maximum.reduce(vy) + EDGE_TOL)
    return Geometry(kind, radius, dx_lo, dx_hi, dy_lo, dy_hi, edge_a, edge_b, edge_c)


def _polygon_spans(a: np.ndarray, offset: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer span ``lo..hi`` of the ``dx`` passing all 4 half-planes, per row.

    ``a`` and ``offset`` are (4, rows). The bound from the division is off by
    at most one pixel (when it lies within rounding error of an integer); it is
    corrected with the exact :func:`inside_half_plane` test, which is monotone in
    ``dx``, so spans agree pixel for pixel with testing every pixel.
    """
    big = np.float64(1 << 20)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.clip((-EDGE_TOL - offset) / a, -big, big)
    rising, falling = a > 0, a < 0
    lower = np.where(rising, np.ceil(bound), -big)
    upper = np.where(falling, np.floor(bound), big)
    lower -= rising & inside_half_plane(a, offset, lower - 1)
    upper += falling & inside_half_plane(a, offset, upper + 1)
    lower += rising & ~inside_half_plane(a, offset, lower)
    upper -= falling & ~inside_half_plane(a, offset, upper)
    blocked = np.logical_or.reduce((a == 0) & (offset < -EDGE_TOL))
    span_lo = np.maximum(lo, np.maximum.reduce(lower).astype(np.int64))
    span_hi = np.minimum(hi, np.minimum.reduce(upper).astype(np.int64))
    return span_lo, np.where(blocked, span_lo - 1, span_hi)


def _ragged_arange(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``starts[j] + arange(counts[j])``; also return the row j of each element."""
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    return np.arange(total) + np.repeat(starts - first, counts), rows


def _render_spans(
    geo: Geometry, cx: np.ndarray, cy: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of the shapes on the canvas: (shape position in ``geo``, y, x_lo, x_hi)."""
    y_lo = np.maximum(cy + geo.dy_lo, 0)
    y_hi = np.minimum(cy + geo.dy_hi, size - 1)
    y, shape = _ragged_arange(y_lo, np.maximum(y_hi - y_lo + 1, 0))
    dy = y - cy[shape]
    kind = geo.kind[shape]
    lo, hi = geo.dx_lo[shape], geo.dx_hi[shape]

    circle = np.flatnonzero(kind == CIRCLE)
    if len(circle):
        r = geo.radius[shape[circle]]
        half = np.floor(np.sqrt((r * r - dy[circle] * dy[circle]).astype(np.float64))).astype(np.int64)
        lo[circle], hi[circle] = -half, half

    poly = np.flatnonzero(_IS_POLYGON[kind])
    if len(poly):
        owner = shape[poly]
        b, c, a = (np.take(edge, owner, axis=1) for edge in (geo.edge_b, geo.edge_c, geo.edge_a))  # C-contiguous
        offset = half_plane_offset(b, c, dy[poly].astype(np.float64))
        lo[poly], hi[poly] = _polygon_spans(a, offset, lo[poly], hi[poly])

    x_lo = np.maximum(cx[shape] + lo, 0)
    x_hi = np.minimum(cx[shape] + hi, size - 1)
    keep = x_hi >= x_lo
    return shape[keep], y[keep], x_lo[keep], x_hi[keep]


def owner_map(shapes: ShapeSet, size: int) -> np.ndarray:
    """For each pixel, the first shape covering it (``len(shapes)`` if none): int32 (size, size).

    Shapes are rasterised in growing chunks; before each chunk, shapes and
    rows that cannot reach an unpainted pixel are dropped, and the loop stops
    once every pixel is painted (see the module docstring).
    """
    n = len(shapes)
    owner = np.full(size * size, n, dtype=np.int32)
    start, chunk = 0, FIRST_CHUNK
    while start < n:
        idx = np.arange(start, min(n, start + chunk))
        if start > 0:
            unpainted = (owner == n).reshape(size, size)
            if not unpainted.any():
                break
            idx, row_table = _prune(idx, shapes, unpainted, size)
        geo = shape_geometry(shapes, idx)
        shape, y, x_lo, x_hi = _render_spans(geo, shapes.cx[idx], shapes.cy[idx], size)
        if start > 0:
            row_cells = y * (size + 1)
            keep = row_table[row_cells + x_hi + 1] > row_table[row_cells + x_lo]
            shape, y, x_lo, x_hi = shape[keep], y[keep], x_lo[keep], x_hi[keep]
        pixels, row = _ragged_arange(y * size + x_lo, x_hi - x_lo + 1)
        np.minimum.at(owner, pixels, idx[shape[row]].astype(np.int32))
        start += chunk
        chunk *= CHUNK_GROWTH
    return owner.reshape(size, size)


def _prune(idx: np.ndarray, shapes: ShapeSet, unpainted: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop shapes whose (circumscribed) box holds no unpainted pixel; return row prefix sums too."""
    table = np.zeros((size + 1, size + 1), dtype=np.int32)
    np.cumsum(np.cumsum(unpainted, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
    r = shapes.radius[idx]
    x0 = np.maximum(shapes.cx[idx] - r, 0)
    x1 = np.minimum(shapes.cx[idx] + r, size - 1) + 1
    y0 = np.maximum(shapes.cy[idx] - r, 0)
    y1 = np.minimum(shapes.cy[idx] + r, size - 1) + 1
    count = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    row_table = np.zeros((size, size + 1), dtype=np.int32)
    np.cumsum(unpainted, axis=1, dtype=np.int32, out=row_table[:, 1:])
    return idx[count > 0], row_table.ravel()


# ---------------------------------------------------------------- rendering


def render(indices: np.ndarray, seed: int, size: int, params: DeadLeavesParams, device: str = "cpu") -> np.ndarray:
    """Render flat-colour dead-leaves images: uint8 (N, size, size, 3)."""
    out = np.empty((len(indices), size, size, 3), dtype=np.uint8)
    for j, index in enumerate(indices):
        shapes = sample_shapes(seed, int(index), size, params)
        palette = np.concatenate([shapes.colour, np.zeros((1, 3), np.uint8)])
        out[j] = palette[owner_map(shapes, size)]
    return out


def render_textured(
    indices: np.ndarray, seed: int, size: int, params: TexturedDeadLeavesParams, device: str = "cpu"
) -> np.ndarray:
    """Render textured dead-leaves images: each region shows its shape's texture."""
    out = np.empty((len(indices), size, size, 3), dtype=np.uint8)
    groups = np.asarray(indices, dtype=np.int64) // params.texture_group
    for group in np.unique(groups):
        pool = texture_pool(seed, int(group), size, params, device).reshape(-1, 3)
        for j in np.flatnonzero(groups == group):
            out[j] = _textured_image(seed, int(indices[j]), size, params, pool)
    return out


def _textured_image(seed: int, index: int, size: int, params: TexturedDeadLeavesParams, pool: np.ndarray) -> np.ndarray:
    shapes = sample_shapes(seed, index, size, params)
    owner = owner_map(shapes, size)
    n = len(shapes)
    rng = image_rng(seed, index, "texture")
    texture = rng.integers(0, params.texture_pool, size=n + 1)
    shift = rng.integers(0, size, size=(n + 1, 2)) if params.texture_shift else np.zeros((n + 1, 2), np.int64)
    ys, xs = np.indices((size, size))
    y = (ys + shift[owner, 1]) % size
    x = (xs + shift[owner, 0]) % size
    image = pool[(texture[owner] * size + y) * size + x]
    image[owner == n] = 0
    return image


def texture_pool(seed: int, group: int, size: int, params: TexturedDeadLeavesParams, device: str = "cpu") -> np.ndarray:
    """The ``texture_pool`` textures of image group ``group``: uint8 (P, size, size, 3), cached."""
    if params.texture_dir is not None:
        files = _texture_files(str(Path(params.texture_dir).resolve()))
        picks = image_rng(seed, group, "texture-files").integers(0, len(files), size=params.texture_pool)
        return np.stack([_load_texture(files[p], size) for p in picks])
    return _generated_pool(params.texture_generator, seed, group, size, params.texture_pool, device)


@functools.lru_cache(maxsize=4)
def _generated_pool(generator: str, seed: int, group: int, size: int, pool: int, device: str) -> np.ndarray:
    texture_seed = int(seed_sequence(seed, 0, "dead-leaves-textures").generate_state(1)[0] >> 1)
    textures = create_generator(generator).render(np.arange(pool) + group * pool, texture_seed, size, device=device)
    textures.setflags(write=False)
    return textures


@functools.lru_cache(maxsize=16)
def _texture_files(folder: str) -> tuple[Path, ...]:
    files = tuple(sorted(p for p in Path(folder).rglob("*") if is_image_file(p) and p.is_file()))
    if not files:
        raise UserError(f"texture_dir {folder} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


@functools.lru_cache(maxsize=1024)
def _load_texture(path: Path, size: int) -> np.ndarray:
    """One texture file as uint8 (size, size, 3): the centre square, resized; read-only and cached."""
    from PIL import Image

    try:
        texture = decode_image(path, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # what PIL raises for bad files
        raise UserError(f"cannot read texture image {path}: {exc}") from None
    texture.setflags(write=False)
    return texture


# ---------------------------------------------------------------- variants

_FAMILY = "dead leaves"
register_generator(
    "dead-leaves/squares", "dead leaves of axis-aligned squares", family=_FAMILY,
    params_cls=DeadLeavesParams, render=render, shapes=("square",),
)
register_generator(
    "dead-leaves/oriented", "dead leaves of randomly rotated squares", family=_FAMILY,
    params_cls=DeadLeavesParams, render=render, shapes=("oriented_square",),
)
register_generator(
    "dead-leaves/mixed", "dead leaves of circles, squares, rectangles, triangles, quadrilaterals", family=_FAMILY,
    params_cls=DeadLeavesParams, render=render,
)
register_generator(
    "dead-leaves/textured", "mixed dead leaves whose regions show Spectrum+Color+WMM textures", family=_FAMILY,
    params_cls=TexturedDeadLeavesParams, render=render_textured,
    fast_overrides={"texture_pool": 4},
)
