"""RCDB, the Radial Contour DataBase (Kataoka et al., "Replacing Labeled Real-image
Datasets with Auto-generated Contours", CVPR 2022).

Each image shows up to 200 concentric, noisy polygons (see ``_contour`` for
the drawing). Following the official renderer, on a 512 px reference canvas
scaled to the output size:

* a category (stream ``(seed, c)``) fixes the number of vertices (an
  exponential of mean ``mean_vertices`` kept within 3..``max_vertices``), the
  number of polygons (1..``max_contours``), the noise strength ``n``
  (uniform in [0, ``max_noise``]) and the spacing ``w`` (uniform in [0,
  ``max_line_width``]; the official "line width" is how far each polygon
  moves out beyond the previous one);
* an instance draws the start radius (0..``max_radius``), an ellipse ratio in
  x and y (each in [1, ``max_oval``]), the centre (uniform within
  ``center_range`` of the canvas around its middle), one grey per polygon, and
  the noise: every polygon moves each vertex out by ``w + n - 2 n p``, p a
  1-D Perlin value drawn per vertex, separately in x and y.

Image ``i`` is instance ``(i // num_classes) % instances_per_class`` of
category ``i % num_classes`` (its label); the data set repeats after
``num_classes * instances_per_class`` images, like RCDB-1k (1000 x 1000).
Lines are grey on white as in the official script (``background=black`` and
``color=color`` for the other readings).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..rng import image_rng
from . import _contour
from .base import class_and_instance, register_generator


@dataclass(frozen=True)
class RCDBParams:
    """Parameters of the RCDB generator (lengths in pixels of a 512 px canvas).

    Attributes:
        num_classes: number of categories; labels are 0..num_classes-1.
        instances_per_class: distinct images per category.
        mean_vertices: mean of the exponential the vertex count is drawn from.
        max_vertices: largest vertex count (the smallest is 3).
        max_contours: largest number of polygons per image (the smallest is 1).
        max_noise: largest Perlin noise strength of a category.
        max_line_width: largest outward step ("line width") of a category.
        max_radius: largest start radius of an instance.
        max_oval: largest ellipse ratio of an instance along x or y.
        center_range: the centre is uniform within this fraction of the canvas around its middle.
        color: "gray" (one grey per polygon, official) or "color" (random RGB per polygon).
        background: "white" (official) or "black".
    """

    num_classes: int = 1000
    instances_per_class: int = 1000
    mean_vertices: float = 100.0
    max_vertices: int = 200
    max_contours: int = 200
    max_noise: float = 4.0
    max_line_width: float = 0.1
    max_radius: int = 100
    max_oval: float = 2.0
    center_range: float = 400 / 512
    color: str = "gray"
    background: str = "white"

    def __post_init__(self) -> None:
        if self.mean_vertices <= 0 or self.max_vertices < 3:
            raise ValueError(f"need mean_vertices > 0 and max_vertices >= 3, got {self.mean_vertices}, {self.max_vertices}")
        if self.max_contours < 1:
            raise ValueError(f"max_contours must be >= 1, got {self.max_contours}")
        if self.max_noise < 0 or self.max_line_width < 0 or self.max_radius < 0:
            raise ValueError("max_noise, max_line_width and max_radius must be >= 0")
        _contour.check_drawing(self)


@dataclass(frozen=True)
class RCDBCategory:
    """The parameters one RCDB category fixes (see ``category``)."""

    vertices: int
    contours: int
    noise: float
    line_width: float


def category(c: int, seed: int, params: RCDBParams) -> RCDBCategory:
    """Category ``c``'s parameters: a function of (seed, c, params) only."""
    rng = image_rng(seed, c, "rcdb-class")
    # vertex count: floor of an exponential of mean m conditioned on [3, max + 1) (inverse CDF, one draw)
    span = 1.0 - math.exp(-(params.max_vertices + 1 - 3) / params.mean_vertices)
    vertices = min(params.max_vertices, 3 + int(-params.mean_vertices * math.log1p(-rng.random() * span)))
    return RCDBCategory(
        vertices=vertices,
        contours=int(rng.integers(1, params.max_contours + 1)),
        noise=float(rng.uniform(0.0, params.max_noise)),
        line_width=float(rng.uniform(0.0, params.max_line_width)),
    )


def rcdb_labels(indices: np.ndarray, seed: int, params: RCDBParams) -> np.ndarray:
    """Each image's category."""
    return class_and_instance(indices, params.num_classes, params.instances_per_class)[0]


def sample_instance(cat: RCDBCategory, rng: np.random.Generator, params: RCDBParams) -> _contour.Contours:
    """One image's polygons from its own stream."""
    radius = float(rng.integers(0, params.max_radius + 1))
    oval_x, oval_y = rng.uniform(1.0, params.max_oval, size=2)
    cx, cy = _contour.REF_SIZE / 2 * (1.0 + params.center_range * rng.uniform(-1.0, 1.0, size=2))
    const = np.full(cat.vertices, cat.line_width + cat.noise, np.float32)
    return _contour.Contours(
        center=(float(cx), float(cy)),
        radii=_contour.grow_radii(rng, cat.contours, (radius * oval_x, radius * oval_y), const, 2.0 * cat.noise),
        colors=_contour.random_colors(rng, cat.contours, params.color),
    )


def render_rcdb(indices: np.ndarray, seed: int, size: int, params: RCDBParams, device: str = "cpu") -> np.ndarray:
    """Render RCDB images ``indices``: uint8 (N, size, size, 3)."""
    return _contour.render_family(indices, seed, size, params, category, sample_instance, "rcdb-image")


register_generator(
    "contour/rcdb",
    "RCDB: concentric noisy radial polygons; categories fix vertices, polygons, noise and spacing",
    family="contour",
    params_cls=RCDBParams,
    render=render_rcdb,
    batch_size=32,
    labels=rcdb_labels,
)
