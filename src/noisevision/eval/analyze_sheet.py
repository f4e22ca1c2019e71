"""The picture sheet of ``noisevision analyze``: samples, spectrum, colour, orientation, numbers.

It is drawn only from the analysis result (its ``curves`` and ``summary``) and
a few sample images, so it shows exactly what the JSON holds.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import pyplot, save_png

RGB = ("#d62728", "#2ca02c", "#1f77b4")


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def mosaic(images: np.ndarray, cols: int = 4, gap: int = 1) -> np.ndarray:
    """uint8 (N, S, S, 3) -> one uint8 image of a ``cols``-wide grid with white gaps."""
    n, s = len(images), images.shape[1]
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (s + gap) - gap, cols * (s + gap) - gap, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (s + gap): r * (s + gap) + s, c * (s + gap): c * (s + gap) + s] = img
    return out


def write_sheet(path: str | os.PathLike, result: dict[str, Any], samples: np.ndarray, lines: list[str]) -> Path:
    """Write the sheet of an analysis ``result`` (see :func:`noisevision.eval.analyze.analyze`) as a PNG,
    with ``samples`` (uint8 (N, S, S, 3)) and ``lines`` (its text summary; the first line, a title, is skipped)."""
    plt = pyplot()
    data, ref = result["curves"]["data"], result["curves"]["reference"]
    stats, summary = result["statistics"], result["summary"]
    ref_name = result["reference"]["dataset"] if result["reference"] else None
    fig = plt.figure(figsize=(16, 9.5))
    grid = fig.add_gridspec(2, 3, height_ratios=(1, 1))
    fig.suptitle(f"noisevision analyze: {result['data']['spec']}  ({result['data']['analysed']} images, "
                 f"{stats['image_size']} px)", fontsize=14)

    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(mosaic(samples))
    ax.set_axis_off()
    ax.set_title("samples")

    ax = fig.add_subplot(grid[0, 1])
    rings = np.asarray(data["spectrum_rings"], float)
    power = np.asarray(data["spectrum_log10_power"], float)
    ax.plot(rings, power, "o-", ms=3, color="black", label="data: mean log power")
    alpha = summary["spectrum_alpha"]
    lo, hi = stats["spectrum"]["rings_cycles_per_image"]
    if alpha is not None and hi is not None:
        band = (rings >= lo) & (rings <= hi)
        anchor = np.mean(power[band] + 2 * alpha * np.log10(rings[band]))
        ax.plot(rings[band], anchor - 2 * alpha * np.log10(rings[band]), "--", color="#d62728",
                label=f"slope -2 alpha, alpha = {alpha:.2f} +- {_fmt(summary['spectrum_alpha_std'], '.2f')}")
    if ref is not None:
        ax.plot(ref["spectrum_rings"], ref["spectrum_log10_power"], "-", color="#7f7f7f", alpha=0.8,
                label=f"{ref_name} ({result['reference']['image_size']} px)")
    ax.set_xscale("log")
    ax.set_xlabel("spatial frequency (cycles per image)")
    ax.set_ylabel("log10 power (luminance)")
    ax.set_title("mean power spectrum")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[0, 2])
    bins = len(data["colour_histogram"][0])
    centres = (np.arange(bins) + 0.5) * 256 / bins
    for c, colour in enumerate(RGB):
        ax.plot(centres, data["colour_histogram"][c], color=colour, label="RGB"[c])
        if ref is not None:
            ax.plot(centres, ref["colour_histogram"][c], "--", color=colour, alpha=0.6)
    ax.set_xlim(0, 256)
    ax.set_xlabel("intensity" + (f" (dashed: {ref_name})" if ref is not None else ""))
    ax.set_ylabel("fraction of pixels")
    ax.set_title(f"colour histogram (saturation {_fmt(summary['saturation'], '.2f')})")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, 0], projection="polar")
    hist = np.asarray(stats["orientation"]["histogram"], float)
    k = len(hist)
    theta = (np.arange(2 * k) + 0.5) * np.pi / k  # orientations are mod 180 degrees: draw both halves
    ax.bar(theta, np.concatenate([hist, hist]), width=np.pi / k, color="#1f77b4", alpha=0.8, label="data")
    if result["reference"] is not None:
        ref_hist = np.asarray(result["reference"]["statistics"]["orientation"]["histogram"], float)
        ax.plot(np.append(theta, theta[0]), np.append(np.concatenate([ref_hist, ref_hist]), ref_hist[0]), color="#7f7f7f",
                label=ref_name)
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticklabels([])
    ax.set_title(f"gradient orientation (entropy {_fmt(summary['orientation_entropy'], '.3f')})")

    ax = fig.add_subplot(grid[1, 1])
    edges = np.asarray(data["alpha_bins"], float)
    ax.bar(edges[:-1], data["alpha_counts"], width=np.diff(edges), align="edge", color="#2ca02c", alpha=0.8, label="data")
    if ref is not None:
        ax.step(edges[:-1], ref["alpha_counts"], where="post", color="#7f7f7f", label=ref_name)
    ax.set_xlabel("spectrum exponent alpha (|F| ~ f^-alpha)")
    ax.set_ylabel("images")
    ax.set_title("per-image spectrum exponent")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, 2])
    ax.set_axis_off()
    text = "\n".join(line.strip() for line in lines[1:]).replace("   ", "\n")
    ax.text(0.0, 1.0, text, va="top", ha="left", family="monospace", fontsize=10, transform=ax.transAxes)
    ax.set_title("numbers (see analysis.json)")

    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path = Path(path)
    save_png(fig, path, dpi=80)
    return path
