"""The public API: verbs over frozen configs, one way to parse key=value, CLI flags from the configs."""
from __future__ import annotations

import dataclasses
import inspect
import re

import numpy as np
import pytest
import yaml

import noisevision as nv
from noisevision.cli import COMMANDS, main
from noisevision.errors import UserError
from noisevision.models.specs import parse_random_spec
from noisevision.parsing import parse_kv, parse_value
from noisevision.train.config import build_config

VERBS = {c.name: c.config for c in COMMANDS if c.config is not None}


def test_every_verb_of_the_api_is_a_subcommand():
    lazy = {name for name in nv.__all__ if name[0].islower() and callable(getattr(nv, name))}
    assert set(VERBS) == lazy - {"create_generator", "list_generators"}


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_takes_a_frozen_config_then_fields(verb, capsys):
    fn, cls = getattr(nv, verb), VERBS[verb]
    assert getattr(nv, cls.__name__) is cls  # the config is public next to its verb
    params = list(inspect.signature(fn).parameters.values())
    assert params[0].name == "config" and params[0].kind is inspect.Parameter.POSITIONAL_ONLY
    assert params[1].kind is inspect.Parameter.VAR_KEYWORD
    assert cls.__dataclass_params__.frozen
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert all(f.metadata.get("help") for f in fields.values()), "every field documents its CLI flag"
    if "device" in fields:
        assert fields["device"].default == "auto"  # as on the command line
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    assert "--config FILE.yaml" in capsys.readouterr().out


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        nv.no_such_verb  # noqa: B018


def test_width_half_parses_the_same_everywhere():
    assert parse_value("0.5") == 0.5 and parse_value("1e-3") == 0.001 and parse_value("true") is True
    assert parse_value("none") is None and parse_value("cifar") == "cifar" and parse_value("[1, 2]") == [1, 2]
    assert parse_kv(["width=0.5"], "x") == {"width": 0.5}
    assert parse_random_spec("random:resnet18:width=0.5") == ("resnet18", {"width": 0.5})
    assert build_config(None, {"arch_kwargs": ["width=0.5"], "out": "r"}).arch_kwargs == {"width": 0.5}
    assert nv.create_generator("stat/spectrum", anisotropy_sd="0.5").params.anisotropy_sd == 0.5
    with pytest.raises(UserError, match="must look like key=value"):
        parse_kv(["width"], "encoder argument")


def test_generate_from_config_fields_and_yaml(tmp_path):
    cfg = nv.GenerateConfig(generator="dead-leaves/mixed", num_images=3, size=16, out=str(tmp_path / "a"),
                            format="npy", progress=False)
    first = nv.generate(cfg)
    assert first.rendered == 3
    again = nv.generate(cfg, out=str(tmp_path / "b"))  # fields override the config
    assert again.rendered == 3
    a, b = np.load(tmp_path / "a" / "images.npy"), np.load(tmp_path / "b" / "images.npy")
    assert np.array_equal(a, b)
    with pytest.raises(UserError, match="has no parameter 'num_image'"):
        nv.generate(cfg, num_image=2)


def test_cli_generate_takes_a_yaml_config_with_flags_on_top(tmp_path, capsys):
    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump({"generator": "dead-leaves/mixed", "num_images": 5, "size": 16,
                                      "format": "npy", "params": {"max_shapes": 50}}))
    out = tmp_path / "ds"
    assert main(["generate", "--config", str(config), "-n", "2", "-o", str(out), "--no-progress"]) == 0
    assert "rendered 2 images" in capsys.readouterr().out
    assert np.load(out / "images.npy").shape == (2, 16, 16, 3)
    assert main(["generate", "--config", str(config), "--no-progress"]) == 2
    assert "generate needs --out" in capsys.readouterr().err


def test_cli_help_lists_registry_names(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    from noisevision.augment import list_aug_presets
    from noisevision.methods import list_methods
    from noisevision.models import list_encoders

    for name in list_encoders() + list_methods() + list_aug_presets():
        assert name in text


def test_a_stray_argument_is_reported_with_the_usage_of_its_command(capsys):
    """`noisevision probe ckpt.pt` (the encoder is --encoder): the error names the command and shows its
    usage, not the top-level one, which says nothing about the flags the user needs."""
    with pytest.raises(SystemExit) as exc:
        main(["probe", "ckpt.pt"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "noisevision probe: error: unrecognized arguments: ckpt.pt" in err and "--encoder ENCODER" in err


def test_a_misspelt_config_key_is_named_before_the_field_it_leaves_missing(tmp_path, capsys):
    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump({"generator": "dead-leaves/mixed", "num_image": 5}))
    assert main(["generate", "--config", str(config), "-o", str(tmp_path / "ds")]) == 2
    assert "generate has no parameter 'num_image' (did you mean: num_images?)" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe garbage", "cannot read config file .*: 'utf-8' codec can't decode"),
    (b"1: 2\n", "config file .*: every key must be a name, got 1"),
    (b"params: {1: 2}\ngenerator: stat/spectrum\nnum_images: 2\n", "params: every key must be a name, got 1"),
    (b"params: 5\ngenerator: stat/spectrum\nnum_images: 2\n", "params must be a mapping of key: value"),
])
def test_a_config_file_of_the_wrong_shape_is_one_line(tmp_path, capsys, content, message):
    config = tmp_path / "bad.yaml"
    config.write_bytes(content)
    assert main(["generate", "--config", str(config), "-o", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "ds").exists()


def test_a_missing_positional_argument_is_named_as_one(capsys):
    assert main(["export"]) == 2
    assert "export needs the run argument (or run: in --config)" in capsys.readouterr().err
