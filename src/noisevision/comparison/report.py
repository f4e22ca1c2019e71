"""Render benchmark rows into Markdown and keep named sections of a doc up to date."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from ..plotting import pyplot, save_png
from .stats import DEFAULT_REPLICATES, MIN_RANKED, order_agreement, rank_table, spearman_interval, trained_seed_sd


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` restricted to ``columns``."""
    headers = list(headers or columns)

    def fmt(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def update_markdown_section(path: str | os.PathLike, section: str, body: str, title: str = "Benchmarks") -> None:
    """Replace (or append) the block between ``<!-- begin:section -->`` and ``<!-- end:section -->``."""
    path = Path(path)
    text = path.read_text() if path.exists() else f"# {title}\n\n"
    begin, end = f"<!-- begin:{section} -->", f"<!-- end:{section} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(path, text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ------------------------------------------------------------------ the comparison report

FAMILY_COLORS = {
    "baseline": "#7f7f7f",
    "dead leaves": "#1f77b4",
    "statistical": "#2ca02c",
    "stylegan": "#d62728",
    "feature vis": "#9467bd",
    "fractal": "#8c564b",
    "mixup (beyond paper)": "#e377c2",
    "fdsl": "#bcbd22",
}


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Average rows over seeds per (entry, dataset); add the seed spread (std of top-1)."""
    import numpy as np

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["entry"], r["dataset"]), []).append(r)
    out = []
    for (entry, ds), rs in groups.items():
        agg = {k: v for k, v in rs[0].items() if k != "outcomes"}  # per-seed outcomes stay in the rows
        for k in ("top1", "top1_bn", "top5", "knn", "alignment", "uniformity", "pretrain_seconds", "pretrain_images_per_s"):
            vals = [r[k] for r in rs if r.get(k) is not None]
            agg[k] = float(np.mean(vals)) if vals else None
        agg["seeds"] = [r["seed"] for r in rs]
        for k in ("top1", "top1_bn", "knn"):
            vals = [r[k] for r in rs if r.get(k) is not None]
            agg[f"{k}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        out.append(agg)
    return out


def comparison_summary(rows: Sequence[dict[str, Any]], dataset: str, metric: str = "top1") -> dict[str, Any]:
    """Spearman rank correlation with the paper's ordering and the gap closure of ``metric``, for one dataset."""
    from scipy.stats import spearmanr

    rs = [r for r in rows if r["dataset"] == dataset and r.get(metric) is not None]
    # the paper's own families only: fractal/ifs shows FractalDB's number for reference but is not one of them
    paper = [r for r in rs if r.get("paper_family") and r.get("paper_top1") is not None]
    rho = None
    if len(paper) >= MIN_RANKED:
        rho = float(spearmanr([r[metric] for r in paper], [r["paper_top1"] for r in paper]).statistic)
    rand = next((r[metric] for r in rs if r["kind"] == "random"), None)
    real = next((r[metric] for r in rs if r["kind"] == "real"), None)
    synth = [r for r in rs if r["kind"] == "generator"]
    best = max(synth, key=lambda r: r[metric]) if synth else None
    gap = None
    if best and rand is not None and real is not None and real != rand:
        gap = (best[metric] - rand) / (real - rand)
    # The suite's signal: real minus random, against the largest seed-to-seed sd of any multi-seed entry.
    diff = real - rand if rand is not None and real is not None else None
    sd, sd_entry = max(((r[f"{metric}_std"], r["entry"]) for r in rs if r.get(f"{metric}_std") is not None),
                       default=(None, None))
    return {"dataset": dataset, "metric": metric, "spearman_vs_paper": rho, "paper_families_compared": len(paper),
            "random_top1": rand, "real_top1": real, "best_entry": best["entry"] if best else None,
            "best_top1": best[metric] if best else None, "gap_closure": gap, "real_minus_random": diff,
            "largest_seed_sd": sd, "largest_seed_sd_entry": sd_entry,
            "gap_in_seed_sds": diff / sd if diff is not None and sd else None}


SECONDARY_METRICS = ("top1_bn", "knn")
METRIC_LABELS = {"top1": "Linear top-1", "top1_bn": "Linear top-1 with BN statistics re-estimated",
                 "knn": "kNN top-1"}


def seed_spread(rows: Sequence[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    """Entries of ``dataset`` run with several seeds: their seeds and top-1 standard deviations."""
    return [{"entry": r["entry"], "seeds": r["seeds"], "top1_std": r["top1_std"], "top1_bn_std": r.get("top1_bn_std"),
             "knn_std": r.get("knn_std")}
            for r in rows if r["dataset"] == dataset and len(r.get("seeds", [])) > 1]


def _family_patches(families: Any) -> list[Any]:
    """Legend handles: one patch per family, in its colour."""
    from matplotlib.patches import Patch

    return [Patch(color=FAMILY_COLORS.get(f, "#17becf"), label=f) for f in families]


def _metric_parts(s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A dataset summary's parts by metric: the headline ``top1`` (the summary itself) and the others."""
    return {"top1": s, **s["other_metrics"]}


def bar_chart(rows: Sequence[dict[str, Any]], dataset: str, path: str | os.PathLike, title: str) -> None:
    """The paper's figure: bars grouped and coloured by family, baselines as dashed lines."""
    plt = pyplot()

    rs = [r for r in rows if r["dataset"] == dataset and r.get("top1") is not None]
    bars = [r for r in rs if r["kind"] == "generator"]
    order = list(FAMILY_COLORS)
    bars.sort(key=lambda r: (order.index(r["family"]) if r["family"] in order else len(order), r["top1"]))
    # baseline labels sit right of the axes and the legend below that corner, so nothing hides a bar or a label
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(bars) + 4), 4.5))
    xs = range(len(bars))
    colors = [FAMILY_COLORS.get(r["family"], "#17becf") for r in bars]
    ax.bar(xs, [r["top1"] for r in bars], color=colors)
    spread = [(x, r["top1"], r["top1_std"]) for x, r in zip(xs, bars) if r.get("top1_std")]
    if spread:  # seed sd, only where an entry ran several seeds (a zero-length bar would look like a marker)
        ax.errorbar([x for x, _, _ in spread], [v for _, v, _ in spread], yerr=[sd for _, _, sd in spread],
                    fmt="none", ecolor="black", elinewidth=1, capsize=3)
    bn = [(x, r["top1_bn"]) for x, r in zip(xs, bars) if r.get("top1_bn") is not None]
    if bn:
        ax.scatter([x for x, _ in bn], [v for _, v in bn], marker="_", s=120, color="black", zorder=3,
                   label="BN statistics re-estimated")
    for x, r in zip(xs, bars):  # the value above the bar, its error bar and its BN marker
        top = max(r["top1"] + (r.get("top1_std") or 0), r.get("top1_bn") or 0)
        ax.text(x, top + 0.3, f"{r['top1']:.1f}", ha="center", va="bottom", fontsize=7)
    for kind, label, style in (("random", "random init", "--"), ("real", "real data", "--")):
        base = next((r for r in rs if r["kind"] == kind), None)
        if base:
            ax.axhline(base["top1"], ls=style, color="black" if kind == "real" else "gray", lw=1)
            ax.annotate(f"{label} {base['top1']:.1f}", (1.0, base["top1"]), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", ha="left", fontsize=8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r["entry"] for r in bars], rotation=55, ha="right", fontsize=8)
    ax.set_ylabel("linear probe top-1 (%)")
    lows = [r["top1"] for r in rs] + [r["top1_bn"] for r in rs if r.get("top1_bn") is not None]
    ax.set_ylim(max(0, min(lows) - 5), max(lows) + 3)
    ax.set_title(title, fontsize=10)
    handles = _family_patches(f for f in order if any(r["family"] == f for r in bars))
    if bn:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="_", ls="", color="black", markersize=10,
                              label="top-1 with BN statistics re-estimated"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, -0.02), frameon=False)
    fig.tight_layout()

    save_png(fig, path, dpi=120, bbox_inches="tight")


