"""Wall time of the ``fast`` probe on full CIFAR-10 (50,000 train / 10,000 test), per phase.

Phases: JPEG decode into the cache (cold, measured once with a fresh cache
folder), then one complete ``noisevision probe`` run that reads the cache:
cache load, feature extraction (train + test, bf16 autocast + channels_last
where supported), logistic-regression fit (lambda search + refit), kNN, and
alignment/uniformity. Target: the probe run under 2 minutes on a 2-core CPU,
extraction included. The load average is recorded because the machine may be
shared. Writes ``docs/bench/probe_speed.json`` and the ``probe-speed`` section
of ``docs/benchmarks.md``.

    python bench/probe_speed.py                        # smallalexnet32, fc6 (~1.5-2 min idle)
    python bench/probe_speed.py --encoder random:resnet18:stem=cifar
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import noisevision  # noqa: E402,F401
from noisevision.comparison.report import markdown_table, update_markdown_section, write_json
from noisevision.data.roots import load_split, resolve_dataset
from noisevision.eval import probe

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 120.0


def render(row: dict) -> str:
    """The ``probe-speed`` section of docs/benchmarks.md for one measured row."""
    return (
        "### Probe speed (`make bench-probe`, `bench/probe_speed.py`)\n\n"
        f"`fast` protocol on full {row['dataset']} ({row['n_train']:,} train / {row['n_test']:,} test), "
        f"`{row['encoder']}` layer `{row['layer']}`, {row['cpus']} CPUs, {row['threads']} torch threads, "
        f"autocast {row['amp']}, alignment/uniformity on {row.get('align_images', 2000):,} test images. "
        f"Target: probe total < {TARGET_S:.0f} s, extraction included. "
        f"The 1-minute load average was {row['load_avg_before']} before and {row['load_avg_after']} after "
        "(a load above the core count means other processes shared the CPU and the times are inflated "
        "by about that factor). *CPU / threads* is the probe's process CPU time divided by its threads: "
        "roughly the wall time on an idle machine, insensitive to other load.\n\n"
        + markdown_table(
            [row],
            ["decode_cold_s", "cache_load_s", "extract_s", "fit_s", "knn_s", "align_uniform_s", "probe_total_s", "idle_estimate_s", "top1", "knn_top1"],
            ["JPEG decode, cold (s)", "cache load (s)", "extraction (s)", "fit (s)", "kNN (s)", "align/unif (s)",
             "probe total (s)", "CPU / threads (s)", "top-1 %", "kNN top-1 %"],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="random:smallalexnet32")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-docs", action="store_true", help="print only; do not update docs/")
    parser.add_argument("--render-only", action="store_true", help="re-render the docs from docs/bench/probe_speed.json")
    args = parser.parse_args()
    if args.render_only:
        row = json.loads((REPO / "docs" / "bench" / "probe_speed.json").read_text())
        update_markdown_section(REPO / "docs" / "benchmarks.md", "probe-speed", render(row))
        return

    import torch

    load_before = os.getloadavg()
    source = resolve_dataset(args.dataset, args.data_root)
    cold = Path(tempfile.mkdtemp(prefix="nv-probe-bench-"))
    try:
        start = time.perf_counter()
        n = sum(len(load_split(source, split, 32, cache_dir=cold)) for split in ("train", "test"))
        decode_s = time.perf_counter() - start
    finally:
        shutil.rmtree(cold, ignore_errors=True)
    # warm the default cache so the probe run below measures a cache load (as every run after the first)
    for split in ("train", "test"):
        load_split(source, split, 32)

    cpu_start = time.process_time()
    result = probe(encoder=args.encoder, dataset=args.dataset, data_root=args.data_root, progress=False)
    cpu_s = time.process_time() - cpu_start
    load_after = os.getloadavg()
    t = result["timings_s"]
    row = {
        "encoder": args.encoder, "layer": result["layer"], "dataset": args.dataset,
        "n_train": result["dataset"]["n_train"], "n_test": result["dataset"]["n_test"],
        "decode_cold_s": round(decode_s, 1), "decode_img_s": round(n / decode_s),
        "cache_load_s": t["load_s"], "extract_s": t["extract_s"], "fit_s": t["fit_s"], "knn_s": t["knn_s"],
        "align_uniform_s": t["align_uniform_s"], "probe_total_s": t["total_s"],
        "under_target": t["total_s"] < TARGET_S,
        "probe_cpu_s": round(cpu_s, 1), "idle_estimate_s": round(cpu_s / torch.get_num_threads(), 1),
        "top1": result["metrics"]["top1"], "knn_top1": result["metrics"]["knn_top1"],
        "align_images": result["align_uniform"]["images"], "lambda": result["linear"]["lambda"], "lbfgs_evaluations": result["linear"]["lbfgs_evaluations"],
        "amp": result["amp_dtype"], "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_avg_before": round(load_before[0], 1), "load_avg_after": round(load_after[0], 1),
        "torch": torch.__version__, "host": platform.node(), "date": result["date"],
    }
    print(row)
    if args.no_docs:
        return
    write_json(REPO / "docs" / "bench" / "probe_speed.json", row)
    md = render(row)
    update_markdown_section(REPO / "docs" / "benchmarks.md", "probe-speed", md)


if __name__ == "__main__":
    main()
