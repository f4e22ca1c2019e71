"""The pretraining loop: data -> augmented views (two for SSL; one, with labels, for supervised) -> method -> SGD,
with resumable runs.

Determinism: the model is initialised from ``torch_seed(seed, 0, "model-init")``,
the data order of every epoch is a function of (seed, epoch), the augmentations
of step ``s`` draw from ``torch_generator(seed, s, "augment/<rank>")``, and any
other randomness of a step (inside the method, kornia) runs under the global
stream reseeded from ``torch_seed(seed, s, "step/<rank>")`` and restored after. A run
resumed from a checkpoint therefore computes the same steps as an uninterrupted
one, and on CPU ends with identical weights.

Distributed (``torchrun --nproc_per_node=K -m noisevision pretrain ...``): each
process takes its slice of every global batch, the method is wrapped in
DistributedDataParallel, BatchNorm statistics are synchronised over the global
batch (``sync_bn``; on CPU with :class:`~noisevision.train.syncbn.AllReduceBatchNorm`),
and only rank 0 writes files, logs and the progress bar.

Monitor (``--monitor DATASET``): before the first step of a fresh run, every
``monitor_every`` steps and at the end, rank 0 evaluates kNN top-1 on a fixed labelled subset
(:class:`~noisevision.train.monitor.KnnMonitor`) while the other ranks wait at
a barrier; the evaluation leaves weights, BatchNorm statistics, random streams
and train/eval flags as they were, so it does not change the run's result.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..accel import autocast, autocast_dtype, cpu_supports_bf16, precision_label, to_channels_last, tune_cpu_allocator
from ..augment import build_augmentation, get_aug_config
from ..data.sources import GEN_PREFIX, ImageSource, open_source
from ..data.stream import EpochBatches, batch_loader, default_workers
from ..distributed import DistInfo, barrier, cleanup, init_distributed
from ..errors import UserError
from ..eval.features import normalization_for
from ..fileio import prepare_output_dir, read_json_object, write_json
from ..methods import METHODS, check_method_arguments, create_method
from ..models import create_encoder, save_encoder
from ..models.checkpoint import state_dict_mismatch
from ..parsing import make_config
from ..resources import check_workers
from ..rng import torch_generator, torch_seed
from .checkpoint import RunDir, load_checkpoint, restore_rng_states, save_checkpoint
from .config import PretrainConfig, build_config, lr_at
from .monitor import KnnMonitor, write_curves
from .syncbn import convert_to_global_batchnorm


def pretrain(config: PretrainConfig | Mapping[str, Any] | str | os.PathLike | None = None, /,
             **fields: Any) -> dict[str, Any]:
    """Pretrain an encoder as ``config`` says; return the run summary.

    ``config`` is a :class:`PretrainConfig`, a mapping or a YAML file of its fields;
    ``fields`` override it (resolved like the CLI: YAML first, then the fields).

    Writes ``config.out`` (see :mod:`noisevision.train.checkpoint` for the layout);
    the final encoder is ``config.out/encoder.pt``. Joins a torchrun process
    group when launched by torchrun.

    Raises:
        UserError: bad data, names or settings, a run directory that already holds
            another run, or a loss that became NaN/infinite (the last good checkpoint is kept).
    """
    if isinstance(config, PretrainConfig):
        config = make_config(PretrainConfig, config, fields, "pretrain config")
    elif isinstance(config, Mapping):
        config = build_config(None, {**config, **fields})
    else:
        config = build_config(config, fields)
    if not config.out:
        raise UserError("pass --out RUN_DIR (where the run's checkpoints and encoder are written)")
    config = dataclasses.replace(config, data=absolute_data(config.data))
    config = resolve_crop_size(config)
    info = init_distributed(config.device)
    try:
        return _Trainer(config, info).run()
    finally:
        cleanup()


def check_model_settings(config: PretrainConfig) -> None:
    """Refuse (UserError) the encoder, method and augmentation settings ``pretrain`` would refuse, without
    data, a run directory or real weights: a suite checks every entry's before its first entry's work."""
    method_cls = METHODS.get(config.method)
    get_aug_config(config.aug, **config.aug_kwargs)
    with torch.device("meta"):
        encoder = create_encoder(config.arch, **config.arch_kwargs)
        if config.crop_size is not None:
            encoder.check_input_size(config.crop_size, "crop_size")
        if method_cls.needs_labels:  # its class count comes from the data
            check_method_arguments(config.method, config.method_kwargs)
        else:
            create_method(config.method, encoder, **config.method_kwargs)


def absolute_data(data: str) -> str:
    """``--data`` as an absolute path (``gen:`` specs and "" unchanged), so a saved config resumes from anywhere."""
    if not data or data.startswith(GEN_PREFIX):
        return data
    return os.path.abspath(os.path.expanduser(data))


def resolve_crop_size(config: PretrainConfig) -> PretrainConfig:
    """Fill in ``crop_size`` (when None) with the encoder's native input size."""
    if config.crop_size is not None:
        return config

    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # no memory: only the size is needed
        size = create_encoder(config.arch, **config.arch_kwargs).input_size
    return dataclasses.replace(config, crop_size=size)


