"""VisualAtom (Takashima et al., "Visual Atoms: Pre-training Vision Transformers with
Sinusoidal Waves", CVPR 2023).

A visual atom is a set of nested closed contours whose radius grows by the sum
of two sine waves around the circle, quantised to a few hundred vertices and
roughened by noise (see ``_contour`` for the drawing). Following the official
renderer, on a 512 px reference canvas scaled to the output size:

* a category (stream ``(seed, c)``) fixes the two frequencies ``f1, f2`` from
  the orbit {0, ..., ``max_frequency``} (distinct unless ``f1`` is 0), the
  number of vertices (``vertices``), of contours (``contours``), the noise
  strength ``n`` (uniform in [0, ``max_noise``]), the spacing ``w`` (uniform
  in [0, ``max_line_width``]), the start radius (``radius``) and the ellipse
  ratios in x and y (each in [1, ``max_oval``]);
* an instance draws the centre (uniform within ``center_range`` of the canvas
  around its middle), one grey per contour and the noise: every contour moves
  vertex k (angle t) out by ``w + n - n p + a (sin(f1 t) + sin(f2 t))``, p a
  1-D Perlin value drawn per vertex, separately in x and y, ``a`` the
  ``wave_amplitude``. So the waves grow outward contour by contour.

Image ``i`` is instance ``(i // num_classes) % instances_per_class`` of
category ``i % num_classes`` (its label); grey lines on black, as in the
official script.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rng import image_rng
from . import _contour
from .base import class_and_instance, register_generator


@dataclass(frozen=True)
class VisualAtomParams:
    """Parameters of the VisualAtom generator (lengths in pixels of a 512 px canvas).

    Attributes:
        num_classes: number of categories; labels are 0..num_classes-1.
        instances_per_class: distinct images per category.
        vertices: inclusive range of the number of vertices per contour (its quantisation).
        contours: inclusive range of the number of nested contours.
        max_frequency: the two frequencies are drawn from 0..max_frequency.
        wave_amplitude: amplitude of each sine wave in the outward step of a contour.
        max_noise: largest Perlin noise strength of a category.
        max_line_width: largest outward step ("line width") of a category.
        radius: inclusive range of the start radius.
        max_oval: largest ellipse ratio along x or y.
        center_range: the centre is uniform within this fraction of the canvas around its middle.
        color: "gray" (one grey per contour, official) or "color" (random RGB per contour).
        background: "black" (official) or "white".
    """

    num_classes: int = 1000
    instances_per_class: int = 1000
    vertices: tuple[int, int] = (200, 1000)
    contours: tuple[int, int] = (1, 200)
    max_frequency: int = 20
    wave_amplitude: float = 0.5
    max_noise: float = 4.0
    max_line_width: float = 0.1
    radius: tuple[int, int] = (10, 60)
    max_oval: float = 2.0
    center_range: float = 1.0
    color: str = "gray"
    background: str = "black"

    def __post_init__(self) -> None:
        for name, lo, least in (("vertices", self.vertices[0], 3), ("contours", self.contours[0], 1),
                                ("radius", self.radius[0], 0)):
            hi = getattr(self, name)[1]
            if not least <= lo <= hi:
                raise ValueError(f"{name} must satisfy {least} <= low <= high, got {getattr(self, name)}")
        if self.max_frequency < 1:
            raise ValueError(f"max_frequency must be >= 1 (two distinct frequencies), got {self.max_frequency}")
        if self.wave_amplitude < 0 or self.max_noise < 0 or self.max_line_width < 0:
            raise ValueError("wave_amplitude, max_noise and max_line_width must be >= 0")
        _contour.check_drawing(self)


@dataclass(frozen=True)
class VisualAtomCategory:
    """The parameters one VisualAtom category fixes (see ``category``)."""

    frequencies: tuple[int, int]
    vertices: int
    contours: int
    noise: float
    line_width: float
    radius: int
    oval: tuple[float, float]


def category(c: int, seed: int, params: VisualAtomParams) -> VisualAtomCategory:
    """Category ``c``'s parameters: a function of (seed, c, params) only."""
    rng = image_rng(seed, c, "visualatom-class")
    top = params.max_frequency
    f1 = int(rng.integers(0, top + 1))
    # f2 differs from f1, except that f1 = 0 allows any f2 (as the official draw)
    f2 = int(rng.integers(0, top + 1)) if f1 == 0 else int(rng.integers(0, top))
    if f1 != 0 and f2 >= f1:
        f2 += 1
    return VisualAtomCategory(
        frequencies=(f1, f2),
        vertices=int(rng.integers(params.vertices[0], params.vertices[1] + 1)),
        contours=int(rng.integers(params.contours[0], params.contours[1] + 1)),
        noise=float(rng.uniform(0.0, params.max_noise)),
        line_width=float(rng.uniform(0.0, params.max_line_width)),
        radius=int(rng.integers(params.radius[0], params.radius[1] + 1)),
        oval=(float(rng.uniform(1.0, params.max_oval)), float(rng.uniform(1.0, params.max_oval))),
    )


def visualatom_labels(indices: np.ndarray, seed: int, params: VisualAtomParams) -> np.ndarray:
    """Each image's category."""
    return class_and_instance(indices, params.num_classes, params.instances_per_class)[0]


def sample_instance(cat: VisualAtomCategory, rng: np.random.Generator, params: VisualAtomParams) -> _contour.Contours:
    """One image's contours from its own stream."""
    cx, cy = _contour.REF_SIZE / 2 * (1.0 + params.center_range * rng.uniform(-1.0, 1.0, size=2))
    theta = (2.0 * np.pi / cat.vertices) * np.arange(cat.vertices)
    f1, f2 = cat.frequencies
    wave = (params.wave_amplitude * (np.sin(f1 * theta) + np.sin(f2 * theta))).astype(np.float32)
    const = wave + np.float32(cat.line_width + cat.noise)  # (V,): the deterministic part of every step
    return _contour.Contours(
        center=(float(cx), float(cy)),
        radii=_contour.grow_radii(rng, cat.contours, (cat.radius * cat.oval[0], cat.radius * cat.oval[1]),
                                  const, cat.noise),
        colors=_contour.random_colors(rng, cat.contours, params.color),
    )


def render_visualatom(
    indices: np.ndarray, seed: int, size: int, params: VisualAtomParams, device: str = "cpu"
) -> np.ndarray:
    """Render VisualAtom images ``indices``: uint8 (N, size, size, 3)."""
    return _contour.render_family(indices, seed, size, params, category, sample_instance, "visualatom-image")


register_generator(
    "contour/visualatom",
    "VisualAtom: nested contours shaped by two sine waves; categories fix the frequency pair and shape",
    family="contour",
    params_cls=VisualAtomParams,
    render=render_visualatom,
    batch_size=32,
    labels=visualatom_labels,
)
