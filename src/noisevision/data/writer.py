"""The generation engine: write a generator's images to disk, in parallel, resumably.

``generate_dataset`` splits the index range into buckets of 1000 (the official
dummy-class folders), assigns buckets to shards (``bucket % num_shards ==
shard``) and the shard's buckets, in chunks, to worker processes. Every image
is a pure function of (generator, params, seed, index), so any split gives
byte-identical files. Files are written under a temporary name and renamed
when complete; a bucket is marked done (with its checksum) only when all its
images exist, so a re-run after a crash completes only what is missing.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..accel import select_device
from ..errors import UserError
from ..fileio import atomic_path, atomic_write_text, user_os_error
from ..generators import Generator, create_generator
from ..generators.base import MAX_SIZE, check_seed, check_size, params_field, params_to_dict
from ..parsing import make_config
from ..resources import available_cpus, check_workers
from .manifest import (
    BUCKET_SIZE,
    FORMATS,
    Layout,
    identity,
    identity_diff,
    read_manifest,
    write_manifest,
)

MAX_IMAGES = 100_000_000


@dataclass(frozen=True)
class Chunk:
    """A contiguous run of indices inside one bucket: the unit of work of a worker."""

    bucket: int
    start: int
    stop: int


@dataclass
class GenerateResult:
    """What a ``generate_dataset`` call did."""

    out: Path
    manifest: dict[str, Any]
    rendered: int  # images rendered by this call (0 when everything existed)
    skipped: int  # images of this shard that already existed
    seconds: float
    complete: bool  # every bucket of every shard is done
    shard_buckets: list[int] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)  # buckets rendered again because they failed verification

    @property
    def images_per_second(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class GenerateConfig:
    """A dataset to write (``noisevision generate`` has a flag per field, named like it)."""

    generator: str = field(default="", metadata={"help": "generator name (see `noisevision list`)", "positional": True})
    num_images: int = field(default=0, metadata={"help": "number of images N", "flags": ("--num-images", "-n"),
                                                 "required": True})
    size: int = field(default=128, metadata={"help": "image side in px (default 128)", "flags": ("--size", "-s")})
    out: str = field(default="", metadata={"help": "output directory", "flags": ("--out", "-o"), "required": True})
    seed: int = field(default=0, metadata={"help": "root seed (default 0)"})
    workers: int = field(default=1, metadata={"help": "worker processes on this machine (default 1)",
                                              "flags": ("--workers", "-j")})
    format: str = field(default="jpeg", metadata={"help": "jpeg (q95, default), png or npy", "choices": FORMATS})
    shard: str | None = field(default=None, metadata={
        "help": "i/N: do this share of the buckets (default: RANK/WORLD_SIZE or 0/1)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a directory that holds a different dataset"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N (torch-based generators)"})
    batch_size: int | None = field(default=None, metadata={"help": "images per render call (default: the generator's)"})
    params: dict[str, Any] = params_field()
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    verify: bool = field(default=False, metadata={
        "help": "re-check finished buckets against their checksums and render again those that fail"})

    def __post_init__(self) -> None:
        # Value ranges are checked by generate_dataset, with the same messages for the API and the CLI.
        if not self.generator:
            raise ValueError("name a generator (see `noisevision list`)")
        if not self.out:
            raise ValueError("pass --out DIR (where the dataset is written)")


def generate(config: GenerateConfig | dict[str, Any] | str | os.PathLike | None = None, /,
             **fields: Any) -> GenerateResult:
    """Write a synthetic dataset: ``generate(generator="dead-leaves/mixed", num_images=1000, out="dl")``.

    ``config`` is a :class:`GenerateConfig`, a mapping or a YAML file of its fields; ``fields`` override it.

    Raises:
        UserError: bad generator, parameter, size, directory or setting (one line, for the CLI).
    """
    cfg = make_config(GenerateConfig, config, fields, "generate")
    plan = plan_generation(cfg)
    rendered, seconds = run_generation(plan, cfg.progress)
    return generation_result(plan, rendered, seconds)


# ------------------------------------------------------------------ argument parsing helpers


def parse_shard(shard: str | tuple[int, int] | None, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``"i/N"`` -> (i, N); None -> (RANK, WORLD_SIZE) from the environment, else (0, 1)."""
    env = os.environ if environ is None else environ
    if shard is None:
        if "RANK" in env and "WORLD_SIZE" in env:
            shard = f"{env['RANK']}/{env['WORLD_SIZE']}"
        else:
            return 0, 1
    if isinstance(shard, tuple):
        index, count = shard
    else:
        try:
            a, b = str(shard).split("/")
            index, count = int(a), int(b)
        except ValueError:
            raise UserError(f"--shard must look like i/N (e.g. 0/4), got {shard!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"bad shard {index}/{count}: need N >= 1 and 0 <= i < N")
    return index, count


def resolve_device(device: str | None) -> str:
    """The render device's name; ``auto``/None -> ``cuda`` when available, else ``cpu``."""
    return str(select_device(device or None))


# ------------------------------------------------------------------ worker side


_WORKER: dict[str, Any] = {}


def _init_worker(name: str, overrides: dict[str, Any], threads: int) -> None:
    """Build the generator once per worker process."""
    if threads > 0:
        torch.set_num_threads(threads)
    _WORKER["gen"] = create_generator(name, **overrides)


def _encode(image: np.ndarray, fmt: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(image).save(buf, format="JPEG", quality=95)
    else:
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` only ever appears complete."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise user_os_error(exc, path) from None


@dataclass(frozen=True)
class _Task:
    chunk: Chunk
    seed: int
    size: int
    layout: Layout
    num_images: int
    device: str
    batch_size: int


def _run_chunk(task: _Task, gen: Generator | None = None) -> tuple[Chunk, int, np.ndarray | None]:
    """Render the missing images of a chunk; return (chunk, images rendered, labels)."""
    gen = gen or _WORKER["gen"]
    c, layout = task.chunk, task.layout
    indices = np.arange(c.start, c.stop, dtype=np.int64)
    labels = gen.labels(indices, task.seed)
    if layout.format == "npy":
        todo = indices
    else:
        layout.bucket_dir(c.bucket).mkdir(parents=True, exist_ok=True)
        todo = np.array([i for i in indices if not layout.image_path(int(i)).exists()], dtype=np.int64)
    rendered = 0
    for lo in range(0, len(todo), task.batch_size):
        batch = todo[lo : lo + task.batch_size]
        images = gen.render(batch, task.seed, task.size, device=task.device)
        if layout.format == "npy":
            arr = _open_npy(layout, task.num_images, task.size, mode="r+")
            arr[batch[0] : batch[-1] + 1] = images
            arr.flush()
            del arr
        else:
            for i, img in zip(batch, images):
                _write_file(layout.image_path(int(i)), _encode(img, layout.format))
        rendered += len(batch)
    return c, rendered, labels


# ------------------------------------------------------------------ npy storage


@functools.lru_cache(maxsize=8)
def _npy_header(num_images: int, size: int) -> bytes:
    import io

    buf = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": (num_images, size, size, 3)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def _npy_total_bytes(num_images: int, size: int) -> int:
    return len(_npy_header(num_images, size)) + num_images * size * size * 3


def _preallocate(fd: int, length: int) -> None:
    """Reserve ``length`` bytes of disk for ``fd`` (so later writes cannot meet a full disk).

    ``os.posix_fallocate`` (glibc emulates it on file systems without native
    support); where the platform has none, the missing tail is written with zeros.
    """
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, length)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
    block = bytes(1 << 20)
    pos = os.fstat(fd).st_size
    while pos < length:
        pos += os.pwrite(fd, block[: min(len(block), length - pos)], pos)


def _allocate_npy(layout: Layout, num_images: int, size: int) -> None:
    """Create the partial packed array with all its disk space reserved, before any worker writes to it.

    Writing through a memory map into a sparse file kills the process with
    SIGBUS when the disk fills up; reserving the space first turns that into an
    ENOSPC here, reported as a UserError with nothing left behind. The file is
    prepared under a temporary name and renamed into place, under a lock so
    that concurrent shards allocate it once: a partial array that exists is
    always fully allocated.
    """
    path = layout.npy_partial
    if path.exists():
        return
    try:
        layout.state_dir.mkdir(parents=True, exist_ok=True)
        with open(layout.state_dir / "npy.lock", "a") as lock:
            fcntl.lockf(lock, fcntl.LOCK_EX)  # released when the file is closed
            if path.exists():  # another shard allocated it while this one waited
                return
            for stale in layout.root.glob(f".{path.name}.*.tmp"):  # from a run killed while allocating
                stale.unlink(missing_ok=True)
            with atomic_path(path) as tmp:
                fd = os.open(tmp, os.O_RDWR)
                try:
                    os.pwrite(fd, _npy_header(num_images, size), 0)
                    _preallocate(fd, _npy_total_bytes(num_images, size))
                finally:
                    os.close(fd)
    except OSError as exc:
        raise user_os_error(exc, path) from None


def _open_npy(layout: Layout, num_images: int, size: int, mode: str) -> np.memmap:
    """Memory-map the partial packed array (allocated by :func:`_allocate_npy`); safe from many processes."""
    header = _npy_header(num_images, size)
    return np.memmap(layout.npy_partial, dtype=np.uint8, mode=mode, offset=len(header), shape=(num_images, size, size, 3))


# ------------------------------------------------------------------ bookkeeping


def _bucket_range(bucket: int, num_images: int, bucket_size: int) -> tuple[int, int]:
    return bucket * bucket_size, min((bucket + 1) * bucket_size, num_images)


def _bucket_checksum(layout: Layout, bucket: int, num_images: int, size: int) -> str:
    lo, hi = _bucket_range(bucket, num_images, layout.bucket_size)
    h = hashlib.sha256()
    if layout.format == "npy":
        arr = _open_npy(layout, num_images, size, mode="r") if layout.npy_partial.exists() else np.load(layout.npy, mmap_mode="r")
        h.update(np.ascontiguousarray(arr[lo:hi]).tobytes())
    else:
        for i in range(lo, hi):
            h.update(layout.image_path(i).read_bytes())
    return h.hexdigest()


def _failed_buckets(layout: Layout, expected: dict[int, str], num_images: int, size: int) -> list[int]:
    """Buckets whose images no longer hash to ``expected[bucket]`` (missing, unreadable or changed files)."""
    bad = []
    for bucket, digest in sorted(expected.items()):
        try:
            actual = _bucket_checksum(layout, bucket, num_images, size)
        except (OSError, ValueError):  # a missing file; a truncated or mangled images.npy
            actual = None
        if actual != digest:
            bad.append(bucket)
    return bad


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _read_marker(layout: Layout, bucket: int) -> dict[str, Any] | None:
    path = layout.bucket_marker(bucket)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _chunks(buckets: Sequence[int], num_images: int, bucket_size: int, chunk_size: int) -> Iterator[Chunk]:
    for b in buckets:
        lo, hi = _bucket_range(b, num_images, bucket_size)
        for s in range(lo, hi, chunk_size):
            yield Chunk(b, s, min(s + chunk_size, hi))


def _prepare_directory(out: Path, manifest: dict[str, Any], layout: Layout, overwrite: bool) -> None:
    """Refuse another dataset's directory (unless overwrite); write the manifest if new."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a directory; choose a new or empty directory")
    try:
        existing = read_manifest(out) if out.exists() else None
    except UserError as exc:
        raise UserError(f"{exc}; choose another --out, or delete {out} to start again") from None
    if existing is not None:
        diffs = identity_diff(identity(existing), identity(manifest))
        if not diffs:
            if existing.get("noisevision_version") != manifest["noisevision_version"]:
                print(
                    f"noisevision: note: {out} was started by noisevision {existing.get('noisevision_version')}; "
                    f"continuing with {manifest['noisevision_version']}",
                    file=sys.stderr,
                )
            return
        if not overwrite:
            raise UserError(
                f"{out} holds another dataset ({'; '.join(diffs)}); "
                "choose another --out, or pass --overwrite to replace it"
            )
        _remove_dataset(out, layout)
    elif out.exists() and any(out.iterdir()):
        foreign = sorted(p.name for p in out.iterdir() if p.name not in layout.owned_entries())
        if foreign:
            raise UserError(
                f"{out} is not empty and is not a noisevision dataset (it holds {', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); choose an empty or new directory"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise user_os_error(exc, out) from None
    write_manifest(out, manifest)


def _remove_dataset(out: Path, layout: Layout) -> None:
    for name in layout.owned_entries():
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _finalise(layout: Layout, manifest: dict[str, Any], num_buckets: int, has_labels: bool) -> dict[str, Any]:
    """Collect bucket checksums; when all buckets are done, publish the npy and labels."""
    checksums: dict[str, str] = {}
    labels: list[int] = []
    for b in range(num_buckets):
        marker = _read_marker(layout, b)
        if marker is None:
            break
        checksums[f"{b:05d}"] = marker["sha256"]
        labels.extend(marker.get("labels") or [])
    complete = len(checksums) == num_buckets
    if complete and has_labels and not layout.labels.exists():
        with atomic_path(layout.labels) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(labels, dtype=np.int64))
    if complete and layout.format == "npy" and layout.npy_partial.exists():
        try:
            os.replace(layout.npy_partial, layout.npy)
        except FileNotFoundError:  # another shard published it first
            pass
    manifest = dict(manifest, complete=complete, checksums=checksums if complete else {},
                    buckets_done=len(checksums) if not complete else num_buckets)
    if complete:
        manifest.pop("buckets_done")
        manifest["labels"] = layout.labels.name if has_labels else None
        if has_labels:
            manifest["labels_sha256"] = _file_sha256(layout.labels)
    write_manifest(layout.root, manifest)
    return manifest


# ------------------------------------------------------------------ public API


def generate_dataset(
    generator: str,
    num_images: int,
    size: int,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    format: str = "jpeg",
    params: dict[str, Any] | None = None,
    workers: int = 1,
    shard: str | tuple[int, int] | None = None,
    overwrite: bool = False,
    device: str | None = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
    verify: bool = False,
) -> GenerateResult:
    """Generate ``num_images`` images of ``generator`` at ``size`` px into ``out``.

    The same as :func:`generate`, with positional arguments.

    Args:
        generator: registry name (``noisevision list``), e.g. ``"dead-leaves/mixed"``.
        num_images: dataset size N; images are indices ``0..N-1``.
        size: image side in pixels.
        out: output directory (created; resumed if it holds the same dataset).
        seed: root seed; image i depends only on (generator, params, seed, i).
        format: ``jpeg`` (quality 95, ImageFolder layout), ``png``, or ``npy`` (one packed array).
        params: generator parameter overrides (strings are coerced, as from the CLI).
        workers: processes on this machine.
        shard: ``"i/N"``: this process does buckets ``b % N == i``; default from RANK/WORLD_SIZE.
        overwrite: replace a directory holding a *different* dataset.
        device: ``cpu``, ``cuda`` or ``auto`` for torch-based generators.
        batch_size: images per render call (default: the generator's own).
        progress: show a progress bar with images/s.
        verify: first re-check the checksums of this shard's finished buckets and render
            again those whose files were deleted or changed (a plain re-run trusts the
            per-bucket done markers and only fills in unfinished buckets).

    Raises:
        UserError: for bad arguments, a directory holding another dataset, or write failures.
    """
    try:
        cfg = GenerateConfig(generator=generator, num_images=num_images, size=size, out=os.fspath(out), seed=seed,
                             format=format, params=dict(params or {}), workers=workers, shard=shard,
                             overwrite=overwrite, device=device, batch_size=batch_size, progress=progress,
                             verify=verify)
    except ValueError as e:
        raise UserError(str(e)) from None
    return generate(cfg)


@dataclass(frozen=True)
class GenerationPlan:
    """What one :func:`generate_dataset` call renders, settled before any image is (see :func:`plan_generation`)."""

    generator: str
    gen: Generator
    overrides: dict[str, Any]
    out: Path
    layout: Layout
    manifest: dict[str, Any]
    num_images: int
    size: int
    device: str
    workers: int
    num_buckets: int
    my_buckets: list[int]  # this shard's buckets
    repaired: list[int]  # finished buckets whose checksum failed (``verify``), rendered again
    done_images: int  # images of this shard's buckets finished by an earlier run
    chunks: list[Chunk]
    tasks: list[_Task]

    @property
    def total(self) -> int:
        """Images this call renders."""
        return sum(c.stop - c.start for c in self.chunks)


def plan_generation(cfg: GenerateConfig) -> GenerationPlan:
    """Validate ``cfg``, build the generator and the manifest, prepare the output directory
    (refusing one that holds another dataset) and split this shard's unfinished buckets into tasks.

    Raises:
        UserError: for bad arguments, a directory holding another dataset, or write failures.
    """
    generator, num_images, size, seed, format = cfg.generator, cfg.num_images, cfg.size, cfg.seed, cfg.format
    workers, params = cfg.workers, cfg.params
    if format not in FORMATS:
        raise UserError(f"unknown format {format!r}: choose from {', '.join(FORMATS)}")
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images <= 0:
        raise UserError(f"--num-images must be a positive integer, got {num_images!r}")
    if num_images > MAX_IMAGES:
        raise UserError(f"--num-images {num_images} is more than the supported {MAX_IMAGES}")
    check_workers(workers)
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {cfg.batch_size}")
    shard_index, num_shards = parse_shard(cfg.shard)
    device = resolve_device(cfg.device)
    overrides = dict(params or {})
    gen = create_generator(generator, **overrides)  # validates name, params

    check_size(size)
    check_seed(seed)
    if format == "npy" and num_images * size * size * 3 > 2**40:
        raise UserError("the packed array would exceed 1 TiB; use --format jpeg or fewer/smaller images")

    out = Path(cfg.out)
    layout = Layout(out, format, BUCKET_SIZE)
    manifest: dict[str, Any] = {
        "noisevision_dataset": 1,
        "generator": generator,
        "generator_revision": gen.revision,
        "family": gen.spec.family,
        "description": gen.spec.description,
        "params": params_to_dict(gen.params),
        "seed": int(seed),
        "size": int(size),
        "num_images": int(num_images),
        "format": format,
        "bucket_size": BUCKET_SIZE,
        "layout": "images.npy" if format == "npy" else f"train/{{bucket:05d}}/{{index:08d}}{FORMATS[format]}",
        "noisevision_version": __version__,
        "device": device if gen.uses_torch else "cpu (numpy)",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "complete": False,
    }
    _prepare_directory(out, manifest, layout, cfg.overwrite)
    layout.bucket_marker(0).parent.mkdir(parents=True, exist_ok=True)

    num_buckets = -(-num_images // BUCKET_SIZE)
    my_buckets = [b for b in range(num_buckets) if b % num_shards == shard_index]
    # A deleted images.npy loses every bucket at once, which a check of two paths sees without --verify.
    npy_lost = format == "npy" and not layout.npy.exists() and not layout.npy_partial.exists()
    repaired = _forget_failed_buckets(layout, manifest, my_buckets) if cfg.verify or npy_lost else []
    todo_buckets = [b for b in my_buckets if _read_marker(layout, b) is None]
    done_images = sum(hi - lo for lo, hi in (_bucket_range(b, num_images, BUCKET_SIZE) for b in my_buckets if b not in todo_buckets))
    _remove_stale_temporaries(layout, todo_buckets)
    batch = cfg.batch_size or gen.batch_size
    chunk_size = max(batch, min(BUCKET_SIZE, 4 * batch)) if workers == 1 else batch
    chunks = list(_chunks(todo_buckets, num_images, BUCKET_SIZE, chunk_size))
    tasks = [_Task(c, int(seed), int(size), layout, int(num_images), device, batch) for c in chunks]
    return GenerationPlan(generator, gen, overrides, out, layout, manifest, int(num_images), int(size), device, workers,
                          num_buckets, my_buckets, repaired, int(done_images), chunks, tasks)


def run_generation(plan: GenerationPlan, progress: bool = True) -> tuple[int, float]:
    """Render the plan's tasks (in this process or a pool) and mark each bucket done, with its checksum
    and labels, as soon as its last chunk is written. Returns (images rendered, seconds)."""
    layout, num_images, size = plan.layout, plan.num_images, plan.size
    remaining: dict[int, int] = {}
    for c in plan.chunks:
        remaining[c.bucket] = remaining.get(c.bucket, 0) + 1
    bucket_labels: dict[int, dict[int, np.ndarray]] = {b: {} for b in remaining}
    if layout.format == "npy" and plan.chunks:
        _allocate_npy(layout, num_images, size)

    t0 = time.perf_counter()
    rendered = 0
    bar = _progress(plan.total, plan.generator, progress)
    try:
        for chunk, n, labels in _execute(plan.tasks, plan.gen, plan.generator, plan.overrides, plan.workers, plan.device):
            rendered += n
            if labels is not None:
                bucket_labels[chunk.bucket][chunk.start] = labels
            bar.update(chunk.stop - chunk.start)
            remaining[chunk.bucket] -= 1
            if remaining[chunk.bucket] == 0:
                _mark_bucket(layout, chunk.bucket, num_images, size, bucket_labels.pop(chunk.bucket))
    finally:
        bar.close()
    return rendered, time.perf_counter() - t0


def generation_result(plan: GenerationPlan, rendered: int, seconds: float) -> GenerateResult:
    """Publish what is complete (the packed array, labels, the manifest's checksums) and report the call."""
    final = _finalise(plan.layout, plan.manifest, plan.num_buckets, plan.gen.spec.labels is not None)
    return GenerateResult(
        out=plan.out,
        manifest=final,
        rendered=rendered,
        skipped=plan.done_images + (plan.total - rendered),
        seconds=seconds,
        complete=bool(final["complete"]),
        shard_buckets=plan.my_buckets,
        repaired=plan.repaired,
    )


def _remove_stale_temporaries(layout: Layout, buckets: Sequence[int]) -> None:
    """Delete temporary files a killed run left in the buckets this shard will (re)write."""
    if layout.format == "npy":
        return
    for b in buckets:
        d = layout.bucket_dir(b)
        if d.is_dir():
            for tmp in d.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def _mark_bucket(layout: Layout, bucket: int, num_images: int, size: int, labels: dict[int, np.ndarray]) -> None:
    lo, hi = _bucket_range(bucket, num_images, layout.bucket_size)
    marker: dict[str, Any] = {
        "bucket": bucket,
        "start": lo,
        "stop": hi,
        "sha256": _bucket_checksum(layout, bucket, num_images, size),
    }
    if labels:
        marker["labels"] = [int(v) for k in sorted(labels) for v in labels[k]]
    atomic_write_text(layout.bucket_marker(bucket), json.dumps(marker) + "\n")


def _execute(
    tasks: list[_Task], gen: Generator, name: str, overrides: dict[str, Any], workers: int, device: str
) -> Iterator[tuple[Chunk, int, np.ndarray | None]]:
    """Run tasks in this process (workers == 1) or a process pool, yielding as they finish."""
    if not tasks:
        return
    if workers == 1 or len(tasks) == 1:
        for t in tasks:
            yield _run_chunk(t, gen)
        return
    threads = max(1, available_cpus() // workers)
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(name, overrides, threads)) as pool:
        yield from pool.imap_unordered(_run_chunk, tasks)


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, name: str, enabled: bool):
    if not enabled or total == 0:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="img", unit_scale=False, dynamic_ncols=True, smoothing=0.1)


def _forget_failed_buckets(layout: Layout, manifest: dict[str, Any], buckets: Sequence[int]) -> list[int]:
    """For ``generate --verify``: find the finished ``buckets`` whose files fail their checksum and
    forget them (done marker and images) so that they are rendered again; return them.

    A bucket fails when its images hash differently from its done marker, or
    from the manifest of a complete dataset. The manifest stops claiming
    completeness before anything is removed, so a crash leaves a resumable dataset.
    """
    num_images, size = manifest["num_images"], manifest["size"]
    published = read_manifest(layout.root) or {}
    listed = published.get("checksums") if published.get("complete") else None
    listed = listed if isinstance(listed, dict) else {}
    expected: dict[int, str] = {}
    bad: list[int] = []
    for b in buckets:
        marker = _read_marker(layout, b)
        if marker is None:
            continue  # unfinished: rendered anyway
        digest = marker.get("sha256")
        if not isinstance(digest, str) or listed.get(f"{b:05d}", digest) != digest:
            bad.append(b)
        else:
            expected[b] = digest
    bad = sorted(bad + _failed_buckets(layout, expected, num_images, size))
    wanted = published.get("labels_sha256")
    labels_bad = wanted is not None and _file_sha256(layout.labels) != wanted
    if not bad and not labels_bad:
        return []
    write_manifest(layout.root, manifest)  # complete: False
    if labels_bad:
        layout.labels.unlink(missing_ok=True)  # rewritten from the done markers when complete
    if bad and layout.format == "npy" and layout.npy.exists():
        os.replace(layout.npy, layout.npy_partial)  # the repaired buckets are written into it again
    for b in bad:
        layout.bucket_marker(b).unlink(missing_ok=True)
        if layout.format != "npy":
            shutil.rmtree(layout.bucket_dir(b), ignore_errors=True)
    return bad


def verify_dataset(out: str | os.PathLike) -> list[str]:
    """Recompute every checksum of a complete dataset; return what differs.

    Returns the keys of the buckets (``"00001"``) whose images are missing,
    unreadable or changed, and ``"labels.npy"`` if the labels file is missing or
    changed; an empty list when everything matches the manifest.

    Raises:
        UserError: not a noisevision dataset, an incomplete one, or a damaged manifest.
    """
    out = Path(out)
    if not out.is_dir():
        raise UserError(f"{out} is not a directory: give the --out directory of a generate run")
    manifest = read_manifest(out)
    if manifest is None:
        raise UserError(f"{out} has no manifest.json: not a noisevision dataset")
    if not manifest.get("complete"):
        raise UserError(f"{out} is incomplete: re-run the same generate command to finish it")
    try:
        layout = Layout(out, manifest["format"], int(manifest["bucket_size"]))
        expected = {int(k): str(v) for k, v in manifest["checksums"].items()}
        num_images, size = int(manifest["num_images"]), int(manifest["size"])
        # Sizes bounded before anything is read: verification holds one bucket of images at a time.
        if not (0 < layout.bucket_size <= BUCKET_SIZE and 0 < num_images <= MAX_IMAGES and 0 < size <= MAX_SIZE):
            raise ValueError("sizes out of range")
        layout.image_path(0)  # a known format
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"{out / 'manifest.json'} is damaged (fields missing, of the wrong type or out of range); "
                        "regenerate the dataset") from None
    bad = [f"{b:05d}" for b in _failed_buckets(layout, expected, num_images, size)]
    if manifest.get("labels"):
        wanted = manifest.get("labels_sha256")
        digest = _file_sha256(layout.labels)
        if digest is None or (wanted is not None and digest != wanted):
            bad.append(layout.labels.name)
    return bad
