"""The comparison's rank statistics: bootstrap interval of the Spearman correlation, rank table, order agreement."""
from __future__ import annotations

import numpy as np
import pytest

from noisevision.comparison.report import aggregate, dataset_headlines, write_report
from noisevision.comparison.stats import (
    order_agreement,
    paired_difference,
    rank_table,
    row_outcomes,
    spearman_interval,
    trained_seed_sd,
)
from noisevision.eval.outcomes import encode_outcomes

N_TEST = 2000


def _row(entry, correct=None, paper=30.0, family="dead leaves", seed=0, top1=None, test_set="t"):
    """A comparison row; with ``correct`` (bool per test image), its top-1 and per-image outcomes."""
    row = {"entry": entry, "family": family, "kind": "generator", "dataset": "cifar10", "seed": seed,
           "top1": top1, "paper_top1": paper, "paper_family": True}
    if correct is not None:
        row["top1"] = 100.0 * float(np.mean(correct))
        row["outcomes"] = {"n_test": len(correct), "test_set": test_set, "top1": encode_outcomes(correct)}
    return row


def _rows(accuracies, seed=0, n=N_TEST):
    """One entry per accuracy (independent Bernoulli outcomes); the paper's numbers increase with the index."""
    rng = np.random.default_rng(seed)
    return [_row(f"e{i}", rng.random(n) < p, paper=20.0 + 2 * i) for i, p in enumerate(accuracies)]


def test_entries_ordered_like_the_paper_with_large_gaps_give_a_tight_interval_near_one():
    rows = _rows(np.linspace(0.30, 0.95, 14))
    ci = spearman_interval(rows, "cifar10", replicates=300)
    assert ci["available"] and ci["estimate"] == pytest.approx(1.0)
    assert ci["low"] > 0.95 and ci["high"] == pytest.approx(1.0)
    assert ci["families"] == 14 and ci["n_test"] == N_TEST and ci["undefined_replicates"] == 0


def test_entries_of_equal_accuracy_give_a_wide_interval():
    ci = spearman_interval(_rows([0.5] * 14), "cifar10", replicates=300)
    assert ci["available"] and ci["high"] - ci["low"] > 0.5 and ci["low"] < 0 < ci["high"]


def test_identical_outcomes_tie_every_replicate_so_no_interval():
    same = np.random.default_rng(0).random(N_TEST) < 0.5
    rows = [_row(f"e{i}", same, paper=20.0 + i) for i in range(5)]
    ci = spearman_interval(rows, "cifar10", replicates=50)
    assert not ci["available"] and "ties" in ci["reason"] and ci["undefined_replicates"] == 50


def test_the_interval_is_deterministic_under_a_fixed_seed():
    rows = _rows(np.linspace(0.45, 0.55, 6))
    a = spearman_interval(rows, "cifar10", replicates=200, seed=3)
    assert a == spearman_interval(rows, "cifar10", replicates=200, seed=3)
    b = spearman_interval(rows, "cifar10", replicates=200, seed=4)
    assert (a["low"], a["high"], a["bootstrap_median"]) != (b["low"], b["high"], b["bootstrap_median"])


def test_seeds_of_an_entry_are_resampled_and_averaged():
    """Two seeds of e0, one far below the others and one far above: resampling them with replacement
    sometimes draws the low seed twice, so e0's rank varies between replicates, while it does not when
    both seeds agree."""
    rng = np.random.default_rng(1)
    base = [_row(f"e{i}", rng.random(N_TEST) < p, paper=20.0 + 2 * i) for i, p in enumerate((0.3, 0.5, 0.7))]
    split = [_row("e0", rng.random(N_TEST) < 0.1, paper=20.0, seed=1), _row("e0", rng.random(N_TEST) < 0.85,
                                                                           paper=20.0, seed=2)]
    rows = base[1:] + split
    ci = spearman_interval(rows, "cifar10", replicates=400)
    assert ci["seeds_resampled"] == ["e0"] and ci["available"]
    # e0's mean (about 47.5) ranks it lowest, as the paper does; a replicate drawing its high seed twice ranks it first
    assert ci["low"] < 0 < ci["high"]
    agreeing = [_row("e0", rng.random(N_TEST) < 0.1, paper=20.0, seed=s) for s in (1, 2)]
    tight = spearman_interval(base[1:] + agreeing, "cifar10", replicates=400)
    assert tight["low"] == tight["high"] == pytest.approx(1.0)


