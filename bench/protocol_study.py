"""The comparison's protocol study: which CPU-sized protocol lets the families separate?

Each *run* pretrains one anchor encoder (or takes random init) under one setting
of the knobs (render size, training length, fixed against fresh online images)
and evaluates it on every evaluation set with several read-outs. Everything
else is held at the ``cpu`` profile's settings: SmallAlexNet-32 at half conv
width, AlignUniform, batch 256, cosine lr 0.12, 32 px training crops.

Read-outs per evaluation set (fast L-BFGS probe on standardised features, kNN
with cosine k=200 T=0.1 on the 128-d embedding):

* ``fc6``: linear on fc6 with the encoder's own BatchNorm statistics;
* ``fc6_bn``, ``conv5_bn``, ``both_bn``: linear on fc6, on flattened conv5, and
  on their concatenation, with BatchNorm statistics re-estimated on 4,096 of
  the probe's training images;
* ``knn``, ``knn_bn``: kNN without and with re-estimated statistics.

Evaluation sets: CIFAR-10 (the first 2,500 training images of each class in
file order, and all 10,000 test images) and a fixed 100-class subset of
Tiny-ImageNet-32 (the first 100 classes in sorted order, the first 250
training and all 50 validation images per class). The training subsets keep
each evaluation (4 linear fits, 2 kNN) to a few minutes on 2 cores; the test
sets are whole, so the standard error of an accuracy stays ~0.5 points.

One JSON per run lands in ``docs/results/study/runs/`` as soon as each of its
evaluations finishes (commit them as they come: a fresh checkout resumes from
the repository); ``--report`` rebuilds ``docs/results/study/tables.md`` (every
number, and one table per knob) from those files. Generated data and run folders live in ``--work``
(default ``~/.cache/noisevision-study``) and are re-creatable.

Usage::
    python bench/protocol_study.py --list
    python bench/protocol_study.py --runs real-t1560,stylegan-r128-t1560
    python bench/protocol_study.py --report
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from noisevision.data.roots import default_test_split, load_split, resolve_dataset
from noisevision.data.writer import generate_dataset
from noisevision.eval.features import extract_features, normalization_for, prepare_encoder, recalibrate_batchnorm
from noisevision.eval.knn import knn_accuracy
from noisevision.eval.linear import fit_linear_probe, standardize, topk_accuracy
from noisevision.fileio import atomic_write_text, write_json
from noisevision.generators import get_spec
from noisevision.models import build_encoder
from noisevision.plotting import pyplot, save_png
from noisevision.train import PretrainConfig, pretrain

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "results" / "study"
BATCH, CROP, LR, WIDTH = 256, 32, 0.12, 0.5
TIN_CLASSES, TIN_TRAIN_PER_CLASS = 100, 250
CIFAR_TRAIN_PER_CLASS = 2500

ANCHORS = {  # in the paper's order
    "random": "baseline/random-init",
    "real": "baseline/real",
    "stylegan": "stylegan/oriented",
    "deadleaves": "dead-leaves/textured",
    "spectrum": "stat/spectrum",
}


@dataclass(frozen=True)
class StudyRun:
    """One encoder of the study."""

    anchor: str  # key of ANCHORS
    render: int = 128  # px of the stored (or online) images; the real baseline ignores it
    steps: int = 1560  # optimiser steps of batch 256
    online: bool = False  # fresh generator images every epoch instead of a fixed set
    num_images: int = 10_000  # images per epoch (fixed set size)
    seed: int = 0

    @property
    def name(self) -> str:
        if self.anchor == "random":
            return f"random-s{self.seed}"
        parts = [self.anchor]
        if self.anchor != "real":
            parts.append(f"r{self.render}")
        parts.append(f"t{self.steps}")
        if self.online:
            parts.append("online")
        if self.seed:
            parts.append(f"seed{self.seed}")
        return "-".join(parts)


def study_runs() -> dict[str, StudyRun]:
    """Every planned run, in the order they are worth running.

    The seed spread of trained encoders is not planned here: the ``cpu`` profile trains random init, the
    real baseline and dead-leaves/mixed with three seeds under the chosen protocol, which measures it where
    it is reported.
    """
    runs = [StudyRun("random"), StudyRun("random", seed=1), StudyRun("random", seed=2)]
    # Training length at 128 px renders (the paper's render size) and 32 px crops.
    for steps in (1560, 390):
        runs += [StudyRun(a, steps=steps) for a in ("real", "stylegan", "deadleaves", "spectrum")]
    # Render size against crop size at 390 steps (1/f noise looks the same at every scale: spectrum left out).
    for render in (32, 64):
        runs += [StudyRun(a, render=render, steps=390) for a in ("stylegan", "deadleaves")]
    # Fresh online images every epoch against the fixed 10k set.
    runs += [StudyRun(a, steps=1560, online=True) for a in ("stylegan", "deadleaves")]
    # Whether the gain has levelled off by 1,560 steps.
    runs += [StudyRun(a, steps=3120) for a in ("real", "stylegan")]
    return {r.name: r for r in runs}


# ------------------------------------------------------------------ training


def _log(msg: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _cifar_train_folder(data_root: str | None) -> str:
    src = resolve_dataset("cifar10", data_root)
    return str(src.path / "train")


def train_encoder(run: StudyRun, work: Path, data_root: str | None, progress: bool) -> tuple[str, dict[str, Any]]:
    """Pretrain (or resume) the run's encoder; return (encoder spec for the probe, pretraining facts)."""
    if run.anchor == "random":
        return f"random:smallalexnet32:width={WIDTH}", {}
    facts: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if run.anchor == "real":
        data, n = _cifar_train_folder(data_root), 50_000
    else:
        gen = ANCHORS[run.anchor]
        params = dict(get_spec(gen).fast_overrides)
        n = run.num_images
        if run.online:
            data = f"gen:{gen}"
            extra = {"num_images": n, "gen_params": params, "image_size": run.render}
        else:
            data_dir = work / "data" / f"{run.anchor}-r{run.render}-n{n}-s{run.seed}"
            t0 = time.perf_counter()
            res = generate_dataset(gen, n, run.render, data_dir, seed=run.seed, format="npy", params=params,
                                   workers=1, progress=progress)
            if res.rendered:
                facts["gen_seconds"] = round(time.perf_counter() - t0, 1)
            data = str(data_dir)
            extra = {"image_size": run.render}
    steps_per_epoch = n // BATCH
    epochs = max(1, round(run.steps / steps_per_epoch))
    run_dir = work / "runs" / run.name
    cfg = PretrainConfig(
        data=data, crop_size=CROP, arch="smallalexnet32", arch_kwargs={"width": WIDTH}, method="alignuniform",
        epochs=epochs, batch_size=BATCH, lr=LR, lr_schedule="cosine", seed=run.seed, out=str(run_dir),
        resume=(run_dir / "config.yaml").exists(), progress=progress, **extra,
    )
    if not (run_dir / "summary.json").exists():
        _log(f"pretraining {run.name}: {epochs} epochs of {n} images ({epochs * steps_per_epoch} steps)")
        pretrain(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    facts.update({"epochs": epochs, "steps": summary.get("steps"), "pretrain_wall_s": summary.get("wall_s"),
                  "images_per_s": summary.get("images_per_s"), "data": _data_label(run, data, work)})
    return str(run_dir), facts


def _data_label(run: StudyRun, data: str, work: Path) -> str:
    """What the run trained on, without this machine's paths: ``cifar10/train``, ``gen:NAME`` or the stored
    images' folder under the work folder (``data/<anchor>-r<px>-n<images>-s<seed>``)."""
    if run.anchor == "real":
        return "cifar10/train"
    return data if run.online else Path(data).relative_to(work).as_posix()


# ------------------------------------------------------------------ evaluation

_SPLITS: dict[str, tuple[Any, Any]] = {}


def eval_splits(dataset: str, data_root: str | None) -> tuple[Any, Any]:
    """(train, test) LabeledImages of an evaluation set, loaded once per process."""
    if dataset not in _SPLITS:
        name = "tiny-imagenet-32" if dataset == "tin100" else dataset
        src = resolve_dataset(name, data_root)
        train = load_split(src, "train", 32, progress=False)
        test = load_split(src, default_test_split(name), 32, progress=False)
        classes, per_class = (TIN_CLASSES, TIN_TRAIN_PER_CLASS) if dataset == "tin100" else (10, CIFAR_TRAIN_PER_CLASS)
        # The first ``per_class`` images of each of the first ``classes`` classes, in file order: a fixed subset.
        train = train.subset(np.sort(np.concatenate(
            [np.flatnonzero(train.labels == c)[:per_class] for c in range(classes)])))
        test = test.subset(np.flatnonzero(test.labels < classes))
        _SPLITS[dataset] = (train, test)
    return _SPLITS[dataset]


def _linear(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
            n_classes: int) -> float:

    train_x, test_x = standardize(train_x.clone(), test_x.clone())
    fit = fit_linear_probe(train_x, train_y, n_classes, seed=0)
    return round(topk_accuracy(fit.model.logits(test_x), test_y, ks=(1,))[1], 3)


def evaluate(encoder_spec: str, dataset: str, data_root: str | None, seed: int = 0) -> dict[str, Any]:
    """Every read-out of one encoder on one evaluation set (``seed`` initialises a ``random:`` encoder)."""
    t0 = time.perf_counter()
    train, test = eval_splits(dataset, data_root)
    n_classes = int(train.labels.max()) + 1
    ytr, yte = torch.from_numpy(train.labels), torch.from_numpy(test.labels)
    encoder, meta, _ = build_encoder(encoder_spec, seed, None)
    _, mean, std = normalization_for(meta)
    encoder = prepare_encoder(encoder, torch.device("cpu"))

    def feats(layer: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ftr, etr = extract_features(encoder, train.images, layer, 32, mean, std, progress=False)
        fte, ete = extract_features(encoder, test.images, layer, 32, mean, std, progress=False)
        return ftr, etr, fte, ete

    def knn(etr: torch.Tensor, ete: torch.Tensor) -> float:
        return round(knn_accuracy(etr, ytr, ete, yte, n_classes, k=200, temperature=0.1)[1], 3)

    out: dict[str, Any] = {"n_train": len(train), "n_test": len(test), "n_classes": n_classes}
    ftr, etr, fte, ete = feats("fc6")
    out["fc6"] = _linear(ftr, ytr, fte, yte, n_classes)
    out["knn"] = knn(etr, ete)
    rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(7,)))
    calib = train.images[np.sort(rng.choice(len(train), size=min(4096, len(train)), replace=False))]
    recalibrate_batchnorm(encoder, calib, 32, mean, std)
    ftr, etr, fte, ete = feats("fc6")
    ctr, _, cte, _ = feats("conv5")
    out["fc6_bn"] = _linear(ftr, ytr, fte, yte, n_classes)
    out["conv5_bn"] = _linear(ctr, ytr, cte, yte, n_classes)
    out["both_bn"] = _linear(torch.cat([ftr, ctr], 1), ytr, torch.cat([fte, cte], 1), yte, n_classes)
    out["knn_bn"] = knn(etr, ete)
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    return out


