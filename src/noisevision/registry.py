"""One small generic registry: name -> object, with wildcard listing.

Used for generators, encoders, SSL methods and augmentation presets, so the
CLI, benchmarks and tests all enumerate the same names.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UserError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """A named mapping that refuses duplicates and suggests close names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@REG.decorator("name")`` registers the decorated object."""

        def wrap(item: T) -> T:
            return self.register(name, item)

        return wrap

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            hint = ("run `noisevision list` to see them all" if self.kind == "generator"
                    else f"choose from: {', '.join(sorted(self._items))}")
            raise UserError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; {hint}") from None

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, in registration order."""
        return [n for n in self._items if fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