def test_no_interval_without_per_image_outcomes():
    """Results probed before outcomes were kept: the interval is unavailable, with the reason; none is made up."""
    rows = [_row(f"e{i}", top1=50.0 + i, paper=20.0 + i) for i in range(5)]
    ci = spearman_interval(rows, "cifar10")
    assert ci["available"] is False and "no per-image top1 outcomes" in ci["reason"]
    assert ci["missing"] == [f"e{i}" for i in range(5)] and "low" not in ci and "high" not in ci
    assert ci["estimate"] == pytest.approx(1.0)  # the point estimate stays
    some = _rows([0.3, 0.5, 0.7]) + [_row("old", top1=60.0, paper=40.0)]
    assert spearman_interval(some, "cifar10")["missing"] == ["old"]
    few = spearman_interval(_rows([0.3, 0.5]), "cifar10")
    assert not few["available"] and "at least 3" in few["reason"]


def test_outcomes_that_do_not_fit_give_no_interval():
    rows = _rows([0.3, 0.5, 0.7])
    other = [dict(r) for r in rows]
    other[1] = {**other[1], "outcomes": {**other[1]["outcomes"], "test_set": "another"}}
    assert "different sets of test images" in spearman_interval(other, "cifar10")["reason"]
    corrupt = [dict(r) for r in rows]
    corrupt[0] = {**corrupt[0], "outcomes": {**corrupt[0]["outcomes"], "n_test": N_TEST + 100}}
    assert "unreadable" in spearman_interval(corrupt, "cifar10")["reason"]
    wrong = [dict(r) for r in rows]
    wrong[2] = {**wrong[2], "top1": wrong[2]["top1"] + 1.0}
    assert "not its recorded top1" in spearman_interval(wrong, "cifar10")["reason"]


def test_paired_difference_counts_the_images_on_which_the_two_disagree():
    """Both right on 500 images, only the first on 150, only the second on 50, both wrong on 300: the
    first is 10 points better, and the standard error comes from the 200 disagreements alone."""
    first = np.repeat([True, True, False, False], [500, 150, 50, 300])
    second = np.repeat([True, False, True, False], [500, 150, 50, 300])
    d = paired_difference(_row("a", first), _row("b", second))
    assert d["diff"] == pytest.approx(10.0) and d["n_test"] == 1000
    per_image = first.astype(float) - second.astype(float)
    half = 1.959964 * 100 * per_image.std(ddof=1) / np.sqrt(1000)
    assert (d["low"], d["high"]) == (pytest.approx(10.0 - half, abs=1e-4), pytest.approx(10.0 + half, abs=1e-4))
    # Two independent accuracies of 65% and 55% would give a wider interval than the paired one.
    independent = 1.96 * 100 * np.sqrt((0.65 * 0.35 + 0.55 * 0.45) / 1000)
    assert half < independent
    assert paired_difference(_row("b", second), _row("a", first))["diff"] == pytest.approx(-10.0)


def test_paired_difference_needs_outcomes_on_the_same_images():
    correct = np.random.default_rng(0).random(100) < 0.5
    assert paired_difference(_row("a", correct), _row("b", correct))["diff"] == 0.0
    assert paired_difference(_row("a", correct), _row("b", correct, test_set="other")) is None
    assert paired_difference(_row("a", correct), _row("b", top1=50.0)) is None
    assert paired_difference(_row("a", correct), _row("b", correct), metric="knn") is None


def test_trained_seed_sd_pools_the_trained_entries_and_leaves_out_random_init():
    """Entry a: seeds at 50, 52 (variance 2, 1 degree of freedom); entry b: 60, 61, 62 (variance 1, 2
    degrees of freedom); pooled (2 + 2) / 3. Random init's spread is not a training's, and single-seed
    entries have none."""
    rows = [_row("a", top1=50.0), _row("a", top1=52.0, seed=1), _row("b", top1=60.0), _row("b", top1=61.0, seed=1),
            _row("b", top1=62.0, seed=2), _row("c", top1=70.0),
            {**_row("random", top1=10.0), "kind": "random"}, {**_row("random", top1=90.0, seed=1), "kind": "random"}]
    noise = trained_seed_sd(rows, "cifar10")
    assert noise == {"sd": pytest.approx(np.sqrt(4 / 3)), "entries": ["a", "b"], "df": 3}
    assert trained_seed_sd(rows, "cifar10", "knn") is None  # no row has kNN
    assert trained_seed_sd([r for r in rows if r["entry"] in ("c", "random")], "cifar10") is None


