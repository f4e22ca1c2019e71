"""The pretraining configuration: one frozen dataclass, YAML first, flags on top.

``PretrainConfig`` holds everything that defines a pretraining run. It is
validated in ``__post_init__`` (``ValueError``; :func:`build_config` turns it
into a one-line :class:`~noisevision.errors.UserError`), loaded from YAML and
written back, resolved, to ``RUN_DIR/config.yaml``.

Learning-rate rule: ``lr`` is the rate for a global batch of
``lr_reference_batch`` images and is scaled linearly, ``lr * batch_size /
lr_reference_batch`` (``lr_reference_batch: null`` uses ``lr`` as given). The
batch is global, so the rate does not depend on the number of processes.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..augment import list_aug_presets
from ..data.roots import list_datasets
from ..methods import list_methods
from ..models import list_encoders
from ..parsing import load_yaml, parse_kv, resolve_params

LR_SCHEDULES = ("step", "cosine", "constant")
PRECISIONS = ("auto", "bf16", "fp32", "fp64")
DEVICES = ("auto", "cpu", "cuda")
# The paper's small-scale milestones (155, 170, 185 of 200 epochs), as fractions of the run.
PAPER_MILESTONE_FRACTIONS = (155 / 200, 170 / 200, 185 / 200)
# Fields that may change when a run is resumed (they do not change what is computed).
RESUME_FREE_FIELDS = frozenset({"out", "resume", "workers", "device", "log_every", "save_every", "compile", "progress",
                                "monitor", "monitor_every", "monitor_images", "monitor_test_images"})


@dataclass(frozen=True)
class PretrainConfig:
    """A contrastive pretraining run (defaults: the paper's small-scale recipe).

    Attributes:
        data: an ImageFolder directory, a packed ``.npy`` array (or the directory
            holding ``images.npy``), or ``gen:<generator>`` for online generation.
        num_images: images per epoch (None: the whole dataset; required for ``gen:``).
        fixed: ``gen:`` only: reuse images ``[0, num_images)`` every epoch instead of fresh ones.
        gen_params: ``gen:`` only: generator parameter overrides (as ``generate --param``).
        image_size: size of stored/generated images (None: the array's size, or ``crop_size``).
        crop_size: training input size (RandomResizedCrop output; None: the encoder's native size).
        arch, arch_kwargs: encoder name and keyword arguments (``stem``, ``width``).
        method, method_kwargs: SSL method (or ``supervised``) and its keyword arguments (``temperature``,
            ...; ``supervised`` gets ``num_classes`` from the data when not given).
        aug, aug_kwargs: augmentation preset and field overrides.
        epochs, batch_size: run length and the global batch (all processes together).
        lr, lr_reference_batch: see the module docstring for the scaling rule.
        lr_schedule: ``step`` (x ``lr_gamma`` at ``lr_milestones`` epochs; None = the
            paper's 155/170/185 of 200 scaled to ``epochs``), ``cosine`` or ``constant``.
        warmup_epochs: linear warm-up from 0 (fractions allowed).
        momentum, weight_decay: SGD settings (no decay on norm layers and biases).
        seed: root seed of model init, data order, augmentations and ``gen:`` images.
        workers: background loader processes (None: 0 for stored data, up to 4 for ``gen:``).
        device, precision, channels_last, compile: speed settings (None = auto).
        sync_bn: synchronise BatchNorm statistics across processes under DDP.
        out, resume: run directory, and whether to continue the run in it.
        log_every, save_every: steps between metric lines / mid-epoch checkpoints (0 = never).
        progress: show a progress bar (None: when stderr is a terminal).
        monitor: a labelled dataset (as the probe takes) for the live kNN monitor (None: no monitor);
            see :mod:`noisevision.train.monitor`.
        monitor_every, monitor_images, monitor_test_images: steps between evaluations (and one at the end),
            and the sizes of its fixed reference and test subsets.
    """
    data: str = field(
        default="", metadata={"help": 'training images: ImageFolder DIR, packed FILE.npy (or DIR with images.npy), or gen:<generator>'})
    num_images: int | None = field(
        default=None, metadata={"help": 'images per epoch (default: all stored images; required for gen:)'})
    fixed: bool = field(
        default=False, metadata={"help": 'gen: only: reuse the same images every epoch instead of fresh ones'})
    gen_params: dict[str, Any] = field(
        default_factory=dict, metadata={"help": 'gen: only: generator parameters, e.g. sigma=2 max_shapes=500 (as generate --param)'})
    image_size: int | None = field(
        default=None, metadata={"help": "size of stored/generated images (default: the array's size, else the crop size)"})
    crop_size: int | None = field(
        default=None, metadata={"help": "training input size (default: the encoder's native size, 64 for smallalexnet, 32 for smallalexnet32)"})
    arch: str = field(
        default="smallalexnet", metadata={"help": 'encoder architecture', "choices": list_encoders})
    arch_kwargs: dict[str, Any] = field(
        default_factory=dict, metadata={"help": 'encoder arguments, e.g. stem=cifar width=0.5'})
    method: str = field(
        default="alignuniform", metadata={"help": "SSL method, or supervised (classifier on the data's labels)", "choices": list_methods})
    method_kwargs: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "method arguments, e.g. temperature=0.2 queue_size=4096 (supervised: num_classes, default from the data)"})
    aug: str = field(
        default="small", metadata={"help": 'augmentation preset (default small: the paper\'s small scale)', "choices": list_aug_presets})
    aug_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": 'augmentation overrides, e.g. blur_p=0'})
    epochs: int = field(default=200, metadata={"help": 'training epochs (default 200)'})
    batch_size: int = field(default=768, metadata={"help": 'global batch size, all processes together (default 768)'})
    lr: float = field(
        default=0.12, metadata={"help": 'learning rate for a batch of --lr-reference-batch images, scaled linearly (default 0.12)'})
    lr_reference_batch: int | None = field(
        default=256, metadata={"help": "batch size --lr is given for (default 256; 'none' = no scaling)"})
    lr_schedule: str = field(
        default="step", metadata={"help": 'step, cosine or constant (default step)', "choices": LR_SCHEDULES})
    lr_milestones: tuple[int, ...] | None = field(
        default=None, metadata={"help": 'step schedule epochs, comma-separated (default: 155,170,185 of 200 scaled to --epochs)'})
    lr_gamma: float = field(default=0.1, metadata={"help": 'step schedule factor (default 0.1)'})
    warmup_epochs: float = field(default=0.0, metadata={"help": 'linear warm-up length in epochs (default 0)'})
    momentum: float = field(default=0.9, metadata={"help": 'SGD momentum (default 0.9)'})
    weight_decay: float = field(
        default=1e-4, metadata={"help": 'SGD weight decay, not applied to norms and biases (default 1e-4)'})
    seed: int = field(
        default=0, metadata={"help": 'root seed: model init, data order, augmentations, gen: images (default 0)'})
    workers: int | None = field(
        default=None, metadata={"help": 'background loader/generator processes (default: 0 for stored data, up to 4 for gen:)'})
    device: str = field(default="auto", metadata={"help": 'auto, cpu, cuda or cuda:N (default auto)'})
    precision: str = field(
        default="auto", metadata={"help": 'auto (bf16 on CUDA, on CPU only where measured faster), bf16, fp32 or fp64 (slow; for numerical checks)', "choices": PRECISIONS})
    channels_last: bool | None = field(
        default=None, metadata={"help": 'NHWC memory format (default on: faster convs on CPU and CUDA)'})
    compile: bool = field(default=False, metadata={"help": 'torch.compile the model'})
    sync_bn: bool = field(
        default=True, metadata={"help": 'synchronise BatchNorm statistics across processes (default on)'})
    out: str = field(
        default="", metadata={"help": 'run directory (config.yaml, checkpoint.pt, encoder.pt, metrics.jsonl)'})
    resume: bool = field(default=False, metadata={"help": 'continue the interrupted run in --out'})
    log_every: int = field(default=10, metadata={"help": 'steps between metric lines (default 10)'})
    save_every: int = field(
        default=100, metadata={"help": 'steps between mid-epoch checkpoints, 0 = only at epoch ends (default 100)'})
    progress: bool | None = field(
        default=None, metadata={"help": 'show a progress bar (default: when stderr is a terminal)'})
    monitor: str | None = field(default=None, metadata={
        "help": "live kNN monitor: evaluate kNN top-1 of the probe layer on a small fixed labelled subset of this "
                "dataset (named datasets are found under $NOISEVISION_DATA); logged to metrics.jsonl, TensorBoard, "
                "the progress bar and curves.png; training is unchanged by it. Under torchrun write --monitor-dataset "
                "(torchrun's own parser takes --monitor for its --monitor-interval)", "names": list_datasets,
        "flags": ("--monitor", "--monitor-dataset")})
    monitor_every: int = field(default=200, metadata={
        "help": "steps between monitor evaluations, plus one before the first step and one at the end (default 200)"})
    monitor_images: int = field(default=2000, metadata={
        "help": "labelled reference images of the monitor's kNN, a seeded stratified subset of the train split "
                "(default 2000)"})
    monitor_test_images: int = field(default=1000, metadata={
        "help": "test images the monitor classifies, a seeded stratified subset of the test split (default 1000)"})

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

        for f in dataclasses.fields(self):  # NaN passes every comparison below, infinity most of them
            value = getattr(self, f.name)
            if not _all_finite(value):
                what = "be a finite number" if isinstance(value, float) else "hold finite numbers only"
                raise ValueError(f"{f.name} must {what}, got {value!r}")
        for name in ("epochs", "batch_size", "lr", "lr_gamma", "monitor_every", "monitor_images", "monitor_test_images"):
            positive(name)
        for name in ("num_images", "image_size", "crop_size", "lr_reference_batch"):
            if getattr(self, name) is not None:
                positive(name)
        for name in ("warmup_epochs", "momentum", "weight_decay", "seed", "log_every", "save_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.momentum >= 1:
            raise ValueError(f"momentum must be below 1 (SGD diverges at 1 or above), got {self.momentum}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must not be negative, got {self.workers}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {self.device!r}")
        if self.lr_milestones is not None:
            ms = list(self.lr_milestones)
            if any(m <= 0 for m in ms) or ms != sorted(set(ms)):
                raise ValueError(f"lr_milestones must be increasing positive epochs, got {self.lr_milestones}")
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) is longer than the run ({self.epochs} epochs)")
        for name in ("gen_params", "arch_kwargs", "method_kwargs", "aug_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping of key: value, got {getattr(self, name)!r}")

    # ------------------------------------------------------------------ derived values

    @property
    def scaled_lr(self) -> float:
        """The peak learning rate after the linear batch-size rule."""
        if self.lr_reference_batch is None:
            return self.lr
        return self.lr * self.batch_size / self.lr_reference_batch

    @property
    def milestones(self) -> tuple[int, ...]:
        """Step-schedule milestones in epochs (the paper's fractions when not given)."""
        if self.lr_milestones is not None:
            return tuple(self.lr_milestones)
        return tuple(sorted({max(1, round(f * self.epochs)) for f in PAPER_MILESTONE_FRACTIONS}))

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-friendly values (tuples become lists)."""
        out = dataclasses.asdict(self)
        if out["lr_milestones"] is not None:
            out["lr_milestones"] = list(out["lr_milestones"])
        return out

    def differences(self, other: PretrainConfig) -> list[str]:
        """Names of fields that differ and matter for a resumed run."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k not in RESUME_FREE_FIELDS and a[k] != b[k]]


def _all_finite(value: Any) -> bool:
    """False if ``value`` is, or holds (in a mapping or sequence), a NaN or infinite float."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    return True


def lr_at(config: PretrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based), a pure function of the config.

    Being pure (no scheduler object) makes a resumed run follow exactly the
    schedule of an uninterrupted one.
    """
    epoch_float = step / steps_per_epoch
    peak = config.scaled_lr
    if config.warmup_epochs > 0 and epoch_float < config.warmup_epochs:
        return peak * (step + 1) / (config.warmup_epochs * steps_per_epoch)
    if config.lr_schedule == "constant":
        return peak
    if config.lr_schedule == "step":
        epoch = step // steps_per_epoch
        return peak * config.lr_gamma ** sum(epoch >= m for m in config.milestones)
    total = config.epochs * steps_per_epoch
    warm = config.warmup_epochs * steps_per_epoch
    progress = (step - warm) / max(1.0, total - warm)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------- YAML and flags


def build_config(
    config_file: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
) -> PretrainConfig:
    """Resolve a config: dataclass defaults <- saved run config (on resume) <- YAML <- overrides.

    ``overrides`` holds flag values (strings are coerced to the field types;
    ``None`` means "not given"). When ``resume`` is set and the run directory
    already holds ``config.yaml``, that file is the base, so ``--resume --out
    RUN`` alone continues a run.
    """
    overrides = {k.replace("-", "_"): v for k, v in (overrides or {}).items() if v is not None}
    file_values = {k.replace("-", "_"): v for k, v in (load_yaml(config_file) if config_file else {}).items()}
    merged = {**file_values, **overrides}
    resume = str(merged.get("resume", False)).lower() in ("1", "true", "yes", "on")
    if resume and merged.get("out"):
        saved = Path(str(merged["out"])) / "config.yaml"
        if saved.is_file():
            merged = {**load_yaml(saved), **merged}
    for name in ("gen_params", "arch_kwargs", "method_kwargs", "aug_kwargs"):
        if name in merged:
            merged[name] = parse_kv(merged[name], name)
    return resolve_params(PretrainConfig, {}, merged, "pretrain config")
