"""Images/s of every registered generator at 64 and 128 px, with 1 and 2 worker processes.

Each cell is steady-state render throughput (JPEG encoding excluded; it is
reported once per size): every worker process builds the generator, renders one
warm-up batch, then renders disjoint index ranges for ``--seconds``; the cell is
the sum of the workers' rates. One worker runs with one torch thread, so the
1-worker column is "per core" on an idle machine. The "per CPU-second" column
divides the images by the CPU time the single worker actually received, so it
stays a per-core figure when other work shares the machine. Writes
``docs/bench/generate_speed.json`` and the ``generate-speed`` section of
``docs/benchmarks.md``; a run with ``--pattern`` replaces only the rows it
measured and keeps the others (each row carries its date and load average).

    python bench/generate_speed.py                      # everything (~6 min)
    python bench/generate_speed.py --pattern 'stat/*' --sizes 128 --workers 1
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

import noisevision
from noisevision.comparison.report import markdown_table, update_markdown_section, write_json
from noisevision.generators import create_generator, fast_overrides, get_spec, list_generators

REPO = Path(__file__).resolve().parents[1]

# The official scripts' speeds as their authors' samples report them on this kind of machine (images/s, one
# process, JPEG output), and the per-core targets at 128 px.
OFFICIAL_128 = {
    "dead-leaves/squares": 3.7, "dead-leaves/oriented": 3.4, "dead-leaves/mixed": 2.9, "dead-leaves/textured": 2.5,
    "stat/spectrum": 37, "stat/spectrum-color": 26, "stat/wmm": 3.4, "stat/spectrum-color-wmm": 2.9,
    "stylegan/random": 2.3, "stylegan/oriented": 1.5,
}
OFFICIAL_64 = {
    "dead-leaves/squares": 12.0, "dead-leaves/oriented": 10.2, "dead-leaves/mixed": 9.9, "dead-leaves/textured": 8.0,
    "stat/spectrum": 125, "stat/spectrum-color": 87, "stylegan/random": 3.3, "stylegan/oriented": 2.4,
}
TARGET_128 = {
    "dead-leaves/squares": 100, "dead-leaves/oriented": 100, "dead-leaves/mixed": 100, "dead-leaves/textured": 100,
    "stat/spectrum": 180, "stat/wmm": 35, "stat/spectrum-color-wmm": 35,
    "fractal/fractaldb": 200, "fractal/1p-frac": 200, "contour/rcdb": 200, "contour/visualatom": 200,
}
EXTRA = ["mixup/stylegan/oriented"]


SETTINGS_NOTE = (
    " Generators run with their CPU-friendly settings (the 'settings' column; `--no-fast` measures their"
    " defaults): `dead-leaves/textured` with `texture_pool=4` excludes the per-group texture pool, which at"
    " the default pool of 32 costs about 3.6 CPU-s per 1000 images (about 150 images/s per core in all)."
)


def _overrides(name: str, fast: bool) -> dict:
    return fast_overrides(name) if fast else {}


def _worker(args: tuple) -> tuple[int, float, float]:
    """(images, wall seconds, CPU seconds of this process) of one worker's timed renders."""
    name, overrides, size, seconds, worker, device = args
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core per worker; restored, since one worker runs in the calling process
    try:
        gen = create_generator(name, **overrides)
        bs = gen.batch_size
        start = 1_000_000 * (worker + 1)
        gen.render(np.arange(start, start + bs), 0, size, device=device)  # warm-up (also builds caches)
        n, t0, cpu0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds or n == 0:
            lo = start + bs * (n // bs + 1)
            gen.render(np.arange(lo, lo + bs), 0, size, device=device)
            n += bs
        return n, time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        torch.set_num_threads(threads)


def measure(name: str, size: int, workers: int, seconds: float, fast: bool,
            device: str = "cpu") -> tuple[float, float]:
    """Steady-state images/s summed over ``workers`` processes, and images per CPU-second of one worker."""
    jobs = [(name, _overrides(name, fast), size, seconds, w, device) for w in range(workers)]
    if workers == 1:
        results = [_worker(jobs[0])]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_worker, jobs)
    return float(sum(n / t for n, t, _ in results)), float(np.mean([n / max(c, 1e-9) for n, _, c in results]))