# ------------------------------------------------------------------ driver


def result_path(run: StudyRun) -> Path:
    return OUT / "runs" / f"{run.name}.json"


def run_one(run: StudyRun, datasets: list[str], work: Path, data_root: str | None, progress: bool) -> None:
    path = result_path(run)
    result = json.loads(path.read_text()) if path.exists() else {"run": run.name, "settings": asdict(run), "evals": {}}
    todo = [d for d in datasets if d not in result["evals"]]
    if not todo:
        return
    t0 = time.perf_counter()
    encoder, facts = train_encoder(run, work, data_root, progress)
    result.setdefault("pretrain", {}).update(facts)
    for ds in todo:
        _log(f"evaluating {run.name} on {ds}")
        result["evals"][ds] = evaluate(encoder, ds, data_root, run.seed)
        result["host"] = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}
        result["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        write_json(path, result)
        _log(f"{run.name} on {ds}: " + ", ".join(f"{k} {v}" for k, v in result["evals"][ds].items()))
    result.setdefault("session_seconds", []).append(round(time.perf_counter() - t0, 1))
    write_json(path, result)


# ------------------------------------------------------------------ report

READOUTS = ("fc6", "fc6_bn", "conv5_bn", "both_bn", "knn", "knn_bn")


def load_results() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((OUT / "runs").glob("*.json"))}


