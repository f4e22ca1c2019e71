"""Dead-leaves generators: the fast renderer against a slow reference, the radius law, variants."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from noisevision.comparison.paper import PAPER_ROWS
from noisevision.errors import UserError
from noisevision.generators import create_generator, list_generators
from noisevision.generators import dead_leaves as dl

FLAT = ["dead-leaves/squares", "dead-leaves/oriented", "dead-leaves/mixed"]


def reference_owner_map(shapes: dl.ShapeSet, size: int) -> np.ndarray:
    """One shape at a time over the whole canvas; each paints only unpainted pixels; stop when covered."""
    n = len(shapes)
    owner = np.full((size, size), n, dtype=np.int64)
    geo = dl.shape_geometry(shapes)
    ys, xs = np.indices((size, size))
    for k in range(n):
        dx, dy = xs - shapes.cx[k], ys - shapes.cy[k]
        inside = (dx >= geo.dx_lo[k]) & (dx <= geo.dx_hi[k]) & (dy >= geo.dy_lo[k]) & (dy <= geo.dy_hi[k])
        if geo.kind[k] == dl.CIRCLE:
            inside &= dx * dx + dy * dy <= geo.radius[k] ** 2
        elif dl._IS_POLYGON[geo.kind[k]]:
            for e in range(4):
                offset = dl.half_plane_offset(geo.edge_b[e, k], geo.edge_c[e, k], dy.astype(np.float64))
                inside &= dl.inside_half_plane(geo.edge_a[e, k], offset, dx.astype(np.float64))
        owner[inside & (owner == n)] = k
        if (owner < n).all():
            break
    return owner


def params_for(name: str, **overrides) -> dl.DeadLeavesParams:
    return create_generator(name, **overrides).params


# ---------------------------------------------------------------- basic contract


@pytest.mark.parametrize("name", FLAT)
def test_shape_dtype_determinism_and_batch_independence(name):
    gen = create_generator(name)
    images = gen.render(range(6), seed=3, size=32)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, gen.render(range(6), seed=3, size=32))
    order = np.array([4, 1, 5, 0, 3, 2])
    shuffled = np.concatenate([gen.render(order[:2], 3, 32), gen.render(order[2:], 3, 32)])
    assert np.array_equal(shuffled, images[order])
    assert not np.array_equal(images, gen.render(range(6), seed=4, size=32))
    assert len({im.tobytes() for im in images}) == 6
    assert images.std() > 30  # many colours, full range


def test_all_variants_registered_with_paper_numbers():
    names = list_generators("dead-leaves/*")
    assert names == ["dead-leaves/squares", "dead-leaves/oriented", "dead-leaves/mixed", "dead-leaves/textured"]
    assert [PAPER_ROWS[n].top1 for n in names] == [35.1, 37.4, 38.9, 40.9]


@pytest.mark.parametrize("name", FLAT)
def test_every_pixel_is_painted(name):
    params = params_for(name)
    for index in range(4):
        shapes = dl.sample_shapes(0, index, 64, params)
        assert (dl.owner_map(shapes, 64) < len(shapes)).all()


def test_unpainted_pixels_stay_black_when_max_shapes_runs_out():
    gen = create_generator("dead-leaves/mixed", max_shapes=3)
    image = gen.render([0], 0, 64)[0]
    shapes = dl.sample_shapes(0, 0, 64, gen.params)
    owner = dl.owner_map(shapes, 64)
    assert (owner == 3).any()
    assert (image[owner == 3] == 0).all()
    assert np.array_equal(image[owner < 3], shapes.colour[owner[owner < 3]])


# ---------------------------------------------------------------- exactness


@pytest.mark.parametrize("first_chunk", [8, dl.FIRST_CHUNK])
@pytest.mark.parametrize("kind", dl.SHAPE_KINDS)
def test_fast_renderer_equals_reference(kind, first_chunk, monkeypatch):
    monkeypatch.setattr(dl, "FIRST_CHUNK", first_chunk)  # small chunks exercise the pruning
    params = dl.DeadLeavesParams(shapes=(kind,), max_shapes=600)
    for size, index in [(24, 0), (24, 1), (40, 2)]:
        shapes = dl.sample_shapes(7, index, size, params)
        expected = reference_owner_map(shapes, size)
        assert np.array_equal(dl.owner_map(shapes, size), expected)
        if first_chunk < dl.FIRST_CHUNK:  # the small-chunk case must really span several chunks
            assert expected.max() > first_chunk


def test_fast_renderer_equals_reference_mixed_with_large_shapes_and_black_holes():
    params = dl.DeadLeavesParams(max_shapes=40, rmin=0.05, rmax=1.5, sigma=1.0)
    for index in range(4):
        shapes = dl.sample_shapes(1, index, 48, params)
        fast = dl.owner_map(shapes, 48)
        assert np.array_equal(fast, reference_owner_map(shapes, 48))


def one_shape(kind: int, radius: int, angles: list[float], size: int) -> dl.ShapeSet:
    """A single hand-made shape at the canvas centre."""
    return dl.ShapeSet(kind=np.array([kind]), radius_index=np.array([0]), radius=np.array([radius]),
                       cx=np.array([size // 2]), cy=np.array([size // 2]),
                       colour=np.zeros((1, 3), np.uint8), angles=np.array([angles]))


@pytest.mark.parametrize("radius", [1, 5, 17, 30])
def test_pixel_centres_on_polygon_edges_are_inside(radius):
    # vertices at 0, 90, 180, 270 degrees: the diamond |dx| + |dy| <= R, with
    # many pixel centres exactly on its edges (up to rounding of cos and sin)
    diamond = one_shape(dl.QUADRILATERAL, radius, [0.0, 0.25, 0.5, 0.75], 64)
    mask = dl.owner_map(diamond, 64) == 0
    assert mask.sum() == 2 * radius * radius + 2 * radius + 1
    assert np.array_equal(mask, reference_owner_map(diamond, 64) == 0)
    # the upper half: dy >= 0 and |dx| + dy <= R
    triangle = one_shape(dl.TRIANGLE, radius, [0.5, 0.0, 0.25, 0.9], 64)
    mask = dl.owner_map(triangle, 64) == 0
    assert mask.sum() == (radius + 1) ** 2
    assert np.array_equal(mask, reference_owner_map(triangle, 64) == 0)


def test_polygon_spans_are_exact_at_rounding_boundaries():
    """Edges placed (to within a few ulps) exactly through integer dx: spans equal brute force."""
    rng = np.random.default_rng(0)
    rows = 20000
    a = rng.choice([-1, 1], rows) * 10 ** rng.uniform(-3, 2, rows)
    k = rng.integers(-40, 41, rows).astype(np.float64)
    offset = (-dl.EDGE_TOL - a * k) * (1 + rng.integers(-4, 5, rows) * np.finfo(float).eps)
    a4 = np.zeros((4, rows))
    offset4 = np.zeros((4, rows))
    a4[0], offset4[0] = a, offset  # three always-true dummy edges (a = 0, offset = 0)
    lo, hi = dl._polygon_spans(a4, offset4, np.full(rows, -60), np.full(rows, 60))
    dx = np.arange(-60, 61, dtype=np.float64)
    inside = dl.inside_half_plane(a[:, None], offset[:, None], dx[None, :])
    first = np.where(inside.any(1), dx[inside.argmax(1)], np.nan)
    last = np.where(inside.any(1), dx[::-1][inside[:, ::-1].argmax(1)], np.nan)
    nonempty = lo <= hi
    assert np.array_equal(nonempty, inside.any(1))
    assert np.array_equal(lo[nonempty], first[nonempty]) and np.array_equal(hi[nonempty], last[nonempty])
    assert np.array_equal(inside.sum(1), np.maximum(hi - lo + 1, 0))  # one contiguous span per row


def test_polygons_match_an_independent_point_in_polygon_test():
    from matplotlib.path import Path as MplPath

    shapes = dl.sample_shapes(5, 0, 200, dl.DeadLeavesParams(shapes=("triangle", "quadrilateral", "oriented_square")))
    geo = dl.shape_geometry(shapes)
    ys, xs = np.indices((201, 201)) - 100
    for k in np.flatnonzero(shapes.radius > 30)[:6]:
        u = shapes.angles[k] * 2 * np.pi
        phi = {dl.ORIENTED_SQUARE: u[0] + np.pi / 4 + np.arange(4) * np.pi / 2,
               dl.TRIANGLE: np.sort(u[:3]), dl.QUADRILATERAL: np.sort(u)}[int(shapes.kind[k])]
        verts = shapes.radius[k] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
        expected = MplPath(verts).contains_points(np.stack([xs.ravel(), ys.ravel()], 1)).reshape(xs.shape)
        ours = np.ones_like(expected)
        for e in range(4):
            offset = dl.half_plane_offset(geo.edge_b[e, k], geo.edge_c[e, k], ys * 1.0)
            ours &= dl.inside_half_plane(geo.edge_a[e, k], offset, xs * 1.0)
        assert (ours != expected).sum() <= 2 * 4 * shapes.radius[k]  # boundary pixels only
        assert ours.sum() > 0.95 * expected.sum()


# ---------------------------------------------------------------- distributions


def radius_chi_square_pvalue(radius_index: np.ndarray, sigma: float) -> float:
    """Goodness of fit of sampled radius indices to p(r) ~ r^-sigma - 1 on the default grid."""
    radii = np.linspace(0.03, 1.0, 200)
    expected_p = radii ** -sigma - 1.0
    expected_p /= expected_p.sum()
    counts = np.bincount(radius_index, minlength=200)
    # merge the sparse tail so that every cell expects >= 20 samples
    expected = expected_p * len(radius_index)
    cells = np.minimum(np.searchsorted(np.cumsum(expected[::-1]) >= 20, True), 199)
    cut = 200 - cells - 1
    obs = np.append(counts[:cut], counts[cut:].sum())
    exp = np.append(expected[:cut], expected[cut:].sum())
    return stats.chisquare(obs, exp).pvalue


def test_radii_follow_the_power_law():
    params = dl.DeadLeavesParams()
    sampled = np.concatenate([dl.sample_shapes(11, i, 128, params).radius_index for i in range(10)])
    assert radius_chi_square_pvalue(sampled, sigma=3.0) > 1e-3
    assert radius_chi_square_pvalue(sampled, sigma=2.8) < 1e-6  # the test has power
    wrong = np.concatenate([dl.sample_shapes(11, i, 128, dataclasses.replace(params, sigma=2.5)).radius_index
                            for i in range(10)])
    assert radius_chi_square_pvalue(wrong, sigma=3.0) < 1e-6
    assert sampled.max() < 199  # p(rmax) = 0


def test_pixel_radius_and_colours():
    shapes = dl.sample_shapes(2, 0, 100, dl.DeadLeavesParams())
    radii, _ = dl.radius_grid(dl.DeadLeavesParams())
    assert np.array_equal(shapes.radius, np.maximum((radii[shapes.radius_index] * 100).astype(int), 1))
    assert shapes.colour.min() == 0 and shapes.colour.max() == 255
    assert abs(shapes.colour.mean() - 127.5) < 3
    assert shapes.cx.min() == 0 and shapes.cx.max() == 99


def region_of_first_shape(kind: str, seed: int, size: int = 96) -> tuple[np.ndarray, dl.ShapeSet]:
    params = dl.DeadLeavesParams(shapes=(kind,), max_shapes=1, rmin=0.3, rmax=0.31)
    shapes = dl.sample_shapes(seed, 0, size, params)
    return dl.owner_map(shapes, size) == 0, shapes


def centred(shapes: dl.ShapeSet, size: int) -> dl.ShapeSet:
    """The first shape of ``shapes``, moved to the canvas centre."""
    first = {f.name: getattr(shapes, f.name)[:1] for f in dataclasses.fields(shapes)}
    return dl.ShapeSet(**{**first, "cx": np.array([size // 2]), "cy": np.array([size // 2])})


def is_axis_aligned_rectangle(mask: np.ndarray) -> bool:
    ys, xs = np.nonzero(mask)
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()


def test_squares_are_axis_aligned_squares_and_oriented_ones_are_rotated():
    unclipped = 0
    for seed in range(8):
        mask, shapes = region_of_first_shape("square", seed)
        assert is_axis_aligned_rectangle(mask)
        ys, xs = np.nonzero(mask)
        half = np.floor(shapes.radius[0] / np.sqrt(2))
        if all(half <= c < 96 - half for c in (shapes.cx[0], shapes.cy[0])):
            assert xs.max() - xs.min() + 1 == 2 * half + 1 == ys.max() - ys.min() + 1
            unclipped += 1
    assert unclipped >= 1
    rotated = [not is_axis_aligned_rectangle(region_of_first_shape("oriented_square", s)[0]) for s in range(5)]
    assert sum(rotated) >= 4
    # an oriented square has the area of the square: 2 R^2
    params = dl.DeadLeavesParams(shapes=("oriented_square",), max_shapes=1, rmin=0.3, rmax=0.31)
    shapes = centred(dl.sample_shapes(0, 0, 200, params), 200)
    assert abs((dl.owner_map(shapes, 200) == 0).sum() / (2 * shapes.radius[0] ** 2) - 1) < 0.03


def test_rectangles_have_varied_aspect_and_circles_are_round():
    aspects = []
    for seed in range(8):
        mask = dl.owner_map(centred(region_of_first_shape("rectangle", seed, 300)[1], 300), 300) == 0
        assert is_axis_aligned_rectangle(mask)
        ys, xs = np.nonzero(mask)
        aspects.append((np.ptp(xs) + 1) / (np.ptp(ys) + 1))
    assert min(aspects) < 0.8 and max(aspects) > 1.25
    shapes = centred(region_of_first_shape("circle", 0, 200)[1], 200)
    area = (dl.owner_map(shapes, 200) == 0).sum()
    assert abs(area / (np.pi * shapes.radius[0] ** 2) - 1) < 0.02


def test_mixed_draws_all_six_kinds_uniformly():
    shapes = dl.sample_shapes(0, 0, 64, params_for("dead-leaves/mixed"))
    counts = np.bincount(shapes.kind, minlength=6)
    assert stats.chisquare(counts).pvalue > 1e-3 and (counts > 0).all()
    assert set(params_for("dead-leaves/squares").shapes) == {"square"}
    assert set(params_for("dead-leaves/oriented").shapes) == {"oriented_square"}


def test_shape_subset_from_cli_string():
    gen = create_generator("dead-leaves/mixed", shapes="circle,triangle")
    assert gen.params.shapes == ("circle", "triangle")
    assert set(dl.SHAPE_KINDS[k] for k in dl.sample_shapes(0, 0, 32, gen.params).kind) == {"circle", "triangle"}


@pytest.mark.parametrize(
    "overrides",
    [dict(rmin="0.5", rmax="0.2"), dict(sigma="0"), dict(sigma="-1"), dict(shapes="circle,hexagon"),
     dict(max_shapes="0"), dict(num_radii="1"), dict(shapes="circle,circle"), dict(rmin="0")],
)
def test_bad_parameters_are_user_errors(overrides):
    with pytest.raises(UserError):
        create_generator("dead-leaves/mixed", **overrides)


def test_bad_texture_parameters_are_user_errors(tmp_path):
    with pytest.raises(UserError):
        create_generator("dead-leaves/textured", texture_dir=str(tmp_path / "missing"))
    with pytest.raises(UserError):
        create_generator("dead-leaves/textured", texture_pool="0")
    empty = create_generator("dead-leaves/textured", texture_dir=str(tmp_path))
    with pytest.raises(UserError, match="no image files"):
        empty.render([0], 0, 16)
    with pytest.raises(UserError):
        create_generator("dead-leaves/textured", texture_generator="no/such-generator").render([0], 0, 16)


def test_texture_files_are_decoded_like_evaluation_images(tmp_path):
    """A wide texture gives its centre square (not a squashed whole), and a 16-bit or alpha file is RGB."""
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :15] = wide[:, 45:] = (255, 0, 0)
    wide[:, 15:45] = (0, 255, 0)  # wider than the centre square, so resampling at its edges stays outside
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.zeros((16, 16, 4), np.uint8)).save(tmp_path / "clear.png")  # transparent: black
    dl._load_texture.cache_clear()
    centre = dl._load_texture(tmp_path / "wide.png", 12)
    assert centre.shape == (12, 12, 3) and (centre == (0, 255, 0)).all()
    assert (dl._load_texture(tmp_path / "deep.png", 8) == 255).all()
    assert (dl._load_texture(tmp_path / "clear.png", 8) == 0).all()


@pytest.mark.parametrize("damage", ["truncated", "bomb"])
def test_unreadable_texture_images_are_user_errors(tmp_path, monkeypatch, damage):
    """A texture file that is cut short, or that decodes to more pixels than PIL allows, is one line."""
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "t.png")
    if damage == "truncated":
        (tmp_path / "t.png").write_bytes((tmp_path / "t.png").read_bytes()[:60])
    else:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40x40 is then over twice the limit: a bomb
    dl._load_texture.cache_clear()
    gen = create_generator("dead-leaves/textured", texture_dir=str(tmp_path))
    with pytest.raises(UserError, match="cannot read texture image"):
        gen.render([0], 0, 16)


# ---------------------------------------------------------------- textured


@pytest.fixture(scope="module")
def texture_dir(tmp_path_factory):
    """Six noisy texture images of different sizes."""
    folder = tmp_path_factory.mktemp("textures")
    rng = np.random.default_rng(0)
    for i in range(6):
        side = 20 + 7 * i
        Image.fromarray(rng.integers(0, 256, (side, side + 3, 3), dtype=np.uint8)).save(folder / f"t{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def mean_within_region_std(images: np.ndarray, seed: int, params: dl.DeadLeavesParams) -> float:
    stds = []
    for j, image in enumerate(images):
        owner = dl.owner_map(dl.sample_shapes(seed, j, image.shape[0], params), image.shape[0])
        for k in np.unique(owner)[:20]:
            region = image[owner == k].astype(float)
            if len(region) >= 10:
                stds.append(region.std(axis=0).mean())
    return float(np.mean(stds))


def test_textured_with_texture_dir_is_textured_and_deterministic(texture_dir):
    gen = create_generator("dead-leaves/textured", texture_dir=str(texture_dir), texture_pool=3, texture_group=2)
    images = gen.render(range(4), 0, 48)
    assert images.shape == (4, 48, 48, 3) and images.dtype == np.uint8
    assert np.array_equal(images[[3, 0]], np.concatenate([gen.render([3], 0, 48), gen.render([0], 0, 48)]))
    assert mean_within_region_std(images, 0, gen.params) > 30
    flat = create_generator("dead-leaves/mixed").render(range(4), 0, 48)
    assert mean_within_region_std(flat, 0, gen.params) == 0
    # same geometry as the mixed variant: region boundaries coincide
    assert not np.array_equal(images, gen.render(range(4), 1, 48))


def test_textured_regions_show_the_pool_texture_at_a_shift(texture_dir):
    gen = create_generator("dead-leaves/textured", texture_dir=str(texture_dir), texture_pool=2, texture_group=4)
    image = gen.render([1], 5, 32)[0]
    pool = dl.texture_pool(5, 0, 32, gen.params)
    shapes = dl.sample_shapes(5, 1, 32, gen.params)
    owner = dl.owner_map(shapes, 32)
    rng = dl.image_rng(5, 1, "texture")
    texture = rng.integers(0, 2, size=len(shapes) + 1)
    shift = rng.integers(0, 32, size=(len(shapes) + 1, 2))
    y, x = 10, 20
    k = owner[y, x]
    expected = pool[texture[k], (y + shift[k, 1]) % 32, (x + shift[k, 0]) % 32]
    assert np.array_equal(image[y, x], expected)


def test_textured_on_the_fly_uses_the_texture_generator(monkeypatch):
    calls = []

    def fake_render(indices, seed, size, device="cpu"):
        calls.append((tuple(indices), seed))
        return np.stack([np.full((size, size, 3), 10 * (i % 20), np.uint8) for i in indices])

    class FakeGenerator:
        render = staticmethod(fake_render)

    monkeypatch.setattr(dl, "create_generator", lambda name: FakeGenerator())
    dl._generated_pool.cache_clear()
    gen = create_generator("dead-leaves/textured", texture_generator="fake/one", texture_pool=4, texture_group=2)
    images = gen.render(range(4), 0, 24)
    assert [c[0] for c in calls] == [(0, 1, 2, 3), (4, 5, 6, 7)]  # one pool per group of 2 images
    assert set(np.unique(images[2:])) <= {40, 50, 60, 70}
    dl._generated_pool.cache_clear()


@pytest.mark.slow
def test_textured_default_renders_spectrum_color_wmm_textures():
    """End to end with the real texture generator (small: 2 textures at 32 px)."""
    dl._generated_pool.cache_clear()
    gen = create_generator("dead-leaves/textured", texture_pool=2, texture_group=4)
    images = gen.render(range(3), 0, 32)
    assert images.shape == (3, 32, 32, 3)
    assert np.array_equal(images[2], gen.render([2], 0, 32)[0])
    pool = dl.texture_pool(0, 0, 32, gen.params)
    texture_seed = int(dl.seed_sequence(0, 0, "dead-leaves-textures").generate_state(1)[0] >> 1)
    assert np.array_equal(pool, create_generator("stat/spectrum-color-wmm").render([0, 1], texture_seed, 32))
    assert mean_within_region_std(images, 0, gen.params) > 5
    dl._generated_pool.cache_clear()
