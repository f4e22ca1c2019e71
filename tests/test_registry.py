"""The generic registry, per-image RNG streams and parameter resolution."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from noisevision.errors import UserError
from noisevision.generators.base import parse_param_overrides
from noisevision.parsing import check_scalar, resolve_params
from noisevision.registry import Registry
from noisevision.rng import image_rng, seed_sequence, torch_seed


def test_registry_refuses_duplicates_and_suggests_names():
    reg: Registry[int] = Registry("thing")
    reg.register("dead-leaves/mixed", 1)
    reg.register("dead-leaves/squares", 2)
    with pytest.raises(ValueError):
        reg.register("dead-leaves/mixed", 3)
    with pytest.raises(UserError, match="did you mean: dead-leaves/mixed"):
        reg.get("dead-leaves/mixd")
    assert reg.names("dead-leaves/*") == ["dead-leaves/mixed", "dead-leaves/squares"]
    assert reg.names("*/squares") == ["dead-leaves/squares"]


def test_image_streams_are_child_streams_and_independent():
    # image i's stream is child i of SeedSequence(root).spawn(n), as numpy documents
    children = np.random.SeedSequence(7).spawn(5)
    for i in range(5):
        a = np.random.default_rng(children[i]).random(4)
        b = image_rng(7, i).random(4)
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(image_rng(7, 1).random(4), image_rng(8, 0).random(4))
    assert not np.allclose(image_rng(7, 1).random(4), image_rng(7, 1, "net").random(4))
    assert seed_sequence(0, 3, "x").entropy == 0
    assert torch_seed(0, 1) != torch_seed(0, 2) and 0 <= torch_seed(0, 1) < 2**63


@dataclass(frozen=True)
class _P:
    rate: float = 1.0
    count: int = 3
    span: tuple[float, float] = (0.5, 3.5)
    flag: bool = False
    name: str | None = None
    table: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if self.span[0] >= self.span[1]:
            raise ValueError("span must be increasing")


def test_resolve_params_coerces_cli_strings():
    p = resolve_params(_P, {"count": 5}, {"rate": "2.5", "span": "1,3", "flag": "yes", "name": "none"}, "x")
    assert p == _P(rate=2.5, count=5, span=(1.0, 3.0), flag=True, name=None)
    assert resolve_params(_P, {}, {"count": "4"}, "x").count == 4
    assert resolve_params(_P, {}, {"span": "[1,3]", "table": None}, "x") == _P(span=(1.0, 3.0))  # Python-style pair


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"rat": "1"}, "did you mean: rate"),
        ({"count": "2.5"}, "integer"),
        ({"span": "1"}, "2 comma-separated"),
        ({"span": "3,1"}, "increasing"),
        ({"flag": "maybe"}, "true or false"),
        ({"rate": "fast"}, "bad value for rate: rate must be a number, got 'fast'"),
        ({"rate": "1,2"}, "rate must be a number, got '1,2'"),
        ({"count": "many"}, "count must be an integer, got 'many'"),
        ({"span": 2}, "span needs 2 comma-separated values, got 2"),  # a YAML scalar for a pair
        ({"name": ["a", "b"]}, r"name must be one value, got \['a', 'b'\]"),  # a YAML list for a string
        ({"table": 5}, "table must be a mapping of key: value"),
        ({"table": {1: 2}}, "table: every key must be a name, got 1"),
    ],
)
def test_resolve_params_rejects_bad_values(overrides, message):
    with pytest.raises(UserError, match=message):
        resolve_params(_P, {}, overrides, "gen")


@dataclass(frozen=True)
class _Needs:
    size: int
    lr: float
    seed: int = 0


def test_resolve_params_names_every_missing_field():
    with pytest.raises(UserError, match="^profile p.yaml lacks required fields: size, lr$"):
        resolve_params(_Needs, {}, {"seed": "1"}, "profile p.yaml")
    with pytest.raises(UserError, match="lacks required field: lr$"):
        resolve_params(_Needs, {"size": 8}, {}, "x")
    assert resolve_params(_Needs, {"size": 8}, {"lr": "0.1"}, "x") == _Needs(8, 0.1)


@pytest.mark.parametrize(
    "value, annotation, message",
    [
        ("4", int, "n must be an integer, got '4'"),
        (True, int, "n must be an integer, got True"),
        (1.5, int, "n must be an integer, got 1.5"),
        ("x", float | None, "n must be a number, got 'x'"),
        (3, str, "n must be a string, got 3"),
        (1, bool, "n must be true or false, got 1"),
    ],
)
def test_check_scalar_converts_nothing(value, annotation, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_scalar(value, annotation, "n")


def test_check_scalar_accepts_exact_types_and_passes_other_annotations():
    for value, annotation in [(4, int), (4, float), (0.5, float | None), ("a", str), (False, bool), ([1], list)]:
        check_scalar(value, annotation, "n")
    check_scalar("anything", None, "n")  # an argument without an annotation: the builder decides


def test_parse_param_overrides():
    assert parse_param_overrides(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(UserError):
        parse_param_overrides(["novalue"])
