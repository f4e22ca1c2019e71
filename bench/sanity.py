"""Sanity numbers for ``docs/sanity.md``: what untrained encoders and raw pixels reach with the fast probe.

Each run is one ``noisevision.eval.probe`` call (fast protocol, default probe
layer, no BN recalibration unless the run says so). Results are kept in
``docs/bench/sanity.json`` (one row per run, keyed by its name, so runs can be
done in several sittings with ``--only``) and rendered into ``docs/sanity.md``.

    python bench/sanity.py                       # all runs (~25 min on an idle 2-core CPU)
    python bench/sanity.py --only cifar10/smallalexnet32/s0 cifar10/pixels
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import noisevision  # noqa: E402,F401
from noisevision.comparison.report import markdown_table, write_json
from noisevision.eval import probe
from noisevision.fileio import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
ROWS = REPO / "docs" / "bench" / "sanity.json"
DOC = REPO / "docs" / "sanity.md"

# Tiny-ImageNet-32 rows fit on a seeded 50,000-image subset of the 100,000 training images: a
# 200-class logistic regression on 4096-d features over all of them takes ~10 min on 2 cores.
TINY_MAX_TRAIN = 50_000
# name -> probe keyword arguments
RUNS: dict[str, dict] = {
    "cifar10/smallalexnet32/s0": dict(dataset="cifar10", encoder="random:smallalexnet32", seed=0),
    "cifar10/smallalexnet32/s1": dict(dataset="cifar10", encoder="random:smallalexnet32", seed=1),
    "cifar10/pixels": dict(dataset="cifar10", encoder="pixels", seed=0),
    "tiny-imagenet-32/smallalexnet32/s0": dict(dataset="tiny-imagenet-32", encoder="random:smallalexnet32", seed=0, max_train=TINY_MAX_TRAIN),
    "cifar10/resnet18-cifar/s0": dict(dataset="cifar10", encoder="random:resnet18:stem=cifar", seed=0),
    "tiny-imagenet-32/pixels": dict(dataset="tiny-imagenet-32", encoder="pixels", seed=0, max_train=TINY_MAX_TRAIN),
    "cifar10/smallalexnet32/s0+bn": dict(dataset="cifar10", encoder="random:smallalexnet32", seed=0, bn_recalibrate=True),
    "cifar10/resnet18-cifar/s1": dict(dataset="cifar10", encoder="random:resnet18:stem=cifar", seed=1),
    "tiny-imagenet-32/resnet18-cifar/s0": dict(dataset="tiny-imagenet-32", encoder="random:resnet18:stem=cifar", seed=0, max_train=TINY_MAX_TRAIN),
}


def load_rows() -> dict[str, dict]:
    return {r["run"]: r for r in json.loads(ROWS.read_text())} if ROWS.exists() else {}


def render(rows: dict[str, dict]) -> str:
    ordered = [{**rows[name], "lambda": f"{rows[name]['lambda']:.2g}"} for name in RUNS if name in rows]
    table = markdown_table(
        ordered,
        ["dataset", "encoder", "layer", "seed", "bn_recalibrate", "n_train", "top1", "top5", "knn_top1", "alignment", "uniformity", "lambda", "total_s", "load_avg"],
        ["dataset", "encoder", "layer", "seed", "BN recal.", "train images", "linear top-1 %", "top-5 %", "kNN top-1 %", "align", "uniform", "lambda", "time (s)", "load avg"],
    )
    spread = ""
    pairs = [("cifar10/smallalexnet32/s0", "cifar10/smallalexnet32/s1"), ("cifar10/resnet18-cifar/s0", "cifar10/resnet18-cifar/s1")]
    for a, b in pairs:
        if a in rows and b in rows:
            spread += (f"- `{rows[a]['encoder']}` on CIFAR-10, seeds 0 and 1: linear top-1 {rows[a]['top1']:.2f} / "
                       f"{rows[b]['top1']:.2f} % (difference {abs(rows[a]['top1'] - rows[b]['top1']):.2f} points), kNN "
                       f"{rows[a]['knn_top1']:.2f} / {rows[b]['knn_top1']:.2f} %.\n")
    if "cifar10/smallalexnet32/s0" in rows and "cifar10/smallalexnet32/s0+bn" in rows:
        a, b = rows["cifar10/smallalexnet32/s0"], rows["cifar10/smallalexnet32/s0+bn"]
        spread += (f"- BatchNorm re-estimation on 4,096 training images (`--bn-recalibrate`) moves the random-init "
                   f"SmallAlexNet from {a['top1']:.2f} to {b['top1']:.2f} % linear top-1 ({b['top1'] - a['top1']:+.2f} points).\n")
    return f"""# Sanity numbers: untrained encoders and raw pixels

