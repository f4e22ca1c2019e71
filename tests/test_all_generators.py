"""Contract tests run over every registered generator (a new one is tested automatically)."""
from __future__ import annotations

import numpy as np
import pytest

from noisevision.errors import UserError
from noisevision.generators import create_generator, get_spec, list_generators

NAMES = list_generators()
SIZE = 32


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An encoder checkpoint for generators that need one (feature-vis/checkpoint)."""
    from noisevision.models import create_encoder, save_encoder

    path = tmp_path_factory.mktemp("ckpt") / "encoder.pt"
    save_encoder(path, create_encoder("resnet18", stem="cifar", width=0.25))
    return str(path)


@pytest.fixture
def make(tiny_checkpoint):
    def _gen(name: str, **extra):
        spec = get_spec(name)
        fields = spec.params_cls.__dataclass_fields__
        over = dict(spec.fast_overrides)
        if "checkpoint" in spec.required:
            over["checkpoint"] = tiny_checkpoint
        if "chunk" in fields:  # feature-vis optimises fixed-size chunks; small ones keep this test quick
            over["chunk"] = 2
        return create_generator(name, **{**over, **extra})

    return _gen


def test_the_papers_generators_are_registered():
    expected = {
        "dead-leaves/squares", "dead-leaves/oriented", "dead-leaves/mixed", "dead-leaves/textured",
        "stat/spectrum", "stat/wmm", "stat/spectrum-color", "stat/spectrum-color-wmm",
    }
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_contract_shape_range_determinism_split_invariance(name, make):
    gen = make(name)
    spec = get_spec(name)
    assert spec.description and spec.family
    whole = gen.render(np.arange(5), seed=11, size=SIZE)
    assert whole.shape == (5, SIZE, SIZE, 3) and whole.dtype == np.uint8
    assert whole.std() > 1, "images should not be flat"
    # image i depends only on (params, seed, i): not on batch composition or order
    parts = np.concatenate([gen.render([3, 4], 11, SIZE), gen.render([0], 11, SIZE), gen.render([1, 2], 11, SIZE)])
    np.testing.assert_array_equal(parts, whole[[3, 4, 0, 1, 2]])
    # a new generator object gives the same bytes; another seed gives other images
    np.testing.assert_array_equal(make(name).render([2], 11, SIZE), whole[2:3])
    assert not np.array_equal(gen.render([2], 12, SIZE), whole[2:3])
    assert not np.array_equal(whole[0], whole[1])


@pytest.mark.parametrize("name", NAMES)
def test_unknown_parameter_is_a_user_error(name):
    with pytest.raises(UserError, match="has no parameter"):
        create_generator(name, definitely_not_a_param="1")


def test_required_parameters_are_checked_up_front():
    for name in NAMES:
        for req in get_spec(name).required:
            with pytest.raises(UserError, match=f"-p {req}="):
                create_generator(name)


def test_unknown_generator_suggests_close_names():
    with pytest.raises(UserError, match="did you mean"):
        create_generator("dead-leaves/mixd")