def test_paired_difference_with_seed_noise_widens_by_the_seeds_each_side_averages():
    first = np.repeat([True, True, False, False], [500, 150, 50, 300])
    second = np.repeat([True, False, True, False], [500, 150, 50, 300])
    images = paired_difference(_row("a", first), _row("b", second))
    half_images = images["high"] - images["diff"]
    one_each = paired_difference(_row("a", first), _row("b", second), seed_sd=2.0)
    assert (one_each["low"], one_each["high"]) == (images["low"], images["high"])  # the test-image interval stays
    assert one_each["seed_high"] - one_each["diff"] == pytest.approx(np.hypot(half_images, 1.959964 * 2.0 * np.sqrt(2)),
                                                                     abs=1e-4)
    three_seeds = [_row("b", second, seed=s) for s in range(3)]
    averaged = paired_difference(_row("a", first), three_seeds, seed_sd=2.0)
    assert averaged["seed_high"] - averaged["diff"] == pytest.approx(
        np.hypot(half_images, 1.959964 * 2.0 * np.sqrt(1 + 1 / 3)), abs=1e-4)
    assert "seed_low" not in images


def test_seed_noise_widens_the_spearman_interval_and_zero_noise_changes_nothing():
    """Single-seed entries 1 point apart: the test images alone rank them fairly surely; a training-seed sd
    of 3 points does not. A zero sd gives exactly the test-image interval (its draws are separate)."""
    rows = _rows(np.linspace(0.50, 0.60, 11), n=20000)
    images = spearman_interval(rows, "cifar10", replicates=300)
    zero = spearman_interval(rows, "cifar10", replicates=300, seed_sd=0.0)
    assert (zero["low"], zero["high"]) == (images["low"], images["high"]) and zero["seed_noise_entries"] == 11
    noisy = spearman_interval(rows, "cifar10", replicates=300, seed_sd=3.0)
    assert noisy["seed_sd"] == 3.0 and noisy["low"] < images["low"] - 0.3
    with pytest.raises(ValueError, match="seed_sd"):
        spearman_interval(rows, "cifar10", seed_sd=-1.0)


def test_rank_table_puts_our_rank_next_to_the_papers():
    agg = [_row("a", top1=60.0, paper=40.0), _row("b", top1=55.0, paper=35.0), _row("c", top1=60.0, paper=30.0),
           {**_row("fractal", top1=70.0, paper=50.0), "paper_family": False}]
    for r, knn in zip(agg, (40.0, 45.0, 50.0, 30.0)):
        r["knn"] = knn
    table = rank_table(agg, "cifar10", ["top1", "knn"])
    assert [(r["entry"], r["paper_rank"], r["top1_rank"], r["knn_rank"]) for r in table] == [
        ("a", 1.0, 1.5, 3.0), ("b", 2.0, 3.0, 2.0), ("c", 3.0, 1.5, 1.0)]  # ties share their average rank
    assert table[1]["top1"] == 55.0 and table[1]["knn"] == 45.0


def test_within_and_across_family_agreement_on_a_hand_made_example():
    agg = [
        # dead leaves: paper a1 > a2 > a3; ours a1 > a3 > a2 -> one pair of three swapped, tau 1/3
        _row("a1", top1=60.0, paper=40.0), _row("a2", top1=50.0, paper=38.0), _row("a3", top1=55.0, paper=36.0),
        # stylegan: the paper's order, and the best family in both
        _row("s1", top1=70.0, paper=45.0, family="stylegan"), _row("s2", top1=65.0, paper=41.0, family="stylegan"),
        # a family of one is not ordered within
        _row("f1", top1=40.0, paper=39.0, family="feature vis"),
    ]
    o = order_agreement(agg, "cifar10")
    dl, sg = o["within_family"]
    assert dl["family"] == "dead leaves" and dl["paper_order"] == ["a1", "a2", "a3"]
    assert dl["our_order"] == ["a1", "a3", "a2"] and not dl["same_order"]
    assert dl["kendall_tau"] == pytest.approx(1 / 3) and dl["concordant"] == 2 and dl["swapped"] == [["a2", "a3"]]
    assert sg["same_order"] and sg["kendall_tau"] == pytest.approx(1.0) and sg["swapped"] == []
    assert len(o["within_family"]) == 2
    across = o["across_family"]
    # means: ours stylegan 67.5 > dead leaves 55 > feature vis 40; paper stylegan 43 > feature vis 39 > dead leaves 38
    assert across["our_order"] == ["stylegan", "dead leaves", "feature vis"]
    assert across["paper_order"] == ["stylegan", "feature vis", "dead leaves"]
    assert across["swapped"] == [["feature vis", "dead leaves"]] and across["spearman"] == pytest.approx(0.5)
    assert across["paper_means"]["dead leaves"] == pytest.approx(38.0)


