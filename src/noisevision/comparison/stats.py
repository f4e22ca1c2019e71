"""How far our ranking of the paper's families agrees with the paper's, and how sure we can be of it.

* :func:`rank_table`: each paper family's rank by each metric next to its rank in the paper;
* :func:`spearman_interval`: a bootstrap confidence interval of the Spearman correlation with the
  paper. Each replicate resamples the test images (the same resampled images for every entry, since
  every entry was probed on the same images) and, for entries run with several seeds, resamples
  their seeds with replacement and averages them, as the point estimate averages them. It needs
  the probes' per-image outcomes (``eval/outcomes.py``); results probed before those were kept
  get no interval, and the reason says so;
* :func:`paired_difference`: how far one row's accuracy is above another's on the same test images,
  with an interval from the per-image differences (the test images' sampling noise) and, given a
  training-seed sd, a wider one that adds the noise of training each side with another seed;
* :func:`trained_seed_sd`: that sd, pooled over the trained entries run with several seeds. Most
  entries run one seed, so this is how their seed-to-seed noise is known at all;
* :func:`order_agreement`: within each of the paper's families with several members (dead leaves,
  statistical, StyleGAN, feature vis), whether our order of the members is the paper's (Kendall tau
  and the swapped pairs); across families, the order of the family means.

Rows are the comparison's flat rows (``rows.jsonl``); ``agg`` rows are averaged over seeds
(:func:`noisevision.comparison.report.aggregate`).
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..eval.outcomes import decode_outcomes

# row metric -> the probe's per-image outcome it is the mean of
OUTCOME_OF_METRIC = {"top1": "linear_top1", "knn": "knn_top1", "top1_bn": "linear_top1"}
DEFAULT_REPLICATES = 1000
MIN_RANKED = 3  # paper families a rank correlation needs
_CHUNK = 100  # replicates drawn at once: bounds the (chunk, n_test) count matrix


def row_outcomes(result: dict[str, Any]) -> dict[str, Any] | None:
    """A comparison row's per-image outcomes from an entry's probe result (None for older results):
    ``{"n_test", "test_set", "top1", "knn"[, "top1_bn"]}``, each metric as encoded bits."""
    per = result.get("per_image")
    if not per:
        return None
    out = {"n_test": per["n_test"], "test_set": per["test_set"],
           "top1": per[OUTCOME_OF_METRIC["top1"]], "knn": per[OUTCOME_OF_METRIC["knn"]]}
    bn = result.get("bn_recalibrated", {}).get("per_image")
    if bn and (bn["n_test"], bn["test_set"]) == (per["n_test"], per["test_set"]):
        out["top1_bn"] = bn[OUTCOME_OF_METRIC["top1_bn"]]
    return out


def _paper_rows(rows: Sequence[dict[str, Any]], dataset: str, metric: str) -> list[dict[str, Any]]:
    """Rows of the paper's own families on ``dataset`` that have ``metric``."""
    return [r for r in rows if r["dataset"] == dataset and r.get("paper_family") and r.get("paper_top1") is not None
            and r.get(metric) is not None]


def _ranks_best_first(values: Sequence[float]) -> list[float]:
    """Rank 1 for the highest value; ties share their average rank."""
    from scipy.stats import rankdata

    return [float(v) for v in rankdata([-v for v in values], method="average")]


