"""``noisevision probe``: evaluate a frozen encoder on a real labelled dataset.

One run reports, from a single feature extraction:

* linear-probe top-1/top-5 on the test split, with the ``fast`` protocol
  (standardised features, L-BFGS logistic regression, L2 strength chosen on a
  validation split carved from the training split, refit on all of it) or the
  ``paper`` protocol (linear head trained with Adam on augmented crops, as in
  the paper's small-scale evaluation);
* weighted kNN top-1 (cosine, k = 200, T = 0.1) on the encoder's output
  embedding (``forward``: SmallAlexNet's L2-normalised fc8, a ResNet's pooled
  features), the representation the contrastive loss shapes, as in InstDisc;
* alignment and uniformity (Wang & Isola) of the embedding on two ``small``
  preset augmentations of (up to ``align_images``) test images.

The result is written atomically as JSON and printed as a small table.

>>> result = probe(encoder="random:smallalexnet32", dataset="cifar10", max_train=5000)  # doctest: +SKIP
>>> result["metrics"]["top1"]                                                           # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import accel
from ..augment import build_augmentation
from ..data.imagefolder import LabeledImages
from ..data.roots import DatasetSource, default_test_split, list_datasets, load_split, resolve_dataset
from ..errors import UserError
from ..fileio import prepare_output_file, write_json
from ..models import Encoder, build_encoder, list_encoder_specs
from ..parsing import make_config
from ..rng import seeded_torch, torch_generator
from .features import embed, extract_features, normalization_for, prepare_encoder, recalibrate_batchnorm, to_model_input
from .knn import knn_predict_scores
from .linear import fit_linear_probe, standardize, topk_correct
from .metrics import alignment_uniformity
from .outcomes import ENCODING, encode_outcomes, test_set_fingerprint

PROTOCOLS = ("fast", "paper")
# Where the result goes and how it is shown: not part of the result's recorded config.
RUN_ONLY_FIELDS = ("out", "progress")


@dataclass(frozen=True)
class ProbeConfig:
    """Everything that determines a probe run (flags of ``noisevision probe`` have the same names).

    Attributes:
        encoder: run directory, ``encoder.pt`` checkpoint, or a registered encoder spec
            (:mod:`noisevision.models.specs`): ``random:<arch>[:key=value,...]`` (seeded random
            init, e.g. ``random:resnet18:stem=cifar``) or ``pixels`` (raw-pixel baseline).
        dataset: a registered dataset (``cifar10``, ``tiny-imagenet-32``) or ``imagefolder:<path>``.
        data_root: where named datasets live (default ``$NOISEVISION_DATA``).
        train_split, test_split: split names (test default: the dataset's test split, ``test`` for a folder).
        layer: probe layer (default: the encoder's ``default_probe_layer``).
        protocol: ``fast`` (closed-form-gradient L-BFGS on cached features) or ``paper``.
        seed: seeds random init, subsets, validation split and augmentations.
        image_size: evaluation input size (default: the encoder's native input size; an encoder
            with a fixed input size takes only that one).
        bn_recalibrate: re-estimate BatchNorm running statistics on ``bn_images`` training images first.
        max_train, max_test: use a seeded random subset of at most this many images.
        epochs: ``paper`` protocol epochs (lr x0.2 at 60% and 80% of them).
        expected_arch: refuse a checkpoint of any other architecture.
    """

    encoder: str = field(default="", metadata={
        "help": "run dir, encoder.pt, or a spec", "names": list_encoder_specs, "required": True})
    dataset: str = field(default="", metadata={
        "help": "evaluation dataset", "names": list_datasets, "required": True})
    data_root: str | None = field(default=None, metadata={
        "help": "folder of the real datasets (default $NOISEVISION_DATA)"})
    train_split: str = field(default="train", metadata={"help": "training split (default train)"})
    test_split: str | None = field(default=None, metadata={
        "help": "default: the dataset's test split (test for an image folder)"})
    layer: str | None = field(default=None, metadata={"help": "probe layer (default: the encoder's default probe layer)"})
    protocol: str = field(default="fast", metadata={
        "help": "fast (L-BFGS on cached features) or paper (augmented Adam head)", "choices": PROTOCOLS})
    seed: int = field(default=0, metadata={"help": "seeds random init, subsets, validation split, augmentations"})
    image_size: int | None = field(default=None, metadata={"help": "default: the encoder's input size"})
    bn_recalibrate: bool = field(default=False, metadata={
        "help": "re-estimate BatchNorm statistics on training images first"})
    bn_images: int = field(default=4096, metadata={"help": "training images for --bn-recalibrate (default 4096)"})
    max_train: int | None = field(default=None, metadata={"help": "use a seeded subset of at most this many training images"})
    max_test: int | None = field(default=None, metadata={"help": "use a seeded subset of at most this many test images"})
    epochs: int = field(default=100, metadata={"help": "paper protocol epochs (default 100)"})
    knn_k: int = field(default=200, metadata={"help": "kNN neighbours (default 200)"})
    knn_temperature: float = field(default=0.1, metadata={"help": "kNN temperature (default 0.1)"})
    align_images: int = field(default=2000, metadata={
        "help": "test images for alignment/uniformity (default 2000; 0 = skip)"})
    skip_bad_images: bool = field(default=False, metadata={"help": "skip unreadable images instead of failing"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N (default auto)"})
    batch_size: int = field(default=500, metadata={"help": "images per feature-extraction batch (default 500)"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "decoded-image cache (default $NOISEVISION_CACHE)"})
    expected_arch: str | None = field(default=None, metadata={
        "help": "refuse a checkpoint of another architecture", "flags": ("--expected-arch", "--arch")})
    out: str | None = field(default=None, metadata={"help": "write the result JSON here"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if not self.encoder:
            raise ValueError("pass --encoder (a run directory, encoder.pt, random:<arch> or pixels)")
        if not self.dataset:
            raise ValueError(f"pass --dataset ({', '.join(list_datasets())})")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        for name in ("image_size", "max_train", "max_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        for name in ("epochs", "knn_k", "batch_size", "bn_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.align_images < 0:
            raise ValueError(f"align_images must be >= 0, got {self.align_images}")
        if not self.knn_temperature > 0 or self.knn_temperature == float("inf"):  # NaN fails the first test
            raise ValueError(f"knn_temperature must be a positive finite number, got {self.knn_temperature}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")


# ------------------------------------------------------------------ helpers


class _Timer:
    """Collects wall-clock seconds per named phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def _subset(data: LabeledImages, limit: int | None, seed: int, purpose: str) -> LabeledImages:
    if limit is None or limit >= len(data):
        return data
    order = torch.randperm(len(data), generator=torch_generator(seed, 0, purpose)).numpy()
    return data.subset(np.sort(order[:limit]))


def _check_same_classes(train: LabeledImages, test: LabeledImages, train_split: str, test_split: str) -> None:
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_test = sorted(set(test.classes) - set(train.classes))
        raise UserError(
            f"the {train_split!r} and {test_split!r} splits have different classes "
            f"(only in {train_split}: {', '.join(only_train[:5]) or '-'}; only in {test_split}: {', '.join(only_test[:5]) or '-'})"
        )


# ------------------------------------------------------------------ protocols


def _fast_linear(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, n_classes: int, seed: int) -> tuple[dict, dict, np.ndarray]:
    train_x, test_x = standardize(train_x, test_x)  # in place: the raw features are not needed afterwards
    fit = fit_linear_probe(train_x, train_y, n_classes, seed=seed)
    acc, correct = topk_correct(fit.model.logits(test_x), test_y, ks=(1, 5))
    details = {
        "lambda": fit.lam,
        "val_top1_by_lambda": {f"{k:g}": round(v, 3) for k, v in fit.val_top1.items()},
        "n_search_train": fit.n_search_train,
        "n_val": fit.n_val,
        "lbfgs_evaluations": fit.model.iterations,
        "solver": "L-BFGS, closed-form gradient, full batch",
    }
    return {"top1": acc[1], "top5": acc[5]}, details, correct


def _paper_linear(
    encoder: Encoder, train: LabeledImages, test: LabeledImages, layer: str, size: int, preset: str, mean, std,
    cfg: ProbeConfig, device: torch.device, progress: bool,
) -> tuple[dict, dict, np.ndarray]:
    """The paper's linear evaluation: a linear layer on frozen ``layer`` features, Adam(1e-3, betas
    (0.5, 0.999)), batch 128, lr x0.2 at 60% and 80% of the epochs; training views RandomResizedCrop(size)
    + horizontal flip; test Resize(size * 70/64) + CenterCrop(size)."""
    import torch.nn.functional as F
    from tqdm import tqdm


    crop_flip = build_augmentation(
        preset, size, scale=(0.08, 1.0), brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, jitter_p=0.0,
        grayscale_p=0.0, blur_p=0.0, mean=tuple(mean), std=tuple(std),
    )

    def encode(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), accel.autocast(device):
            feats = encoder.features(x.to(device).contiguous(memory_format=torch.channels_last), layer)
        return feats.float().clone()  # a normal tensor again, so the head can be trained on it

    n_classes = len(train.classes)
    dim = encode(to_model_input(train.images[:2], size, mean, std)).shape[1]
    with seeded_torch(cfg.seed, 0, "paper-probe-head"):
        head = nn.Linear(dim, n_classes).to(device)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-3, betas=(0.5, 0.999))
    milestones = [int(round(cfg.epochs * 0.6)), int(round(cfg.epochs * 0.8))]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=milestones, gamma=0.2)
    labels = torch.from_numpy(train.labels)
    batch = 128
    for epoch in tqdm(range(cfg.epochs), desc="paper probe", unit="epoch", disable=not progress or None, leave=False):
        order = torch.randperm(len(train), generator=torch_generator(cfg.seed, epoch, "paper-probe-order"))
        views = torch_generator(cfg.seed, epoch, "paper-probe-views")
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            x = crop_flip(torch.from_numpy(train.images[idx.numpy()]), generator=views)
            loss = F.cross_entropy(head(encode(x)), labels[idx].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        schedule.step()
    logits = []
    with torch.no_grad():
        for start in range(0, len(test), cfg.batch_size):
            x = to_model_input(test.images[start : start + cfg.batch_size], size, mean, std, resize_ratio=70 / 64)
            logits.append(head(encode(x)).cpu())
    acc, correct = topk_correct(torch.cat(logits), torch.from_numpy(test.labels), ks=(1, 5))
    details = {"epochs": cfg.epochs, "batch_size": batch, "optimizer": "Adam(lr=1e-3, betas=(0.5, 0.999))",
               "lr_milestones": milestones, "lr_gamma": 0.2, "train_aug": "RandomResizedCrop(0.08-1) + flip",
               "test_transform": f"Resize({round(size * 70 / 64)}) + CenterCrop({size})"}
    return {"top1": acc[1], "top5": acc[5]}, details, correct


def _align_uniform(encoder: Encoder, test: LabeledImages, size: int, mean, std, cfg: ProbeConfig, device: torch.device) -> dict:
    """Alignment / uniformity of the embedding on two ``small``-preset views of up to ``align_images`` test images."""
    n = min(cfg.align_images, len(test))
    if n < 2:
        return {"alignment": None, "uniformity": None, "align_images": n}
    images = _subset(test, n, cfg.seed, "align-images").images
    augment = build_augmentation("small", size, mean=tuple(mean), std=tuple(std))
    views = []
    for v in range(2):
        gen = torch_generator(cfg.seed, v, "align-views")
        chunks = [augment(images[i : i + cfg.batch_size], generator=gen) for i in range(0, n, cfg.batch_size)]
        views.append(embed(encoder, torch.cat(chunks), device=device, batch_size=cfg.batch_size))
    return {**alignment_uniformity(views[0], views[1]), "align_images": n}


# ------------------------------------------------------------------ main entry: plan, run, build the result


@dataclass
class ProbePlan:
    """What a probe run works on, settled before any feature is computed (see :func:`plan_probe`)."""

    cfg: ProbeConfig
    device: torch.device
    encoder: Encoder  # eval mode, on ``device``
    meta: dict[str, Any]  # the checkpoint's meta (empty for an encoder spec)
    encoder_info: dict[str, Any]
    layer: str
    size: int
    preset: str  # augmentation preset the encoder was trained with (normalisation, paper-protocol crops)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: DatasetSource
    test_split: str
    train: LabeledImages
    test: LabeledImages


@dataclass
class ProbeOutcome:
    """Everything :func:`run_probe` measured."""

    bn_layers: int
    feature_dim: int
    embedding_dim: int
    linear: dict[str, float]
    linear_details: dict[str, Any]
    knn: dict[int, float]
    align_uniform: dict[str, Any]
    # which test images each classifier got right at top-1 (bool (n_test,)): "linear_top1", "knn_top1"
    correct: dict[str, np.ndarray] = field(default_factory=dict)


def plan_probe(cfg: ProbeConfig, timer: _Timer) -> ProbePlan:
    """Check what can fail cheaply, then build the encoder and load both splits.

    Raises:
        UserError: unwritable ``out``, bad device, encoder, layer, image size for the encoder,
            dataset or split, or splits with different classes.
    """
    if cfg.out is not None:
        prepare_output_file(cfg.out)
    device = accel.select_device(cfg.device)

    with timer.phase("encoder_s"):
        encoder, meta, encoder_info = build_encoder(cfg.encoder, cfg.seed, cfg.image_size, cfg.expected_arch)
        layer = cfg.layer or encoder.default_probe_layer
        encoder.check_layer(layer)
        size = cfg.image_size or encoder.input_size
        encoder.check_input_size(size, "--image-size")  # before the data is loaded at that size
        preset, mean, std = normalization_for(meta)
        encoder = prepare_encoder(encoder, device)

    source = resolve_dataset(cfg.dataset, cfg.data_root, cfg.cache_dir)
    test_split = cfg.test_split or default_test_split(cfg.dataset)
    with timer.phase("load_s"):
        train = load_split(source, cfg.train_split, size, cfg.cache_dir, cfg.skip_bad_images, cfg.progress)
        test = load_split(source, test_split, size, cfg.cache_dir, cfg.skip_bad_images, cfg.progress)
    _check_same_classes(train, test, cfg.train_split, test_split)
    if len(train.classes) < 2:
        raise UserError(
            f"{cfg.dataset} has only one class ({train.classes[0]!r}): a probe measures how well classes are "
            "told apart and would report 100 %; give a dataset with at least two class folders"
        )
    train = _subset(train, cfg.max_train, cfg.seed, "max-train")
    test = _subset(test, cfg.max_test, cfg.seed, "max-test")
    return ProbePlan(cfg, device, encoder, meta, encoder_info, layer, size, preset, mean, std, source, test_split,
                     train, test)


def run_probe(plan: ProbePlan, timer: _Timer) -> ProbeOutcome:
    """BatchNorm re-estimation (if asked), one feature extraction per split, then the linear probe,
    kNN and alignment/uniformity."""
    cfg, encoder, device = plan.cfg, plan.encoder, plan.device
    train, test, layer, size, mean, std = plan.train, plan.test, plan.layer, plan.size, plan.mean, plan.std
    n_classes = len(train.classes)

    bn_layers = 0
    if cfg.bn_recalibrate:
        with timer.phase("bn_recalibrate_s"):
            calib = _subset(train, cfg.bn_images, cfg.seed, "bn-recalibrate").images
            bn_layers = recalibrate_batchnorm(encoder, calib, size, mean, std, device)

    with timer.phase("extract_s"):
        train_feats, train_emb = extract_features(encoder, train.images, layer, size, mean, std, device, cfg.batch_size, progress=cfg.progress, desc="train features")
        test_feats, test_emb = extract_features(encoder, test.images, layer, size, mean, std, device, cfg.batch_size, progress=cfg.progress, desc="test features")
    if not all(bool(torch.isfinite(t).all()) for t in (train_feats, train_emb, test_feats, test_emb)):
        raise UserError(f"encoder {cfg.encoder} gives NaN or infinite features on {cfg.dataset}: its weights "
                        "are damaged, or its training diverged")
    train_y, test_y = torch.from_numpy(train.labels), torch.from_numpy(test.labels)
    feature_dim, embedding_dim = int(train_feats.shape[1]), int(train_emb.shape[1])

    with timer.phase("fit_s"):
        if cfg.protocol == "fast":
            linear, linear_details, linear_correct = _fast_linear(train_feats, train_y, test_feats, test_y, n_classes, cfg.seed)
        else:
            linear, linear_details, linear_correct = _paper_linear(encoder, train, test, layer, size, plan.preset, mean, std, cfg, device, cfg.progress)
    with timer.phase("knn_s"):
        scores = knn_predict_scores(train_emb, train_y, test_emb, n_classes, k=cfg.knn_k, temperature=cfg.knn_temperature)
        knn, knn_correct = topk_correct(scores, test_y, ks=(1, 5))
    with timer.phase("align_uniform_s"):
        au = _align_uniform(encoder, test, size, mean, std, cfg, device)
    timer.seconds["total_s"] = round(sum(timer.seconds.values()), 3)
    return ProbeOutcome(bn_layers, feature_dim, embedding_dim, linear, linear_details, knn, au,
                        {"linear_top1": linear_correct, "knn_top1": knn_correct})


def probe_result(plan: ProbePlan, outcome: ProbeOutcome, timer: _Timer) -> dict[str, Any]:
    """The result dict (what ``--out`` holds): settings, dataset, metrics, timings and environment."""
    cfg, train, test, device = plan.cfg, plan.train, plan.test, plan.device
    linear, knn, au = outcome.linear, outcome.knn, outcome.align_uniform
    return {
        "noisevision_probe_version": 1,
        "encoder": plan.encoder_info,
        "encoder_config": plan.meta.get("config"),
        "normalization": {"preset": plan.preset, "mean": list(plan.mean), "std": list(plan.std)},
        "dataset": {
            "name": cfg.dataset, "kind": plan.source.kind, "path": str(plan.source.path),
            "train_split": cfg.train_split, "test_split": plan.test_split,
            "n_train": len(train), "n_test": len(test), "n_classes": len(train.classes), "image_size": plan.size,
            "ignored_files": train.n_ignored + test.n_ignored, "bad_images": train.n_bad + test.n_bad,
        },
        "layer": plan.layer,
        "feature_dim": outcome.feature_dim,
        "embedding_dim": outcome.embedding_dim,
        "protocol": cfg.protocol,
        "bn_recalibrate": {"enabled": cfg.bn_recalibrate, "images": min(cfg.bn_images, len(train)) if cfg.bn_recalibrate else 0, "bn_layers": outcome.bn_layers},
        "metrics": {
            "top1": round(linear["top1"], 3), "top5": round(linear["top5"], 3),
            "knn_top1": round(knn[1], 3), "knn_top5": round(knn[5], 3),
            "alignment": au["alignment"], "uniformity": au["uniformity"],
        },
        "linear": outcome.linear_details,
        "knn": {"k": cfg.knn_k, "temperature": cfg.knn_temperature, "features": "embedding", "similarity": "cosine"},
        "align_uniform": {"images": au["align_images"], "augmentation": "small", "alpha": 2, "t": 2},
        # which test images were classified correctly, so a report can resample the test set
        # (eval/outcomes.py); test_set identifies the images, in order
        "per_image": {"n_test": len(test), "test_set": test_set_fingerprint(test.files), "encoding": ENCODING,
                      **{k: encode_outcomes(v) for k, v in outcome.correct.items()}},
        "timings_s": timer.seconds,
        "seed": cfg.seed,
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUN_ONLY_FIELDS},
        "torch": torch.__version__,
        "device": str(device),
        "amp_dtype": accel.precision_label(accel.autocast_dtype(device)),
        "threads": torch.get_num_threads(),
        "host": platform.node(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def probe(config: ProbeConfig | dict[str, Any] | str | os.PathLike | None = None, /, **fields: Any) -> dict[str, Any]:
    """Run a probe (see the module docstring); ``fields`` are :class:`ProbeConfig` fields.

    ``config`` is a :class:`ProbeConfig`, a mapping or a YAML file of its fields; ``fields`` override it.
    Returns the result dict that is also written to ``out`` (JSON) when given.

    Raises:
        UserError: bad encoder/dataset/layer/split/arguments (one line, for the CLI).
    """
    cfg = make_config(ProbeConfig, config, fields, "probe")
    timer = _Timer()
    plan = plan_probe(cfg, timer)
    result = probe_result(plan, run_probe(plan, timer), timer)
    if cfg.out is not None:
        write_json(cfg.out, result)
    return result


def summary_table(result: dict[str, Any]) -> str:
    """A small plain-text table of a probe result (what the CLI prints)."""
    m, d = result["metrics"], result["dataset"]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    rows = [
        ("encoder", result["encoder"]["spec"]),
        ("dataset", f"{d['name']} ({d['n_train']} train / {d['n_test']} {d['test_split']}, {d['n_classes']} classes, {d['image_size']} px)"),
        ("layer / protocol", f"{result['layer']} ({result['feature_dim']}-d) / {result['protocol']}"
                             + (" + BN recalibration" if result["bn_recalibrate"]["enabled"] else "")),
        ("linear top-1 / top-5", f"{fmt(m['top1'], '.2f')} / {fmt(m['top5'], '.2f')} %"),
        ("kNN top-1 (k=%d)" % result["knn"]["k"], f"{fmt(m['knn_top1'], '.2f')} %"),
        ("alignment / uniformity", f"{fmt(m['alignment'], '.3f')} / {fmt(m['uniformity'], '.3f')}"),
        ("time", f"{result['timings_s']['total_s']:.1f} s on {result['device']}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
