"""The ``manifest.json`` of a generated dataset, and its on-disk layout.

Layout of ``DIR`` (``--format jpeg|png``, the official ImageFolder layout)::
    DIR/manifest.json
    DIR/train/00000/00000000.jpg ... DIR/train/00001/00001000.jpg ...   (buckets of 1000)
    DIR/labels.npy                       (only for generators with labels, e.g. fractal/ifs)
    DIR/.noisevision/buckets/00000.json  (one marker per finished bucket: count, sha256)

``--format npy``: ``DIR/images.npy`` (uint8 ``(N, H, W, 3)``, ``np.load(mmap_mode="r")``)
instead of ``train/``; while incomplete it is ``DIR/images.npy.partial``.

A bucket's checksum is the SHA-256 of its images' bytes in index order: the
encoded files for jpeg/png, the raw array slice for npy.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import atomic_write_text

MANIFEST = "manifest.json"
STATE_DIR = ".noisevision"
BUCKET_SIZE = 1000
FORMATS = {"jpeg": ".jpg", "png": ".png", "npy": ".npy"}
NPY_NAME = "images.npy"
LABELS_NAME = "labels.npy"
# Fields that define the dataset: a directory whose manifest differs in any of them is another dataset.
IDENTITY_KEYS = ("generator", "generator_revision", "params", "seed", "size", "num_images", "format", "bucket_size")
# What a manifest written before a key existed meant by it.
IDENTITY_DEFAULTS = {"generator_revision": 1}


@dataclass(frozen=True)
class Layout:
    """Where each part of a dataset lives."""

    root: Path
    format: str
    bucket_size: int = BUCKET_SIZE

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def bucket_marker(self, bucket: int) -> Path:
        return self.state_dir / "buckets" / f"{bucket:05d}.json"

    def bucket_dir(self, bucket: int) -> Path:
        return self.root / "train" / f"{bucket:05d}"

    def image_path(self, index: int) -> Path:
        return self.bucket_dir(index // self.bucket_size) / f"{index:08d}{FORMATS[self.format]}"

    @property
    def npy(self) -> Path:
        return self.root / NPY_NAME

    @property
    def npy_partial(self) -> Path:
        return self.root / (NPY_NAME + ".partial")

    @property
    def labels(self) -> Path:
        return self.root / LABELS_NAME

    def owned_entries(self) -> set[str]:
        """Top-level names a noisevision dataset may hold (anything else is the user's)."""
        return {MANIFEST, STATE_DIR, "train", NPY_NAME, NPY_NAME + ".partial", LABELS_NAME}


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of ``root``, or None if there is none; UserError if unreadable."""
    path = Path(root) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        raise UserError(f"{path} is not a readable noisevision manifest ({exc})") from None
    if not isinstance(data, dict) or "generator" not in data:
        raise UserError(f"{path} is not a noisevision dataset manifest")
    return data


def write_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> None:
    atomic_write_text(Path(root) / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def identity(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: manifest.get(k, IDENTITY_DEFAULTS.get(k)) for k in IDENTITY_KEYS}


def identity_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two manifests' identities."""
    diffs = []
    for k in IDENTITY_KEYS:
        if old.get(k) == new.get(k):
            continue
        if k == "generator_revision":
            diffs.append(f"rendered by revision {old.get(k)} of {old.get('generator')}, "
                         f"this release renders revision {new.get(k)}")
        else:
            diffs.append(f"{k}: {old.get(k)!r} here vs {new.get(k)!r} requested")
    return diffs
