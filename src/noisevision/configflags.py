"""CLI flags built from a frozen config dataclass (flag names = field names).

Each field carries ``metadata={"help": ...}``; optional ``"flags"`` gives the
option strings (default ``--field-name``) and ``"positional": True`` makes it a
positional argument. A flag left out is ``None`` and means "the config's
default", so the dataclass stays the one place that holds defaults.

>>> add_config_arguments(parser, AnalyzeConfig)
>>> AnalyzeConfig(**config_kwargs(AnalyzeConfig, parser.parse_args(argv)))
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from .errors import UserError

_SCALARS = (int, float, str)


def _base_type(hint: Any) -> Any:
    """``int | None`` -> int; ``dict[str, Any]`` -> dict; other hints unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            hint = args[0]
    return typing.get_origin(hint) or hint


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argument per field of the dataclass ``cls`` to ``parser``.

    bool fields become ``--x/--no-x``; dict fields repeatable ``KEY=VALUE``
    flags; int/float/str fields typed flags. Fields without a default are
    required (positional when their metadata says so).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        kind = _base_type(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        help_ = meta["help"]
        if meta.get("positional"):
            parser.add_argument(f.name, type=kind if kind in _SCALARS else str, help=help_)
            continue
        flags = meta.get("flags") or (f"--{f.name.replace('_', '-')}",)
        if kind is bool:
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif kind is dict:
            parser.add_argument(*flags, dest=f.name, action="append", default=None, metavar="KEY=VALUE", help=help_)
        elif kind in _SCALARS:
            parser.add_argument(*flags, dest=f.name, type=kind, default=None, required=required,
                                metavar=meta.get("metavar", f.name.split("_")[-1].upper()), help=help_)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no CLI flag for type {hints[f.name]!r}")


def config_kwargs(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields given on the command line (``None`` = not given); ``KEY=VALUE`` lists become dicts."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if _base_type(hints[f.name]) is dict:
            from .generators import parse_param_overrides

            value = parse_param_overrides(value)
        out[f.name] = value
    return out


def build(cls: type, config: Any, fields: dict[str, Any], what: str) -> Any:
    """``config`` with ``fields`` replaced (or ``cls(**fields)``); bad values become one-line UserErrors."""
    try:
        if config is None:
            return cls(**fields)
        if not isinstance(config, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(config).__name__}")
        return dataclasses.replace(config, **fields) if fields else config
    except ValueError as exc:
        raise UserError(f"{what}: {exc}") from None
    except TypeError as exc:
        raise UserError(f"invalid {what} arguments: {exc}") from None
