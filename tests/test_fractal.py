"""IFS fractals: determinism, split invariance, contraction, fill filter, labels, chaos game."""
from __future__ import annotations

import numpy as np
import pytest

import noisevision as nv
from noisevision.generators import fractal
from noisevision.rng import image_rng

SMALL = dict(points=4096, walkers=256)


def test_deterministic_and_split_invariant() -> None:
    gen = nv.create_generator("fractal/ifs", **SMALL)
    whole = gen.render(range(6), seed=3, size=32)
    assert whole.shape == (6, 32, 32, 3) and whole.dtype == np.uint8
    np.testing.assert_array_equal(whole, gen.render(range(6), seed=3, size=32))
    order = np.array([4, 1, 5, 0, 3, 2])
    shuffled = np.concatenate([gen.render(order[:2], 3, 32), gen.render(order[2:], 3, 32)])
    np.testing.assert_array_equal(shuffled, whole[order])
    assert not np.array_equal(whole, gen.render(range(6), seed=4, size=32))
    assert len({img.tobytes() for img in whole}) == 6


def test_categories_split_invariant_and_labelled() -> None:
    gen = nv.create_generator("fractal/ifs", num_systems=3, **SMALL)
    whole = gen.render(range(7), 0, 32)
    np.testing.assert_array_equal(np.concatenate([gen.render([5, 6], 0, 32), gen.render(range(5), 0, 32)]),
                                  whole[[5, 6, 0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(gen.labels(range(7), 0), [0, 1, 2, 0, 1, 2, 0])
    # the same system is shared by images 0, 3, 6 whichever batch it is drawn in
    a = fractal.sample_systems(np.array([0]), 0, gen.params)[0]
    b = fractal.sample_systems(np.array([2, 0, 1]), 0, gen.params)[0]
    np.testing.assert_array_equal(a, b)
    # per-image variation: images of one category differ
    assert not np.array_equal(whole[0], whole[3])
    assert nv.create_generator("fractal/ifs").labels([5, 9], 0).tolist() == [5, 9]


def test_maps_contractive_and_fill_filter_passes() -> None:
    params = nv.create_generator("fractal/ifs").params
    systems = fractal.sample_systems(np.arange(12), seed=1, params=params)
    for system in systems.values():
        assert 2 <= len(system) <= 8
        assert np.abs(system).max() <= 1.0
        assert np.linalg.svd(system[:, :, :2], compute_uv=False).max() < params.max_scale
    # re-measure the fill with independent chaos-game streams: near or inside the band
    rngs = [image_rng(99, s, "check") for s in systems]
    fills = fractal.fill_ratio(list(systems.values()), rngs)
    assert (fills >= params.min_fill - 0.03).all() and (fills <= params.max_fill + 0.03).all()
    # a random unfiltered system often fails the band, so the filter does something
    raw = [fractal._draw_maps(image_rng(5, i), 2, 0.95) for i in range(40)]
    raw_fills = fractal.fill_ratio(raw, [image_rng(6, i) for i in range(40)])
    assert (raw_fills < params.min_fill).mean() > 0.1


def test_map_probabilities_proportional_to_det() -> None:
    maps = np.array([[[0.5, 0, 0], [0, 0.5, 0]], [[0.25, 0, 0], [0, 0.5, 0]], [[0, 0.5, 0], [0.5, 0, 0]]])
    np.testing.assert_allclose(fractal.map_probabilities(maps), [0.4, 0.2, 0.4])


def test_chaos_game_draws_sierpinski_triangle() -> None:
    """Known attractor: the Sierpinski triangle has an empty middle triangle."""
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    maps = np.zeros((1, 3, 2, 3))
    maps[0, :, 0, 0] = maps[0, :, 1, 1] = 0.5
    maps[0, :, :, 2] = corners / 2
    choices = image_rng(0, 0).integers(0, 3, size=(1, 200, 64))
    pts = fractal.chaos_game(maps, choices, np.zeros((1, 2))).reshape(-1, 2).astype(np.float64)
    x, y = pts[:, 0], pts[:, 1]
    assert (x >= -1e-6).all() and (y >= -1e-6).all() and (x + y <= 1 + 1e-6).all()
    hole = (x < 0.5 - 1e-3) & (y < 0.5 - 1e-3) & (x + y > 0.5 + 1e-3)
    assert not hole.any()
    # the three corner sub-triangles get about a third of the points each
    share = np.array([(x < 0.5) & (y < 0.5), x >= 0.5, y >= 0.5]).mean(axis=1)
    np.testing.assert_allclose(share, 1 / 3, atol=0.03)


def test_render_colours_and_background() -> None:
    white = nv.create_generator("fractal/ifs", color="white", **SMALL).render(range(3), 0, 48)
    assert set(np.unique(white)) <= {0, 255}
    assert (white[..., 0] == white[..., 2]).all()
    img = nv.create_generator("fractal/ifs", **SMALL).render(range(3), 0, 48)
    lit = img.max(axis=-1) > 0
    np.testing.assert_array_equal(lit, white.max(axis=-1) > 0)  # same geometry, other colours
    assert 0.02 < lit.mean() < 0.8  # black background, visible attractor


@pytest.mark.parametrize(
    "overrides",
    [dict(num_maps="1,4"), dict(num_maps="2,9"), dict(max_scale=1.0), dict(color="rainbow"),
     dict(min_fill=0.7, max_fill=0.5), dict(num_systems=0), dict(walkers=10, points=5)],
)
def test_bad_params_raise_user_error(overrides: dict) -> None:
    with pytest.raises(nv.UserError):
        nv.create_generator("fractal/ifs", **overrides)


def test_walk_choices_follow_the_cdf() -> None:
    """Map choices are the cdf bins of uniform draws (as searchsorted), never a zero-probability padding entry."""
    probs = np.array([0.1, 0.0, 0.5, 0.4, 0.0, 0.0])
    choices, start = fractal._draw_walk(image_rng(0, 0), probs, 50, 64)
    u = image_rng(0, 0).random((50, 64))
    expected = np.minimum(np.searchsorted(np.cumsum(probs), u, side="right"), 3)
    np.testing.assert_array_equal(choices, expected)
    assert start == choices[0, 0] and 1 not in choices