def test_a_swap_is_called_noise_only_when_its_paired_interval_includes_zero():
    """Paper order x > y > z. We put y 0.2 points above x (it is right on 60 images that x misses, and
    wrong on 50 that x gets): within test-image noise. We put z 5 points above y: outside it. Seeds
    of an entry are averaged image by image."""
    n = 5000
    base = np.random.default_rng(0).random(n) < 0.5
    y = base.copy()
    x = base.copy()
    x[np.flatnonzero(base)[:60]] = False
    x[np.flatnonzero(~base)[:50]] = True
    z = base | (np.arange(n) % 10 == 1)  # z right on about 250 more images than y, wrong on none more
    rows = [_row("x", x, paper=40.0), _row("y", y, paper=38.0), _row("z", z, paper=36.0, seed=0),
            _row("z", z, paper=36.0, seed=1)]
    agg = aggregate(rows)
    (dl,) = order_agreement(agg, "cifar10", rows=rows)["within_family"]
    pairs = {tuple(d["pair"]): d for d in dl["swap_differences"]}
    assert set(pairs) == {("x", "y"), ("x", "z"), ("y", "z")}
    assert pairs[("x", "y")]["diff"] == pytest.approx(-0.2) and pairs[("x", "y")]["low"] < 0 < pairs[("x", "y")]["high"]
    assert pairs[("y", "z")]["high"] < 0 and pairs[("x", "z")]["high"] < 0
    assert dl["swaps_within_noise"] == 1 and "swaps_within_seed_noise" not in dl
    # With a training-seed sd of 3 points, the 5-point swap of two single-seed-like sides is noise too,
    # while the test-image count stays what it was.
    (seeded,) = order_agreement(agg, "cifar10", rows=rows, seed_sd=3.0)["within_family"]
    assert seeded["swaps_within_noise"] == 1 and seeded["swaps_within_seed_noise"] == 3
    # Without per-seed rows (or with an entry lacking outcomes) nothing is claimed about noise.
    assert "swaps_within_noise" not in order_agreement(agg, "cifar10")["within_family"][0]
    rows[1] = _row("y", top1=rows[1]["top1"], paper=38.0)
    assert "swaps_within_noise" not in order_agreement(agg, "cifar10", rows=rows)["within_family"][0]


def test_report_shows_ranks_interval_and_orders(tmp_path):
    rows = [{**r, "kind": "generator", "knn": r["top1"] - 5} for r in _rows(np.linspace(0.3, 0.9, 4))]
    for r, fam in zip(rows, ("dead leaves", "dead leaves", "stylegan", "stylegan")):
        r["family"] = fam
    rows += [{**_row("old", top1=50.0, paper=19.0, family="statistical"), "knn": 45.0}]
    summary = write_report(rows, tmp_path, "t", ["cifar10"], bootstrap_replicates=100)
    s = summary["datasets"][0]
    assert not s["spearman_ci"]["available"] and s["spearman_ci"]["missing"] == ["old"]
    assert [r["entry"] for r in s["rank_table"]] == ["e3", "e2", "e1", "e0", "old"]
    assert s["orders"]["within_family"][0]["same_order"] and "knn" in s["other_metrics"]
    assert s["other_metrics"]["knn"]["spearman_ci"]["reason"].startswith("5 of 5 paper families")
    text = (tmp_path / "results.md").read_text()
    assert "### Ranks against the paper" in text and "| stylegan | e3 | 26.0 | 1 |" in text
    assert "interval unavailable: 1 of 5 paper families have no per-image top1 outcomes" in text
    assert "same order (tau 1.00)" in text and "Across families" in text
    assert "](ranks_cifar10.png)" in text and (tmp_path / "ranks_cifar10.png").stat().st_size > 1000
    summary = write_report(rows[:-1], tmp_path, "t", ["cifar10"], bootstrap_replicates=100)
    ci = summary["datasets"][0]["spearman_ci"]
    assert ci["available"] and ci["replicates"] == 100
    assert f"95% interval [{ci['low']:.2f}, {ci['high']:.2f}]" in (tmp_path / "results.md").read_text()
    assert dataset_headlines(summary["datasets"][0])[0] == (
        f"cifar10, linear top-1: Spearman vs paper 1.00 (95% interval {ci['low']:.2f} to {ci['high']:.2f})")