def _table(rows: list[tuple[str, dict[str, Any]]], dataset: str) -> list[str]:
    lines = ["| run | " + " | ".join(READOUTS) + " |", "|---|" + "---:|" * len(READOUTS)]
    for name, res in rows:
        ev = res["evals"].get(dataset)
        if ev:
            lines.append(f"| {name} | " + " | ".join(f"{ev[k]:.1f}" for k in READOUTS) + " |")
    return lines


def _is_random(result: dict[str, Any]) -> bool:
    return result["settings"]["anchor"] == "random"


def random_spread(results: dict[str, dict[str, Any]], dataset: str, readout: str) -> tuple[float, float] | None:
    vals = [r["evals"][dataset][readout] for r in results.values() if _is_random(r) and dataset in r["evals"]]
    if len(vals) < 2:
        return None
    return statistics.mean(vals), statistics.stdev(vals)


# The training-length comparisons hold these settings fixed (stored 128 px renders, seed 0).
LENGTH_FIXED: dict[str, Any] = {"render": 128, "online": False, "seed": 0}
# One table per knob: (title, the varied setting, its column label, the settings held fixed).
KNOBS: tuple[tuple[str, str, Any, dict[str, Any]], ...] = (
    ("Training length (128 px renders, fixed 10k images)", "steps", lambda v: f"{v:,} steps", LENGTH_FIXED),
    ("Render size for a 32 px crop (390 steps)", "render", lambda v: f"{v} px", {"steps": 390, "online": False, "seed": 0}),
    ("Fresh images every epoch against a fixed 10k set (1,560 steps, 128 px)", "online",
     lambda v: "online" if v else "fixed", {"steps": 1560, "render": 128, "seed": 0}),
)
KNOB_READOUTS = ("fc6", "knn")  # the headline linear read-out and kNN, as "fc6 / knn" in each cell


