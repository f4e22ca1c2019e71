"""Batches of training images, loaded or generated in background worker processes.

One :class:`torch.utils.data.DataLoader` serves the whole run. Its items are
whole batches keyed by ``(epoch, batch)``; the key fully determines the images,
so the stream is the same with any number of workers, and a resumed run simply
starts the key sequence at the first batch not yet trained on. Under
DistributedDataParallel each rank takes its slice of every global batch.

For ``gen:`` sources the workers render images on the fly (nothing touches the
disk); for stored data they read rows of the memory-mapped array.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .sources import ImageSource


class EpochBatches(Dataset):
    """Map-style dataset whose item ``(epoch, batch)`` is this rank's slice of that global batch.

    Returns ``(epoch, batch, images)`` with ``images`` a uint8 tensor (B / world, H, W, 3),
    and with ``labels`` also the int64 class labels: ``(epoch, batch, images, labels)``.
    Batches are taken in order from :meth:`ImageSource.epoch_indices`; the last
    incomplete batch of an epoch is dropped.
    """

    def __init__(self, source: ImageSource, batch_size: int, rank: int = 0, world_size: int = 1,
                 labels: bool = False) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} processes")
        self.source = source
        self.batch_size = batch_size
        self.local_batch = batch_size // world_size
        self.rank = rank
        self.labels = labels
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, indices) of the last epoch used

    @property
    def steps_per_epoch(self) -> int:
        return self.source.num_images // self.batch_size

    def indices(self, epoch: int, batch: int) -> np.ndarray:
        """Image indices of this rank's slice of global batch ``batch`` of ``epoch``."""
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, self.source.epoch_indices(epoch))
        start = batch * self.batch_size + self.rank * self.local_batch
        return self._order[1][start : start + self.local_batch]

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __getitem__(self, key: tuple[int, int]) -> tuple:
        epoch, batch = key
        indices = self.indices(epoch, batch)
        images = torch.from_numpy(np.ascontiguousarray(self.source.load(indices)))
        if not self.labels:
            return epoch, batch, images
        return epoch, batch, images, torch.from_numpy(np.asarray(self.source.load_labels(indices), np.int64))


class BatchKeys(Sampler):
    """``(epoch, batch)`` keys of global steps ``start_step ..`` to the end of the run (lazy)."""

    def __init__(self, start_step: int, steps_per_epoch: int, epochs: int) -> None:
        self.steps = range(start_step, epochs * steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return (divmod(step, self.steps_per_epoch) for step in self.steps)

    def __len__(self) -> int:
        return len(self.steps)


def batch_keys(start_step: int, steps_per_epoch: int, epochs: int) -> list[tuple[int, int]]:
    """The keys of :class:`BatchKeys` as a list."""
    return list(BatchKeys(start_step, steps_per_epoch, epochs))


def default_workers(source: ImageSource) -> int:
    """0 (main process) for stored data; for ``gen:``, up to 4 processes leaving one core free."""
    if source.kind != "gen":
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def batch_loader(
    dataset: EpochBatches, start_step: int, epochs: int, workers: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader yielding ``(epoch, batch, images)`` from ``start_step`` to the end of the run, in order."""
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=BatchKeys(start_step, dataset.steps_per_epoch, epochs),
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )


def iterate_batches(
    source: ImageSource, batch_size: int, *, start_step: int = 0, epochs: int = 1, workers: int = 0,
    rank: int = 0, world_size: int = 1,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Convenience generator over ``(epoch, batch, images)`` (used by tests and tools)."""
    yield from batch_loader(EpochBatches(source, batch_size, rank, world_size), start_step, epochs, workers)
