"""Training image sources behind ``--data``: packed arrays, image folders, online generators.

Every source answers two questions, both deterministic from the seed:

* :meth:`ImageSource.epoch_indices` - which images epoch ``e`` uses, in which order;
* :meth:`ImageSource.load` - the uint8 pixels (N, H, W, 3) of given image indices.

``--data`` forms (:func:`open_source`):

* ``DIR`` or ``FILE.npy``: a packed uint8 array (N, H, W, 3) (``DIR/images.npy``, as
  ``noisevision generate --format npy`` writes it), memory-mapped, never loaded whole;
* ``DIR``: an ImageFolder tree (``DIR/train/<class>/*.jpg`` or ``DIR/<class>/*.jpg``),
  decoded once at ``image_size`` and cached by :func:`~noisevision.data.imagefolder.load_image_folder`;
* ``gen:<generator>``: images rendered on demand, never written to disk. Epoch ``e``
  uses generator indices ``[e*N, (e+1)*N)`` (fresh images every epoch), or the same
  ``[0, N)`` every epoch with ``fixed``. Image ``i`` is the image ``noisevision
  generate`` writes as index ``i`` with the same seed.

Labels (for supervised pretraining, :meth:`ImageSource.load_labels`): a ``gen:``
generator's ``labels()``; ``labels.npy`` next to ``images.npy`` (int64 ``(N,)``, one
class per row of the array; ``FILE.labels.npy`` for an array ``FILE.npy`` of another
name); an ImageFolder's class sub-folders, except in a folder written by ``noisevision
generate`` (its sub-folders are buckets of 1000), whose labels are its ``labels.npy``.

Stored data (arrays, folders) is shuffled per epoch with a permutation drawn from
``image_rng(seed, epoch, "shuffle")``, so the order of any epoch can be recomputed
when a run resumes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..generators import create_generator
from ..rng import image_rng
from .imagefolder import MAX_CLASSES, load_image_folder
from .manifest import LABELS_NAME, NPY_NAME, read_manifest

GEN_PREFIX = "gen:"
NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file


class ImageSource:
    """Base class: a collection of uint8 images with a deterministic per-epoch order."""

    kind: str = ""
    # Image folders: files that could not be decoded and were left out (None for other sources).
    bad_files: list[str] | None = None

    def __init__(self, description: str, num_images: int, image_size: int, seed: int) -> None:
        self.description = description
        self.num_images = int(num_images)
        self.image_size = int(image_size)
        self.seed = int(seed)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """Image indices of epoch ``epoch`` in training order (int64, length ``num_images``)."""
        return image_rng(self.seed, epoch, "shuffle").permutation(self.num_images).astype(np.int64)

    def load(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (len(indices), H, W, 3) pixels of the given image indices."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """What the run records about its data."""
        info = {"kind": self.kind, "data": self.description, "num_images": self.num_images, "image_size": self.image_size}
        if self.bad_files is not None:
            info["bad_images"] = len(self.bad_files)
        return info

    def num_classes(self) -> int | None:
        """How many classes the labels of this data index into; None when it has no labels.

        Raises:
            UserError: labels that cannot be used (malformed file, no fixed number of classes).
        """
        return None

    def load_labels(self, indices: np.ndarray) -> np.ndarray:
        """int64 class labels (len(indices),) of the given image indices."""
        raise UserError(f"{self.description} has no labels")


class ArraySource(ImageSource):
    """A uint8 (N, H, W, 3) array: an in-memory array or a memory-mapped ``.npy`` file.

    The memory map is opened lazily in each process (and dropped when pickled),
    so loader workers never copy the array.
    """

    kind = "npy"

    def __init__(
        self, description: str, seed: int, *, path: Path | None = None, array: np.ndarray | None = None,
        num_images: int | None = None, labels: np.ndarray | None = None, labels_path: Path | None = None,
    ) -> None:
        self.path = path
        self._array = array
        self.labels_path = labels_path
        self._labels = labels
        arr = self.array
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise UserError(f"{description}: expected a uint8 array of shape (N, H, W, 3), got {arr.dtype} {arr.shape}")
        if arr.shape[1] != arr.shape[2]:
            raise UserError(f"{description}: images must be square, got {arr.shape[1]}x{arr.shape[2]}")
        available = arr.shape[0]
        if available == 0:
            raise UserError(f"{description} holds no images")
        if num_images is not None and num_images > available:
            raise UserError(f"--num-images {num_images} is more than the {available} images in {description}")
        super().__init__(description, num_images or available, arr.shape[1], seed)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            assert self.path is not None
            self._array = map_npy(self.path)
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_array"] = None  # re-open the memory map in the receiving process
        return state

    def load(self, indices: np.ndarray) -> np.ndarray:
        order = np.argsort(indices, kind="stable")  # sorted reads are sequential on disk
        out = np.empty((len(indices), *self.array.shape[1:]), np.uint8)
        out[order] = self.array[np.asarray(indices)[order]]
        return out

    @property
    def labels(self) -> np.ndarray | None:
        """int64 (rows,) labels of the whole array (read and checked on first use), or None."""
        if self._labels is None and self.labels_path is not None:
            self._labels = read_labels(self.labels_path, len(self.array))
        return self._labels

    def num_classes(self) -> int | None:
        labels = self.labels
        return None if labels is None else int(labels[: self.num_images].max()) + 1

    def load_labels(self, indices: np.ndarray) -> np.ndarray:
        if self.labels is None:
            return super().load_labels(indices)
        return self.labels[np.asarray(indices, np.int64)]


class GeneratorSource(ImageSource):
    """``gen:<name>``: images rendered on demand by a registered generator."""

    kind = "gen"

    def __init__(
        self, name: str, num_images: int, image_size: int, seed: int, fixed: bool, device: str = "cpu",
        params: dict[str, Any] | None = None,
    ) -> None:
        self.generator = create_generator(name, **(params or {}))
        self.fixed = bool(fixed)
        self.device = device if self.generator.uses_torch else "cpu"  # numpy renderers run on the CPU
        super().__init__(f"{GEN_PREFIX}{name}", num_images, image_size, seed)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        if self.fixed:
            return super().epoch_indices(epoch)
        return np.arange(epoch * self.num_images, (epoch + 1) * self.num_images, dtype=np.int64)

    def load(self, indices: np.ndarray) -> np.ndarray:
        return self.generator.render(np.asarray(indices, np.int64), self.seed, self.image_size, device=self.device)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "generator": self.generator.name, "fixed": self.fixed, "params": self.generator.params_dict()}

    def num_classes(self) -> int | None:
        if self.generator.spec.labels is None:
            return None
        count = self.generator.num_classes()
        if count is None:
            raise UserError(
                f"{self.description} labels every image with its own class under these parameters; set the "
                "generator parameter that fixes the number of classes (e.g. --gen-params num_systems=1000 for fractal/ifs)"
            )
        return int(count)

    def load_labels(self, indices: np.ndarray) -> np.ndarray:
        labels = self.generator.labels(np.asarray(indices, np.int64), self.seed)
        return super().load_labels(indices) if labels is None else labels


def map_npy(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` file (nothing is read but its header; pickled objects are refused).

    Raises:
        UserError: the file is missing, is not a ``.npy`` file, or its header is damaged.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
        if magic != NPY_MAGIC:
            raise UserError(f"{path} is not a .npy file (it does not start with the NumPy header)")
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} as a .npy array: {str(exc).splitlines()[0]}") from None


def read_labels(path: Path, rows: int | None) -> np.ndarray:
    """Read a labels file: ``rows`` (None: any number of) non-negative integers; UserError otherwise."""
    raw = map_npy(path)  # header only: the shape is checked before reading
    if raw.ndim != 1 or (rows is not None and len(raw) != rows) or raw.dtype.kind not in "iu":
        want = "one integer label per image" + (f", shape ({rows},)" if rows is not None else "")
        raise UserError(f"{path}: expected {want}; got {raw.dtype} {raw.shape}")
    labels = np.asarray(raw, dtype=np.int64)
    if len(labels) and labels.min() < 0:
        raise UserError(f"{path}: labels must be non-negative class indices, found {labels.min()}")
    if len(labels) and labels.max() >= MAX_CLASSES:
        raise UserError(f"{path}: labels must be class indices below {MAX_CLASSES:,}, found {labels.max():,}")
    return labels


def _labels_file(npy: Path) -> Path | None:
    """``labels.npy`` next to ``images.npy``, or ``FILE.labels.npy`` next to ``FILE.npy``, if it exists."""
    path = npy.with_name(LABELS_NAME) if npy.name == NPY_NAME else npy.with_suffix(".labels.npy")
    return path if path.is_file() else None


def _generated_folder_labels(root: Path, files: list[str]) -> np.ndarray | None:
    """Labels of a ``noisevision generate`` image folder (``root/labels.npy`` by the image index each
    file name carries), or None when its generator has no labels."""
    path = root / LABELS_NAME
    if not path.is_file():
        return None
    try:
        index = np.array([int(Path(f).stem) for f in files], dtype=np.int64)
    except ValueError:
        raise UserError(f"{root}: file names of a generated dataset must be image indices (labels.npy lists them by index)") from None
    labels = read_labels(path, None)
    if len(index) and index.max() >= len(labels):
        raise UserError(f"{path} holds {len(labels)} labels, fewer than the images in {root}")
    return labels[index]


def _find_npy(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".npy":
        return path
    if path.is_dir() and (path / "images.npy").is_file():
        return path / "images.npy"
    return None


def _folder_split(path: Path) -> str | None:
    """``train`` when ``path/train`` holds class folders (``generate`` output), else None."""
    train = path / "train"
    if train.is_dir() and any(p.is_dir() for p in train.iterdir()):
        return "train"
    return None


def open_source(
    data: str,
    *,
    seed: int,
    num_images: int | None = None,
    image_size: int | None = None,
    fixed: bool = False,
    gen_params: dict[str, Any] | None = None,
    min_size: int = 1,
    cache_dir: str | None = None,
    render_device: str = "cpu",
    progress: bool = True,
) -> ImageSource:
    """Open the ``--data`` argument as an :class:`ImageSource` (see the module docstring).

    Raises:
        UserError: empty or missing data, a folder without readable images, a
            ``gen:`` source without ``num_images``, or images smaller than ``min_size``.
    """
    if not data:
        raise UserError("no training data given: pass --data DIR, FILE.npy or gen:<generator>")
    if data.startswith(GEN_PREFIX):
        name = data[len(GEN_PREFIX):]
        if not name:
            raise UserError("gen: needs a generator name, e.g. gen:dead-leaves/mixed (see `noisevision list`)")
        if num_images is None:
            raise UserError(f"{data} generates images online: pass --num-images (images per epoch)")
        size = image_size or min_size
        source: ImageSource = GeneratorSource(name, num_images, size, seed, fixed, render_device, gen_params)
    else:
        if gen_params:
            raise UserError("--gen-params applies only to gen:<generator> data")
        path = Path(data).expanduser()
        if not path.exists():
            raise UserError(f"training data {path} does not exist")
        npy = _find_npy(path)
        if npy is not None:
            source = ArraySource(str(npy), seed, path=npy, num_images=num_images, labels_path=_labels_file(npy))
            if image_size is not None and image_size != source.image_size:
                raise UserError(f"{npy} holds {source.image_size} px images but --image-size is {image_size}")
        elif path.is_dir():
            size = image_size or min_size
            loaded = load_image_folder(
                path, _folder_split(path), size, cache_dir=cache_dir, skip_bad_images=True, progress=progress
            )
            labels = loaded.labels
            if read_manifest(path) is not None:  # generate output: sub-folders are buckets, not classes
                labels = _generated_folder_labels(path, loaded.files)
            source = ArraySource(str(path), seed, array=loaded.images, num_images=num_images, labels=labels)
            source.kind = "folder"
            source.bad_files = list(loaded.bad_files)
        else:
            raise UserError(f"training data {path} is neither a directory nor a .npy file")
    if source.image_size < min_size:
        raise UserError(
            f"{source.description} holds {source.image_size} px images, smaller than the {min_size} px crop; "
            "lower --crop-size or use larger images"
        )
    return source