def _trained_runs(results: dict[str, dict[str, Any]], dataset: str, fixed: dict[str, Any]
                  ) -> Iterator[tuple[dict[str, Any], dict[str, float]]]:
    """(settings, evaluation on ``dataset``) of each finished trained run whose settings include ``fixed``
    (the real baseline keeps the default render size, so it matches a fixed 128 px)."""
    for res in results.values():
        st, ev = res["settings"], res["evals"].get(dataset)
        if ev and not _is_random(res) and all(st.get(k) == v for k, v in fixed.items()):
            yield st, ev


def knob_results(results: dict[str, dict[str, Any]], dataset: str, key: str, fixed: dict[str, Any]
                 ) -> dict[str, dict[Any, dict[str, float]]]:
    """Per anchor, the evaluations on ``dataset`` of the finished runs that vary ``key`` with ``fixed`` held,
    by the value of ``key``; only anchors with two values or more. The real baseline ignores the render size."""
    found: dict[str, dict[Any, dict[str, float]]] = {}
    for st, ev in _trained_runs(results, dataset, fixed):
        if not (key == "render" and st["anchor"] == "real"):
            found.setdefault(st["anchor"], {})[st[key]] = ev
    return {a: by_value for a, by_value in found.items() if len(by_value) > 1}


def _knob_tables(results: dict[str, dict[str, Any]], dataset: str) -> list[str]:
    """One table per knob: rows are anchors, columns the knob's values, cells ``fc6 / knn`` of the finished runs.

    A knob appears once some anchor has two of its values.
    """
    lines: list[str] = []
    for title, key, label, fixed in KNOBS:
        cells = {a: {v: " / ".join(f"{ev[r]:.1f}" for r in KNOB_READOUTS) for v, ev in by_value.items()}
                 for a, by_value in knob_results(results, dataset, key, fixed).items()}
        if not cells:
            continue
        values = sorted({v for c in cells.values() for v in c})
        anchors = [a for a in ANCHORS if a in cells]
        lines += [f"### {title}", "", f"Top-1, {' / '.join(KNOB_READOUTS)}:", "",
                  "| anchor | " + " | ".join(label(v) for v in values) + " |", "|---|" + "---:|" * len(values)]
        lines += [f"| {a} | " + " | ".join(cells[a].get(v, "") for v in values) + " |" for a in anchors]
        floor = [random_spread(results, dataset, r) for r in KNOB_READOUTS]
        if all(floor):
            lines += ["", "Random init (mean of its seeds): " + " / ".join(f"{m:.1f}" for m, _ in floor) + "."]
        lines.append("")
    return lines


