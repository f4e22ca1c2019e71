"""Where real evaluation data lives, and the dataset registry: ``cifar10``, ``tiny-imagenet-32``, ``imagefolder:<path>``.

Each named dataset is one :func:`register_dataset` call: its splits (and
which one is the default test split), what is known of its images, and a
resolver that finds it. ``imagefolder:<path>`` names any folder of
``<split>/<class>/`` images (default test split ``test``).

The data root is ``--data-root`` or ``$NOISEVISION_DATA``. For a named dataset
the first of these that exists is used:

``cifar10``
    an unpacked ImageFolder ``<root>/cifar10`` (or already unpacked in the cache),
    the shared archive ``<root>/cifar10.tar.gz`` (unpacked into the cache),
    the official ``cifar-10-batches-py`` folder or ``cifar-10-python.tar.gz``
    archive (root or cache); otherwise the official archive is downloaded into
    the cache and its MD5 checked.
``tiny-imagenet-32``
    ``<root>/tiny-imagenet-32`` or ``<root>/tiny-imagenet-32.tar.gz`` (splits
    ``train`` and ``val``); there is no official download of the 32 px version.

Archives are unpacked with ``tarfile``'s ``"data"`` filter (nothing may land
outside the target; such archives are refused) into a temporary folder that is
renamed into place only when complete, so an interrupted run never leaves a
half-unpacked dataset under the final name.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError, did_you_mean
from ..registry import Registry
from .cifar import CIFAR10_ARCHIVE, CIFAR10_DIR, CIFAR10_MD5, CIFAR10_URL, load_cifar10_python
from .imagefolder import LabeledImages, default_cache_dir, load_image_folder

IMAGEFOLDER_PREFIX = "imagefolder:"
FOLDER_TEST_SPLIT = "test"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path | None:
    """``data_root`` if given, else ``$NOISEVISION_DATA``, else None."""
    value = data_root if data_root is not None else os.environ.get("NOISEVISION_DATA")
    return Path(value).expanduser() if value else None


# ------------------------------------------------------------------ archives


def _within_free_space(archive: Path, dest: Path) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """tarfile's ``data`` filter, plus a stop once the members would need more than the disk's free
    space: a small archive can expand into a full disk."""
    if not hasattr(tarfile, "data_filter"):  # added in Python 3.10.12 and 3.11.4
        raise UserError(f"cannot unpack {archive} safely: this Python's tarfile lacks the 'data' filter; "
                        "upgrade Python (3.10.12+, 3.11.4+) or unpack it yourself")
    free = shutil.disk_usage(dest).free
    unpacked = 0

    def check(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        nonlocal unpacked
        member = tarfile.data_filter(member, path)
        unpacked += member.size
        if unpacked > free:
            raise UserError(f"refusing to unpack {archive}: it holds more than the {free / 2**30:.1f} GiB "
                            f"free in {dest.parent}")
        return member

    return check


def safe_extract(archive: str | os.PathLike, dest_parent: str | os.PathLike, member_root: str) -> Path:
    """Unpack ``archive`` and move its top folder ``member_root`` to ``dest_parent/member_root`` atomically.

    Raises:
        UserError: unreadable archive, paths escaping the target (absolute paths,
            ``..``, links pointing outside, devices), more data than the disk has free,
            or no ``member_root`` inside.
    """
    archive, dest_parent = Path(archive), Path(dest_parent)
    final = dest_parent / member_root
    if final.exists():
        return final
    dest_parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{member_root}.extract-", dir=dest_parent))
    try:
        print(f"noisevision: unpacking {archive} into {dest_parent} (once; later runs reuse it)", flush=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter=_within_free_space(archive, tmp))
        except tarfile.FilterError as exc:
            raise UserError(f"refusing to unpack {archive}: it contains unsafe paths ({exc})") from None
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise UserError(f"cannot unpack {archive}: {str(exc).splitlines()[0]}") from None
        if not (tmp / member_root).is_dir():
            found = ", ".join(sorted(p.name for p in tmp.iterdir())[:5]) or "(nothing)"
            raise UserError(f"{archive} does not contain a top-level {member_root}/ folder (found: {found})")
        try:
            os.rename(tmp / member_root, final)
        except OSError:
            if not final.exists():  # another process may have won the race: then use its copy
                raise
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_md5(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    progress: bool = True,
    opener: Callable[[str], object] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (via ``dest.part``) with a progress bar, then check its MD5.

    ``dest`` appears only when the download is complete and checked; the
    ``.part`` file is deleted whenever the download does not complete
    (network error, a connection cut off mid-way, a short body, Ctrl-C).

    Raises:
        UserError: network failure, a download cut off before its announced length,
            or a checksum mismatch (the file is deleted).
    """
    import http.client

    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    opener = opener or (lambda u: urllib.request.urlopen(u, timeout=60))  # noqa: S310 (https/file URLs only)
    print(f"noisevision: downloading {url} -> {dest}", flush=True)
    received, total = 0, None
    try:
        with opener(url) as response, open(part, "wb") as out:  # type: ignore[attr-defined]
            try:
                total = int(getattr(response, "headers", {}).get("Content-Length") or 0) or None
            except ValueError:
                total = None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress or None) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
    except (OSError, http.client.HTTPException) as exc:  # IncompleteRead: the connection was cut off
        part.unlink(missing_ok=True)
        detail = f"cut off after {received} of {total or '?'} bytes" if received else str(exc) or type(exc).__name__
        raise UserError(f"download of {url} failed ({detail}); the partial file was deleted, try again") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if total is not None and received != total:
        part.unlink(missing_ok=True)
        raise UserError(
            f"download of {url} was cut off after {received} of {total} bytes; the partial file was deleted, try again"
        )
    if md5 is not None:
        got = file_md5(part)
        if got != md5:
            part.unlink(missing_ok=True)
            raise UserError(f"checksum mismatch for {url}: MD5 {got}, expected {md5}; the download was deleted, try again")
    os.replace(part, dest)
    return dest


