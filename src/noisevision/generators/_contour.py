"""Radial contours: the drawing shared by ``contour/rcdb`` and ``contour/visualatom``.

Both official renderers (RCDB, Kataoka et al. CVPR 2022; VisualAtom,
Takashima et al. CVPR 2023) draw the same kind of picture on a 512 px canvas:
they start from a polygon of V vertices at the angles 2 pi k / V around a
centre and, L times, move every vertex outward along its angle by a step of
its own (a constant, Perlin noise and, for VisualAtom, two sine waves),
separately in x and y, and stroke the polygon 1 px wide in its own grey. A family's
sampler gives those radii in pixels of the 512 px reference canvas
(:class:`Contours`); :func:`render_contours` scales them to the output size
and strokes them, all the polygons of an image at once.

Strokes: every polygon edge is clipped to the canvas and sampled at most one
pixel apart; each sample adds its share of the stroke's area (length times
width; the width is one reference pixel, ``size / 512`` px, at most 1 px) to
its pixel. A pixel shows the area-weighted mean colour of the strokes over
it, blended with the background by the area they cover (all of it once that
area reaches one pixel). At 512 px a stroke is the official 1 px line; at
smaller sizes the picture is that image averaged down, not strokes widened to
whole pixels. Overlapping strokes mix where the official drawing lets the
last one cover the others.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rng import image_rng
from .base import class_and_instance

REF_SIZE = 512  # the official canvas; sampler lengths are in its pixels
BACKGROUNDS = {"black": 0.0, "white": 255.0}
COLOR_MODES = ("gray", "color")


def check_drawing(params) -> None:
    """Check the parameters RCDB and VisualAtom share: ``num_classes``, ``instances_per_class``,
    ``max_oval``, ``center_range``, ``color``, ``background`` (ValueError)."""
    if params.num_classes < 1 or params.instances_per_class < 1:
        raise ValueError(f"num_classes and instances_per_class must be >= 1, got {params.num_classes}, "
                         f"{params.instances_per_class}")
    if params.max_oval < 1:
        raise ValueError(f"max_oval must be >= 1, got {params.max_oval}")
    if not 0.0 <= params.center_range <= 1.0:
        raise ValueError(f"center_range must be in [0, 1], got {params.center_range}")
    if params.color not in COLOR_MODES:
        raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}, got {params.color!r}")
    if params.background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, got {params.background!r}")


@dataclass(frozen=True)
class Contours:
    """One image's polygons, in pixels of the 512 px reference canvas.

    Vertex k of polygon l sits at ``(cx + cos(t_k) radii[l, k], cy + sin(t_k) radii[l, V + k])``
    with ``t_k = 2 pi k / V``.

    Attributes:
        center: (cx, cy).
        radii: (L, 2V) distances along x (first V columns) and along y (last V).
        colors: (L, 1) grey or (L, 3) RGB of each polygon, in [0, 255].
    """

    center: tuple[float, float]
    radii: np.ndarray
    colors: np.ndarray


def _perlin_table(levels: int = 256) -> np.ndarray:
    """``pnoise1`` values for every (position in the cell, pair of gradient hashes): float32 (levels * 256,).

    Entry ``j * 256 + h`` is ``0.4 lerp(f(t), g0 t, g1 (t - 1))`` at ``t = (j + 0.5) / levels``
    with the quintic fade f and the gradients of the hashes ``h & 15`` and
    ``h >> 4``: ``-1`` when the hash has bit 3 set, else ``1 + (hash & 7)``.
    """
    t = ((np.arange(levels) + 0.5) / levels)[:, None]
    h = np.arange(256)[None, :]

    def gradient(bits: np.ndarray) -> np.ndarray:
        return np.where(bits & 8, -1.0, (bits & 7) + 1.0)

    g0, g1 = gradient(h & 15), gradient(h >> 4)
    fade = t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
    return (0.4 * (g0 * t + fade * (g1 * (t - 1.0) - g0 * t))).astype(np.float32).ravel()


_PERLIN = _perlin_table()


def perlin_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` values of 1-D Perlin noise at uniformly random points, as the official scripts draw them.

    The scripts call ``noise.pnoise1`` at a uniform random position for every
    vertex, so the values are independent, each a blend of the two gradients
    (-1 or 1..8, half and half, as that package draws them) of the
    position's cell: float32 within [-0.96, 0.96]. 16 random bits per value
    pick the position in the cell (256 levels) and the two gradients from a
    table.
    """
    bits = rng.bit_generator.random_raw(-(-n // 4)).view(np.uint16)[:n]
    return np.take(_PERLIN, bits)


def grow_radii(
    rng: np.random.Generator, n_polygons: int, start: tuple[float, float], const: np.ndarray, noise: float
) -> np.ndarray:
    """Radii (L, 2V) of polygons 1..L: ``start`` (x, y) plus the running sum of the outward steps.

    Each polygon moves vertex k out by ``const[k] - noise * p``, a fresh
    Perlin value p for every vertex, polygon and coordinate.
    """
    n_vert = len(const)
    radii = perlin_values(rng, n_polygons * 2 * n_vert).reshape(n_polygons, 2 * n_vert)
    radii *= np.float32(-noise)
    radii += np.concatenate([const, const]).astype(np.float32)
    radii[0, :n_vert] += np.float32(start[0])
    radii[0, n_vert:] += np.float32(start[1])
    for row in range(1, n_polygons):  # running sum over polygons (faster than np.cumsum on this layout)
        radii[row] += radii[row - 1]
    return radii


def random_colors(rng: np.random.Generator, n: int, mode: str) -> np.ndarray:
    """(n, 1) random greys or (n, 3) random RGB colours, in [0, 255]."""
    return rng.integers(0, 256, size=(n, 1 if mode == "gray" else 3)).astype(np.float32)


def _clip_to_canvas(x0, y0, dx, dy, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Liang-Barsky: the parameter range [t0, t1] of each segment ``p0 + t d`` inside [0, size]^2 (t0 >= t1: outside)."""
    t0 = np.zeros_like(x0)
    t1 = np.ones_like(x0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for p, q in ((-dx, x0), (dx, size - x0), (-dy, y0), (dy, size - y0)):  # inside where p t <= q
            r = q / p
            t0 = np.where(p < 0, np.maximum(t0, r), t0)
            t1 = np.where(p > 0, np.minimum(t1, r), t1)
            t1 = np.where((p == 0) & (q < 0), -1.0, t1)  # parallel to this edge and beyond it
    return t0, t1


DIRECT_SAMPLES = 4  # edges needing up to this many samples are expanded by broadcasting, longer ones by np.repeat


def _stroke_samples(c: Contours, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel of every sample of one image's strokes, and its weights (1 + C, S): stroke area, area times colour.

    Edges with both ends on the canvas and at most ``DIRECT_SAMPLES`` px long
    (most of them) get k samples each by broadcasting, one group per k; the
    others (longer, or leaving the canvas and cut to their visible part) get
    theirs through ``np.repeat``. All arrays are laid out with the long axis
    last, which numpy runs much faster than many short inner loops.
    """
    scale = np.float32(size / REF_SIZE)
    width = min(np.float32(1.0), scale)  # strokes are 1 reference px wide
    n_vert = c.radii.shape[1] // 2
    theta = (2.0 * np.pi / n_vert) * np.arange(n_vert)
    x = np.float32(c.center[0]) * scale + (np.cos(theta) * scale).astype(np.float32) * c.radii[:, :n_vert]
    y = np.float32(c.center[1]) * scale + (np.sin(theta) * scale).astype(np.float32) * c.radii[:, n_vert:]
    x1, y1 = np.empty_like(x), np.empty_like(y)  # edge k joins vertex k to k + 1, closing each polygon
    for nxt, v in ((x1, x), (y1, y)):
        nxt[:, :-1], nxt[:, -1] = v[:, 1:], v[:, 0]
    dx, dy = x1 - x, y1 - y
    length = np.sqrt(dx * dx + dy * dy)
    on = (x >= 0) & (x < size) & (y >= 0) & (y < size)
    inside = on & np.roll(on, -1, axis=1)  # both ends on the canvas
    grid = [a.ravel() for a in (x, y, dx, dy, length)]
    colors = c.colors.T  # (C, polygons)
    top = np.float32(size - 1)
    pix, weights = [], []

    def emit(edges: np.ndarray, x0, y0, ex, ey, frac: np.ndarray, area: np.ndarray) -> None:
        """Samples at ``frac`` along ``edges`` (from ``x0, y0`` by ``ex, ey``), each covering ``area``."""
        sx = np.minimum(x0 + frac * ex, top).astype(np.int32)
        sy = np.minimum(y0 + frac * ey, top).astype(np.int32)
        pix.append((sy * size + sx).ravel())
        w = np.empty((1 + len(colors), len(edges)), np.float32)
        w[0] = area
        np.multiply(colors[:, edges // n_vert], area, out=w[1:])
        weights.append(np.tile(w, (1, sx.shape[0])) if sx.ndim == 2 else w)  # (k, edges) samples: k copies

    n = np.where(inside, np.ceil(length), 0).ravel()  # samples at most 1 px apart
    for k in range(1, DIRECT_SAMPLES + 1):
        edges = np.flatnonzero(n == k)
        if len(edges):
            x0, y0, ex, ey, span = (a.take(edges) for a in grid)
            emit(edges, x0, y0, ex, ey, ((np.arange(k) + 0.5) / k).astype(np.float32)[:, None], span * (width / k))
    near = ~inside & (np.maximum(x, x1) >= 0) & (np.minimum(x, x1) < size) & (np.maximum(y, y1) >= 0) & (np.minimum(y, y1) < size)
    edges = np.flatnonzero((n > DIRECT_SAMPLES) | near.ravel())
    if len(edges):
        x0, y0, ex, ey, span = (a.take(edges) for a in grid)
        t0, t1 = _clip_to_canvas(x0, y0, ex, ey, size)
        keep = np.maximum(t1 - t0, 0.0)
        x0, y0, ex, ey, span = x0 + t0 * ex, y0 + t0 * ey, ex * keep, ey * keep, span * keep
        m = np.ceil(span)
        count = m.astype(np.int64)
        rep = np.repeat(np.arange(len(edges)), count)
        frac = (np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count) + 0.5).astype(np.float32) / m[rep]
        emit(edges[rep], x0[rep], y0[rep], ex[rep], ey[rep], frac, (span / np.maximum(m, 1) * width)[rep])
    if not pix:
        return np.zeros(0, np.intp), np.zeros((1 + len(colors), 0), np.float32)
    return np.concatenate(pix).astype(np.intp), np.concatenate(weights, axis=1)


def render_contours(sets: list[Contours], size: int, background: str) -> np.ndarray:
    """Stroke every image's polygons on a ``background`` canvas: uint8 (B, size, size, 3)."""
    n_pix = size * size
    bg = BACKGROUNDS[background]
    out = np.empty((len(sets), size, size, 3), np.uint8)
    for b, c in enumerate(sets):
        pix, weights = _stroke_samples(c, size)
        covered, *paint = (np.bincount(pix, w, minlength=n_pix) for w in weights)
        img = bg * (1.0 - np.minimum(covered, 1.0))[:, None] + np.stack(paint, -1) / np.maximum(covered, 1.0)[:, None]
        out[b] = np.clip(np.round(img), 0, 255).astype(np.uint8).reshape(size, size, -1)  # grey fills all 3
    return out


def render_family(indices: np.ndarray, seed: int, size: int, params, category, sample_instance, stream: str) -> np.ndarray:
    """Render a contour family's images: ``category(c, seed, params)`` fixes a category,
    ``sample_instance(category, rng, params)`` draws an image's polygons from the stream
    ``(seed, c * instances_per_class + k)`` of its instance, so the data set repeats after
    ``num_classes * instances_per_class`` images."""
    cls, inst = class_and_instance(indices, params.num_classes, params.instances_per_class)
    cats = {int(c): category(int(c), seed, params) for c in np.unique(cls)}
    sets = [sample_instance(cats[int(c)], image_rng(seed, int(c * params.instances_per_class + k), stream), params)
            for c, k in zip(cls, inst)]
    return render_contours(sets, size, params.background)