def rank_table(agg: Sequence[dict[str, Any]], dataset: str, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per paper family of ``dataset``, in the paper's order: the paper's top-1 and rank, and
    for each metric our value and rank (1 = best) among the families that have that metric."""
    fams = _paper_rows(agg, dataset, "paper_top1")
    out = {r["entry"]: {"entry": r["entry"], "family": r["family"], "paper_top1": r["paper_top1"]} for r in fams}
    for r, rank in zip(fams, _ranks_best_first([r["paper_top1"] for r in fams])):
        out[r["entry"]]["paper_rank"] = rank
    for m in metrics:
        have = [r for r in fams if r.get(m) is not None]
        for r, rank in zip(have, _ranks_best_first([r[m] for r in have])):
            out[r["entry"]].update({m: r[m], f"{m}_rank": rank})
    return sorted(out.values(), key=lambda r: r["paper_rank"])


def _unavailable(base: dict[str, Any], reason: str, **extra: Any) -> dict[str, Any]:
    return {**base, "available": False, "reason": reason, **extra}


def trained_seed_sd(rows: Sequence[dict[str, Any]], dataset: str, metric: str = "top1") -> dict[str, Any] | None:
    """The seed-to-seed standard deviation of a trained encoder's ``metric`` on ``dataset``, pooled over the
    trained entries (random init excluded: it has no training) run with several seeds.

    Pooled as ``sqrt(sum((k_i - 1) * s_i**2) / sum(k_i - 1))`` over entries with ``k_i`` seeds; returned as
    ``{"sd", "entries", "df"}``, None when no trained entry has two seeds with ``metric``. It stands in for
    the seed noise of the entries that ran one seed, which is an assumption: that training noise is about
    the same for every generator.
    """
    by_entry: dict[str, list[float]] = {}
    for r in rows:
        if r["dataset"] == dataset and r.get("kind") != "random" and r.get(metric) is not None:
            by_entry.setdefault(r["entry"], []).append(float(r[metric]))
    multi = {e: v for e, v in by_entry.items() if len(v) > 1}
    if not multi:
        return None
    df = sum(len(v) - 1 for v in multi.values())
    pooled = sum((len(v) - 1) * float(np.var(v, ddof=1)) for v in multi.values()) / df
    return {"sd": float(np.sqrt(pooled)), "entries": sorted(multi), "df": df}


def spearman_interval(rows: Sequence[dict[str, Any]], dataset: str, metric: str = "top1",
                      replicates: int = DEFAULT_REPLICATES, seed: int = 0, level: float = 0.95,
                      seed_sd: float | None = None) -> dict[str, Any]:
    """Bootstrap ``level`` interval of the Spearman correlation between ``metric`` (averaged over each
    entry's seeds) and the paper's top-1, over the paper's families on ``dataset``.

    ``rows`` are per seed (not aggregated). The interval is the percentile interval of ``replicates``
    replicates drawn from ``numpy.random.default_rng(seed)``; replicates in which every family ties
    have no correlation and are left out (counted in ``undefined_replicates``). With ``seed_sd`` (points;
    see :func:`trained_seed_sd`), each replicate also draws every single-seed entry's value around its
    own with that normal sd, standing in for the seed it did not run; those draws come from a generator
    of their own, so the test-image draws are the same as without them. When the per-image
    outcomes are missing, unreadable, or not over the same test images for every entry, the result
    has ``available: False`` and the ``reason``; an interval is never made up.
    """
    from scipy.stats import rankdata, spearmanr

    if replicates < 1 or not 0 < level < 1:
        raise ValueError(f"need replicates >= 1 and 0 < level < 1, got {replicates} and {level}")
    base: dict[str, Any] = {"metric": metric, "level": level, "replicates": replicates, "seed": seed}
    if seed_sd is not None:
        if not seed_sd >= 0:
            raise ValueError(f"seed_sd must be >= 0, got {seed_sd}")
        base["seed_sd"] = seed_sd
    by_entry: dict[str, list[dict[str, Any]]] = {}
    for r in _paper_rows(rows, dataset, metric):
        by_entry.setdefault(r["entry"], []).append(r)
    if len(by_entry) < MIN_RANKED:
        return _unavailable(base, f"{len(by_entry)} of the paper's families have a {metric} result on {dataset}; "
                                  f"a rank correlation needs at least {MIN_RANKED}")
    means = [float(np.mean([r[metric] for r in rs])) for rs in by_entry.values()]
    paper = [rs[0]["paper_top1"] for rs in by_entry.values()]
    constant = len(set(means)) < 2 or len(set(paper)) < 2
    base.update(families=len(by_entry), estimate=None if constant else _none_if_nan(spearmanr(means, paper).statistic))
    missing = sorted(e for e, rs in by_entry.items() if any(metric not in (r.get("outcomes") or {}) for r in rs))
    if missing:
        return _unavailable(base, f"{len(missing)} of {len(by_entry)} paper families have no per-image {metric} "
                                  "outcomes (probed before they were recorded); re-probe them for an interval",
                            missing=missing)

    columns, test_sets = [], set()
    for entry, rs in by_entry.items():
        for r in rs:
            o = r["outcomes"]
            try:
                correct = decode_outcomes(o[metric], o["n_test"])
            except (ValueError, KeyError) as exc:
                return _unavailable(base, f"the per-image outcomes of {entry} (seed {r['seed']}) are unreadable: {exc}")
            if abs(100.0 * correct.mean() - r[metric]) > 0.01:  # the metric is stored rounded to 3 decimals
                return _unavailable(base, f"the per-image outcomes of {entry} (seed {r['seed']}) give "
                                          f"{100.0 * correct.mean():.3f}, not its recorded {metric} {r[metric]}")
            test_sets.add((o["n_test"], o.get("test_set")))
            columns.append(correct)
    if len(test_sets) > 1:
        return _unavailable(base, f"the entries were probed on {len(test_sets)} different sets of test images "
                                  "(e.g. a max_test subset drawn per seed), so images cannot be resampled jointly")
    n = columns[0].shape[0]
    if n == 0:
        return _unavailable(base, "the probes had no test images")

    rng = np.random.default_rng(seed)
    outcomes = np.stack(columns).astype(np.float32).T  # (n_test, entry x seed columns)
    acc = np.empty((replicates, outcomes.shape[1]))
    for start in range(0, replicates, _CHUNK):
        b = min(_CHUNK, replicates - start)
        draws = rng.integers(0, n, size=(b, n))
        # how often each image is drawn in each replicate; counts @ outcomes is exact (integers < 2**24)
        counts = np.bincount((np.arange(b)[:, None] * n + draws).ravel(), minlength=b * n).reshape(b, n)
        acc[start:start + b] = counts.astype(np.float32) @ outcomes / n
    per_entry, col = np.empty((replicates, len(by_entry))), 0
    for j, rs in enumerate(by_entry.values()):
        k = len(rs)
        if k == 1:
            per_entry[:, j] = acc[:, col]
        else:  # the seeds resampled with replacement, then averaged like the point estimate
            picks = rng.integers(0, k, size=(replicates, k))
            per_entry[:, j] = np.take_along_axis(acc[:, col:col + k], picks, axis=1).mean(axis=1)
        col += k
    if seed_sd is not None:  # the seed each single-seed entry did not run: percent -> fraction like ``acc``
        single = [j for j, rs in enumerate(by_entry.values()) if len(rs) == 1]
        noise_rng = np.random.default_rng((seed, 1))
        per_entry[:, single] += noise_rng.normal(0.0, seed_sd / 100.0, size=(replicates, len(single)))
        base["seed_noise_entries"] = len(single)

    ranks = rankdata(per_entry, axis=1)
    ranks -= ranks.mean(axis=1, keepdims=True)
    paper_ranks = rankdata(paper)
    paper_ranks -= paper_ranks.mean()
    norm = np.sqrt((ranks ** 2).sum(axis=1) * (paper_ranks ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(norm > 0, ranks @ paper_ranks / norm, np.nan)
    defined = rho[~np.isnan(rho)]
    base.update(n_test=n, seeds_resampled=sorted(e for e, rs in by_entry.items() if len(rs) > 1),
                undefined_replicates=int(replicates - defined.size))
    if defined.size == 0:
        return _unavailable(base, "every family ties in every replicate, so no rank correlation is defined")
    tail = 100 * (1 - level) / 2
    low, median, high = np.percentile(defined, [tail, 50, 100 - tail])
    return {**base, "available": True, "low": float(low), "high": float(high), "bootstrap_median": float(median)}


def _mean_outcomes(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[np.ndarray, Any] | None:
    """The per-image outcome of ``metric`` averaged over ``rows`` (one entry's seeds), and the test set
    it is over; None when a row lacks readable outcomes or the rows were probed on different images."""
    vectors, test_sets = [], set()
    for r in rows:
        o = r.get("outcomes") or {}
        try:
            vectors.append(decode_outcomes(o[metric], o["n_test"]).astype(np.float64))
        except (KeyError, ValueError):
            return None
        test_sets.add((o["n_test"], o.get("test_set")))
    if not vectors or len(test_sets) > 1:
        return None
    return np.mean(vectors, axis=0), test_sets.pop()


def paired_difference(row: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                      reference: Mapping[str, Any] | Sequence[Mapping[str, Any]], metric: str = "top1",
                      level: float = 0.95, seed_sd: float | None = None) -> dict[str, Any] | None:
    """``row``'s ``metric`` minus ``reference``'s, in points, with a ``level`` interval over test images.

    Either side may be one row or the rows of an entry's seeds (their per-image outcomes averaged).
    Both were probed on the same test images, so the difference is the mean of the per-image
    differences and its standard error comes from their spread: the normal interval of a paired
    comparison, narrower than comparing two independent accuracies. ``low``/``high`` cover only the
    sampling of test images; two trainings with different seeds differ by more. With ``seed_sd``
    (points, one training's seed-to-seed sd), ``seed_low``/``seed_high`` also cover retraining each
    side: its variance adds ``seed_sd**2 / k`` per side averaged over ``k`` seeds. None when either
    side lacks readable outcomes of ``metric`` or the two were probed on different images.
    """
    from scipy.stats import norm

    sides = [_mean_outcomes([x] if isinstance(x, Mapping) else x, metric) for x in (row, reference)]
    if sides[0] is None or sides[1] is None or sides[0][1] != sides[1][1] or sides[0][0].size < 2:
        return None
    per_image = sides[0][0] - sides[1][0]
    diff = 100.0 * per_image.mean()
    z = norm.ppf(0.5 + level / 2)
    se_images = 100.0 * per_image.std(ddof=1) / np.sqrt(per_image.size)
    out = {"metric": metric, "diff": float(diff), "low": float(diff - z * se_images),
           "high": float(diff + z * se_images), "level": level, "n_test": int(per_image.size)}
    if seed_sd is not None:
        seeds = [1 if isinstance(x, Mapping) else len(x) for x in (row, reference)]
        half = z * np.sqrt(se_images ** 2 + seed_sd ** 2 * sum(1.0 / k for k in seeds))
        out.update(seed_sd=seed_sd, seed_low=float(diff - half), seed_high=float(diff + half))
    return out


def _none_if_nan(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def _kendall(ours: Sequence[float], paper: Sequence[float]) -> float | None:
    from scipy.stats import kendalltau

    if len(ours) < 2 or len(set(ours)) < 2 or len(set(paper)) < 2:
        return None
    return _none_if_nan(kendalltau(ours, paper).statistic)


def _pairs(names: Sequence[str], ours: Sequence[float], paper: Sequence[float]) -> dict[str, Any]:
    """Pairs the paper orders, split by whether we order them the same way (swapped pairs and ties are
    listed, higher in the paper first)."""
    concordant, swapped, tied = 0, [], []
    for i, j in itertools.combinations(range(len(names)), 2):
        if paper[i] == paper[j]:
            continue
        hi, lo = (i, j) if paper[i] > paper[j] else (j, i)
        if ours[hi] > ours[lo]:
            concordant += 1
        elif ours[hi] < ours[lo]:
            swapped.append([names[hi], names[lo]])
        else:
            tied.append([names[hi], names[lo]])
    return {"concordant": concordant, "swapped": swapped, "tied": tied}


def _swap_noise(swapped: Sequence[Sequence[str]], rows: Sequence[dict[str, Any]] | None, dataset: str,
                metric: str, seed_sd: float | None = None) -> dict[str, Any]:
    """The paired difference of each swapped pair (the paper's higher entry minus the lower) and how
    many of them lie within test-image noise (and, given ``seed_sd``, within test-image and
    training-seed noise); empty when any pair lacks per-image outcomes."""
    if rows is None or not swapped:
        return {}
    seeds: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["dataset"] == dataset:
            seeds.setdefault(r["entry"], []).append(r)
    differences = []
    for hi, lo in swapped:
        d = paired_difference(seeds.get(hi, []), seeds.get(lo, []), metric, seed_sd=seed_sd)
        if d is None:
            return {}
        differences.append({"pair": [hi, lo], **d})
    out = {"swap_differences": differences,
           "swaps_within_noise": sum(d["low"] <= 0.0 <= d["high"] for d in differences)}
    if seed_sd is not None:
        out["swaps_within_seed_noise"] = sum(d["seed_low"] <= 0.0 <= d["seed_high"] for d in differences)
    return out


def _order(names: Sequence[str], values: Sequence[float]) -> list[str]:
    return [n for _, n in sorted(zip(values, names), key=lambda t: -t[0])]


def order_agreement(agg: Sequence[dict[str, Any]], dataset: str, metric: str = "top1",
                    rows: Sequence[dict[str, Any]] | None = None, seed_sd: float | None = None) -> dict[str, Any]:
    """Within-family and across-family agreement of ``metric`` with the paper's orders on ``dataset``.

    ``within_family``: for each family with at least two of the paper's entries, both orders (best first),
    whether they are the same, Kendall tau and the pairs we order the other way. With the per-seed
    ``rows`` (which keep the per-image outcomes), each swapped pair also gets its
    :func:`paired_difference` (``swap_differences``) and ``swaps_within_noise`` counts the swaps whose
    95% interval over test images includes zero; with ``seed_sd``, ``swaps_within_seed_noise`` counts those
    whose interval over test images and training seeds does. ``across_family``: the families ranked by the mean
    of their members against the paper's means of the same members, with Spearman and Kendall
    correlations.
    """
    from scipy.stats import spearmanr

    fams: dict[str, list[dict[str, Any]]] = {}
    for r in _paper_rows(agg, dataset, metric):
        fams.setdefault(r["family"], []).append(r)
    within = []
    for fam, rs in fams.items():
        if len(rs) < 2:
            continue
        names, ours, paper = [r["entry"] for r in rs], [r[metric] for r in rs], [r["paper_top1"] for r in rs]
        pairs = _pairs(names, ours, paper)
        within.append({"family": fam, "paper_order": _order(names, paper), "our_order": _order(names, ours),
                       "same_order": not pairs["swapped"] and not pairs["tied"],
                       "kendall_tau": _kendall(ours, paper), **pairs,
                       **_swap_noise(pairs["swapped"], rows, dataset, metric, seed_sd)})
    names = list(fams)
    ours = [float(np.mean([r[metric] for r in fams[f]])) for f in names]
    paper = [float(np.mean([r["paper_top1"] for r in fams[f]])) for f in names]
    rho = (_none_if_nan(spearmanr(ours, paper).statistic)
           if len(names) >= 2 and len(set(ours)) > 1 and len(set(paper)) > 1 else None)
    across = {"families": names, "our_means": dict(zip(names, ours)), "paper_means": dict(zip(names, paper)),
              "paper_order": _order(names, paper), "our_order": _order(names, ours),
              "same_order": _order(names, paper) == _order(names, ours) and len(set(ours)) == len(ours),
              "spearman": rho, "kendall_tau": _kendall(ours, paper), **_pairs(names, ours, paper)}
    return {"metric": metric, "within_family": within, "across_family": across}
