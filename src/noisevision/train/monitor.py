"""The live kNN monitor of ``pretrain --monitor DATASET``.

Before the first step (of a fresh run, not a resumed one), every
``--monitor-every`` steps and at the end, the encoder being trained is
evaluated on a small fixed labelled subset of a real dataset: features of its
default probe layer (the layer the linear probe reads, e.g. SmallAlexNet's
fc6, a ResNet's pooled features) for ``--monitor-images`` training images and
``--monitor-test-images`` test images, then weighted kNN top-1 (cosine, k = 200,
T = 0.1, as the probe's kNN). The subsets are drawn once, seeded and stratified
(as equal a share per class as the classes allow), so every evaluation of a run
sees the same images and the curve moves only with the encoder.

An evaluation must not change training: it runs in eval mode (BatchNorm uses
its running statistics and updates none) under ``torch.inference_mode``, with
the global random streams forked and every module's train/eval flag restored,
so a run ends with the same weights with and without the monitor.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..accel import autocast
from ..data.imagefolder import decode_files, scan_image_folder
from ..data.roots import DatasetSource, default_test_split, load_split, resolve_dataset
from ..errors import UserError
from ..eval.features import to_model_input
from ..eval.knn import knn_accuracy
from ..fileio import read_json_lines
from ..models import Encoder
from ..plotting import pyplot, save_png
from ..resources import max_workers
from ..rng import image_rng

KNN_K = 200
KNN_TEMPERATURE = 0.1
BATCH_SIZE = 500


def stratified_subset(labels: np.ndarray, n: int, seed: int, purpose: str) -> np.ndarray:
    """Sorted indices of ``n`` items (all of them when there are fewer), as evenly spread over the classes
    as their sizes allow; class ``c``'s items are a seeded random choice drawn from its own stream."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    n = min(int(n), len(labels))
    quota = np.zeros(len(classes), dtype=np.int64)
    open_ = [i for i in range(len(classes)) if counts[i] > 0]
    while quota.sum() < n and open_:  # water-filling: a small class gives its unused share to the others
        remaining = n - int(quota.sum())
        share, extra = divmod(remaining, len(open_))
        for rank, i in enumerate(open_):
            quota[i] += min(counts[i] - quota[i], share + (rank < extra))
        open_ = [i for i in open_ if quota[i] < counts[i]]
    picked = [image_rng(seed, int(c), purpose).choice(np.flatnonzero(labels == c), int(q), replace=False)
              for c, q in zip(classes, quota) if q]
    return np.sort(np.concatenate(picked)).astype(np.int64) if picked else np.zeros(0, dtype=np.int64)