What a probe of an encoder that never saw an image reaches, so a pretrained
encoder's number can be read against a floor. All rows: `noisevision probe
--protocol fast` (standardised frozen features, L-BFGS logistic regression,
L2 strength chosen on a 10% validation split of the training set, refit on all
of it), the encoder's default probe layer (`fc6` for SmallAlexNet, `avgpool`
for ResNet), 32 px images, evaluated on the full test split (CIFAR-10 `test`:
10,000 images; Tiny-ImageNet-32 `val`: 10,000 images, 200 classes; the
Tiny-ImageNet rows train on a seeded 50,000-image subset of its 100,000
training images, to keep the 200-class fit short). kNN:
cosine, k = 200, T = 0.1, on the encoder's output embedding (SmallAlexNet's
128-d fc8, ResNet's pooled features; raw pixels for `pixels`). Alignment /
uniformity: Wang & Isola, on the L2-normalised embedding of two `small`-preset
views of 5,000 test images. `random:<arch>` encoders are initialised from the
given seed; the seed also drives the validation split and the views. Chance is
10 % on CIFAR-10 and 0.5 % on Tiny-ImageNet-32.

Regenerate with `python bench/sanity.py` (rows are kept in
`docs/bench/sanity.json`; times are wall seconds on the machine named there and
are inflated when the load average exceeds its core count).

{table}
Seed-to-seed variation:

{spread or '- (not measured yet)'}

For reference, a throwaway prototype measured 55.9 / 55.8 % (seeds 0 / 1) linear
top-1 and ~43 % kNN for a random-init 32 px SmallAlexNet (fc6) on CIFAR-10.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(RUNS), help="run only these (others keep their rows)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    rows = load_rows()
    for name in ([] if args.render_only else args.only or list(RUNS)):
        kw = RUNS[name]
        load = os.getloadavg()[0]
        result = probe(data_root=args.data_root, progress=False, align_images=5000, **kw)
        m = result["metrics"]
        rows[name] = {
            "run": name, "dataset": kw["dataset"], "encoder": kw["encoder"], "layer": result["layer"], "seed": kw["seed"],
            "bn_recalibrate": bool(kw.get("bn_recalibrate", False)), "top1": m["top1"], "top5": m["top5"],
            "knn_top1": m["knn_top1"], "alignment": m["alignment"], "uniformity": m["uniformity"],
            "lambda": result["linear"]["lambda"], "n_train": result["dataset"]["n_train"], "n_test": result["dataset"]["n_test"],
            "total_s": result["timings_s"]["total_s"], "load_avg": round(max(load, os.getloadavg()[0]), 1),
            "torch": result["torch"], "host": result["host"], "date": result["date"],
        }
        print(name, {k: rows[name][k] for k in ("top1", "knn_top1", "total_s")}, flush=True)
        write_json(ROWS, [rows[n] for n in RUNS if n in rows])
        atomic_write_text(DOC, render(rows))
    atomic_write_text(DOC, render(rows))


if __name__ == "__main__":
    main()
