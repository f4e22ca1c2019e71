"""Errors a user can fix: the CLI prints them as one line and exits non-zero."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input (name, parameter, path, data), not a bug."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean: a, b?)' for the closest candidates, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(close)}?)" if close else ""
