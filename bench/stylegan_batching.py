"""How much batching speeds up the random StyleGAN2 generators.

For each ``stylegan/*`` variant and size, in the same process, renders the
same network's images (a) in batches of the generator's ``batch_size``, (b)
one image per ``render`` call and, for the filter-bank variants, (c) one image
per call with every channel expanded (the plain StyleGAN2 computation, as the
official code runs it), and reports images/s and the ratios. The oriented
variant is also measured at the paper's channel widths. Runs on the CPU with ``--threads`` threads, and on CUDA too when it is
available. Writes the ``stylegan-batching`` section of ``docs/benchmarks.md``
and ``docs/bench/stylegan_batching.json``.

    python bench/stylegan_batching.py                      # 64 and 128 px, 2 threads
    python bench/stylegan_batching.py --sizes 64 --rounds 2 --no-write
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import noisevision as nv  # first: sets OMP_WAIT_POLICY before torch is imported
from noisevision.comparison.report import markdown_table, update_markdown_section, write_json
from noisevision.generators import stylegan


def compare(
    gen: nv.generators.Generator,
    size: int,
    device: str,
    batch_size: int,
    rounds: int,
    singles_per_round: int,
    dense: bool,
) -> dict[str, float]:
    """Images/s of one network's images rendered batched, one per call, and (``dense``) one per call expanded.

    The modes are interleaved round by round, so that a machine whose load
    changes during the run slows them alike; each mode is warmed up first
    (network cache, allocator, kernels).
    """
    modes = {"batched": (batch_size, False), "single": (1, False)}
    if dense:
        modes["dense_single"] = (1, True)
    seconds = dict.fromkeys(modes, 0.0)
    counts = dict.fromkeys(modes, 0)
    next_index = 0
    for r in range(rounds + 1):
        for mode, (per_call, reference) in modes.items():
            n = batch_size if mode == "batched" else singles_per_round
            calls = [np.arange(first, first + per_call) % 400 for first in range(next_index, next_index + n, per_call)]
            next_index += n
            start = time.perf_counter()
            for indices in calls:
                stylegan.render(indices, 0, size, gen.params, device, reference=reference)
            _sync(device)
            if r > 0:  # round 0 is the warm-up
                seconds[mode] += time.perf_counter() - start
                counts[mode] += n
    return {mode: counts[mode] / seconds[mode] for mode in modes}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


PAPER_WIDTHS = {"channel_base": 32768, "channel_max": 512}


def run(names: list[str], sizes: list[int], devices: list[str], rounds: int, threads: int) -> list[dict]:
    torch.set_num_threads(threads)
    configs = [(name, {}) for name in names]
    configs += [(name, {"bf16": True}) for name in names if not nv.create_generator(name).params.uses_bank]
    configs += [(name, PAPER_WIDTHS) for name in names if name == "stylegan/oriented"]
    rows = []
    for device in devices:
        for size in sizes:
            for name, overrides in configs:
                gen = nv.create_generator(name, **overrides)
                singles = max(gen.batch_size * 64 * 64 // (size * size) // 4, 2)
                rates = compare(gen, size, device, gen.batch_size, rounds, singles, dense=gen.params.uses_bank)
                dense = rates.get("dense_single", rates["single"])
                rows.append(
                    dict(
                        generator=name + "".join(f" ({k}={v})" for k, v in overrides.items() if k == "bf16"),
                        size=size,
                        device=device,
                        threads=threads if device == "cpu" else None,
                        batch_size=gen.batch_size,
                        channels=f"{gen.params.channel_base}/{gen.params.channel_max}",
                        batched_img_s=round(rates["batched"], 1),
                        single_img_s=round(rates["single"], 1),
                        speedup=round(rates["batched"] / rates["single"], 1),
                        dense_single_img_s=round(dense, 1),
                        speedup_vs_dense_single=round(rates["batched"] / dense, 1),
                    )
                )
                print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", default="stylegan/*", help="generator wildcard")
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds (one batch and a few single calls each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = run(nv.list_generators(args.names), sizes, devices, args.rounds, args.threads)
    if not args.write:
        return
    cpu = platform.processor() or platform.machine()
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    body = (
        "### StyleGAN: batched vs one image per call\n\n"
        f"`python bench/stylegan_batching.py` (torch {torch.__version__}, {cpu}, "
        f"{args.threads} CPU threads{gpu}). Images of one network (seed 0); images/s after a warm-up round, "
        "the three ways interleaved round by round. "
        "The filter-bank variants run width-free (cost independent of the channel count), "
        "`stylegan/random` runs real convolutions. *Dense one-at-a-time* is the plain StyleGAN2 computation "
        "(every channel expanded, a grouped convolution with per-image weights) at batch size 1, "
        "as the official code renders.\n\n"
        + markdown_table(
            rows,
            ["generator", "size", "device", "channels", "batch_size", "batched_img_s", "single_img_s", "speedup",
             "dense_single_img_s", "speedup_vs_dense_single"],
            ["generator", "px", "device", "channel base/max", "batch", "batched img/s", "one-at-a-time img/s",
             "speed-up", "dense one-at-a-time img/s", "speed-up vs dense one-at-a-time"],
        )
    )
    update_markdown_section("docs/benchmarks.md", "stylegan-batching", body)
    write_json("docs/bench/stylegan_batching.json", {"torch": torch.__version__, "threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
