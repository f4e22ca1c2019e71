"""CIFAR-10 in its official python format (``cifar-10-batches-py``: pickled batches).

The official archive stores each batch as a pickled dict with ``data`` (uint8
(10000, 3072), channel-planar rows) and ``labels``; ``batches.meta`` holds the
class names. The batches are unpickled with a restricted unpickler that only
admits the numpy array constructors, so a tampered file cannot run code.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from ..errors import UserError
from .imagefolder import LabeledImages

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except numpy's array reconstruction helpers."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise UserError(f"CIFAR-10 batch file missing: {path}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{path} is not a valid CIFAR-10 python batch ({exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a valid CIFAR-10 python batch (expected a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


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
    meta = _read_pickle(root / "batches.meta")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta["label_names"]]
    images, labels, files = [], [], []
    for name in SPLIT_FILES[split]:
        batch = _read_pickle(root / name)
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise UserError(f"{root / name}: expected data of shape (N, 3072), got {data.shape}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
        files += [f"{name}/{i}" for i in range(len(data))]
    return LabeledImages(
        images=resize_batch(np.ascontiguousarray(np.concatenate(images)), size),
        labels=np.concatenate(labels),
        classes=classes,
        files=files,
        root=str(root),
    )