def test_a_run_too_small_to_rank_reports_the_margin_over_random_init_and_no_empty_sections(tmp_path):
    """Like `make demo`: random init and one paper family. No correlation can be had, so the report says
    so once and gives the entry's margin over random init, instead of rows of n/a and empty tables."""
    rows = [{**_row("random", top1=46.4, paper=21.0), "kind": "random", "paper_family": False, "knn": 31.7},
            {**_row("dead-leaves/squares", top1=46.3, paper=35.1), "knn": 35.5}]
    s = write_report(rows, tmp_path, "t", ["cifar10"], bootstrap_replicates=10)["datasets"][0]
    text = (tmp_path / "results.md").read_text()
    assert "n/a" not in text and "Order within each family" not in text and "Across families" not in text
    assert "No ranking against the paper: this run has 1 of its families" in text
    assert "Linear top-1: Best synthetic entry (dead-leaves/squares) minus random init: **-0.1** points." in text
    assert "kNN top-1: Best synthetic entry (dead-leaves/squares) minus random init: **+3.8** points." in text
    assert dataset_headlines(s) == [
        "cifar10, linear top-1: best minus random init -0.1 points (best: dead-leaves/squares)",
        "cifar10, kNN top-1: best minus random init +3.8 points (best: dead-leaves/squares)"]


def test_report_counts_training_seeds_once_a_trained_entry_has_several(tmp_path):
    """One trained entry run with two seeds: the report gives the pooled seed sd, real minus random in units
    of it, a second Spearman interval counting training seeds, and the within-seed-noise count of swaps."""
    rng = np.random.default_rng(5)
    rows = _rows(np.linspace(0.4, 0.6, 5))
    rows[1], rows[3] = {**rows[1], "paper_top1": 30.0}, {**rows[3], "paper_top1": 22.0}  # two swaps
    rows.append(_row("e0", rng.random(N_TEST) < 0.43, paper=20.0, seed=1))
    rows += [{**_row("random", top1=35.0, paper=10.0), "kind": "random", "paper_family": False},
             {**_row("real", top1=70.0, paper=None), "kind": "real", "paper_family": False}]
    s = write_report(rows, tmp_path, "t", ["cifar10"], bootstrap_replicates=100)["datasets"][0]
    noise = s["trained_seed_sd"]
    assert noise["entries"] == ["e0"] and noise["df"] == 1
    assert s["gap_in_trained_seed_sds"] == pytest.approx(35.0 / noise["sd"])
    seeds, images = s["spearman_ci_seeds"], s["spearman_ci"]
    assert seeds["available"] and seeds["seed_sd"] == noise["sd"] and seeds["seed_noise_entries"] == 4
    assert seeds["high"] - seeds["low"] >= images["high"] - images["low"]
    (fam,) = s["orders"]["within_family"]
    assert fam["swaps_within_seed_noise"] >= fam["swaps_within_noise"]
    text = (tmp_path / "results.md").read_text()
    assert f"Seed-to-seed sd of a trained encoder, pooled over e0 (1 degree of freedom): Linear top-1 **{noise['sd']:.2f}**" in text
    assert f"counting training seeds too, 95% interval [{seeds['low']:.2f}, {seeds['high']:.2f}]" in text
    assert f"{fam['swaps_within_seed_noise']} within seed noise" in text and "*within seed noise*" in text


def test_aggregate_drops_per_seed_outcomes_and_rows_keep_them():
    rows = _rows([0.3, 0.5])
    assert all("outcomes" not in r for r in aggregate(rows))
    result = {"per_image": {"n_test": 3, "test_set": "t", "encoding": "packbits-base64url", "linear_top1": "oA==",
                            "knn_top1": "wA=="},
              "bn_recalibrated": {"per_image": {"n_test": 3, "test_set": "t", "linear_top1": "4A==",
                                                "knn_top1": "AA=="}}}
    assert row_outcomes(result) == {"n_test": 3, "test_set": "t", "top1": "oA==", "knn": "wA==", "top1_bn": "4A=="}
    assert row_outcomes({"metrics": {}}) is None  # an older result
