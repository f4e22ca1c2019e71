"""MixUp and mix: combinators: weights, exact mixing, proportions, determinism, bad input."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import noisevision as nv
from noisevision.generators import GENERATORS, create_generator, dynamic_prefixes, get_spec
from noisevision.generators import combinators as comb
from noisevision.generators.base import params_to_dict

SMALL = dict(points=2048, walkers=256)  # cheap inner fractals
MIXUP = "mixup/fractal/ifs"
MIX = "mix:fractal/ifs@3+mixup/fractal/ifs@1"


def test_listed_as_dynamic_prefixes() -> None:
    nv.list_generators()
    assert {"mixup/", "mix:"} <= set(dynamic_prefixes())


def test_mixup_weights_on_simplex_and_sources_distinct() -> None:
    params = nv.create_generator(MIXUP, **SMALL).params
    assert params.k == 6 and params.alpha == 1.0 and params.inner == "fractal/ifs"
    sources, weights = comb.mixup_sources(np.arange(2000), 0, params)
    assert sources.shape == weights.shape == (2000, 6)
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert all(len(set(row)) == 6 for row in sources) and sources.min() >= 0 and sources.max() < params.source_pool
    # Dirichlet(1) with k = 6: mean 1/6, variance (1/6)(5/6)/7
    np.testing.assert_allclose(weights.mean(), 1 / 6, atol=1e-9)
    np.testing.assert_allclose(weights.var(), (1 / 6) * (5 / 6) / 7, rtol=0.08)
    peaked = nv.create_generator(MIXUP, alpha=100.0, k=3).params
    assert comb.mixup_sources(np.arange(200), 0, peaked)[1].std() < 0.05  # large alpha -> near-uniform weights
    # the draw of image i does not depend on the batch
    s2, w2 = comb.mixup_sources(np.array([7, 3]), 0, params)
    np.testing.assert_array_equal(s2, sources[[7, 3]])
    np.testing.assert_array_equal(w2, weights[[7, 3]])


def test_mixup_is_weighted_sum_of_sources() -> None:
    gen = nv.create_generator(MIXUP, k=3, **SMALL)
    inner = nv.create_generator("fractal/ifs", **SMALL)
    mixed = gen.render([0, 5], seed=2, size=32)
    sources, weights = comb.mixup_sources(np.array([0, 5]), 2, gen.params)
    for row in range(2):
        expected = np.einsum("k,khwc->hwc", weights[row], inner.render(sources[row], 2, 32).astype(np.float64))
        assert np.abs(mixed[row].astype(np.float64) - expected).max() <= 1.0


def test_mixup_deterministic_and_split_invariant() -> None:
    gen = nv.create_generator(MIXUP, k=2, **SMALL)
    whole = gen.render(range(4), 1, 24)
    np.testing.assert_array_equal(whole, gen.render(range(4), 1, 24))
    np.testing.assert_array_equal(np.concatenate([gen.render([3, 1], 1, 24), gen.render([0, 2], 1, 24)]), whole[[3, 1, 0, 2]])


def test_mix_respects_weights_statistically() -> None:
    gen = nv.create_generator(MIX)
    assert gen.params.weights == (0.75, 0.25)
    n = 4000
    choice = comb.mix_choices(np.arange(n), 0, gen.params)
    sigma = np.sqrt(0.75 * 0.25 / n)
    assert abs((choice == 0).mean() - 0.75) < 4 * sigma
    np.testing.assert_array_equal(gen.labels(range(n), 0), choice)
    zero = nv.create_generator("mix:fractal/ifs@0+mixup/fractal/ifs@2")
    assert (comb.mix_choices(np.arange(300), 0, zero.params) == 1).all()


def test_mix_images_come_from_chosen_component_and_split_invariant() -> None:
    gen = nv.create_generator(MIX, **{"1.points": 2048, "1.walkers": 256, "mixup/fractal/ifs.k": 2}, walkers=128)
    assert gen.params.component_params[0].points == 2048 and gen.params.component_params[1].k == 2
    assert gen.params.component_params[0].walkers == 256 and gen.params.component_params[1].inner_params.walkers == 128
    idx = np.arange(6)
    whole = gen.render(idx, 0, 24)
    np.testing.assert_array_equal(np.concatenate([gen.render(idx[4:], 0, 24), gen.render(idx[:4], 0, 24)]), whole[[4, 5, 0, 1, 2, 3]])
    parts = [nv.create_generator("fractal/ifs", points=2048, walkers=256), nv.create_generator(MIXUP, k=2, walkers=128)]
    for i, c in zip(idx, gen.labels(idx, 0)):
        np.testing.assert_array_equal(whole[i], parts[c].render([i], 0, 24)[0])


def test_manifest_params_rebuild_the_same_generator() -> None:
    for name, kw in [(MIXUP, dict(k=3, points=4096)), (MIX, {"2.k": 4})]:
        gen = nv.create_generator(name, **kw)
        recorded = json.loads(json.dumps(params_to_dict(gen.params)))
        assert nv.create_generator(name, **recorded).params == gen.params


def test_revision_moves_with_any_component(monkeypatch: pytest.MonkeyPatch) -> None:
    """A combinator's datasets must not be resumed across a change of one of its parts' renders."""
    names = ("mixup/stat/spectrum", "mix:stat/spectrum+dead-leaves/mixed")
    assert [create_generator(n).revision for n in names] == [1, 1]
    bumped = dataclasses.replace(get_spec("stat/spectrum"), revision=3)
    monkeypatch.setitem(GENERATORS._items, "stat/spectrum", bumped)
    assert [create_generator(n).revision for n in names] == [3, 3]
    bumped = dataclasses.replace(get_spec("dead-leaves/mixed"), revision=2)
    monkeypatch.setitem(GENERATORS._items, "dead-leaves/mixed", bumped)
    assert create_generator(names[1]).revision == 4


def test_mix_name_may_contain_plus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(GENERATORS._items, "test/a+b", get_spec("fractal/ifs"))
    assert comb.parse_mix("mix:test/a+b@2+fractal/ifs") == (["test/a+b", "fractal/ifs"], [2.0, 1.0])
    assert comb.parse_mix("mix:fractal/ifs@1+test/a+b") == (["fractal/ifs", "test/a+b"], [1.0, 1.0])


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("mixup/fractal/ifz", {}, "did you mean"),
        ("mixup/", {}, "needs a generator"),
        (MIXUP, dict(k=1), "k must be"),
        (MIXUP, dict(alpha=0), "alpha"),
        (MIXUP, dict(k=7, source_pool=5), "source_pool"),
        (MIXUP, dict(colour="white"), "did you mean"),
        ("mix:", {}, "needs components"),
        ("mix:fractal/ifs@-1+mixup/fractal/ifs", {}, "non-negative"),
        ("mix:fractal/ifs@x", {}, "not a number"),
        ("mix:fractal/ifs@nan", {}, "finite"),
        ("mix:fractal/ifs@0+mixup/fractal/ifs@0", {}, "all zero"),
        ("mix:fractal/ifs++mixup/fractal/ifs", {}, "empty component"),
        ("mix:fractal/ifs+mix:fractal/ifs", {}, "nested"),
        ("mix:fractal/ifs+dead-leaves/nonexistent-xyz", {}, "unknown generator"),
        (MIX, {"wakers": 3}, "did you mean"),
        (MIX, {"3.k": 3}, "there are 2"),
        (MIX, {"2.k": 1}, "k must be"),
    ],
)
def test_bad_input_raises_user_error(name: str, overrides: dict, message: str) -> None:
    with pytest.raises(nv.UserError, match=message):
        nv.create_generator(name, **overrides)
