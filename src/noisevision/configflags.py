"""CLI flags built from a frozen config dataclass (flag names = field names), and the verbs' config check.

Field metadata: ``help``; ``flags`` renames the flag (aliases after the
first); ``positional`` makes it an (optional) positional argument;
``required`` makes the CLI refuse to run without it; ``metavar``. bool fields
become ``--x/--no-x``, dict fields repeatable ``KEY=VALUE`` flags. Every flag
defaults to None ("not given"), so the dataclass is the one place that holds
defaults.

>>> add_config_flags(parser, AnalyzeConfig)
>>> analyze(config_values(parser.parse_args(argv), AnalyzeConfig, "analyze"))
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")
_SCALARS = (int, float, str)


def _base_type(hint: Any) -> Any:
    """``int | None`` -> int; ``dict[str, Any]`` -> dict; other hints unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            hint = args[0]
    return typing.get_origin(hint) or hint


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argument per field of the dataclass ``cls`` to ``parser`` (see the module docstring)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta, kind = f.metadata, _base_type(hints[f.name])
        help_ = meta["help"]
        if meta.get("positional"):
            parser.add_argument(f.name, nargs="?", default=None, type=kind if kind in _SCALARS else str, help=help_)
            continue
        flags = meta.get("flags") or (f"--{f.name.replace('_', '-')}",)
        if kind is bool:
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif kind is dict:
            parser.add_argument(*flags, dest=f.name, action="append", default=None, metavar="KEY=VALUE", help=help_)
        elif kind in _SCALARS:
            parser.add_argument(*flags, dest=f.name, type=kind, default=None,
                                metavar=meta.get("metavar", f.name.split("_")[-1].upper()), help=help_)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no CLI flag for type {hints[f.name]!r}")


def config_values(args: argparse.Namespace, cls: type, command: str) -> dict[str, Any]:
    """The fields given on the command line; ``KEY=VALUE`` lists become dicts.

    Raises:
        UserError: a required field is missing, or a ``KEY=VALUE`` item has no ``=``.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        given = getattr(args, f.name, None)
        if given is not None and _base_type(hints[f.name]) is dict:
            given = _key_values(given, (f.metadata.get("flags") or (f.name,))[0])
        if given is not None:
            values[f.name] = given
        elif f.metadata.get("required"):
            name = f.name.upper() if f.metadata.get("positional") else (f.metadata.get("flags") or (f"--{f.name}",))[0]
            raise UserError(f"{command} needs {name}")
    return values


def _key_values(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r} must look like key=value")
        out[key.strip()] = value.strip()
    return out


def make_config(cls: type[T], config: T | Mapping[str, Any] | None, fields: Mapping[str, Any], where: str) -> T:
    """The validated config of a verb ``verb(config=None, /, **fields)``: a ``cls`` instance or a mapping
    of its fields (or None), with ``fields`` on top.

    Raises:
        UserError: unknown field, or a value its ``__post_init__`` refuses (one line).
    """
    try:
        if isinstance(config, cls):
            return dataclasses.replace(config, **fields) if fields else config
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a {cls.__name__} or a mapping, got {type(config).__name__}")
        return cls(**{**(config or {}), **fields})
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise UserError(f"invalid {where} arguments: {exc}") from None
