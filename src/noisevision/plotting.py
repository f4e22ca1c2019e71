"""Figures for every layer: pyplot on a display-free backend, and PNGs that appear only when complete.

matplotlib is imported on first use, so importing a module that can draw costs nothing until it does.
"""
from __future__ import annotations

import os
from typing import Any

from .fileio import atomic_path


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> None:
    """Write ``fig`` to ``path`` as a PNG, atomically, and close it (a figure left open holds its memory)."""
    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", **savefig_kwargs)
    finally:
        plt.close(fig)
