"""Typed ``key=value`` parsing, shared by every layer.

One set of rules turns user text into values, so ``width=0.5`` means the same
in ``generate -p``, ``pretrain --arch-kwargs``, ``random:<arch>:width=0.5`` and
a YAML config:

* :func:`parse_value` types a free-standing string (no declared type):
  ``none``/``null``/empty -> None, ``true``/``false`` (``yes``/``no``,
  ``on``/``off``) -> bool, integers, floats (``1e-3`` too), ``[...]``/``{...}``
  as YAML; anything else stays a string.
* :func:`coerce` converts a value to a dataclass field's annotation;
  :func:`check_scalar` only checks one that is already typed.
* :func:`parse_kv` splits ``["k=v", ...]`` into a dict.
* :func:`resolve_params` builds a validated frozen dataclass from defaults
  plus (possibly string) overrides; :func:`load_yaml` reads a config file.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import UserError, did_you_mean

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_NONE = ("none", "null", "~", "")

# What each scalar annotation asks of a value, in the words the error messages use.
SCALAR_KINDS: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def parse_value(text: str) -> Any:
    """Type a string without a declared type (see the module docstring for the rules)."""
    s = text.strip()
    low = s.lower()
    if low in _NONE:
        return None
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    if s[:1] in ("[", "{"):
        try:
            return yaml.safe_load(s)
        except yaml.YAMLError:
            return s
    return s


def parse_kv(items: Iterable[str] | Mapping[str, Any] | None, name: str, typed: bool = True) -> dict[str, Any]:
    """``["temperature=0.2", "stem=cifar"]`` -> ``{"temperature": 0.2, "stem": "cifar"}``.

    ``typed=False`` keeps the values as strings (for fields whose type is known
    later, see :func:`coerce`). A mapping is returned as a dict unchanged.
    Dashes in keys become underscores.

    Raises:
        UserError: an item without ``=``, an empty key, or a mapping key that is not a string.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        _check_string_keys(items, name)
        return dict(items)
    if isinstance(items, str):  # one key=value written as a plain YAML string
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise UserError(f"{name} must be a mapping of key: value (or a list of key=value), got {items!r}")
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UserError(f"{name} {item!r} must look like key=value")
        out[key.strip().replace("-", "_")] = parse_value(value) if typed else value.strip()
    return out


def _check_string_keys(mapping: Mapping[Any, Any], name: str) -> None:
    bad = next((k for k in mapping if not isinstance(k, str)), None)
    if bad is not None:
        raise UserError(f"{name}: every key must be a name, got {bad!r}")


def coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert a CLI string (or YAML value) to the dataclass field's type.

    Raises:
        ValueError: the value does not fit the type.
    """
    if isinstance(annotation, str):  # postponed annotations
        annotation = eval(annotation, vars(typing), {})  # noqa: S307 - our own source annotations
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            if type(None) in args:
                return None
        non_none = [a for a in args if a is not type(None)]
        return coerce(value, non_none[0], name)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        s = str(value).lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError(f"{name} must be {SCALAR_KINDS[bool]}, got {value!r}")
    if annotation is str:
        if isinstance(value, (list, tuple, dict)):
            raise ValueError(f"{name} must be one value, got {value!r}")
        return str(value)
    if annotation in (int, float):
        kind = SCALAR_KINDS[annotation]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {kind}, got {value!r}") from None
        if annotation is float:
            return number
        if not number.is_integer():
            raise ValueError(f"{name} must be {SCALAR_KINDS[int]}, got {value!r}")
        return int(value) if isinstance(value, int) else int(number)  # exact for large integers; True -> 1
    if origin is tuple:
        if isinstance(value, str):
            text = value.strip()
            if text[:1] + text[-1:] in ("[]", "()"):  # "[1,2]" written the Python way
                text = text[1:-1]
            items: list[Any] = text.split(",")
        else:
            items = list(value) if isinstance(value, (list, tuple)) else [value]
        if args and args[-1] is not Ellipsis and len(items) != len(args):
            raise ValueError(f"{name} needs {len(args)} comma-separated values, got {value!r}")
        types_ = [args[0]] * len(items) if (args and args[-1] is Ellipsis) else list(args)
        return tuple(coerce(v.strip() if isinstance(v, str) else v, t, name) for v, t in zip(items, types_))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, (Mapping, list, tuple, str)):
            raise ValueError(f"{name} must be a mapping of key: value (or a list of key=value), got {value!r}")
        return parse_kv([value] if isinstance(value, str) else value, name)
    return value


def check_scalar(value: Any, annotation: Any, name: str) -> None:
    """Refuse a value whose exact type does not fit a bool / int / float / str annotation (or a union
    of them), converting nothing: for values already typed by :func:`parse_value`, where ``"4"`` or
    ``True`` given for an integer is a mistake. An int fits a float; other annotations pass.

    Raises:
        ValueError: the value does not fit.
    """
    kinds = [t for t in typing.get_args(annotation) or (annotation,) if t in SCALAR_KINDS]
    if not kinds:
        return
    accepted = {*kinds, int} if float in kinds else set(kinds)
    if type(value) not in accepted:  # exact types: True is not an integer here
        raise ValueError(f"{name} must be {' or '.join(SCALAR_KINDS[t] for t in kinds)}, got {value!r}")


def check_argument_types(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse (ValueError) a keyword argument whose value does not fit ``fn``'s bool / int / float / str
    annotation (:func:`check_scalar`), so that ``width=abc`` is a one-line error rather than a failure
    deep inside ``fn``. Arguments ``fn`` does not annotate pass: ``fn`` names unknown ones itself."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a plugin whose annotations do not resolve: leave the checking to it
        return
    for key, value in kwargs.items():
        check_scalar(value, hints.get(key), key)


def check_field_names(params_cls: type, keys: Iterable[str], where: str) -> None:
    """UserError (with a did-you-mean) for the first key that names no field of ``params_cls``."""
    fields = [f.name for f in dataclasses.fields(params_cls)]
    for key in keys:
        name = key.replace("-", "_")
        if name not in fields:
            raise UserError(f"{where} has no parameter {key!r}{did_you_mean(name, fields)}; "
                            f"its parameters are: {', '.join(fields)}")


def resolve_params(params_cls: type, defaults: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> Any:
    """Build a ``params_cls`` instance from defaults plus (possibly string) overrides.

    Raises:
        UserError: unknown field (with a did-you-mean), a value of the wrong type, or a failed validation.
    """
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = typing.get_type_hints(params_cls)
    values = dict(defaults)
    check_field_names(params_cls, overrides, where)
    for key, raw in overrides.items():
        key_ = key.replace("-", "_")
        try:
            values[key_] = coerce(raw, hints[key_], key_)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: bad value for {key_}: {exc}") from None
    missing = [name for name, f in fields.items() if f.init and name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"{where} lacks required field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {exc}") from None


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a config YAML into a dict (UserError if missing or not a mapping)."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8 text
        raise UserError(f"cannot read config file {path}: {str(exc).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UserError(f"config file {path} must hold a mapping of field: value")
    _check_string_keys(values, f"config file {path}")
    return values


def make_config(cls: type[T], config: T | Mapping[str, Any] | str | os.PathLike | None, fields: Mapping[str, Any],
                where: str) -> T:
    """The ``config`` of an API call ``verb(config=None, /, **fields)``, validated.

    ``config`` is an instance of ``cls``, a mapping, or a YAML file of its fields
    (or None); ``fields`` override it. Strings are coerced to the field types.

    Raises:
        UserError: unknown or missing field, a wrong type, or a failed validation.
    """
    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, cls):
        base = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls)}
        if not fields:
            return config
    elif isinstance(config, Mapping):
        base = {}
        fields = {**config, **fields}
    elif isinstance(config, (str, os.PathLike)):
        base = {}
        fields = {**load_yaml(config), **fields}
    else:
        raise UserError(f"{where}: config must be a {cls.__name__}, a mapping or a YAML path, got {type(config).__name__}")
    return resolve_params(cls, base, fields, where)


def config_help(cls: type) -> dict[str, str]:
    """Field name -> its ``metadata["help"]`` (the text of the CLI flag built from the field)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