def _gain_table(ordered: list[tuple[str, dict[str, Any]]], results: dict[str, dict[str, Any]], dataset: str
                ) -> list[str]:
    """Each trained run's gain over random init per read-out: points, and random-init seed sds once known."""
    floor = {r: random_spread(results, dataset, r) for r in READOUTS}
    base = results.get("random-s0", {}).get("evals", {}).get(dataset)
    if not base:
        return []
    lines = ["Gain over random init (points above the random-init mean; in random-init seed sds once "
             "several seeds are in):", "", "| run | " + " | ".join(READOUTS) + " |", "|---|" + "---:|" * len(READOUTS)]
    for name, res in ordered:
        ev = res["evals"].get(dataset)
        if not ev or _is_random(res):
            continue
        cells = []
        for r in READOUTS:
            mean, sd = floor[r] if floor[r] else (base[r], None)
            gain = ev[r] - mean
            cells.append(f"{gain:+.1f}" + (f" ({gain / sd:.0f} sd)" if sd else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _anchor_orders(results: dict[str, dict[str, Any]], dataset: str) -> list[str]:
    """The order of the synthetic anchors (128 px renders, fixed images, seed 0) and random init's mean, per
    training length, on every read-out."""
    synthetic = ("stylegan", "deadleaves", "spectrum")  # the paper's order
    by_steps: dict[int, dict[str, dict[str, float]]] = {}
    for st, ev in _trained_runs(results, dataset, LENGTH_FIXED):
        if st["anchor"] in synthetic:
            by_steps.setdefault(st["steps"], {})[st["anchor"]] = ev
    floor = {r: random_spread(results, dataset, r) for r in READOUTS}
    if not all(floor.values()):
        return []
    lines = []
    for steps, have in sorted(by_steps.items()):
        if len(have) < 2:
            continue
        orders = []
        for r in READOUTS:
            scores = {**{a: ev[r] for a, ev in have.items()}, "random": floor[r][0]}
            orders.append(f"{r}: " + " > ".join(sorted(scores, key=scores.get, reverse=True)))
        lines += [f"Anchor order at {steps:,} steps (paper: {' > '.join(synthetic)} > random; random init is the "
                  "mean of its seeds): " + "; ".join(orders) + ".", ""]
    return lines


DATASET_NAMES = {"cifar10": "CIFAR-10", "tin100": f"Tiny-ImageNet-32, {TIN_CLASSES}-class subset"}
DATASET_SPLITS = {"cifar10": f"{CIFAR_TRAIN_PER_CLASS * 10 // 1000}k train subset / 10k test",
                  "tin100": f"{TIN_TRAIN_PER_CLASS} / 50 per class"}
DATASET_TITLES = {ds: f"{name} ({DATASET_SPLITS[ds]})" for ds, name in DATASET_NAMES.items()}
LENGTH_CHART = "training_length.png"


def plot_training_length(results: dict[str, dict[str, Any]]) -> bool:
    """Draw each anchor's top-1 against training steps (fc6 and kNN, one row per dataset) over random init's
    seed band into ``training_length.png``; False (and no file) while no anchor has two training lengths."""
    curves = {ds: knob_results(results, ds, "steps", LENGTH_FIXED) for ds in DATASET_TITLES}
    curves = {ds: by_anchor for ds, by_anchor in curves.items() if by_anchor}
    if not curves:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(len(curves), len(KNOB_READOUTS), figsize=(5.2 * len(KNOB_READOUTS), 3.8 * len(curves)),
                             squeeze=False)
    for row, (ds, by_anchor) in zip(axes, curves.items()):
        steps = sorted({s for by_steps in by_anchor.values() for s in by_steps})
        for ax, readout in zip(row, KNOB_READOUTS):
            for anchor in (a for a in ANCHORS if a in by_anchor):
                xs = sorted(by_anchor[anchor])
                ax.plot(xs, [by_anchor[anchor][x][readout] for x in xs], marker="o", label=ANCHORS[anchor])
            floor = random_spread(results, ds, readout)
            if floor:
                mean, sd = floor
                ax.axhline(mean, color="grey", ls="--", lw=1, label="random init (mean ± sd of its seeds)")
                ax.axhspan(mean - sd, mean + sd, color="grey", alpha=0.2, lw=0)
            ax.set_xscale("log", base=2)
            ax.set_xticks(steps, [f"{s:,}" for s in steps])
            ax.minorticks_off()
            ax.set_xlabel("training steps of 256 images")
            ax.set_ylabel(f"{readout} top-1 (%)")
            ax.set_title(DATASET_NAMES[ds], fontsize=10)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Protocol study: training length (128 px renders, fixed 10k images, seed 0)", fontsize=11)
    fig.tight_layout()
    save_png(fig, OUT / LENGTH_CHART, dpi=110)
    return True


def write_report() -> str:
    results = load_results()
    runs = study_runs()
    ordered = [(k, results[k]) for k in runs if k in results] + [(k, v) for k, v in results.items() if k not in runs]
    lines = ["# Protocol study: tables (generated by `bench/protocol_study.py --report`)", ""]
    if plot_training_length(results):
        lines += [f"![top-1 against training steps]({LENGTH_CHART})", ""]
    for ds, title in DATASET_TITLES.items():
        lines += [f"## {title}", ""] + _table(ordered, ds) + [""]
        spread = {r: random_spread(results, ds, r) for r in READOUTS}
        if any(spread.values()):
            lines.append("Random-init seed spread (mean ± sd over seeds): " + ", ".join(
                f"{r} {m:.1f} ± {s:.2f}" for r, v in spread.items() if v for m, s in [v]))
            lines.append("")
        lines += _gain_table(ordered, results, ds) + _knob_tables(results, ds) + _anchor_orders(results, ds)
    text = "\n".join(lines)

    atomic_write_text(OUT / "tables.md", text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="", help="comma-separated run names (default: every planned run, in order)")
    ap.add_argument("--datasets", default="cifar10,tin100")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "noisevision-study"))
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--list", action="store_true",
                    help="list planned runs and whether they are evaluated on every one of --datasets")
    ap.add_argument("--report", action="store_true", help="rebuild the tables from the committed run files")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    runs = study_runs()
    datasets = [d for d in args.datasets.split(",") if d]
    if args.list:
        results = load_results()
        for name in runs:
            evaluated = [d for d in datasets if d in results.get(name, {}).get("evals", {})]
            status = "done" if len(evaluated) == len(datasets) else "part" if evaluated else ""
            print(f"{status:4}  {name}" + (f"  (evaluated on {', '.join(evaluated)})" if status == "part" else ""))
        return 0
    if args.report:
        print(write_report())
        return 0
    names = [n for n in args.runs.split(",") if n] or list(runs)
    unknown = [n for n in names if n not in runs]
    if unknown:
        print(f"unknown run(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    for name in names:
        run_one(runs[name], datasets, Path(args.work), args.data_root, not args.no_progress)
    write_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
