"""Contact sheets: a labelled grid of a generator's images, for looking rather than reading.

``preview(generator="dead-leaves/mixed", out="sheet.png")`` writes one sheet;
``preview(all=True, out="gallery")`` one per registered generator.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.writer import resolve_device
from .errors import UserError
from .fileio import atomic_path
from .generators import create_generator, fast_overrides, get_spec, list_generators
from .generators.base import check_size, params_field, params_to_dict
from .parsing import make_config

# Sheet formats by file suffix (written with Pillow in the format the name says).
SHEET_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def sheet_format(out: str | os.PathLike) -> str:
    """The Pillow format for a sheet path (``.png``, ``.jpg``/``.jpeg``); UserError for any other suffix."""
    suffix = Path(out).suffix.lower()
    if suffix not in SHEET_FORMATS:
        raise UserError(
            f"cannot tell which image format to write for {os.fspath(out)!r}: "
            f"end --out with {', '.join(SHEET_FORMATS)}"
        )
    return SHEET_FORMATS[suffix]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _summary(params: dict[str, Any], limit: int = 110) -> str:
    parts = []
    for k, v in params.items():
        if isinstance(v, float):
            v = f"{v:g}"
        elif isinstance(v, list):
            v = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
        parts.append(f"{k}={v}")
    text = "  ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def contact_sheet(
    images: np.ndarray, title: str, subtitle: str = "", first_index: int = 0, tile: int | None = None, cols: int = 8
) -> "PIL.Image.Image":  # noqa: F821
    """Arrange uint8 (N, H, W, 3) images in a grid under a title, each tile labelled with its index."""
    from PIL import Image, ImageDraw

    n, h, w, _ = images.shape
    tile = tile or max(h, 96)
    cols = min(cols, n)
    rows = -(-n // cols)
    pad, head = 4, 40
    sheet = Image.new("RGB", (cols * (tile + pad) + pad, head + rows * (tile + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 2), title, fill=(0, 0, 0), font=_font(16))
    draw.text((pad, 22), subtitle, fill=(90, 90, 90), font=_font(11))
    small = _font(10)
    for k in range(n):
        r, c = divmod(k, cols)
        x, y = pad + c * (tile + pad), head + r * (tile + pad)
        img = Image.fromarray(images[k])
        if img.size != (tile, tile):
            img = img.resize((tile, tile), Image.NEAREST if tile % w == 0 else Image.BILINEAR)
        sheet.paste(img, (x, y))
        label = str(first_index + k)
        draw.rectangle((x, y, x + 7 * len(label) + 3, y + 12), fill=(0, 0, 0))
        draw.text((x + 2, y), label, fill=(255, 255, 255), font=small)
    return sheet


def _check_sheet_args(rows: int, cols: int, size: int, device: str) -> str:
    """Validate the grid, image size and device of a sheet; return the resolved device."""

    if rows < 1 or cols < 1 or rows * cols > 1024:
        raise UserError(f"--rows x --cols must be between 1 and 1024 images, got {rows}x{cols}")
    check_size(size)
    return resolve_device(device)


@dataclass(frozen=True)
class PreviewConfig:
    """Contact sheets to write (``noisevision preview`` has a flag per field, named like it)."""

    generator: str = field(default="", metadata={"help": "generator name (omit with --all)", "positional": True})
    out: str = field(default="", metadata={"help": "sheet.png or sheet.jpg, or a directory with --all",
                                           "flags": ("--out", "-o"), "required": True})
    all: bool = field(default=False, metadata={"help": "one sheet per registered generator into --out DIR"})
    pattern: str = field(default="*", metadata={"help": "with --all: only generators matching this wildcard"})
    rows: int | None = field(default=None, metadata={"help": "rows (default 8; 4 with --all)"})
    cols: int = field(default=8, metadata={"help": "columns (default 8)"})
    size: int | None = field(default=None, metadata={"help": "image size (default 128; 96 with --all)",
                                                     "flags": ("--size", "-s")})
    seed: int = field(default=0, metadata={"help": "root seed (default 0)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N (torch-based generators)"})
    fast: bool | None = field(default=None, metadata={
        "help": "use the generators' CPU-friendly settings (default: on with --all)"})
    params: dict[str, Any] = params_field()
    progress: bool = field(default=True, metadata={"help": "with --all: show a progress bar"})

    def __post_init__(self) -> None:
        # Grid, size and device are checked when the sheet is drawn, with the same messages for both paths.
        if self.all and self.generator:
            raise ValueError("give either a generator name or --all, not both")
        if not self.all and not self.generator:
            raise ValueError("name a generator (see `noisevision list`) or pass --all")
        if self.all and self.params:
            raise ValueError("--param sets one generator's parameters; preview that generator on its own")
        if not self.out:
            raise ValueError("pass --out (a .png or .jpg file, or a directory with --all)")


def preview(config: PreviewConfig | Mapping[str, Any] | str | os.PathLike | None = None, /,
            **fields: Any) -> list[Path]:
    """Write the contact sheet(s) a :class:`PreviewConfig` asks for; return their paths.

    ``config`` is a :class:`PreviewConfig`, a mapping or a YAML file of its fields; ``fields`` override it.

    Raises:
        UserError: a bad generator, parameter, grid, size, suffix, device or ``out``.
    """
    cfg = make_config(PreviewConfig, config, fields, "preview")
    # unset rows, size and fast take the defaults of the path chosen (a sheet of all generators is smaller)
    given = {k: getattr(cfg, k) for k in ("rows", "size", "fast") if getattr(cfg, k) is not None}
    if cfg.all:
        return preview_all(cfg.out, pattern=cfg.pattern, cols=cfg.cols, seed=cfg.seed, device=cfg.device,
                           progress=cfg.progress, **given)
    return [render_sheet(cfg.generator, cfg.out, cols=cfg.cols, seed=cfg.seed, params=cfg.params, device=cfg.device,
                         **given)]


def render_sheet(
    generator: str,
    out: str | os.PathLike,
    *,
    rows: int = 8,
    cols: int = 8,
    size: int = 128,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    device: str = "cpu",
    fast: bool = False,
) -> Path:
    """Render ``rows * cols`` images of ``generator`` and save a labelled contact sheet.

    The sheet is written in the format ``out``'s suffix names (PNG or JPEG).
    ``fast`` applies the generator's CPU-friendly overrides (e.g. fewer
    feature-visualisation steps) under the user's own ``params``.

    Raises:
        UserError: rows, cols or size out of range, an unknown suffix or device, bad params.
    """
    device = _check_sheet_args(rows, cols, size, device)
    fmt = sheet_format(out)
    overrides = dict(params or {})
    if fast:
        overrides = {**fast_overrides(generator), **overrides}
    gen = create_generator(generator, **overrides)
    images = gen.render(np.arange(rows * cols), seed, size, device=device)
    title = f"{generator}:  {gen.spec.description}"
    subtitle = f"seed={seed}  size={size}  " + _summary(params_to_dict(gen.params))
    sheet = contact_sheet(images, title, subtitle, cols=cols)
    out = Path(out)

    with atomic_path(out) as tmp:
        sheet.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out


def preview_all(
    out_dir: str | os.PathLike, *, pattern: str = "*", rows: int = 4, cols: int = 8, size: int = 96, seed: int = 0,
    device: str = "cpu", fast: bool = True, progress: bool = True,
) -> list[Path]:
    """One contact sheet per registered generator matching ``pattern`` into ``out_dir``."""
    names = list_generators(pattern)
    if not names:
        raise UserError(f"no registered generator matches {pattern!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is an existing file; with --all give a directory for the sheets")
    device = _check_sheet_args(rows, cols, size, device)
    paths = []
    from tqdm import tqdm

    for name in tqdm(names, desc="preview", unit="sheet", disable=not progress):
        if get_spec(name).required:
            print(f"skipping {name}: it needs {', '.join(get_spec(name).required)} (preview it on its own with -p)")
            continue
        paths.append(render_sheet(name, out_dir / sheet_filename(name), rows=rows, cols=cols, size=size, seed=seed,
                                  device=device, fast=fast))
    return paths


def sheet_filename(name: str) -> str:
    """A file name for a generator's sheet: ``dead-leaves/mixed`` -> ``dead-leaves_mixed.png``."""
    safe = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in name)
    return f"{safe}.png"
