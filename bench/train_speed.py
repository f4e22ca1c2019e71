"""Training throughput of our pipeline against a straightforward port of the paper's, on this machine.

One training step = two augmented views of a batch, forward + backward of
AlignUniform, SGD step. Two pipelines, measured interleaved in the same run
(each measurement in a fresh subprocess, so process-wide settings such as the
allocator tuning cannot leak from one pipeline into the other):

- reference: per-image PIL augmentation (torchvision's algorithms: RandomResizedCrop,
  flip, ColorJitter via ImageEnhance + HSV hue, grayscale) in a torch DataLoader with
  worker processes, fp32 model in contiguous NCHW.
- ours: the uint8 batch is augmented as a whole (``noisevision.augment``, both views),
  bf16 autocast + channels_last when the CPU has native bf16
  (``noisevision.accel``), glibc allocator tuning, optional ``torch.compile``.

Model FLOPs utilisation (MFU) = images/s x 2 views x 3 (fwd + bwd) x forward FLOPs
per image (``torch.utils.flop_counter``) / measured peak of a large bf16 matmul.

    python bench/train_speed.py                 # default run (a few minutes), writes the docs
    python bench/train_speed.py --quick         # seconds; smoke test, writes nothing
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import noisevision  # noqa: F401  (OMP_WAIT_POLICY=PASSIVE before torch)
from noisevision.accel import autocast, autocast_dtype, to_channels_last, tune_cpu_allocator
from noisevision.augment import STL10_MEAN, STL10_STD, build_augmentation
from noisevision.comparison.report import markdown_table, update_markdown_section, write_json
from noisevision.methods import create_method
from noisevision.models import create_encoder

REPO = Path(__file__).resolve().parents[1]
# (arch, encoder kwargs, input size)
CONFIGS: dict[str, tuple[str, dict[str, Any], int]] = {
    "smallalexnet32": ("smallalexnet32", {}, 32),
    "smallalexnet": ("smallalexnet", {}, 64),
    "resnet18-cifar": ("resnet18", {"stem": "cifar"}, 32),
}
SOURCE_FACTOR = 2  # source images are 2x the training size (the paper stores 128 px, trains at 64 px)


# ---------------------------------------------------------------------------------------------
# reference pipeline: per-image PIL transforms (what torchvision does on PIL images)
# ---------------------------------------------------------------------------------------------

class ReferenceTwoViews(torch.utils.data.Dataset):
    """Returns two independently augmented, normalised float views of image i (PIL, per image)."""

    def __init__(self, images: np.ndarray, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.images, self.size = images, size
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return self._view(img), self._view(img)

    def _view(self, img: Any) -> torch.Tensor:
        from PIL import Image, ImageEnhance, ImageOps

        rng = np.random.default_rng()
        w, h = img.size
        box = (0, 0, w, h)
        for _ in range(10):  # torchvision RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3))
            area = w * h * rng.uniform(0.08, 1.0)
            aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
                box = (x0, y0, x0 + cw, y0 + ch)
                break
        img = img.resize((self.size, self.size), Image.BILINEAR, box=box)
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        for op in rng.permutation(4):  # ColorJitter(0.4, 0.4, 0.4, 0.4), random order
            if op == 0:
                img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.4))
            elif op == 1:
                img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.4))
            elif op == 2:
                img = ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4))
            else:
                hsv = np.array(img.convert("HSV"))
                hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.uniform(-0.4, 0.4) * 255)).astype(np.uint8)
                img = Image.fromarray(hsv, "HSV").convert("RGB")
        if rng.random() < 0.2:
            img = img.convert("L").convert("RGB")
        arr = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy((arr - self.mean) / self.std)


# ---------------------------------------------------------------------------------------------
# workers (each runs in its own subprocess)
# ---------------------------------------------------------------------------------------------

def _source_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour images (noise upsampled 8x), uint8 (n, size, size, 3)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, max(1, size // 8), max(1, size // 8), 3), dtype=np.uint8)
    return np.ascontiguousarray(small.repeat(8, axis=1).repeat(8, axis=2)[:, :size, :size])


def _method(arch: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    return create_method("alignuniform", create_encoder(arch, **kwargs))


def _sgd(method: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(method.param_groups(1e-4), lr=0.01, momentum=0.9)


def worker_reference(cfg: dict[str, Any]) -> dict[str, Any]:
    arch, kwargs, size = CONFIGS[cfg["config"]]
    batch, steps = cfg["batch_size"], cfg["steps"]
    images = _source_images(batch * (steps + 1), size * SOURCE_FACTOR)
    loader = torch.utils.data.DataLoader(
        ReferenceTwoViews(images, size, STL10_MEAN, STL10_STD), batch_size=batch, shuffle=True,
        num_workers=cfg["workers"], drop_last=True, persistent_workers=cfg["workers"] > 0,
    )
    method = _method(arch, kwargs).train()
    opt = _sgd(method)
    it = iter(loader)
    times = []
    for step in range(steps + 1):  # step 0: warm-up (worker start, allocator, oneDNN kernels)
        t0 = time.perf_counter()
        v1, v2 = next(it)
        loss = method(v1, v2)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    measured = times[1:]
    return {"images_per_s": batch * len(measured) / sum(measured), "loss": loss.item()}


def worker_ours(cfg: dict[str, Any]) -> dict[str, Any]:
    arch, kwargs, size = CONFIGS[cfg["config"]]
    batch, steps = cfg["batch_size"], cfg["steps"]
    tune_cpu_allocator()
    images = torch.from_numpy(_source_images(batch * (steps + 1), size * SOURCE_FACTOR))
    aug = build_augmentation("small", size)
    fast = autocast_dtype("cpu") is not None  # what `pretrain --precision auto` picks on this CPU
    method = _method(arch, kwargs).train()
    to_channels_last(method)
    opt = _sgd(method)

    def train_step(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        with autocast("cpu", enabled=fast):
            loss = method(v1, v2)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    if cfg.get("compile"):
        train_step = torch.compile(train_step)
    order = torch.randperm(len(images))
    aug_s, model_s = [], []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        v1, v2 = aug.views(images[order[step * batch : (step + 1) * batch]], 2)
        v1, v2 = (v.contiguous(memory_format=torch.channels_last) for v in (v1, v2))
        t1 = time.perf_counter()
        loss = train_step(v1, v2)
        t2 = time.perf_counter()
        aug_s.append(t1 - t0)
        model_s.append(t2 - t1)
    total = sum(aug_s[1:]) + sum(model_s[1:])
    return {
        "images_per_s": batch * steps / total, "loss": loss.item(), "precision": "bf16" if fast else "fp32",
        "aug_share": sum(aug_s[1:]) / total,
    }


def worker_peak(cfg: dict[str, Any]) -> dict[str, Any]:
    """Best-of-several FLOP/s of an n x n x n matmul in bf16 and fp32."""
    n = cfg.get("n", 2048)
    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        best = math.inf
        for _ in range(cfg.get("repeats", 5)):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        out[f"{name}_tflops"] = 2 * n**3 / best / 1e12
    return out


def forward_flops_per_image(config: str) -> float:
    """Forward FLOPs (conv + matmul, as counted by torch.utils.flop_counter) of one image."""
    from torch.utils.flop_counter import FlopCounterMode

    arch, kwargs, size = CONFIGS[config]

    enc = create_encoder(arch, **kwargs).train()
    with FlopCounterMode(display=False) as counter:
        enc(torch.randn(2, 3, size, size))
    return counter.get_total_flops() / 2


WORKERS = {"reference": worker_reference, "ours": worker_ours, "peak": worker_peak}


def run_worker(kind: str, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", kind, json.dumps(cfg)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per measurement (after 1 warm-up step)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved reference/ours repetitions")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference pipeline")
    p.add_argument("--compile", action="store_true", help="torch.compile our training step")
    p.add_argument("--quick", action="store_true", help="tiny smoke run; writes nothing")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--worker", nargs=2, metavar=("KIND", "JSON"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, cfg = args.worker
        print(json.dumps(WORKERS[kind](json.loads(cfg))))
        return 0
    if args.quick:
        args.configs, args.batch_size, args.steps, args.rounds = ["smallalexnet32"], 16, 1, 1

    started = time.time()
    peak = run_worker("peak", {"n": 512 if args.quick else 2048}, args.timeout)
    print(f"peak matmul: bf16 {peak['bf16_tflops']:.2f} TFLOP/s, fp32 {peak['fp32_tflops']:.2f} TFLOP/s", flush=True)
    results: dict[str, dict[str, list]] = {c: {"reference": [], "ours": []} for c in args.configs}
    for rnd in range(args.rounds):
        for config in args.configs:
            for kind in ("reference", "ours"):  # interleaved: both see the same machine load
                cfg = {"config": config, "batch_size": args.batch_size, "steps": args.steps,
                       "workers": args.workers, "compile": args.compile}
                res = run_worker(kind, cfg, args.timeout)
                results[config][kind].append(res)
                print(f"round {rnd} {config:15s} {kind:9s} {res['images_per_s']:8.1f} img/s", flush=True)

    rows = []
    for config in args.configs:
        ref = [r["images_per_s"] for r in results[config]["reference"]]
        ours = [r["images_per_s"] for r in results[config]["ours"]]
        flops = forward_flops_per_image(config)
        step_flops = 2 * 3 * flops  # two views, forward + backward
        med_ours = statistics.median(ours)
        precision = results[config]["ours"][0]["precision"]
        rows.append({
            "config": config, "input_px": CONFIGS[config][2], "batch_size": args.batch_size,
            "gflops_per_image_fwd": flops / 1e9,
            "reference_img_s": statistics.median(ref), "ours_img_s": med_ours,
            "speedup": statistics.median([o / r for o, r in zip(ours, ref)]),
            "aug_share": statistics.median(r["aug_share"] for r in results[config]["ours"]),
            # MFU against the peak of the precision each pipeline runs in
            "mfu_ours": med_ours * step_flops / (peak[f"{precision}_tflops"] * 1e12),
            "mfu_reference": statistics.median(ref) * step_flops / (peak["fp32_tflops"] * 1e12),
            "precision": precision,
        })
    meta = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "torch": torch.__version__,
        "cpu": _cpu_name(), "cores": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
        "peak_bf16_tflops": peak["bf16_tflops"], "peak_fp32_tflops": peak["fp32_tflops"],
        "rounds": args.rounds, "steps": args.steps, "reference_workers": args.workers, "compile": args.compile,
        "wall_s": time.time() - started,
    }
    for r in rows:
        print(f"{r['config']:15s} ref {r['reference_img_s']:7.1f} img/s  ours {r['ours_img_s']:7.1f} img/s  "
              f"x{r['speedup']:.2f}  MFU {100 * r['mfu_ours']:.1f}% (ref {100 * r['mfu_reference']:.1f}%)  "
              f"aug {100 * r['aug_share']:.0f}% of our step")
    if not args.quick:
        write_docs(rows, meta)
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_docs(rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    table_rows = [dict(r, mfu_ours=f"{100 * r['mfu_ours']:.1f}%", mfu_reference=f"{100 * r['mfu_reference']:.1f}%",
                       aug_share=f"{100 * r['aug_share']:.0f}%", speedup=f"{r['speedup']:.1f}x") for r in rows]
    md = (
        "### Training speed (CPU)\n\n"
        "AlignUniform training step (two augmented views, forward + backward, SGD), batch "
        f"{rows[0]['batch_size']}, measured with `python bench/train_speed.py` on {meta['cpu']} "
        f"({meta['cores']} cores, load average {meta['load_avg_1min']:.1f} while measuring: the machine was shared, "
        "so absolute numbers are low; the two pipelines were measured interleaved and the speed-up is the median "
        "of per-round ratios). Reference = per-image PIL augmentation in a DataLoader with "
        f"{meta['reference_workers']} workers, fp32, NCHW. Ours = whole-batch tensor augmentation, "
        f"{rows[0]['precision']} (what `--precision auto` picks on this CPU) + channels_last, allocator tuning. "
        "MFU = model FLOPs (x2 views, x3 for fwd+bwd) / measured matmul peak of the pipeline's precision "
        f"(bf16 {meta['peak_bf16_tflops']:.2f} TFLOP/s, fp32 {meta['peak_fp32_tflops']:.2f}).\n\n"
        + markdown_table(
            table_rows,
            ["config", "input_px", "gflops_per_image_fwd", "reference_img_s", "ours_img_s", "speedup", "mfu_reference",
             "mfu_ours", "aug_share"],
            ["model", "px", "GFLOP/img (fwd)", "reference img/s", "ours img/s", "speed-up", "MFU ref", "MFU ours",
             "augmentation share of our step"],
        )
    )
    update_markdown_section(REPO / "docs" / "benchmarks.md", "train-speed", md)
    write_json(REPO / "docs" / "bench" / "train_speed.json", {"meta": meta, "rows": rows})


if __name__ == "__main__":
    sys.exit(main())