# ------------------------------------------------------------------ named datasets


@dataclass(frozen=True)
class DatasetSource:
    """A resolved dataset: ``kind`` "imagefolder" (``path/<split>/<class>/...``) or "cifar-python"."""

    name: str
    kind: str
    path: Path


@dataclass(frozen=True)
class DataPlaces:
    """Where a resolver looks: the data root (None: not set), the cache folder for unpacked
    archives and downloads, whether it may download, and the opener downloads use (tests)."""

    root: Path | None
    cache: Path
    allow_download: bool = True
    download_opener: Callable[[str], object] | None = None

    def in_root(self, name: str) -> Path | None:
        return self.root / name if self.root is not None else None


Resolver = Callable[[str, DataPlaces], DatasetSource]


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Attributes:
        name: the name ``--dataset`` takes.
        resolver: ``resolver(name, places) -> DatasetSource`` (unpacks or downloads if needed).
        splits: the split names it has.
        test_split: the split the probe tests on by default.
        image_size: side of its images in pixels, if fixed.
        num_classes: number of classes, if known.
    """

    name: str
    resolver: Resolver
    splits: tuple[str, ...]
    test_split: str
    image_size: int | None = None
    num_classes: int | None = None


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def register_dataset(name: str, resolver: Resolver, *, splits: tuple[str, ...], test_split: str,
                     image_size: int | None = None, num_classes: int | None = None) -> DatasetInfo:
    """Register a named dataset (see :class:`DatasetInfo`)."""
    if test_split not in splits:
        raise ValueError(f"{name}: test split {test_split!r} is not one of its splits {splits}")
    return DATASETS.register(name, DatasetInfo(name, resolver, tuple(splits), test_split, image_size, num_classes))


def list_datasets() -> list[str]:
    """Registered dataset names, then the dynamic ``imagefolder:<path>``."""
    return [*DATASETS.names(), f"{IMAGEFOLDER_PREFIX}<path>"]


def folder_of(dataset: str) -> Path | None:
    """The folder an ``imagefolder:<path>`` dataset names (None for a registered name)."""
    if dataset.startswith(IMAGEFOLDER_PREFIX):
        return Path(dataset[len(IMAGEFOLDER_PREFIX):])
    return None


def default_test_split(dataset: str) -> str:
    """The split the probe tests on unless told otherwise (``test`` for an image folder)."""
    if folder_of(dataset) is not None or dataset not in DATASETS:
        return FOLDER_TEST_SPLIT
    return DATASETS.get(dataset).test_split


def _first_dir(*candidates: Path | None) -> Path | None:
    return next((c for c in candidates if c is not None and c.is_dir()), None)


def _first_file(*candidates: Path | None) -> Path | None:
    return next((c for c in candidates if c is not None and c.is_file()), None)


def resolve_dataset(
    dataset: str,
    data_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
    download_opener: Callable[[str], object] | None = None,
) -> DatasetSource:
    """Find (unpacking or downloading if needed) the dataset called ``dataset``.

    Raises:
        UserError: unknown name, or the dataset is nowhere to be found.
    """
    folder = folder_of(dataset)
    if folder is not None:
        if not str(folder) or str(folder) == ".":
            raise UserError(f"{dataset!r} names no folder: write {IMAGEFOLDER_PREFIX}<path>")
        folder = folder.expanduser()
        if not folder.is_dir():
            raise UserError(f"dataset folder {folder} is a file, not a folder" if folder.exists()
                            else f"dataset folder {folder} does not exist")
        return DatasetSource(dataset, "imagefolder", folder)
    if dataset not in DATASETS:
        raise UserError(
            f"unknown dataset {dataset!r}{did_you_mean(dataset, list(DATASETS))}; "
            f"choose from: {', '.join(list_datasets())}"
        )
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    places = DataPlaces(resolve_data_root(data_root), cache / "datasets", allow_download, download_opener)
    return DATASETS.get(dataset).resolver(dataset, places)


# ------------------------------------------------------------------ resolvers


def _unpacked_folder(name: str, places: DataPlaces) -> DatasetSource | None:
    """An ImageFolder ``<root>/<name>`` or ``<cache>/<name>``, else ``<root>/<name>.tar.gz`` unpacked into the
    cache; None when neither exists."""
    folder = _first_dir(places.in_root(name), places.cache / name)
    if folder is not None:
        return DatasetSource(name, "imagefolder", folder)
    archive = _first_file(places.in_root(f"{name}.tar.gz"))
    if archive is not None:
        return DatasetSource(name, "imagefolder", safe_extract(archive, places.cache, name))
    return None


def resolve_cifar10(name: str, places: DataPlaces) -> DatasetSource:
    """CIFAR-10: an unpacked folder or the shared archive, else the official python format (downloaded
    into the cache, MD5 checked, when nowhere else)."""
    found = _unpacked_folder(name, places)
    if found is not None:
        return found
    python_dir = _first_dir(places.in_root(CIFAR10_DIR), places.cache / CIFAR10_DIR)
    if python_dir is not None:
        return DatasetSource(name, "cifar-python", python_dir)
    official = _first_file(places.in_root(CIFAR10_ARCHIVE), places.cache / CIFAR10_ARCHIVE)
    if official is None:
        if not places.allow_download:
            raise UserError(f"CIFAR-10 not found in {places.root} or {places.cache} and downloading is disabled")
        if places.root is not None and not places.root.is_dir():  # say why, before a download that may hang
            print(f"noisevision: note: the data root {places.root} is not a folder; looking online instead",
                  flush=True)
        try:
            official = download(CIFAR10_URL, places.cache / CIFAR10_ARCHIVE, md5=CIFAR10_MD5,
                                opener=places.download_opener)
        except UserError as exc:
            raise UserError(f"CIFAR-10 is not in {_describe_root(places.root)} or {places.cache}; {exc}") from None
    return DatasetSource(name, "cifar-python", safe_extract(official, places.cache, CIFAR10_DIR))


def resolve_local_only(name: str, places: DataPlaces) -> DatasetSource:
    """A dataset without an official download: an unpacked folder or ``<name>.tar.gz`` in the data root."""
    found = _unpacked_folder(name, places)
    if found is not None:
        return found
    raise UserError(
        f"dataset {name!r} not found: looked for {name}/ and {name}.tar.gz in {_describe_root(places.root)} "
        f"and {places.cache}"
    )


def _describe_root(root: Path | None) -> str:
    """The data root for a "not found" message, saying when it is not a folder (a mistyped path)."""
    if root is None:
        return "(no data root: pass --data-root or set NOISEVISION_DATA)"
    return str(root) if root.is_dir() else f"{root} (no such folder)"


register_dataset("cifar10", resolve_cifar10, splits=("train", "test"), test_split="test", image_size=32, num_classes=10)
register_dataset("tiny-imagenet-32", resolve_local_only, splits=("train", "val"), test_split="val", image_size=32,
                 num_classes=200)


def load_split(
    source: DatasetSource,
    split: str,
    size: int,
    cache_dir: str | os.PathLike | None = None,
    skip_bad_images: bool = False,
    progress: bool = True,
) -> LabeledImages:
    """Load one split of a resolved dataset as uint8 (N, size, size, 3) images with labels."""
    if source.kind == "cifar-python":
        return load_cifar10_python(source.path, split, size)
    return load_image_folder(source.path, split, size, cache_dir=cache_dir, skip_bad_images=skip_bad_images, progress=progress)
