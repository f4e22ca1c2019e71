"""Read an ImageFolder tree (``root/<split>/<class>/<image>``) into uint8 arrays.

Works for real evaluation sets (CIFAR-10, Tiny-ImageNet as JPEG folders) and for
``noisevision generate`` output (``DIR/train/<bucket>/<i>.jpg``: the buckets act
as dummy classes). Every image goes through
:func:`noisevision.imagefiles.decode_image` (RGB, shorter side resized to
``size``, centre crop). Decoded arrays are cached as ``.npz`` files keyed by a
hash of the folder's file list, file sizes, mtimes and the target size, so a
second load reads one file instead of decoding tens of thousands of JPEGs.

>>> data = load_image_folder("cifar10", "train", size=32)   # doctest: +SKIP
>>> data.images.shape, data.labels.dtype                     # doctest: +SKIP
((50000, 32, 32, 3), dtype('int64'))
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import atomic_path
from ..imagefiles import IMAGE_EXTENSIONS, decode_image, is_image_file

CACHE_FORMAT_VERSION = 1
# More classes than any labelled dataset is meant to have; a label or class list beyond it is
# damage, not data (a supervised head has one output per class).
MAX_CLASSES = 1_000_000
# Decoding is split into chunks handed to a process pool. Threads do not help: for small
# images the per-file Python overhead holds the GIL. A pool is only started for at least
# _MIN_PARALLEL_CHUNKS chunks (its start-up costs about a second).
_CHUNK = 1000
_MIN_PARALLEL_CHUNKS = 4


@dataclass
class LabeledImages:
    """A labelled image set held in memory.

    Attributes:
        images: uint8 (N, size, size, 3), RGB.
        labels: int64 (N,), indices into ``classes``.
        classes: class (sub-folder) names, sorted.
        files: paths relative to the split folder, in the order of ``images``.
        n_ignored: files that are not images (by extension) and were skipped.
        bad_files: image files that could not be decoded (skipped only with ``skip_bad_images``).
        root: the folder that was read.
    """
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    files: list[str]
    n_ignored: int = 0
    bad_files: list[str] = field(default_factory=list)
    root: str = ""

    @property
    def n_bad(self) -> int:
        return len(self.bad_files)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray | Sequence[int]) -> "LabeledImages":
        """The images at ``indices`` (same classes, counts and root)."""
        idx = np.asarray(indices, dtype=np.int64)
        return LabeledImages(
            images=self.images[idx],
            labels=self.labels[idx],
            classes=list(self.classes),
            files=[self.files[i] for i in idx],
            n_ignored=self.n_ignored,
            bad_files=list(self.bad_files),
            root=self.root,
        )


def default_cache_dir() -> Path:
    """``$NOISEVISION_CACHE`` or ``~/.cache/noisevision``."""
    env = os.environ.get("NOISEVISION_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "noisevision"


def available_splits(root: str | os.PathLike) -> list[str]:
    """Sub-folders of ``root`` (candidate split names), sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _dir_id(path: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of the directory ``path`` resolves to, or None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def scan_image_folder(folder: Path) -> tuple[list[str], list[str], np.ndarray, int]:
    """List ``folder/<class>/**/<image>``.

    Symbolic links are followed (a class folder or a sub-folder may live
    elsewhere), but no directory is entered twice, and none of the split
    folder's parents is entered: a link back up the tree (``cat/up -> ..``)
    or to another class folder would otherwise list images again under the
    wrong class, or loop forever. Such links are skipped with a warning. Links
    to image files work as usual.

    Returns (classes, relative file paths, labels, number of non-image files).
    Raises UserError if there are no class folders or a class folder has no images.
    """
    classes = available_splits(folder)
    if not classes:
        raise UserError(f"{folder} has no class sub-folders (expected {folder}/<class>/<image files>)")
    files: list[str] = []
    labels: list[int] = []
    n_ignored = sum(1 for p in folder.iterdir() if p.is_file())  # stray files next to the class folders
    empty: list[str] = []
    # Directories entered or reserved: the split folder and its parents (a link to one of them leads
    # back into the tree, or into other splits), every class folder (each is read only as its own
    # class), and each directory once walked.
    real = Path(os.path.realpath(folder))
    reserved = (*(_dir_id(p) for p in (real, *real.parents)), *(_dir_id(folder / c) for c in classes))
    visited = {d for d in reserved if d is not None}
    skipped_links: list[str] = []
    for label, cls in enumerate(classes):
        n_before = len(files)
        for dirpath, dirnames, filenames in os.walk(folder / cls, followlinks=True):
            keep = []
            for d in sorted(d for d in dirnames if not d.startswith(".")):
                ident = _dir_id(os.path.join(dirpath, d))
                if ident in visited:
                    skipped_links.append(os.path.relpath(os.path.join(dirpath, d), folder))
                    continue
                if ident is not None:
                    visited.add(ident)
                keep.append(d)
            dirnames[:] = keep
            rel_dir = os.path.relpath(dirpath, folder)
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                if is_image_file(name):
                    files.append(os.path.join(rel_dir, name))
                    labels.append(label)
                else:
                    n_ignored += 1
        if len(files) == n_before:
            empty.append(cls)
    if skipped_links:
        import warnings

        warnings.warn(
            f"{folder}: not following {len(skipped_links)} link(s) to folders read already or holding this one "
            f"(they would repeat images, possibly under another class, or loop): {', '.join(skipped_links[:3])}"
            + (" ..." if len(skipped_links) > 3 else ""),
            stacklevel=2,
        )
    if empty:
        raise UserError(
            f"class folder(s) with no images in {folder}: {', '.join(empty[:5])}"
            + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
            + f" (image extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return classes, files, np.asarray(labels, dtype=np.int64), n_ignored


def _fingerprint(folder: Path, files: Sequence[str], size: int) -> str:
    """Hash of (folder, each file's relative path, byte size, mtime, target size, format version)."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_FORMAT_VERSION, str(folder.resolve()), int(size)]).encode())
    for rel in files:
        st = os.stat(folder / rel)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _decode_chunk(folder: Path, files: Sequence[str], size: int) -> tuple[np.ndarray, list[int]]:
    """Decode ``files``; returns (images, positions within the chunk that failed)."""
    out = np.zeros((len(files), size, size, 3), dtype=np.uint8)
    bad: list[int] = []
    for j, rel in enumerate(files):
        try:
            out[j] = decode_image(folder / rel, size)
        except MemoryError:
            raise
        except PermissionError:  # not a bad file (those are skipped, and cached as bad): the user's to fix
            raise UserError(f"cannot read {folder / rel}: permission denied") from None
        except Exception:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
            bad.append(j)
    return out, bad


def decode_files(
    folder: Path, files: Sequence[str], size: int, workers: int | None = None, progress: bool = True, desc: str = "decode"
) -> tuple[np.ndarray, list[int]]:
    """Decode many files with a progress bar, in a process pool when there are many.

    The pool uses the ``spawn`` start method: forking a process that already runs
    torch/OpenMP threads can deadlock. Returns (uint8 (N, size, size, 3), sorted
    indices of files that failed to decode). A file it may not read is a UserError,
    not a bad image: the failure would be cached with the images.
    """
    from tqdm import tqdm

    n = len(files)
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    bad: list[int] = []
    starts = list(range(0, n, _CHUNK))
    workers = workers or min(8, os.cpu_count() or 1)
    with tqdm(total=n, desc=desc, unit="img", disable=not progress or None, leave=False) as bar:
        if workers <= 1 or len(starts) < _MIN_PARALLEL_CHUNKS:
            results = (_decode_chunk(folder, files[s : s + _CHUNK], size) for s in starts)
            for s, (chunk, chunk_bad) in zip(starts, results):
                images[s : s + len(chunk)] = chunk
                bad += [s + j for j in chunk_bad]
                bar.update(len(chunk))
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(_decode_chunk, folder, files[s : s + _CHUNK], size) for s in starts]
                for s, fut in zip(starts, futures):
                    chunk, chunk_bad = fut.result()
                    images[s : s + len(chunk)] = chunk
                    bad += [s + j for j in chunk_bad]
                    bar.update(len(chunk))
    return images, sorted(bad)


def _cache_file(cache_dir: Path, folder: Path, size: int, key: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{folder.parent.name}-{folder.name}")[-80:]
    return cache_dir / "images" / f"{name}-{size}px-{key[:20]}.npz"


def _load_cache(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return {"images": z["images"], "labels": z["labels"], **meta}
    except (OSError, ValueError, KeyError, MemoryError, json.JSONDecodeError):  # a header may declare any shape
        return None  # missing or damaged cache: decode again


def _save_cache(path: Path, images: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels, meta=np.asarray(json.dumps(meta)))
    except UserError as exc:  # a read-only or full cache must not stop the evaluation
        import warnings

        warnings.warn(f"could not write the image cache ({exc}); continuing without it", stacklevel=3)


def load_image_folder(
    root: str | os.PathLike,
    split: str | None,
    size: int,
    cache_dir: str | os.PathLike | None = None,
    skip_bad_images: bool = False,
    *,
    use_cache: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> LabeledImages:
    """Load ``root/<split>/<class>/<images>`` (or ``root/<class>/...`` when split is None).

    Args:
        root: dataset folder.
        split: split sub-folder (``"train"``, ``"test"``, ``"val"``), or None if ``root`` holds the classes.
        size: output side length; images are resized (shorter side) and centre-cropped.
        cache_dir: where decoded arrays are cached (default ``$NOISEVISION_CACHE`` or ``~/.cache/noisevision``).
        skip_bad_images: drop undecodable/truncated files instead of failing.
        use_cache: read/write the decoded-array cache.
        workers: decoding processes (default: number of CPUs, at most 8).
        progress: show a progress bar while decoding.

    Raises:
        UserError: missing folder or split (names the available splits), no class folders,
            an empty class folder, or bad image files without ``skip_bad_images``.
    """
    if size < 1:
        raise UserError(f"image size must be positive, got {size}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist")
    folder = root if split is None else root / split
    if not folder.is_dir():
        splits = available_splits(root)
        raise UserError(
            f"split {split!r} not found in {root}; available splits: {', '.join(splits) if splits else '(none)'}"
        )
    classes, files, labels, n_ignored = scan_image_folder(folder)
    cache_path = None
    cached = None
    if use_cache:
        cache_path = _cache_file(Path(cache_dir) if cache_dir else default_cache_dir(), folder, size, _fingerprint(folder, files, size))
        cached = _load_cache(cache_path)
    if (cached is not None and cached.get("files") == files
            and cached["images"].shape == (len(files), size, size, 3) and len(cached["labels"]) == len(files)):
        images, bad_files = cached["images"], list(cached["bad_files"])
        bad_set = set(bad_files)
        keep = np.fromiter((f not in bad_set for f in files), dtype=bool, count=len(files))
    else:
        images, bad_idx = decode_files(folder, files, size, workers=workers, progress=progress, desc=f"decode {folder.name}")
        bad_files = [files[i] for i in bad_idx]
        if cache_path is not None:
            _save_cache(cache_path, images, labels, {"files": files, "bad_files": bad_files, "classes": classes})
        keep = np.ones(len(files), dtype=bool)
        keep[bad_idx] = False
    if bad_files and not skip_bad_images:
        raise UserError(
            f"{len(bad_files)} image file(s) in {folder} could not be decoded (corrupt or truncated): "
            f"{', '.join(bad_files[:5])}{' ...' if len(bad_files) > 5 else ''}; "
            "pass --skip-bad-images (skip_bad_images=True) to leave them out"
        )
    if not keep.all():
        images, labels = images[keep], labels[keep]
        files = [f for f, k in zip(files, keep) if k]
        present = np.bincount(labels, minlength=len(classes))
        if (present == 0).any():
            empty = [c for c, n in zip(classes, present) if n == 0]
            raise UserError(f"class folder(s) with no readable images in {folder}: {', '.join(empty[:5])}")
    return LabeledImages(
        images=images, labels=labels, classes=classes, files=files, n_ignored=n_ignored, bad_files=bad_files, root=str(folder)
    )
