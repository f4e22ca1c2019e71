"""Decode image files from elsewhere into uint8 RGB arrays of one size.

One decoder for every image a user hands in (evaluation folders, texture
folders): any PIL mode becomes RGB (greyscale, palette, alpha composited on
black, CMYK, 16-bit and float scaled to 8 bits), the shorter side is resized to
``size`` and the centre cropped to ``size x size``. Large JPEGs are downscaled
in the DCT domain while decoding. PIL refuses images of more than twice its
``MAX_IMAGE_PIXELS`` (a decompression bomb) before allocating them.
"""
from __future__ import annotations

import os

import numpy as np

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def is_image_file(name: str | os.PathLike) -> bool:
    """Whether the file name has one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _to_rgb(img):
    """Convert any PIL mode to RGB: alpha is composited on black, 16-bit/float scaled to 8 bits."""
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def decode_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """Decode one image file to uint8 (size, size, 3): RGB, shorter side resized, centre crop.

    Raises what PIL raises for unreadable, truncated or oversized files (OSError,
    ValueError, SyntaxError, ``Image.DecompressionBombError``).
    """
    from PIL import Image

    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))  # DCT-domain downscaling of large JPEGs: much faster
        img.load()
        img = _to_rgb(img)
        w, h = img.size
        if (w, h) != (size, size):
            scale = size / min(w, h)
            new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((new_w, new_h), Image.BILINEAR)
            left, top = (new_w - size) // 2, (new_h - size) // 2
            img = img.crop((left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8)
