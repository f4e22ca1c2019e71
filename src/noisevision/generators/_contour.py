"""Radial contours: the drawing shared by ``contour/rcdb`` and ``contour/visualatom``.

Both official renderers (RCDB, Kataoka et al. CVPR 2022; VisualAtom,
Takashima et al. CVPR 2023) draw the same kind of picture on a 512 px canvas:
a polygon of V vertices at the angles 2 pi k / V around a centre, then L more
polygons, each moving every vertex outward along its angle by a step of its
own (a constant, Perlin noise and, for VisualAtom, two sine waves), separately
in x and y, and stroking the polygon 1 px wide in its own grey. A family's
sampler gives those radii in pixels of the 512 px reference canvas
(:class:`Contours`); :func:`render_contours` scales them to the output size
and strokes every polygon of every image of the batch at once.

Strokes: every polygon edge is clipped to the canvas and sampled at most one
pixel apart; each sample
adds its share of the stroke's area (length times width; the width is one
reference pixel, ``size / 512`` px, at most 1 px) to its pixel. A pixel shows the area-weighted mean colour of the strokes over it,
blended with the background by the area they cover (all of it once that area
reaches one pixel). At 512 px a stroke is the official 1 px line; at smaller
sizes the picture is that image averaged down, not strokes widened to whole
pixels. Overlapping strokes mix where the official drawing lets the last one
cover the others.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REF_SIZE = 512  # the official canvas; sampler lengths are in its pixels
BACKGROUNDS = {"black": 0.0, "white": 255.0}
COLOR_MODES = ("gray", "color")


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
    position's cell: float32 in about [-0.9, 0.9]. 16 random bits per value
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


DIRECT_SAMPLES = 8  # edges needing up to this many samples are expanded by broadcasting, longer ones by np.repeat


def _stroke_samples(c: Contours, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel of every sample of one image's strokes, and its weights (1 + C, S): stroke area, area times colour.

    Per-edge quantities are kept as rows of one (fields, edges) array, so that
    selecting edges is one ``take`` and every operation runs along long rows.
    """
    scale = np.float32(size / REF_SIZE)
    n_poly, n_vert = c.radii.shape[0], c.radii.shape[1] // 2
    theta = (2.0 * np.pi / n_vert) * np.arange(n_vert)
    pts = np.empty((4, n_poly, n_vert), np.float32)  # x, y of vertex k and of vertex k + 1 (closing each polygon)
    np.multiply(c.radii[:, :n_vert], (np.cos(theta) * scale).astype(np.float32), out=pts[0])
    np.multiply(c.radii[:, n_vert:], (np.sin(theta) * scale).astype(np.float32), out=pts[1])
    pts[0] += np.float32(c.center[0]) * scale
    pts[1] += np.float32(c.center[1]) * scale
    pts[2:, :, :-1], pts[2:, :, -1] = pts[:2, :, 1:], pts[:2, :, 0]
    x, y, x1, y1 = pts
    # only edges whose bounding box meets the canvas (much of a large ring lies off it)
    edge = np.flatnonzero((np.maximum(x, x1) >= 0) & (np.minimum(x, x1) < size)
                          & (np.maximum(y, y1) >= 0) & (np.minimum(y, y1) < size))
    n_col = c.colors.shape[1]
    ed = np.empty((5 + n_col, len(edge)), np.float32)  # x0, y0, dx, dy, area per sample, area x colour
    ed[:4] = pts.reshape(4, -1).take(edge, axis=1)
    ed[2:4] -= ed[:2]
    x0, y0, ex, ey = ed[:4]
    # cut the edges that leave the canvas down to their visible part
    cross = np.flatnonzero((np.minimum(x0, x0 + ex) < 0) | (np.maximum(x0, x0 + ex) >= size)
                           | (np.minimum(y0, y0 + ey) < 0) | (np.maximum(y0, y0 + ey) >= size))
    if len(cross):
        cx0, cy0, cex, cey = ed[:4].take(cross, axis=1)
        t0, t1 = _clip_to_canvas(cx0, cy0, cex, cey, size)
        keep = np.maximum(t1 - t0, 0.0)
        ed[:4, cross] = np.stack([cx0 + t0 * cex, cy0 + t0 * cey, cex * keep, cey * keep])
    length = np.sqrt(ex * ex + ey * ey)
    n = np.ceil(length)  # samples at most 1 px apart (0: nothing visible)
    np.multiply(length / np.maximum(n, np.float32(1.0)), min(np.float32(1.0), scale), out=ed[4])  # 1 ref px wide
    np.multiply(c.colors.T[:, edge // n_vert], ed[4], out=ed[5:])
    top = np.float32(size - 1)
    pix, weights = [], []

    def add(fields: np.ndarray, frac: np.ndarray, k: int) -> None:
        sx = np.minimum(fields[0] + frac * fields[2], top).astype(np.int32)
        sy = np.minimum(fields[1] + frac * fields[3], top).astype(np.int32)
        pix.append((sy * size + sx).ravel())
        weights.append(np.tile(fields[4:], (1, k)))

    for k in range(1, DIRECT_SAMPLES + 1):  # edges with k samples: by broadcasting, as (k, edges)
        sel = np.flatnonzero(n == k)
        if len(sel):
            add(ed.take(sel, axis=1), ((np.arange(k) + 0.5) / k).astype(np.float32)[:, None], k)
    sel = np.flatnonzero(n > DIRECT_SAMPLES)  # long edges: their samples by np.repeat
    if len(sel):
        k = n[sel].astype(np.int64)
        rep = np.repeat(sel, k)
        first = np.repeat(np.cumsum(k) - k, k)
        add(ed.take(rep, axis=1), ((np.arange(len(rep)) - first) + 0.5).astype(np.float32) / n[rep], 1)
    if not pix:
        return np.zeros(0, np.intp), np.zeros((1 + n_col, 0), np.float32)
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