def rank_plot(agg: Sequence[dict[str, Any]], summary: dict[str, Any], dataset: str, path: str | os.PathLike,
              metrics: Sequence[str]) -> None:
    """Our accuracy against the paper's ImageNet-100 top-1 for each of the paper's families, one panel per
    metric, coloured by family, with the baselines as lines and the Spearman correlation and its interval
    in each title: the rank table at a glance (a correlation of 1 is any rising line)."""
    plt = pyplot()

    parts = _metric_parts(summary)
    fams = [r for r in agg if r["dataset"] == dataset and r.get("paper_family") and r.get("paper_top1") is not None]
    base = {r["kind"]: r for r in agg if r["dataset"] == dataset and r["kind"] in ("random", "real")}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        have = [r for r in fams if r.get(m) is not None]
        for r in have:
            color = FAMILY_COLORS.get(r["family"], "#17becf")
            ax.scatter(r["paper_top1"], r[m], color=color, s=28, zorder=3)
            if r.get(f"{m}_std"):
                ax.errorbar(r["paper_top1"], r[m], yerr=r[f"{m}_std"], fmt="none", ecolor=color, capsize=2)
            ax.annotate(r["entry"].split("/", 1)[-1], (r["paper_top1"], r[m]), xytext=(3, 2),
                        textcoords="offset points", fontsize=6, color=color)
        for kind, label, color in (("random", "random init", "gray"), ("real", "real data", "black")):
            if base.get(kind, {}).get(m) is not None:
                ax.axhline(base[kind][m], ls="--", lw=1, color=color)
                ax.annotate(f"{label} {base[kind][m]:.1f}", (0.01, base[kind][m]), xycoords=("axes fraction", "data"),
                            xytext=(0, 2), textcoords="offset points", fontsize=7, color=color)
        p = parts[m]
        title = METRIC_LABELS[m]
        if p.get("spearman_vs_paper") is not None:
            title += f"\nSpearman {p['spearman_vs_paper']:.2f}"
            ci = p.get("spearman_ci") or {}
            if ci.get("available"):
                title += f" [{ci['low']:.2f}, {ci['high']:.2f}]"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("paper: ImageNet-100 linear top-1 (%)", fontsize=8)
        ax.set_ylabel(f"ours: {dataset} (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    handles = _family_patches(f for f in FAMILY_COLORS if any(r["family"] == f for r in fams))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_png(fig, path, dpi=120)


def write_report(rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike, profile: str,
                 datasets: Sequence[str], description: str = "", bootstrap_replicates: int = DEFAULT_REPLICATES,
                 bootstrap_seed: int = 0, not_run: Sequence[str] = ()) -> dict[str, Any]:
    """rows -> results.md, chart_<dataset>.png, ranks_<dataset>.png (with 3 or more paper families) and
    summary.json in ``out_dir``; nothing else.

    ``not_run`` names the runs of the suite that have no results yet (a suite reported part-way).

    Per dataset and metric, besides the table: the Spearman correlation with the paper and its
    bootstrap interval (``bootstrap_replicates`` replicates seeded by ``bootstrap_seed``), the gap
    closure, our rank of each paper family next to the paper's, and which orders agree with the paper's.
    """
    out_dir = Path(out_dir)
    agg = aggregate(rows)
    with_bn = any(r.get("top1_bn") is not None for r in agg)
    summaries = []
    lines = [f"# noisevision compare: profile `{profile}`\n"]
    if description:
        lines.append(f"{description}\n")
    if not_run:
        lines.append(f"**Part-way**: {len(not_run)} runs of this suite have no results yet, and every figure below "
                     f"covers only the runs that do. Not run yet: {', '.join(not_run)}.\n")
    cols = ["family", "entry", "top1", "top1_std"] + (["top1_bn"] if with_bn else []) + [
        "top5", "knn", "alignment", "uniformity", "pretrain_seconds", "pretrain_images_per_s", "paper_top1"]
    heads = ["family", "generator", "top-1", "seed sd"] + (["top-1 BN re-est."] if with_bn else []) + [
        "top-5", "kNN", "alignment", "uniformity", "pretrain s", "pretrain img/s", "paper IN-100 top-1"]
    for d in datasets:
        s = comparison_summary(agg, d)
        s["seed_spread"] = seed_spread(agg, d)
        # the same figures for the secondary metrics (BN re-estimated top-1 when probed, kNN)
        s["other_metrics"] = {m: comparison_summary(agg, d, m) for m in SECONDARY_METRICS
                              if m != "top1_bn" or with_bn}
        metrics = ["top1", *s["other_metrics"]]
        for m, part in _metric_parts(s).items():
            part["spearman_ci"] = spearman_interval(rows, d, m, bootstrap_replicates, bootstrap_seed)
            # single-seed entries borrow the seed noise of the trained entries that ran several seeds
            noise = trained_seed_sd(rows, d, m)
            seed_sd = noise["sd"] if noise else None
            part["trained_seed_sd"] = noise
            if noise:
                part["gap_in_trained_seed_sds"] = (part["real_minus_random"] / seed_sd
                                                   if part["real_minus_random"] is not None and seed_sd else None)
                part["spearman_ci_seeds"] = spearman_interval(rows, d, m, bootstrap_replicates, bootstrap_seed,
                                                              seed_sd=seed_sd)
            part["orders"] = order_agreement(agg, d, m, rows, seed_sd)
        s["rank_table"] = rank_table(agg, d, metrics)
        summaries.append(s)
        rs = sorted([r for r in agg if r["dataset"] == d], key=lambda r: (r["kind"] != "random", r["kind"] == "real",
                                                                          r["family"], -(r["top1"] or 0)))
        lines.append(f"## {d}\n")
        lines.append(markdown_table(rs, cols, heads))
        lines.append("\n" + _summary_sentence(s, METRIC_LABELS["top1"]))
        lines += [_summary_sentence(other, METRIC_LABELS[m]) for m, other in s["other_metrics"].items()]
        for sp in s["seed_spread"]:
            bn_sd = f", {sp['top1_bn_std']:.2f} with BN re-estimated" if sp.get("top1_bn_std") is not None else ""
            knn_sd = f", kNN {sp['knn_std']:.2f}" if sp.get("knn_std") is not None else ""
            lines.append(f"Seed-to-seed spread of {sp['entry']} (seeds {', '.join(map(str, sp['seeds']))}): "
                         f"top-1 sd **{sp['top1_std']:.2f}**{bn_sd}{knn_sd}.\n")
        lines += _trained_spread_lines(s, metrics)
        lines += _rank_section(s, metrics)
        if len(s["rank_table"]) >= MIN_RANKED:
            rank_plot(agg, s, d, out_dir / f"ranks_{_slug(d)}.png", metrics)
            lines.append(f"![our accuracy against the paper's, per paper family](ranks_{_slug(d)}.png)\n")
        lines.append(f"![chart](chart_{_slug(d)}.png)\n")
        bar_chart(agg, d, out_dir / f"chart_{_slug(d)}.png", f"{d} linear probe ({profile} profile)")
    compute = compute_time(rows)
    if compute:
        longest = compute["longest_run"]
        lines.append(f"Measured compute of these {compute['runs']} runs (entry x seed): **{compute['total_hours']:.2f} h** "
                     f"(generation {compute['gen_hours']:.2f} h, pretraining {compute['pretrain_hours']:.2f} h, "
                     f"probes {compute['probe_hours']:.2f} h); longest run {longest['entry']} (seed {longest['seed']}): "
                     f"{longest['minutes']:.1f} min.\n")
    precisions = precision_groups(rows)
    if len(precisions) > 1:
        groups = "; ".join(f"{p}: {', '.join(entries)}" for p, entries in precisions.items())
        lines.append(f"**Mixed precision**: these runs did not all train and probe in the same arithmetic, so "
                     f"small differences between them are not comparable ({groups}).\n")
    analysis_lines, analysis = analysis_report(agg, datasets, out_dir, profile)
    lines += analysis_lines
    atomic_write_text(out_dir / "results.md", "\n".join(lines))
    summary = {"profile": profile, "datasets": summaries, "rows": len(rows), "compute": compute,
               "precision": {p: len(entries) for p, entries in precisions.items()}}
    if not_run:
        summary["not_run"] = list(not_run)
    if analysis:
        summary["analysis"] = analysis
    write_json(out_dir / "summary.json", summary)
    return summary


def precision_groups(rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The runs grouped by the arithmetic they trained and probed in (``"fp32"``, ``"train bfloat16, probe fp32"``).

    Rows without a record (random init has no training; results from before it was kept) join no group.
    """
    groups: dict[str, list[str]] = {}
    for r in rows:
        prec = r.get("precision") or {}
        train, probe = prec.get("pretrain"), prec.get("probe")
        if train is None and probe is None:
            continue
        if train is None or probe is None or train == probe:
            label = train or probe
        else:
            label = f"train {train}, probe {probe}"
        run = f"{r['entry']} (seed {r['seed']})"
        if run not in groups.setdefault(label, []):
            groups[label].append(run)
    return groups


def compute_time(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Measured compute of the suite from its per-run rows: total hours by stage and the longest run.

    A run is one (entry, seed) with its generation, pretraining and probes on every dataset; its stages
    come from the cached JSONs, so the figure covers the whole suite even when it ran in pieces.
    """
    runs: dict[tuple[str, int], dict[str, float]] = {}
    for r in rows:
        run = runs.setdefault((r["entry"], r["seed"]), {"gen": 0.0, "pretrain": 0.0, "probe": 0.0})
        run["gen"] = r.get("gen_seconds") or run["gen"]  # once per run, repeated on each dataset's row
        run["pretrain"] = r.get("pretrain_seconds") or run["pretrain"]
        run["probe"] += r.get("probe_seconds") or 0.0
    if not runs:
        return {}
    totals = {k: sum(run[k] for run in runs.values()) for k in ("gen", "pretrain", "probe")}
    (entry, seed), longest = max(runs.items(), key=lambda kv: sum(kv[1].values()))
    return {"runs": len(runs), "total_hours": round(sum(totals.values()) / 3600, 2),
            **{f"{k}_hours": round(v / 3600, 2) for k, v in totals.items()},
            "longest_run": {"entry": entry, "seed": seed, "minutes": round(sum(longest.values()) / 60, 1)}}


def _headline_figures(s: dict[str, Any]) -> dict[str, str]:
    """The figures a run of this size has, formatted: ``rho`` (given 3 or more paper families), and ``gap``
    (the gap closure, given both baselines) or else ``margin`` (the best entry over random init)."""
    out = {}
    if s["paper_families_compared"] >= MIN_RANKED:
        out["rho"] = "n/a" if s["spearman_vs_paper"] is None else f"{s['spearman_vs_paper']:.2f}"
    if s["gap_closure"] is not None:
        out["gap"] = f"{100 * s['gap_closure']:.0f}%"
    elif s["best_top1"] is not None and s["random_top1"] is not None:
        out["margin"] = f"{s['best_top1'] - s['random_top1']:+.1f}"
    return out


def _summary_sentence(s: dict[str, Any], label: str) -> str:
    """One results.md line per metric: the headline figures, and real minus random against the seed noise."""
    figures, parts = _headline_figures(s), []
    best = f" ({s['best_entry']})" if s["best_entry"] else ""
    if "rho" in figures:
        parts.append(f"Spearman rank correlation with the paper's ordering ({s['paper_families_compared']} paper "
                     f"families): **{figures['rho']}**.")
    if "gap" in figures:
        parts.append(f"Gap closure of the best synthetic entry{best}: **{figures['gap']}** "
                     "(best - random) / (real - random).")
    if "margin" in figures:
        parts.append(f"Best synthetic entry{best} minus random init: **{figures['margin']}** points.")
    if s.get("real_minus_random") is not None:
        signal = f"Real minus random: **{s['real_minus_random']:.1f}** points"
        if s.get("gap_in_seed_sds") is not None:
            signal += (f", {s['gap_in_seed_sds']:.0f} times the largest seed-to-seed sd "
                       f"({s['largest_seed_sd']:.2f}, {s['largest_seed_sd_entry']})")
        parts.append(signal + ".")
    return f"{label}: {' '.join(parts) or 'no baseline or paper family to compare with.'}\n"


def dataset_headlines(s: dict[str, Any]) -> list[str]:
    """Lines for the terminal, one per metric of a dataset summary: the headline figures of results.md,
    with the correlation's intervals."""
    lines = []
    for metric, part in _metric_parts(s).items():
        figures, parts = _headline_figures(part), []
        best = f" (best: {part['best_entry']})" if part["best_entry"] else ""
        if "rho" in figures:
            ci, seeds = part.get("spearman_ci", {}), part.get("spearman_ci_seeds") or {}
            interval = ""
            if ci.get("available"):
                with_seeds = (f"; {seeds['low']:.2f} to {seeds['high']:.2f} counting training seeds"
                              if seeds.get("available") else "")
                interval = f" ({100 * ci['level']:.0f}% interval {ci['low']:.2f} to {ci['high']:.2f}{with_seeds})"
            parts.append(f"Spearman vs paper {figures['rho']}{interval}")
        if "gap" in figures:
            parts.append(f"gap closure {figures['gap']}{best}")
        if "margin" in figures:
            parts.append(f"best minus random init {figures['margin']} points{best}")
        label = METRIC_LABELS[metric][0].lower() + METRIC_LABELS[metric][1:]
        lines.append(f"{s['dataset']}, {label}: {'; '.join(parts) or 'nothing to compare'}")
    return lines


def _trained_spread_lines(s: dict[str, Any], metrics: Sequence[str]) -> list[str]:
    """results.md lines: the trained encoders' pooled seed sd per metric, and real minus random in units
    of it (random init's own spread says nothing of how much a second training seed moves a result)."""
    parts = _metric_parts(s)
    have = [(m, parts[m]["trained_seed_sd"]) for m in metrics if parts[m].get("trained_seed_sd")]
    if not have:
        return []
    text = []
    for m, noise in have:
        gap = parts[m].get("gap_in_trained_seed_sds")
        text.append(f"{METRIC_LABELS[m]} **{noise['sd']:.2f}**"
                    + (f" (real minus random is {gap:.0f} of them)" if gap is not None else ""))
    first = have[0][1]
    freedom = f"{first['df']} degree{'s' if first['df'] != 1 else ''} of freedom"
    lent = any((parts[m].get("spearman_ci_seeds") or {}).get("available") for m, _ in have)
    return [f"Seed-to-seed sd of a trained encoder, pooled over {', '.join(first['entries'])} ({freedom}): "
            f"{'; '.join(text)}." + (" The single-seed entries borrow it for the intervals below that count "
                                     "training seeds." if lent else "") + "\n"]


def _rank_label(rank: float | None) -> str | None:
    return None if rank is None else f"{rank:g}"


def _interval_text(ci: dict[str, Any]) -> str:
    if not ci.get("available"):
        return f"interval unavailable: {ci['reason']}"
    return f"{100 * ci['level']:.0f}% interval [{ci['low']:.2f}, {ci['high']:.2f}]"


def _rank_section(s: dict[str, Any], metrics: Sequence[str]) -> list[str]:
    """results.md lines: the rank table, the intervals of the correlation, and the order agreement."""
    table = s["rank_table"]
    if len(table) < MIN_RANKED:
        return [f"No ranking against the paper: this run has {len(table)} of its families, and a rank correlation "
                f"needs at least {MIN_RANKED}.\n"] if table else []
    parts = _metric_parts(s)
    short = {"top1": "top-1", "top1_bn": "top-1 BN re-est.", "knn": "kNN"}
    cols, heads = ["family", "entry", "paper_top1", "paper_rank"], ["family", "generator", "paper IN-100 top-1",
                                                                     "paper rank"]
    for m in metrics:
        cols += [m, f"{m}_rank"]
        heads += [short.get(m, m), "rank"]
    shown = [{**r, **{k: _rank_label(r.get(k)) for k in r if k.endswith("_rank")}} for r in table]
    lines = ["### Ranks against the paper\n",
             f"Rank 1 is the best of the paper's {len(table)} families; the paper ranks them by ImageNet-100 "
             "linear top-1.\n", markdown_table(shown, cols, heads)]
    ci = s["spearman_ci"]
    resampled = "test images, the same draw for every entry" + (
        ", and each multi-seed entry's seeds with replacement, averaged" if ci.get("seeds_resampled") else "")
    lines.append(f"Spearman correlation with the paper and its {100 * ci['level']:.0f}% bootstrap interval "
                 f"({ci['replicates']} replicates, seed {ci['seed']}, resampling {resampled}):\n")
    for m in metrics:
        p = parts[m]
        rho = "n/a" if p["spearman_vs_paper"] is None else f"{p['spearman_vs_paper']:.2f}"
        seeds = p.get("spearman_ci_seeds") or {}
        with_seeds = (f"; counting training seeds too, {_interval_text(seeds)} (seed sd {seeds['seed_sd']:.2f})"
                      if seeds.get("available") else "")
        lines.append(f"- {METRIC_LABELS[m]}: **{rho}**, {_interval_text(p['spearman_ci'])}{with_seeds}")
    if any((parts[m].get("spearman_ci_seeds") or {}).get("available") for m in metrics):
        lines.append("\nThe interval counting training seeds also draws, in each replicate, every single-seed "
                     "entry's value around its own with the trained encoders' pooled seed sd (above), for the "
                     "seed it did not run.")
    within = {m: parts[m]["orders"]["within_family"] for m in metrics}
    fams = [w["family"] for w in within[metrics[0]]]
    if fams:  # only families with two or more members run have an order
        seed_noise = any("swaps_within_seed_noise" in w for m in metrics for w in within[m])
        lines.append("\nOrder within each family (Kendall tau with the paper's order; `x < y`: we rank x, the "
                     "paper's higher one, below y; a swap is *within test-image noise* when the 95% interval of the "
                     "paired difference over the test images includes zero" +
                     (", and *within seed noise* when the interval that also counts retraining each side with "
                      "another seed (the pooled seed sd above) does):\n" if seed_noise else
                      ", and training seeds add noise on top):\n"))
        rows = []
        for fam in fams:
            row = {"family": fam, "paper": " > ".join(next(w for w in within[metrics[0]] if w["family"] == fam)
                                                      ["paper_order"])}
            for m in metrics:
                w = next((w for w in within[m] if w["family"] == fam), None)
                row[m] = None if w is None else _agreement_text(w)
            rows.append(row)
        lines.append(markdown_table(rows, ["family", "paper", *metrics],
                                    ["family", "paper order (best first)", *[short.get(m, m) for m in metrics]]))
    across = parts[metrics[0]]["orders"]["across_family"]
    if len(across["paper_order"]) >= 2:
        lines.append(f"Across families (mean of each family's members above): paper "
                     f"{' > '.join(across['paper_order'])}.\n")
        for m in metrics:
            a = parts[m]["orders"]["across_family"]
            rho = "n/a" if a["spearman"] is None else f"{a['spearman']:.2f}"
            lines.append(f"- {METRIC_LABELS[m]}: {' > '.join(a['our_order'])} ({_agreement_text(a)}; "
                         f"Spearman {rho})")
    lines.append("")
    return lines


def _agreement_text(a: dict[str, Any], listed: int = 3) -> str:
    """``same order``, or tau and the pairs we order the other way (``x < y``: we put the paper's higher x
    below y); more than ``listed`` pairs are only counted (summary.json lists them all)."""
    tau = "n/a" if a["kendall_tau"] is None else f"{a['kendall_tau']:.2f}"
    if a["same_order"]:
        return f"same order (tau {tau})"
    total = a["concordant"] + len(a["swapped"]) + len(a["tied"])
    text = f"tau {tau}; {len(a['swapped'])} of {total} pairs swapped"
    if 0 < len(a["swapped"]) <= listed:
        text += ": " + ", ".join(f"{hi} < {lo}" for hi, lo in a["swapped"])
    if a["tied"]:
        text += f"; {len(a['tied'])} tied"
    if "swaps_within_noise" in a:
        text += f"; {a['swaps_within_noise']} of the swaps within test-image noise"
    if "swaps_within_seed_noise" in a:
        text += f", {a['swaps_within_seed_noise']} within seed noise"
    return text


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# ------------------------------------------------------------------ dataset statistics against accuracy

ANALYSIS_STATS: dict[str, str] = {  # the summary of ``noisevision analyze``: key -> label
    "spectrum_alpha": "spectrum slope alpha", "spectrum_alpha_std": "alpha spread", "saturation": "saturation",
    "colourfulness": "colourfulness", "contrast": "RMS contrast", "orientation_entropy": "orientation entropy",
    "edge_density": "edge density", "wavelet_kurtosis": "wavelet kurtosis", "diversity": "diversity",
    "fid": "FID to real", "kid": "KID to real",
}
PAPER_DIRECTION = {"fid": -1, "kid": -1, "diversity": 1}
"""The sign the paper's reading predicts: data closer to real images and more diverse trains better features."""


def analysed_rows(rows: Sequence[dict[str, Any]], dataset: str, metric: str = "top1") -> list[dict[str, Any]]:
    """The generator rows of ``dataset`` that the statistics are related to: analysed (their statistics may be
    missing), with ``metric``, trained with the profile's method (an ``@supervised`` FDSL entry shares its data
    with the SSL entry of the same generator, so counting it would count that data twice)."""
    return [r for r in rows if r["dataset"] == dataset and r["kind"] == "generator" and "analysis" in r
            and r.get(metric) is not None and not r.get("method")]


def analysis_correlations(rows: Sequence[dict[str, Any]], dataset: str, metric: str = "top1") -> list[dict[str, Any]]:
    """Per statistic: the Spearman rank correlation with ``metric`` across the analysed generator entries of
    ``dataset`` (None under 3 entries or when either side is constant), its p-value, and whether its sign is
    the one the paper's reading predicts (None where the paper predicts none)."""
    from scipy.stats import spearmanr

    rs = [r for r in analysed_rows(rows, dataset, metric) if r["analysis"]]
    out = []
    for stat in ANALYSIS_STATS:
        pairs = [(r["analysis"][stat], r[metric]) for r in rs if r["analysis"].get(stat) is not None]
        rho = p = None
        if len(pairs) >= 3 and len({x for x, _ in pairs}) > 1 and len({y for _, y in pairs}) > 1:
            res = spearmanr([x for x, _ in pairs], [y for _, y in pairs])
            rho, p = float(res.statistic), float(res.pvalue)
        direction = PAPER_DIRECTION.get(stat)
        agrees = None if direction is None or rho is None or rho == 0 else (rho > 0) == (direction > 0)
        out.append({"statistic": stat, "spearman": rho, "p_value": p, "entries": len(pairs),
                    "paper_direction": direction, "agrees_with_paper": agrees})
    return out


def analysis_chart(rows: Sequence[dict[str, Any]], dataset: str, path: str | os.PathLike, title: str,
                   correlations: Sequence[dict[str, Any]], metric: str = "top1") -> None:
    """Small multiples: each statistic (x) against ``metric`` (y), one point per analysed generator entry,
    coloured by family, the rank correlation in each panel's title."""
    plt = pyplot()

    rs = [r for r in analysed_rows(rows, dataset, metric) if r["analysis"]]
    rho = {c["statistic"]: c["spearman"] for c in correlations}
    cols = 4
    nrows = -(-len(ANALYSIS_STATS) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
    for ax, (stat, label) in zip(axes.flat, ANALYSIS_STATS.items()):
        pts = [(r["analysis"][stat], r[metric], r["family"]) for r in rs if r["analysis"].get(stat) is not None]
        ax.scatter([x for x, _, _ in pts], [y for _, y, _ in pts], s=18,
                   c=[FAMILY_COLORS.get(f, "#17becf") for _, _, f in pts])
        r_text = "n/a" if rho.get(stat) is None else f"{rho[stat]:.2f}"
        ax.set_title(f"{label}: rho {r_text}", fontsize=8)
        ax.tick_params(labelsize=7)
    spare = list(axes.flat)[len(ANALYSIS_STATS):]
    for ax in spare:
        ax.axis("off")
    if spare:  # the families' colours, in the first empty panel
        spare[0].legend(handles=_family_patches(sorted({r["family"] for r in rs})), fontsize=8, loc="center",
                        frameon=False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (%)", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path, dpi=110, bbox_inches="tight")


def statistics_table(rows: Sequence[dict[str, Any]], label: str, header: str) -> str:
    """A Markdown table of each row's dataset statistics (its ``analysis``) beside its ``label`` field
    (headed ``header``) and its top-1."""
    flat = [{label: r[label], "top1": r["top1"],
             **{k: f"{v:.3g}" for k, v in (r["analysis"] or {}).items() if isinstance(v, (int, float))}} for r in rows]
    return markdown_table(flat, [label, "top1", *ANALYSIS_STATS], [header, "top-1", *ANALYSIS_STATS.values()])


def analysis_report(rows: Sequence[dict[str, Any]], datasets: Sequence[str], out_dir: str | os.PathLike,
                    profile: str) -> tuple[list[str], dict[str, Any]]:
    """results.md lines, the summary and ``analysis_<dataset>.png`` of the dataset statistics; nothing when
    the run did not analyse (no row carries an ``analysis`` field)."""
    if not any("analysis" in r for r in rows):
        return [], {}
    lines, summary = [], {}
    for d in datasets:
        rs = sorted(analysed_rows(rows, d), key=lambda r: -r["top1"])
        if not rs:
            continue
        corr = analysis_correlations(rows, d)
        missing = [r["entry"] for r in rs if not r["analysis"]]
        chart = f"analysis_{_slug(d)}.png"
        summary[d] = {"metric": "top1", "entries": len(rs) - len(missing), "missing": missing, "correlations": corr,
                      "chart": chart}
        lines.append(f"## Dataset statistics and {d} top-1\n")
        lines.append("Statistics of each generator entry's data (`noisevision analyze` on a seeded subset; FID and "
                     f"KID against {d}'s training images), for the entries trained with the profile's method.\n")
        lines.append(statistics_table(rs, "entry", "generator"))
        if missing:
            lines.append(f"\nNo statistics for {', '.join(missing)}: their data was not on disk (committed results "
                         "hold none); re-running them with a fresh `--out` measures it.\n")
        lines.append("\n| statistic | Spearman with top-1 | p | entries | paper's direction | agrees |\n|---|---|---|---|---|---|")
        fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
        for c in corr:
            direction = {1: "+", -1: "-", None: ""}[c["paper_direction"]]
            agrees = {True: "yes", False: "no", None: ""}[c["agrees_with_paper"]]
            lines.append(f"| {ANALYSIS_STATS[c['statistic']]} | {fmt(c['spearman'], '.2f')} | {fmt(c['p_value'], '.3f')} "
                         f"| {c['entries']} | {direction} | {agrees} |")
        lines.append("\n" + _analysis_sentence(corr) + "\n")
        lines.append(f"![statistics against top-1]({chart})\n")
        analysis_chart(rows, d, Path(out_dir) / chart, f"{d}: dataset statistics against linear top-1 ({profile} profile)",
                       corr)
    return lines, summary


def _analysis_sentence(corr: Sequence[dict[str, Any]]) -> str:
    """Does the paper's finding hold here? Its reading: closer to real images (lower FID/KID) and more diverse
    data trains better features; the answer counts the predicted signs found, with the strongest statistic."""
    judged = [c for c in corr if c["agrees_with_paper"] is not None]
    ranked = [c for c in corr if c["spearman"] is not None]
    if not judged:
        return "Does the paper's finding hold here? Too few analysed entries to tell (rank correlations need 3)."
    held = sum(c["agrees_with_paper"] for c in judged)
    parts = ", ".join(f"{ANALYSIS_STATS[c['statistic']]} {c['spearman']:.2f}" for c in judged)
    strongest = max(ranked, key=lambda c: abs(c["spearman"]))
    verdict = "yes" if held == len(judged) else "partly" if held else "no"
    return (f"Does the paper's finding hold here (data closer to real images and more diverse trains better)? "
            f"**{verdict}**: {held} of {len(judged)} predicted signs found ({parts}). The statistic that ranks the "
            f"entries best is {ANALYSIS_STATS[strongest['statistic']]} (rho {strongest['spearman']:.2f}).")