def jpeg_encode_rate(size: int) -> float:
    from PIL import Image

    img = create_generator("stat/spectrum").render(range(8), 0, size) if "stat/spectrum" in list_generators() else (
        np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        Image.fromarray(img[n % 8]).save(io.BytesIO(), format="JPEG", quality=95)
        n += 1
    return n / (time.perf_counter() - t0)


def _merge_rows(path: str, rows: list[dict], replace_all: bool) -> list[dict]:
    """``rows`` in place of the same generators' rows of the JSON at ``path``; the others kept, in registry order."""
    if replace_all or not Path(path).is_file():
        return rows
    new = {r["generator"]: r for r in rows}
    old = [r for r in json.loads(Path(path).read_text())["rows"] if r["generator"] not in new]
    order = {name: i for i, name in enumerate(list_generators() + EXTRA)}
    return sorted(old + rows, key=lambda r: order.get(r["generator"], len(order)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pattern", default="*", help="generators to measure (wildcard)")
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per cell and worker")
    ap.add_argument("--no-fast", dest="fast", action="store_false",
                    help="measure feature-vis etc. with their full defaults instead of their CPU-friendly settings")
    ap.add_argument("--out-json", default=str(REPO / "docs" / "bench" / "generate_speed.json"))
    ap.add_argument("--out-md", default=str(REPO / "docs" / "benchmarks.md"))
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    # generators that need a user input (a checkpoint) are measured through their fast settings elsewhere
    names = [n for n in list_generators(args.pattern) if not get_spec(n).required]
    names += [n for n in EXTRA if args.pattern == "*"]
    import torch

    cuda = torch.cuda.is_available()
    rows = []
    for name in names:
        row: dict = {"generator": name}
        fast = _overrides(name, args.fast)
        row["settings"] = ", ".join(f"{k}={v}" for k, v in fast.items()) or "defaults"
        for size in sizes:
            for w in worker_counts:
                rate, per_cpu_s = measure(name, size, w, args.seconds, args.fast)
                row[f"{size}px_{w}w"] = round(rate, 2)
                if w == 1:
                    row[f"{size}px_per_cpu_s"] = round(per_cpu_s, 2)
                print(f"{name:32s} {size:4d}px {w}w {rate:9.1f} img/s ({per_cpu_s:.1f} per CPU-s)", flush=True)
            if cuda:
                row[f"{size}px_cuda"] = round(measure(name, size, 1, args.seconds, args.fast, "cuda")[0], 2)
        row["official_128px"] = OFFICIAL_128.get(name)
        row["target_128px_per_core"] = TARGET_128.get(name)
        per_core = row.get("128px_per_cpu_s", row.get("128px_1w"))
        if row["target_128px_per_core"] and per_core is not None:
            row["speedup_vs_official_128px"] = (
                round(per_core / OFFICIAL_128[name], 1) if name in OFFICIAL_128 else None)
            row["meets_target"] = per_core >= row["target_128px_per_core"]
        row["measured"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        row["load_avg"] = round(os.getloadavg()[0], 2)
        rows.append(row)
    rows = _merge_rows(args.out_json, rows, replace_all=args.pattern == "*")
    env = {
        "noisevision": noisevision.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_avg_at_end": os.getloadavg(), "seconds_per_cell": args.seconds,
        "jpeg_q95_encode_img_per_s": {s: round(jpeg_encode_rate(s), 1) for s in sizes}, "cuda": cuda,
    }
    write_json(args.out_json, {"env": env, "rows": rows})
    cols = ["generator", "settings"] + [f"{s}px_{w}w" for s in sizes for w in worker_counts]
    cols += [f"{s}px_cuda" for s in sizes] if cuda else []
    cols += ["128px_per_cpu_s", "official_128px", "target_128px_per_core", "load_avg", "measured"]
    heads = ["generator", "settings"] + [f"{s} px, {w} worker{'s' if w > 1 else ''}" for s in sizes for w in worker_counts]
    heads += [f"{s} px, CUDA" for s in sizes] if cuda else []
    heads += ["128 px per CPU-s", "official, 128 px", "target, 128 px per core", "load", "measured"]
    md = (
        "## Generation speed (images/s)\n\n"
        f"`python bench/generate_speed.py` on {env['cpu_count']} CPU cores ({env['machine']}), torch {env['torch']}, "
        f"{args.seconds:.0f} s per cell. Steady-state render throughput summed over worker processes (1 torch thread "
        "each), JPEG encoding excluded: JPEG q95 encoding alone runs at "
        + ", ".join(f"{v:.0f} img/s at {s} px" for s, v in env["jpeg_q95_encode_img_per_s"].items())
        + " per core. 'official' is the paper's code on this kind of machine (one process). "
        "'per CPU-s' is the one-worker rate per second of CPU time that worker received, the per-core figure "
        "that holds on a shared machine; the target is judged on it. 'load' is the load average when the row "
        "was measured (2 cores: above 1 the wall-clock columns are shared with other work)."
        + SETTINGS_NOTE + "\n\n"
        + markdown_table(rows, cols, heads)
    )
    update_markdown_section(args.out_md, "generate-speed", md)
    print(f"wrote {args.out_json} and the generate-speed section of {args.out_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
