"""Formula-driven generators (FractalDB, 1p-frac, RCDB, VisualAtom): labels, classes, and each family's formula."""
from __future__ import annotations

import numpy as np
import pytest

import noisevision as nv
from noisevision.generators import _contour, fractal, fractaldb, one_p_frac, rcdb, visualatom
from noisevision.rng import image_rng

FDSL = ["fractal/fractaldb", "fractal/1p-frac", "contour/rcdb", "contour/visualatom"]
SMALL = {"fractal/fractaldb": dict(points=2048, walkers=128), "fractal/1p-frac": dict(points=2048, walkers=128)}


def make(name: str, **kw) -> nv.Generator:
    return nv.create_generator(name, **{**SMALL.get(name, {}), **kw})


@pytest.mark.parametrize("name", FDSL)
def test_labels_deterministic_balanced_and_split_invariant(name: str) -> None:
    gen = make(name, num_classes=7)
    idx = np.arange(7 * 6)
    labels = gen.labels(idx, 3)
    assert labels.dtype == np.int64 and labels.shape == idx.shape
    assert labels.min() >= 0 and labels.max() < 7
    assert np.bincount(labels, minlength=7).tolist() == [6] * 7  # num_classes consecutive images: one of each
    order = np.random.default_rng(0).permutation(idx)
    np.testing.assert_array_equal(np.concatenate([gen.labels(order[:5], 3), gen.labels(order[5:], 3)]), labels[order])
    np.testing.assert_array_equal(make(name, num_classes=7).labels(idx, 3), labels)
    # the same (seed, i) gives the same image whatever the batch around it
    pick = np.array([40, 2, 9])
    np.testing.assert_array_equal(gen.render(pick, 3, 24), gen.render(idx, 3, 24)[pick])


def _features(images: np.ndarray) -> np.ndarray:
    """Shift-invariant low-frequency spectrum plus coarse pixels of each image."""
    gray = images.astype(np.float32).mean(-1) / 255.0
    spec = np.abs(np.fft.fft2(gray - gray.mean(axis=(1, 2), keepdims=True)))
    spec = np.fft.fftshift(spec, axes=(1, 2))[:, 8:24, 8:24]
    return np.concatenate([np.log1p(spec).reshape(len(gray), -1), gray[:, ::2, ::2].reshape(len(gray), -1)], 1)