@contextlib.contextmanager
def untouched(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Run a block with ``module`` in eval mode and the global random streams forked; afterwards every
    submodule's train/eval flag is what it was (a frozen part of a model stays in eval mode)."""
    flags = [(m, m.training) for m in module.modules()]
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
            module.eval()
            yield
    finally:
        for m, training in flags:
            m.training = training


class KnnMonitor:
    """A fixed labelled subset of ``dataset`` and the kNN top-1 of an encoder's features on it.

    Args:
        dataset: any dataset the probe reads (``cifar10``, ``tiny-imagenet-32``, ``imagefolder:<path>``).
        size: the side the images are decoded at (the training crop size).
        mean, std: the normalisation the encoder is trained with.
        train_images, test_images: sizes of the labelled reference set and of the test set.
        seed: seeds the subsets.

    Raises:
        UserError: unknown or missing dataset, a missing split, different classes in the two splits,
            or fewer than two classes.
    """

    def __init__(self, dataset: str, size: int, mean: tuple[float, ...], std: tuple[float, ...], *,
                 train_images: int, test_images: int, seed: int = 0, progress: bool = False) -> None:
        self.dataset, self.size, self.mean, self.std = dataset, size, mean, std
        source = resolve_dataset(dataset)
        test_split = default_test_split(dataset)
        train = self._load(source, "train", train_images, seed, progress)
        test = self._load(source, test_split, test_images, seed, progress)
        if train[2] != test[2]:
            raise UserError(f"--monitor {dataset}: its train and {test_split} splits have different classes; "
                            "use a dataset whose splits share the class folders")
        self.classes = train[2]
        if len(self.classes) < 2:
            raise UserError(f"--monitor {dataset} has {len(self.classes)} class; kNN accuracy needs at least 2")
        self.train_images, self.train_labels = train[0], torch.as_tensor(train[1])
        self.test_images, self.test_labels = test[0], torch.as_tensor(test[1])

    def _load(self, source: DatasetSource, split: str, n: int, seed: int,
              progress: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(uint8 images, int64 labels, class names) of a stratified subset of one split.

        An image folder decodes only the chosen files (not the whole split); CIFAR-10's batches are read whole.
        """
        purpose = f"monitor/{split}"
        if source.kind == "imagefolder":
            folder = source.path / split
            if not folder.is_dir():
                raise UserError(f"--monitor {self.dataset}: {folder} does not exist (the monitor reads the "
                                f"train and {default_test_split(self.dataset)} splits)")
            classes, files, labels, _ = scan_image_folder(folder)
            pick = stratified_subset(labels, n, seed, purpose)
            images, bad = decode_files(folder, [files[i] for i in pick], self.size, workers=max_workers(),
                                       progress=progress, desc=f"monitor {split}")
            keep = np.setdiff1d(np.arange(len(pick)), np.asarray(bad, dtype=np.int64))
            if bad:
                print(f"noisevision: warning: --monitor {self.dataset}: {len(bad)} undecodable image file(s) in "
                      f"{folder} left out", file=sys.stderr, flush=True)
            return images[keep], labels[pick][keep], classes
        data = load_split(source, split, self.size, progress=progress)
        pick = stratified_subset(data.labels, n, seed, purpose)
        return data.images[pick], data.labels[pick], list(data.classes)

    def describe(self) -> str:
        return (f"{self.dataset} ({len(self.train_labels)} train / {len(self.test_labels)} test images, "
                f"{len(self.classes)} classes)")

    def _features(self, encoder: Encoder, images: np.ndarray, layer: str, device: torch.device,
                  dtype: torch.dtype, amp_dtype: torch.dtype | None, channels_last: bool) -> torch.Tensor:
        out = []
        for start in range(0, len(images), BATCH_SIZE):
            x = to_model_input(images[start:start + BATCH_SIZE], self.size, self.mean, self.std, device,
                               channels_last=channels_last).to(dtype)
            with autocast(device, enabled=amp_dtype is not None, dtype=amp_dtype):
                out.append(encoder.forward_features(x, layer).flatten(1).float().cpu())
        return torch.cat(out)

    def evaluate(self, encoder: Encoder, *, device: torch.device, dtype: torch.dtype = torch.float32,
                 amp_dtype: torch.dtype | None = None, channels_last: bool = False) -> float:
        """kNN top-1 (percent) of ``encoder``'s default probe layer; the encoder's state is left as it was."""
        layer = encoder.default_probe_layer
        with untouched(encoder, device), torch.inference_mode():
            train = self._features(encoder, self.train_images, layer, device, dtype, amp_dtype, channels_last)
            test = self._features(encoder, self.test_images, layer, device, dtype, amp_dtype, channels_last)
            acc = knn_accuracy(train, self.train_labels, test, self.test_labels, len(self.classes),
                               k=KNN_K, temperature=KNN_TEMPERATURE, ks=(1,))
        return float(acc[1])


def write_curves(metrics: Path, path: Path, title: str) -> bool:
    """``path``: the loss and the monitor's kNN top-1 against the step, from a run's ``metrics.jsonl``.

    Returns False (and writes nothing) when the metrics hold no point to plot.
    """
    loss, knn = [], []
    for row in read_json_lines(metrics):
        if "loss" in row:
            loss.append((row["step"], row["loss"]))
        if row.get("monitor_knn_top1") is not None:
            knn.append((row["step"], row["monitor_knn_top1"]))
    if not loss and not knn:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    if loss:
        ax.plot(*zip(*loss), color="tab:blue", lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss", color="tab:blue")
    ax.set_title(title, fontsize=10)
    if knn:
        ax2 = ax.twinx()
        ax2.plot(*zip(*knn), color="tab:red", marker="o", ms=3, lw=1.2)
        ax2.set_ylabel("monitor kNN top-1 (%)", color="tab:red")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    return True