@contextlib.contextmanager
def step_random_stream(seed: int, step: int, rank: int, device: torch.device) -> Iterator[None]:
    """Run a block under the random stream of (seed, step, rank); the global state is restored after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(torch_seed(seed, step, f"step/{rank}"))
        yield


class _Trainer:
    """One run: sets everything up from the config, then :meth:`run` trains."""

    def __init__(self, config: PretrainConfig, info: DistInfo) -> None:
        self.config = config
        self.info = info
        self.device = info.device
        self.run_dir = RunDir(config.out)
        self._created_root = False
        method_cls = METHODS.get(config.method)
        self.num_views, self.needs_labels = method_cls.num_views, method_cls.needs_labels
        self._check_run_dir()
        try:
            self._setup()
        except BaseException:
            if self._created_root and self.run_dir.root.is_dir() and not any(self.run_dir.root.iterdir()):
                self.run_dir.root.rmdir()  # a failed start leaves no empty run folder behind
            raise

    def _setup(self) -> None:
        config, info = self.config, self.info
        self.source = self._open_source()
        if self.needs_labels:
            self.config = config = self._with_num_classes(self.config)
        self.monitor, self.monitor_setup_s = self._build_monitor()  # before anything is written: a bad --monitor fails clean
        self.monitor_s, self.monitor_knn = 0.0, None
        self.dataset = EpochBatches(self.source, config.batch_size, info.rank, info.world_size, labels=self.needs_labels)
        self.steps_per_epoch = self.dataset.steps_per_epoch
        self.total_steps = config.epochs * self.steps_per_epoch
        self.amp_dtype = self._amp_dtype()
        # fp64: weights and activations in float64, for numerical checks (rounding ~1e-16 instead of ~1e-7)
        self.param_dtype = torch.float64 if config.precision == "fp64" else torch.float32
        if self.device.type == "cpu":
            tune_cpu_allocator()  # keep large activation blocks mapped between steps (2-3x faster elementwise ops)

        self.augment = build_augmentation(config.aug, config.crop_size, **config.aug_kwargs).to(self.device)
        # channels_last by default: faster convs with cuDNN and with oneDNN (measured +18% on fp32 CPU training
        # of SmallAlexNet-32, and it is what bf16 CPU training was tuned with)
        self.channels_last = config.channels_last if config.channels_last is not None else True
        self.method = self._build_method()
        self.optimizer = torch.optim.SGD(
            self.method.param_groups(config.weight_decay), lr=config.scaled_lr, momentum=config.momentum
        )
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        self.start_step = self._restore()
        self.model = self._wrap(self.method)

    # ------------------------------------------------------------------ setup

    def _check_run_dir(self) -> None:
        """Refuse an --out that cannot hold this run (or a --workers the machine cannot give), before any work;
        on rank 0, create it."""
        if self.config.workers is not None:
            check_workers(self.config.workers, "--workers", allow_zero=True)
        run = self.run_dir
        if run.root.exists() and not run.root.is_dir():
            raise UserError(f"--out {run.root} is a file, not a folder; choose a folder for the run")
        if not self.config.resume:
            if run.checkpoint.exists():
                raise UserError(
                    f"{run.root} already holds a run; pass --resume to continue it, or choose another --out"
                )
            foreign = run.foreign_entries()
            if foreign and not run.is_run():  # never write a run over someone's files
                raise UserError(
                    f"--out {run.root} is not empty and is not a run (it holds {', '.join(foreign[:3])}"
                    f"{', ...' if len(foreign) > 3 else ''}); choose an empty or new folder"
                )
        else:
            if not run.root.is_dir():
                raise UserError(f"cannot resume {run.root}: the folder does not exist; check --out, "
                                "or start a new run without --resume")
            if not run.is_run():
                raise UserError(f"cannot resume {run.root}: it is not a run (no config.yaml or checkpoint.pt); "
                                "check --out, or start a new run without --resume")
            saved = run.read_config()
            given = self.config.method_kwargs
            if (saved is not None and self.needs_labels and "num_classes" not in given
                    and "num_classes" in saved.method_kwargs):
                # the saved run's class count (taken from its data) is part of what resumes
                self.config = dataclasses.replace(
                    self.config, method_kwargs={**given, "num_classes": saved.method_kwargs["num_classes"]})
            if saved is not None:
                diff = _resume_differences(saved, self.config)
                if diff:
                    old, new = saved.to_dict(), self.config.to_dict()
                    changes = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in diff)
                    raise UserError(
                        f"cannot resume {run.root}: the config differs from the saved run ({changes}); "
                        "use the same settings or another --out"
                    )
        if self.info.is_main:
            self._created_root = not run.root.exists()
            prepare_output_dir(run.root)  # a read-only or full disk fails here, not after the data is loaded
            run.remove_stale_temporaries()

    def _open_source(self) -> ImageSource:
        c = self.config
        # Torch generators render on this process's GPU when there are no worker processes.
        render_device = str(self.device) if (self.device.type == "cuda" and c.workers == 0) else "cpu"
        # Rank 0 opens the data first (an image folder is decoded and cached once), then the others.
        if not self.info.is_main:
            barrier()
        try:
            source = open_source(
                c.data, seed=c.seed, num_images=c.num_images, image_size=c.image_size or None, fixed=c.fixed,
                gen_params=c.gen_params, min_size=c.crop_size, render_device=render_device, progress=self.info.is_main,
            )
        finally:
            if self.info.is_main:
                barrier()
        if source.bad_files and self.info.is_main:
            bad = source.bad_files
            total = len(bad) + len(source.array)
            print(f"noisevision: warning: {len(bad)} of {total} image files in {c.data} could not be decoded and are "
                  f"left out (e.g. {', '.join(bad[:3])})", file=sys.stderr, flush=True)
        if c.batch_size > source.num_images:
            raise UserError(
                f"--batch-size {c.batch_size} is larger than the {source.num_images} training images; "
                "lower --batch-size or use more images"
            )
        if c.batch_size % self.info.world_size:
            raise UserError(f"--batch-size {c.batch_size} is not divisible by the {self.info.world_size} processes")
        return source

    def _with_num_classes(self, config: PretrainConfig) -> PretrainConfig:
        """``config`` with ``method_kwargs["num_classes"]`` set from the data (kept when given, if large enough)."""
        found = self.source.num_classes()
        if found is None:
            raise UserError(
                f"{self.source.description} has no labels, which --method {config.method} needs; use labelled data: "
                "gen: with a labelled generator (e.g. gen:fractal/ifs --gen-params num_systems=100), an npy dataset "
                "with labels.npy next to images.npy, or an ImageFolder with one sub-folder per class"
            )
        given = config.method_kwargs.get("num_classes")
        if given is None:
            return dataclasses.replace(config, method_kwargs={**config.method_kwargs, "num_classes": found})
        if isinstance(given, int) and given < found:
            raise UserError(f"num_classes={given} is fewer than the {found} classes of {self.source.description}; "
                            f"drop it from --method-kwargs (the data's count is used) or raise it")
        return config

    def _amp_dtype(self) -> torch.dtype | None:
        precision = self.config.precision
        if precision in ("fp32", "fp64"):
            return None
        if precision == "bf16":
            native = cpu_supports_bf16() if self.device.type == "cpu" else (
                self.device.type == "cuda" and torch.cuda.is_bf16_supported())
            if not native:
                raise UserError(f"--precision bf16 is not supported on {self.device} (this CPU/GPU has no native bf16); use auto or fp32")
            return torch.bfloat16
        return autocast_dtype(self.device)

    def _build_method(self) -> torch.nn.Module:
        c = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed(c.seed, 0, "model-init"))
            encoder = create_encoder(c.arch, **c.arch_kwargs)
            encoder.check_input_size(c.crop_size, "--crop-size")
            method = create_method(c.method, encoder, **c.method_kwargs)
        method = method.to(self.device, self.param_dtype)
        if self.channels_last:
            method = to_channels_last(method)
        if self.info.world_size > 1 and c.sync_bn:
            method = convert_to_global_batchnorm(method)
        return method

    def _restore(self) -> int:
        """Load the checkpoint of a resumed run; return the first step still to do."""
        if not (self.config.resume and self.run_dir.checkpoint.exists()):
            if self.info.is_main:
                self.run_dir.root.mkdir(parents=True, exist_ok=True)
                self.run_dir.write_config(self.config)
                self.run_dir.metrics.unlink(missing_ok=True)
            return 0
        path = self.run_dir.checkpoint
        state = load_checkpoint(path)
        if state["steps_per_epoch"] != self.steps_per_epoch:
            raise UserError(
                f"cannot resume {self.run_dir.root}: it ran {state['steps_per_epoch']} steps per epoch, "
                f"this config gives {self.steps_per_epoch}"
            )
        mismatch = state_dict_mismatch(self.method.state_dict(), state["model"])
        if mismatch is not None:
            saved = state.get("config")
            arch = saved.get("arch") if isinstance(saved, dict) else None
            what = f"a {arch!r} model" if arch and arch != self.config.arch else "another model"
            raise UserError(
                f"cannot resume {self.run_dir.root}: {path.name} holds {what}, not this run's "
                f"{self.config.arch!r} with {self.config.method!r} ({mismatch}); resume with the run's own "
                "checkpoint, or start a new run in another --out"
            )
        if state["step"] > self.total_steps:
            raise UserError(f"cannot resume {self.run_dir.root}: {path.name} is at step {state['step']}, "
                            f"beyond this run's {self.total_steps} steps")
        try:
            self.method.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            restore_rng_states(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot resume {self.run_dir.root}: {path.name} does not fit this run "
                            f"({str(exc).splitlines()[0][:200]}); start a new run in another --out") from None
        if self.info.is_main:
            self.run_dir.trim_metrics(state["step"])
        return int(state["step"])

    def _build_monitor(self) -> tuple[KnnMonitor | None, float]:
        """The kNN monitor's fixed subset (rank 0 only: it alone evaluates) and the seconds it took to load."""
        c = self.config
        if not c.monitor or not self.info.is_main:
            return None, 0.0
        start = time.perf_counter()
        _, mean, std = normalization_for({"config": c.to_dict()})
        monitor = KnnMonitor(c.monitor, c.crop_size, mean, std, train_images=c.monitor_images,
                             test_images=c.monitor_test_images, seed=c.seed, progress=bool(c.progress))
        return monitor, time.perf_counter() - start

    def _wrap(self, method: torch.nn.Module) -> torch.nn.Module:
        model = method
        if self.info.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(method, device_ids=ids)
        if self.config.compile:
            model = torch.compile(model)
        return model

    # ------------------------------------------------------------------ training

    def _views(self, images: torch.Tensor, step: int) -> list[torch.Tensor]:
        generator = torch_generator(self.config.seed, step, f"augment/{self.info.rank}")
        views = self.augment.views(images, self.num_views, generator=generator)
        if self.param_dtype != views[0].dtype:
            views = [v.to(self.param_dtype) for v in views]
        if self.channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def _check_labels(self, labels: torch.Tensor, step: int) -> None:
        """UserError for a label outside the classifier's classes (cross-entropy would fail obscurely)."""
        num_classes = self.config.method_kwargs["num_classes"]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            bad = int(labels.max()) if int(labels.max()) >= num_classes else int(labels.min())
            raise UserError(f"label {bad} at step {step} is outside the {num_classes} classes (0..{num_classes - 1}) "
                            f"the classifier was built for from {self.source.description}")

    def _all_finite(self, loss: torch.Tensor) -> bool:
        ok = torch.isfinite(loss.detach()).float().reshape(1)
        if self.info.world_size > 1:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item())

    def _train_step(self, step: int, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        lr = lr_at(self.config, step, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images = images.to(self.device, non_blocking=True)
        extra: dict[str, torch.Tensor] = {}
        if self.needs_labels:
            assert labels is not None
            self._check_labels(labels, step)
            extra["labels"] = labels.to(self.device, non_blocking=True)
        with step_random_stream(self.config.seed, step, self.info.rank, self.device):
            views = self._views(images, step)
            with autocast(self.device, enabled=self.amp_dtype is not None, dtype=self.amp_dtype):
                out = self.model(*views, **extra)
            loss = out["loss"]
            if not self._all_finite(loss):
                kept = (f"the last good checkpoint {self.run_dir.checkpoint} was kept"
                        if self.run_dir.checkpoint.is_file() else "no checkpoint had been written yet")
                raise UserError(
                    f"the loss became {loss.item()} at step {step} (epoch {step // self.steps_per_epoch}); "
                    f"training stopped and {kept} (try a lower --lr or --precision fp32)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            self.method.on_train_step_end()
        return out

    def _monitor_due(self, done: int) -> bool:
        c = self.config
        return bool(c.monitor) and (done % c.monitor_every == 0 or done == self.total_steps)

    def _run_monitor(self) -> tuple[float | None, float]:
        """Evaluate the monitor (rank 0; the others wait at the barrier); (kNN top-1, seconds) on rank 0."""
        if self.monitor is None:
            barrier()
            return None, 0.0
        start = time.perf_counter()
        knn = self.monitor.evaluate(self.method.encoder, device=self.device, dtype=self.param_dtype,
                                    amp_dtype=self.amp_dtype, channels_last=self.channels_last)
        seconds = time.perf_counter() - start
        barrier()
        self.monitor_s += seconds
        self.monitor_knn = knn
        return knn, seconds

    def _monitor_at_start(self, writer: Any) -> None:
        """Evaluate the monitor before the first step (a fresh run only) and log it as step 0."""
        knn, seconds = self._run_monitor()
        if knn is None:
            return
        self._log_row(writer, {"step": 0, "epoch": 0.0, "monitor_knn_top1": round(knn, 2),
                               "monitor_seconds": round(seconds, 3)})

    def _log_row(self, writer: Any, row: dict[str, Any]) -> None:
        """One metrics row: a line of metrics.jsonl and, with TensorBoard, a scalar per value at its step."""
        self.run_dir.append_metrics(row)
        if writer is not None:
            for key, value in row.items():
                if key not in ("step", "epoch"):
                    writer.add_scalar(f"pretrain/{key}", value, row["step"])

    def _save(self, step: int) -> None:
        if self.info.is_main:
            save_checkpoint(
                self.run_dir.checkpoint, config=self.config, model=self.method, optimizer=self.optimizer,
                step=step, epoch=step // self.steps_per_epoch, steps_per_epoch=self.steps_per_epoch,
                lr=lr_at(self.config, max(step - 1, 0), self.steps_per_epoch), scaler=self.scaler,
            )

    def _tensorboard(self) -> Any:
        if not self.info.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard missing or broken: metrics.jsonl is enough
            return None
        return SummaryWriter(log_dir=str(self.run_dir.tensorboard), purge_step=self.start_step or None)

    def run(self) -> dict[str, Any]:
        c, main = self.config, self.info.is_main
        if self.start_step >= self.total_steps and self.run_dir.summary.is_file() and self.run_dir.encoder.is_file():
            return read_json_object(self.run_dir.summary)  # resuming a finished run: its summary stands
        workers = c.workers if c.workers is not None else default_workers(self.source)
        loader = batch_loader(
            self.dataset, self.start_step, c.epochs, workers, pin_memory=self.device.type == "cuda"
        )
        writer = self._tensorboard()
        show = c.progress if c.progress is not None else sys.stderr.isatty()
        from tqdm import tqdm

        bar = tqdm(total=self.total_steps, initial=self.start_step, desc="pretrain", unit="step",
                   disable=not (main and show), dynamic_ncols=True)
        self.method.train()
        start_time = time.perf_counter()
        if c.monitor and self.start_step == 0:
            self._monitor_at_start(writer)  # where the curve starts: the initial weights
        last_time, last_step = time.perf_counter(), self.start_step
        loss_value, images_per_s, step = math.nan, 0.0, self.start_step
        try:
            for epoch, batch, images, *labels in loader:  # labels: [tensor] when the method needs them
                step = epoch * self.steps_per_epoch + batch
                out = self._train_step(step, images, *labels)
                done = step + 1
                bar.update(1)
                monitor_due = self._monitor_due(done)  # the same on every rank: all of them meet at its barrier
                log_due = main and (done % max(c.log_every, 1) == 0 or done == self.total_steps or monitor_due)
                if log_due:
                    now = time.perf_counter()
                    images_per_s = (done - last_step) * c.batch_size / max(now - last_time, 1e-9)
                    last_time, last_step = now, done
                    terms = {k: float(v.detach().float().mean()) for k, v in out.items()}
                    loss_value = terms["loss"]
                    row = {"step": done, "epoch": round(done / self.steps_per_epoch, 4), **terms,
                           "lr": lr_at(c, step, self.steps_per_epoch), "images_per_s": round(images_per_s, 1)}
                if monitor_due:
                    knn, seconds = self._run_monitor()
                    if main:
                        row.update(monitor_knn_top1=round(knn, 2), monitor_seconds=round(seconds, 3))
                        last_time = time.perf_counter()  # images/s measures training, not the monitor
                if log_due:
                    if c.log_every or monitor_due:
                        self._log_row(writer, row)
                    knn_shown = {} if self.monitor_knn is None else {"knn": f"{self.monitor_knn:.1f}"}
                    bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{images_per_s:.0f}", **knn_shown)
                end_of_epoch = done % self.steps_per_epoch == 0
                if main and end_of_epoch and bar.disable:  # no bar (not a terminal): one line per epoch
                    knn_line = "" if self.monitor_knn is None else f", monitor kNN {self.monitor_knn:.1f}%"
                    print(f"epoch {done // self.steps_per_epoch}/{c.epochs}: step {done}, loss {loss_value:.4f}, "
                          f"{images_per_s:.0f} img/s{knn_line}", file=sys.stderr, flush=True)
                if end_of_epoch or (c.save_every and done % c.save_every == 0):
                    self._save(done)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return self._finish(step + 1 if self.total_steps > self.start_step else self.start_step,
                            loss_value, time.perf_counter() - start_time)

    def _finish(self, steps: int, loss_value: float, wall_s: float) -> dict[str, Any]:
        c = self.config
        summary = {
            "run_dir": str(self.run_dir.root),
            "encoder": str(self.run_dir.encoder),
            "method": c.method,
            "arch": c.arch,
            "data": self.source.info(),
            "epochs": c.epochs,
            "steps": steps,
            "steps_per_epoch": self.steps_per_epoch,
            "final_lr": lr_at(c, max(steps - 1, 0), self.steps_per_epoch),
            "final_loss": loss_value,
            "wall_s": round(wall_s, 2),  # this process only: a resumed run counts from its restart
            "batch_size": c.batch_size,
            "images_per_s": round((steps - self.start_step) * c.batch_size / wall_s, 1) if wall_s > 0 else None,
            "world_size": self.info.world_size,
            "rank": self.info.rank,
            "device": str(self.device),
            "precision": precision_label(self.amp_dtype),
        }
        if self.monitor is not None:
            summary.update(
                monitor=self.monitor.describe(), monitor_layer=self.method.encoder.default_probe_layer,
                monitor_knn_top1=None if self.monitor_knn is None else round(self.monitor_knn, 2),
                monitor_seconds=round(self.monitor_s, 2), monitor_setup_seconds=round(self.monitor_setup_s, 2),
                monitor_fraction=round(self.monitor_s / wall_s, 4) if wall_s > 0 else None)
        if self.info.is_main:
            meta = {"method": c.method, "method_kwargs": c.method_kwargs, "data": c.data, "epochs": c.epochs,
                    "steps": steps, "final_loss": loss_value, "config": c.to_dict()}
            save_encoder(self.run_dir.encoder, self.method.encoder, meta=meta)
            if self.monitor is not None:
                write_curves(self.run_dir.metrics, self.run_dir.curves,
                             f"{c.arch} / {c.method}\nmonitor: kNN top-1 on {self.monitor.describe()}")
            write_json(self.run_dir.summary, summary)
        return summary


def _resume_differences(saved: PretrainConfig, config: PretrainConfig) -> list[str]:
    """Fields that differ between a saved run config and this one (a relative saved --data counts as absolute)."""
    return dataclasses.replace(saved, data=absolute_data(saved.data)).differences(config)


def summary_line(summary: dict[str, Any]) -> str:
    """One line for the CLI: where the encoder went and how training ended."""
    loss = summary["final_loss"]
    bad = summary["data"].get("bad_images")
    return (
        f"pretrained {summary['arch']} with {summary['method']} for {summary['steps']} steps "
        f"({summary['epochs']} epochs) on {summary['data']['data']}"
        + (f" ({bad} undecodable image file(s) left out)" if bad else "")
        + f": final loss {loss:.4f}, encoder -> {Path(summary['encoder'])}"
    )
