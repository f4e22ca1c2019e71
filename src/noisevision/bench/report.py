"""Render benchmark rows into Markdown and keep named sections of a doc up to date."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_write_text


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` restricted to ``columns``."""
    headers = list(headers or columns)

    def fmt(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def update_markdown_section(path: str | os.PathLike, section: str, body: str, title: str = "Benchmarks") -> None:
    """Replace (or append) the block between ``<!-- begin:section -->`` and ``<!-- end:section -->``."""
    path = Path(path)
    text = path.read_text() if path.exists() else f"# {title}\n\n"
    begin, end = f"<!-- begin:{section} -->", f"<!-- end:{section} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(path, text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=False) + "\n")
