"""Encoder specs: the strings ``probe --encoder`` (and the comparison) accept besides a checkpoint.

``pixels`` (flattened pixels: the raw-pixel baseline) and
``random:<arch>[:key=value,...]`` (a seeded random initialisation of a
registered architecture) are registered here with :func:`register_encoder_spec`;
any other string is a checkpoint file or run directory.

>>> encoder, meta, info = build_encoder("random:resnet18:stem=cifar", seed=0)   # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import UserError
from ..parsing import parse_kv
from ..registry import Registry
from ..rng import seeded_torch
from .base import Encoder
from .checkpoint import load_encoder
from .factory import create_encoder

# (spec, seed, image size or None, expected arch or None) -> (encoder in eval mode, meta, description for a JSON)
SpecBuilder = Callable[[str, int, "int | None", "str | None"], tuple[Encoder, dict, dict]]


@dataclass(frozen=True)
class EncoderSpecKind:
    """A registered kind of encoder spec.

    Attributes:
        name: the spec's first word (``pixels``, ``random``).
        syntax: how it is written, for help texts.
        takes_args: written ``name:...`` (True) or exactly ``name`` (False).
        build: turns the spec into an encoder.
    """

    name: str
    syntax: str
    takes_args: bool
    build: SpecBuilder


ENCODER_SPECS: Registry[EncoderSpecKind] = Registry("encoder spec")


def register_encoder_spec(name: str, syntax: str, takes_args: bool) -> Callable[[SpecBuilder], SpecBuilder]:
    """Decorator registering a spec builder under its first word ``name``."""

    def wrap(build: SpecBuilder) -> SpecBuilder:
        ENCODER_SPECS.register(name, EncoderSpecKind(name, syntax, takes_args, build))
        return build

    return wrap


def spec_kind(spec: str) -> EncoderSpecKind | None:
    """The registered kind ``spec`` is written in, or None for a checkpoint path."""
    head, sep, _ = spec.partition(":")
    if head not in ENCODER_SPECS:
        return None
    kind = ENCODER_SPECS.get(head)
    return kind if bool(sep) == kind.takes_args else None


def list_encoder_specs() -> list[str]:
    """How each registered spec is written (for help texts)."""
    return [ENCODER_SPECS.get(name).syntax for name in ENCODER_SPECS]


def build_encoder(spec: str, seed: int = 0, image_size: int | None = None,
                  expected_arch: str | None = None) -> tuple[Encoder, dict, dict]:
    """Resolve an encoder spec or checkpoint path: (encoder in eval mode, checkpoint meta, description).

    Raises:
        UserError: bad spec, unknown architecture, missing or unreadable checkpoint, another architecture
            than ``expected_arch``.
    """
    kind = spec_kind(spec)
    if kind is not None:
        return kind.build(spec, seed, image_size, expected_arch)
    path = Path(spec).expanduser()
    encoder, meta = load_encoder(path, expected_arch=expected_arch)
    info = {"spec": spec, "kind": "checkpoint", "path": str(path.resolve()), "meta": meta}
    return encoder.eval(), meta, {**info, "arch": encoder.arch, "arch_kwargs": encoder.arch_kwargs}


# ------------------------------------------------------------------ pixels

PIXELS = "pixels"
PIXELS_DEFAULT_SIZE = 32


class PixelEncoder(Encoder):
    """Identity "encoder": flattened normalised pixels (the raw-pixel linear baseline)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.stages = nn.ModuleDict({"pixels": nn.Flatten(1)})
        self.layer_names = ("pixels",)
        self.default_probe_layer = "pixels"
        self.out_dim = 3 * input_size * input_size
        self.input_size = input_size
        self.fixed_input_size = input_size  # out_dim is the pixel count
        self.arch = PIXELS
        self.arch_kwargs = {"input_size": input_size}


@register_encoder_spec(PIXELS, PIXELS, takes_args=False)
def _pixels(spec: str, seed: int, image_size: int | None, expected_arch: str | None) -> tuple[Encoder, dict, dict]:
    """Flattened pixels at ``image_size`` (default 32 px); has no weights, so ignores the seed."""
    size = image_size or PIXELS_DEFAULT_SIZE
    return PixelEncoder(size), {}, {"spec": spec, "arch": PIXELS, "arch_kwargs": {"input_size": size}}


# ------------------------------------------------------------------ random:<arch>

RANDOM_PREFIX = "random:"
RANDOM_SYNTAX = "random:<arch>[:key=value,...]"


def parse_random_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``random:resnet18:stem=cifar,width=0.5`` -> ("resnet18", {"stem": "cifar", "width": 0.5})."""
    body = spec[len(RANDOM_PREFIX):]
    arch, _, kw = body.partition(":")
    try:
        kwargs = parse_kv([item for item in kw.split(",") if item], "encoder argument")
    except UserError:
        raise UserError(f"bad encoder spec {spec!r}: expected {RANDOM_SYNTAX}") from None
    if not arch:
        raise UserError(f"bad encoder spec {spec!r}: expected {RANDOM_SYNTAX}")
    return arch, kwargs


@register_encoder_spec("random", RANDOM_SYNTAX, takes_args=True)
def _random(spec: str, seed: int, image_size: int | None, expected_arch: str | None) -> tuple[Encoder, dict, dict]:
    """A registered architecture initialised from ``seed`` (the random-init baseline)."""
    arch, kwargs = parse_random_spec(spec)
    if expected_arch is not None and arch != expected_arch:
        raise UserError(f"encoder {spec!r} is a {arch!r}, but {expected_arch!r} was expected")
    with seeded_torch(seed, 0, "random-encoder-init"):
        encoder = create_encoder(arch, **kwargs)
    info = {"spec": spec, "kind": "random-init", "init_seed": seed}
    return encoder.eval(), {}, {**info, "arch": encoder.arch, "arch_kwargs": encoder.arch_kwargs}