@pytest.mark.parametrize("name", FDSL)
def test_a_nearest_centroid_classifier_separates_the_classes(name: str) -> None:
    """5 classes x 40 images at 32 px: train on 30 per class, test on 10; chance is 0.2."""
    n_cls, per = 5, 40
    gen = make(name, num_classes=n_cls)
    idx = np.arange(n_cls * per)
    x, y = _features(gen.render(idx, 0, 32)), gen.labels(idx, 0)
    train = idx < n_cls * 30
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    z = (x - mu) / sd
    centroids = np.stack([z[train & (y == c)].mean(0) for c in range(n_cls)])
    pred = ((z[~train, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert np.mean(pred == y[~train]) >= 0.5  # measured 0.76-0.98 over seeds 0-2


@pytest.mark.parametrize("name", ["fractal/fractaldb", "contour/rcdb", "contour/visualatom"])
def test_the_data_set_repeats_after_num_classes_times_instances(name: str) -> None:
    gen = make(name, num_classes=3, instances_per_class=4)
    np.testing.assert_array_equal(gen.render([1, 5], 0, 24), gen.render([13, 17], 0, 24))
    assert not np.array_equal(gen.render([1], 0, 24), gen.render([4], 0, 24))  # same class, next instance


@pytest.mark.parametrize(
    "name, bad",
    [("fractal/fractaldb", dict(num_classes=0)), ("fractal/fractaldb", dict(instances_per_class=0)),
     ("fractal/fractaldb", dict(min_fill=1.5)), ("fractal/fractaldb", dict(num_maps="1,3")),
     ("fractal/fractaldb", dict(weight_step=0.4)), ("fractal/fractaldb", dict(color="rainbow")),
     ("fractal/1p-frac", dict(delta=1.0)), ("fractal/1p-frac", dict(sigma=6.0)), ("fractal/1p-frac", dict(num_maps=1)),
     ("contour/rcdb", dict(max_vertices=2)), ("contour/rcdb", dict(max_oval=0.5)), ("contour/rcdb", dict(background="red")),
     ("contour/visualatom", dict(vertices="300,200")), ("contour/visualatom", dict(max_frequency=0)),
     ("contour/visualatom", dict(center_range=1.5))],
)
def test_bad_parameters_are_user_errors(name: str, bad: dict) -> None:
    with pytest.raises(nv.UserError):
        nv.create_generator(name, **bad)


# ---------------------------------------------------------------- FractalDB


def test_fractaldb_categories_pass_the_fill_search_whatever_the_batch() -> None:
    params = make("fractal/fractaldb", num_classes=50).params
    found = fractaldb.categories(np.arange(12), 5, params)
    fractaldb._CATEGORIES.clear()
    alone = fractaldb.categories(np.array([7]), 5, params)
    np.testing.assert_array_equal(alone[7], found[7])  # a function of (seed, category) only
    systems = list(found.values())
    for s in systems:
        assert 2 <= len(s) <= 8 and np.abs(s).max() <= 1.0
        assert np.linalg.svd(s[:, :, :2], compute_uv=False).max() < params.max_scale
    fills = fractal.fill_ratio(systems, [image_rng(99, i, "check") for i in range(len(systems))])
    assert (fills >= params.min_fill - 0.03).all()  # re-measured with other walks


def test_fractaldb_instances_are_the_official_weight_variants() -> None:
    system = fractal._draw_maps(image_rng(0, 0), 3, 0.5)
    np.testing.assert_array_equal(fractaldb.weight_variant(system, 0, 0.1), system)
    variants = [fractaldb.weight_variant(system, v, 0.1) for v in range(1, fractaldb.N_WEIGHTS)]
    for v, varied in enumerate(variants, start=1):
        ratio = varied / system
        changed = ~np.isclose(ratio, 1.0)
        assert changed.sum() == 3  # one parameter, in each of the three maps
        np.testing.assert_allclose(ratio[changed], 1.0 + (-2, -1, 1, 2)[(v - 1) % 4] * 0.1)
    # the six parameters a..f (linear part, then translation) each get four factors
    changed_cells = {tuple(np.argwhere(~np.isclose(varied[0], system[0]))[0]) for varied in variants}
    assert changed_cells == {(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (1, 2)}


def test_fractaldb_flips() -> None:
    images = np.arange(4 * 3 * 3 * 3).reshape(4, 3, 3, 3).astype(np.uint8)
    flipped = fractaldb.flip_images(images.copy(), np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(flipped[0], images[0])
    np.testing.assert_array_equal(flipped[1], images[1, ::-1])
    np.testing.assert_array_equal(flipped[2], images[2, :, ::-1])
    np.testing.assert_array_equal(flipped[3], images[3, ::-1, ::-1])


def test_fractaldb_grey_points_on_black() -> None:
    img = make("fractal/fractaldb", num_classes=4).render(range(4), 0, 48)
    assert set(np.unique(img)) <= {0, fractaldb.GRAY}
    assert 0.05 < (img[..., 0] > 0).mean() < 0.9


# ---------------------------------------------------------------- 1p-frac


def test_one_p_frac_singular_values_have_the_sigma_factor() -> None:
    rng = np.random.default_rng(0)
    for n_maps, sigma in ((2, 4.0), (2, 0.7), (3, 8.5), (5, 3.0)):
        sv = one_p_frac.singular_values(rng, n_maps, sigma)
        assert np.isclose((sv[:, 0] + 2 * sv[:, 1]).sum(), sigma)
        assert (sv[:, 0] <= 1.0 + 1e-12).all() and (sv[:, 1] >= -1e-12).all() and (sv[:, 0] >= sv[:, 1] - 1e-12).all()
    base = one_p_frac.draw_base(np.random.default_rng(1), 3, 2.5)  # s1 < 0.99 is not shrunk
    sv = np.linalg.svd(base[:, :, :2], compute_uv=False)
    if sv.max() < one_p_frac.VARIANT_MAX_SCALE:
        assert np.isclose((sv[:, 0] + 2 * sv[:, 1]).sum(), 2.5)


def test_one_p_frac_classes_are_perturbations_of_one_system_of_size_delta() -> None:
    def spread(delta: float) -> float:
        params = make("fractal/1p-frac", num_classes=20, delta=delta).params
        base = one_p_frac.base_system(0, params)
        classes = one_p_frac.class_systems(np.arange(20), 0, params)
        return float(np.mean([np.abs(s - base).max() for s in classes.values()]))

    assert spread(0.0) == 0.0  # delta 0: every class is the base system
    small, large = spread(0.05), spread(0.2)
    assert 0.0 < small < large
    # classes 0.05 apart share the base: their images overlap far more than those of another seed
    gen = make("fractal/1p-frac", num_classes=20, delta=0.05)
    a, b, other = gen.render([0], 0, 48)[0] > 0, gen.render([1], 0, 48)[0] > 0, gen.render([0], 1, 48)[0] > 0
    iou = lambda p, q: (p & q).sum() / (p | q).sum()  # noqa: E731
    assert iou(a, b) > iou(a, other)


# ---------------------------------------------------------------- contours


def test_perlin_values_follow_the_pnoise1_blend() -> None:
    # entry (t level j, hashes h): g0 from the low 4 bits, g1 from the high 4 bits, -1 when bit 3 is set
    t = (5 + 0.5) / 256
    fade = t**3 * (t * (t * 6 - 15) + 10)
    g0, g1 = 3.0, -1.0  # low nibble 0b0010 -> 1 + 2; high nibble 0b1001 -> bit 3 set
    expected = 0.4 * (g0 * t + fade * (g1 * (t - 1) - g0 * t))
    assert np.isclose(_contour._PERLIN[5 * 256 + 0b1001_0010], expected, rtol=1e-6)
    values = _contour.perlin_values(np.random.default_rng(0), 100_000)
    assert values.dtype == np.float32 and np.abs(values).max() < 0.96
    assert abs(values.mean()) < 0.01  # centred, as the official noise
    np.testing.assert_array_equal(values, _contour.perlin_values(np.random.default_rng(0), 100_000))


def test_strokes_cover_the_polygon_length_and_are_clipped_to_the_canvas() -> None:
    """A square of half-diagonal 100 reference px: its strokes cover its perimeter times the stroke width."""
    radii = np.full((1, 8), 100.0, np.float32)  # 4 vertices, x and y distances

    def coverage(center: tuple[float, float], size: int) -> tuple[float, np.ndarray]:
        contour = _contour.Contours(center=center, radii=radii, colors=np.full((1, 1), 255.0, np.float32))
        pix, weights = _contour._stroke_samples(contour, size)
        return float(weights[0].sum()), np.bincount(pix, weights[0], minlength=size * size).reshape(size, size)

    side = 100 * np.sqrt(2)
    total, _ = coverage((256, 256), 512)
    assert np.isclose(total, 4 * side, rtol=1e-4)  # 1 px wide at 512 px
    total, grid = coverage((256, 256), 128)
    assert np.isclose(total, 4 * side * (128 / 512) ** 2, rtol=1e-4)  # length and width both scale
    assert grid[:30].sum() == 0 and grid[:, :30].sum() == 0  # nothing beyond the square's corners (y, x < 39)
    total, _ = coverage((0, 256), 512)  # centred on the left edge: the right half is visible
    assert np.isclose(total, 2 * side, rtol=1e-3)


def test_contour_images_background_and_colours() -> None:
    white = make("contour/rcdb", num_classes=3).render(range(3), 0, 48)
    black = make("contour/rcdb", num_classes=3, background="black").render(range(3), 0, 48)
    assert (white[black == 0] == 255).all()  # same strokes, other background
    assert (white[..., 0] == white[..., 2]).all()  # grey lines
    color = make("contour/visualatom", num_classes=3, color="color").render(range(3), 0, 48)
    assert (color[..., 0] != color[..., 2]).any()


def test_rcdb_categories() -> None:
    params = make("contour/rcdb").params
    cats = [rcdb.category(c, 0, params) for c in range(300)]
    assert cats[7] == rcdb.category(7, 0, params)
    vertices = np.array([c.vertices for c in cats])
    assert vertices.min() >= 3 and vertices.max() <= params.max_vertices
    assert 40 < vertices.mean() < 100  # an exponential of mean 100 cut to 3..200 (mean about 72)
    assert all(1 <= c.contours <= params.max_contours and 0 <= c.noise <= params.max_noise for c in cats)


def test_visualatom_contours_grow_by_the_two_waves() -> None:
    params = make("contour/visualatom", max_noise=0.0).params
    cats = [visualatom.category(c, 0, params) for c in range(300)]
    for cat in cats:
        f1, f2 = cat.frequencies
        assert 0 <= f1 <= params.max_frequency and 0 <= f2 <= params.max_frequency
        assert f1 != f2 or f1 == 0
    cat = next(c for c in cats if c.contours > 2 and 0 not in c.frequencies)
    shape = visualatom.sample_instance(cat, np.random.default_rng(0), params)
    theta = 2 * np.pi * np.arange(cat.vertices) / cat.vertices
    step = 0.5 * (np.sin(cat.frequencies[0] * theta) + np.sin(cat.frequencies[1] * theta)) + cat.line_width
    radii_x = shape.radii[:, : cat.vertices]
    np.testing.assert_allclose(np.diff(radii_x, axis=0), np.broadcast_to(step, (cat.contours - 1, cat.vertices)),
                               atol=1e-3)
    np.testing.assert_allclose(radii_x[0], cat.radius * cat.oval[0] + step, atol=1e-3)
