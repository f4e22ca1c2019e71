"""CIFAR-10 in its official python format (``cifar-10-batches-py``: pickled batches).

The official archive stores each batch as a pickled dict with ``data`` (uint8
(10000, 3072), channel-planar rows) and ``labels``; ``batches.meta`` holds the
class names. The files come from elsewhere, so they are read defensively:

- a file larger than :data:`MAX_PICKLE_BYTES` is refused before it is read;
- the pickle is run by a restricted unpickler (the pure-Python one, so that
  each step can be checked) that admits only numpy's array and dtype
  reconstruction, and checks every array's shape, dtype and data length
  *before* numpy allocates it: a tampered file can neither run code nor make
  the reader allocate more memory than the file's own size;
- the unpickled batch's keys, shapes and label values are checked.
"""
from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

import numpy as np

from ..errors import UserError
from .imagefolder import MAX_CLASSES, LabeledImages

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
# An official batch file is about 31 MB; anything far larger is not one.
MAX_PICKLE_BYTES = 256 * 2**20

_PLAIN_KINDS = "biuf"  # bool, integer and float arrays: all a CIFAR batch holds
_ENDIAN = {"<", ">", "|", "=", b"<", b">", b"|", b"="}


def _bad(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(what)


def _plain_dtype(spec: object) -> np.dtype:
    """A numeric dtype from a short type string (``"u1"``, ``b"i8"``); anything else is refused."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", "replace")
    if not isinstance(spec, str) or len(spec) > 8:
        raise _bad(f"refusing dtype {spec!r}")
    try:
        dt = np.dtype(spec)
    except TypeError:
        raise _bad(f"refusing dtype {spec!r}") from None
    if dt.kind not in _PLAIN_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise _bad(f"refusing dtype {spec!r}: only plain numeric arrays are read")
    return dt


def _dtype(spec: object, align: object = False, copy: object = True) -> np.dtype:
    """Stands in for ``numpy.dtype``: always a fresh copy, so its pickled state cannot alter numpy's own."""
    return np.dtype(_plain_dtype(spec), copy=True)


def _reconstruct(subtype: object, shape: object, dtype_spec: object) -> np.ndarray:
    """Stands in for ``numpy...._reconstruct``: numpy pickles always start from an empty array."""
    if subtype is not _NDARRAY or shape != (0,):
        raise _bad("refusing an array reconstruction that is not numpy's standard (empty, then filled) form")
    return np.empty(0, dtype=np.uint8)  # its pickled state (checked in _SafeUnpickler) sets dtype, shape, data


def _scalar(dtype: object, data: object) -> np.generic:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _PLAIN_KINDS:
        raise _bad("refusing a numpy scalar of a non-numeric type")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _bad("refusing a numpy scalar whose data does not match its type")
    return np.frombuffer(data, dtype=dtype)[0].copy()


def _encode(text: object, encoding: object = "latin1") -> bytes:
    """Stands in for ``_codecs.encode``, which protocol-2 pickles use for byte strings (latin-1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _bad("refusing a codec call other than latin-1 encoding of a string")
    return text.encode("latin1")


class _NdarrayMarker:
    """Given out for ``numpy.ndarray``: usable only as _reconstruct's argument, never called."""


_NDARRAY = _NdarrayMarker()
_SAFE_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


def _check_array_state(state: object) -> None:
    """Check an ndarray's pickled state ``(version, shape, dtype, fortran, data)`` before numpy applies it."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _bad("refusing an array with an unexpected pickled state")
    shape, dtype, _fortran, data = state[-4:]
    if not isinstance(shape, tuple) or len(shape) > 8 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _bad(f"refusing an array of shape {shape!r}")
    if not isinstance(dtype, np.dtype) or dtype.kind not in _PLAIN_KINDS:
        raise _bad("refusing an array of a non-numeric dtype")
    if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
        raise _bad(f"refusing an array of shape {shape} whose data is not {math.prod(shape) * dtype.itemsize} bytes")


def _check_dtype_state(state: object) -> None:
    """Allow only the state of a plain numeric dtype: ``(3, endian, None, None, None, -1, -1, 0)``."""
    ok = (
        isinstance(state, tuple)
        and len(state) == 8
        and state[0] == 3
        and state[1] in _ENDIAN
        and state[2:5] == (None, None, None)
        and state[5:] == (-1, -1, 0)
    )
    if not ok:
        raise _bad(f"refusing a dtype with pickled state {state!r}")


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its BUILD step can be checked
    """Unpickler that admits only numpy's array/dtype reconstruction, checked before allocation.

    The arrays together may hold no more bytes than the file itself: a pickle can refer to one stored
    byte string many times (its memo), and each array built from it is a new allocation.
    """

    def __init__(self, file: io.BytesIO, byte_budget: int, **kwargs: object) -> None:
        super().__init__(file, **kwargs)
        self._bytes_left = byte_budget

    def find_class(self, module: str, name: str) -> object:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise _bad(f"refusing to load {module}.{name} from a CIFAR batch") from None

    def load_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            _check_array_state(state)
            self._bytes_left -= len(state[-1])
            if self._bytes_left < 0:
                raise _bad("refusing arrays that hold more bytes than the file (a stored byte string reused)")
        elif isinstance(inst, np.dtype):
            _check_dtype_state(state)
        else:
            raise _bad(f"refusing to set the state of a {type(inst).__name__}")
        super().load_build()

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


def _read_pickle(path: Path) -> dict:
    """Unpickle one CIFAR file (a dict) safely; UserError if it is missing, too large or not a CIFAR pickle."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(size + 1) if size <= MAX_PICKLE_BYTES else b""
            if size > MAX_PICKLE_BYTES or len(raw) > MAX_PICKLE_BYTES:
                raise UserError(
                    f"{path} is {max(size, len(raw)) / 2**20:.0f} MiB, more than a CIFAR-10 batch can be "
                    f"({MAX_PICKLE_BYTES // 2**20} MiB); it is not a CIFAR-10 python batch"
                )
    except FileNotFoundError:
        raise UserError(f"CIFAR-10 batch file missing: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), len(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            OverflowError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a valid CIFAR-10 python batch ({exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a valid CIFAR-10 python batch (expected a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _class_names(meta: dict, path: Path) -> list[str]:
    names = meta.get("label_names")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_CLASSES or not all(
        isinstance(c, (bytes, str)) for c in names
    ):
        raise UserError(f"{path} is not a valid CIFAR-10 batches.meta (expected a list of class names)")
    return [c.decode("utf-8", "replace") if isinstance(c, bytes) else c for c in names]


def _batch_arrays(batch: dict, path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch's (data uint8 (N, 3072), labels int64 (N,)), checked against each other and the classes."""
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", type(data).__name__)
        raise UserError(f"{path}: expected 'data' as a uint8 array of shape (N, 3072), got {shape}")
    if isinstance(labels, np.ndarray):
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels
    ):
        raise UserError(f"{path}: expected 'labels' as a list of integers")
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    out = np.asarray(labels, dtype=np.int64)
    if len(out) and (out.min() < 0 or out.max() >= num_classes):
        raise UserError(f"{path}: labels must lie in 0..{num_classes - 1} (the classes in batches.meta)")
    return data, out


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, size, size, 3) with an antialiased bilinear resize."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def load_cifar10_python(root: str | os.PathLike, split: str, size: int = 32) -> LabeledImages:
    """Read ``split`` ("train" or "test") of an extracted ``cifar-10-batches-py`` folder.

    Raises:
        UserError: unknown split, missing or invalid batch files.
    """
    root = Path(root)
    if split not in SPLIT_FILES:
        raise UserError(f"split {split!r} not found in CIFAR-10; available splits: {', '.join(SPLIT_FILES)}")
    classes = _class_names(_read_pickle(root / "batches.meta"), root / "batches.meta")
    images, labels, files = [], [], []
    for name in SPLIT_FILES[split]:
        data, batch_labels = _batch_arrays(_read_pickle(root / name), root / name, len(classes))
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
        files += [f"{name}/{i}" for i in range(len(data))]
    return LabeledImages(
        images=resize_batch(np.ascontiguousarray(np.concatenate(images)), size),
        labels=np.concatenate(labels),
        classes=classes,
        files=files,
        root=str(root),
    )
