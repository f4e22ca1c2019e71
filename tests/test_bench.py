"""The comparison suite: entry selection, caching, report maths, and the quick profile end to end."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from noisevision.cli import main
from noisevision.comparison.report import aggregate, comparison_summary, compute_time, write_report
from noisevision.comparison.suite import PAPER_FAMILIES, get_profile, list_profiles, paper_suite, select_entries
from noisevision.errors import UserError


def _row(entry, top1, kind="generator", paper=None, seed=0, family="dead leaves", ds="cifar10"):
    return {"entry": entry, "family": family, "kind": kind, "dataset": ds, "seed": seed, "top1": top1, "top5": 90.0,
            "knn": top1 - 5, "alignment": 0.5, "uniformity": -3.0, "paper_top1": paper, "paper_family": paper is not None,
            "profile": "t"}


def test_paper_suite_has_every_family_and_both_baselines():
    keys = [e.key for e in paper_suite()]
    assert set(PAPER_FAMILIES) <= set(keys)
    assert {"fractal/ifs", "mixup/stylegan/oriented", "baseline/random-init", "baseline/real"} <= set(keys)
    assert all(e.paper_top1 is not None for e in paper_suite() if e.key in PAPER_FAMILIES)
    assert {e.key for e in paper_suite() if e.paper_family} == set(PAPER_FAMILIES)  # 14, not fractal/ifs
    fv = next(e for e in paper_suite() if e.key == "feature-vis/checkpoint")
    assert fv.needs == "dead-leaves/mixed"


def test_select_entries():
    quick = get_profile("quick")
    assert [e.key for e in select_entries(quick)] == ["baseline/random-init", "dead-leaves/mixed", "stat/spectrum"]
    cpu = get_profile("cpu")
    assert len(select_entries(cpu)) == len(paper_suite())
    cpu_390 = get_profile("cpu-390")  # the first protocol's committed results have no fdsl rows
    assert len(select_entries(cpu_390)) == len([e for e in paper_suite() if e.family != "fdsl"])
    assert [e.key for e in select_entries(cpu, only=["stylegan/*"])] == [
        "stylegan/random", "stylegan/high-freq", "stylegan/sparse", "stylegan/oriented"]
    assert "stat/wmm" not in [e.key for e in select_entries(cpu, exclude=["stat/*"])]
    with pytest.raises(UserError, match="no suite entry matches"):
        select_entries(cpu, only=["stylegan/orientd"])
    with pytest.raises(UserError, match="unknown profile"):
        get_profile("quik")
    assert {"quick", "demo", "cpu", "cpu-390", "gpu", "paper-small"} <= set(list_profiles())


def test_smaller_generator_datasets_train_for_the_same_number_of_steps(tmp_path):
    """feature-vis makes fewer images in the cpu profile; its epochs scale up so every entry trains as long."""
    from noisevision.comparison.suite import SuiteRun, suite_entry

    cpu = get_profile("cpu")
    run = SuiteRun(cpu, tmp_path)
    _, full = run.run_dir_for(suite_entry("dead-leaves/mixed"), None, 0)
    _, small = run.run_dir_for(suite_entry("feature-vis/random"), None, 0)
    n_small = cpu.generator_num_images["feature-vis/random"]
    assert full["epochs"] == cpu.epochs
    steps = lambda cfg, n: cfg["epochs"] * (n // cfg["batch_size"])  # noqa: E731
    assert steps(small, n_small) == pytest.approx(steps(full, cpu.num_images), rel=0.1)


def test_real_baseline_trains_for_the_same_number_of_steps(tmp_path):
    """The real-data ceiling gets the synthetic entries' optimisation steps, not their epochs."""
    import dataclasses

    import numpy as np

    from noisevision.comparison.suite import EvalDataset, SuiteRun, suite_entry

    for cls in ("a", "b"):
        (tmp_path / "real" / "train" / cls).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(np.full((8, 8, 3), i * 10, np.uint8)).save(tmp_path / "real" / "train" / cls / f"{i}.png")
    profile = dataclasses.replace(get_profile("cpu"), num_images=10, epochs=8, batch_size=5)
    run = SuiteRun(profile, tmp_path / "out")
    _, synthetic = run.run_dir_for(suite_entry("dead-leaves/mixed"), None, 0)
    _, real = run.run_dir_for(suite_entry("baseline/real"), EvalDataset(f"imagefolder:{tmp_path / 'real'}", "train", "test"), 0)
    steps = lambda cfg, n: cfg["epochs"] * (n // cfg["batch_size"])  # noqa: E731
    assert real["epochs"] == 2 and steps(real, 40) == steps(synthetic, 10) == 16
    assert real["lr_schedule"] == synthetic["lr_schedule"] == "cosine"  # same per-step schedule for both


def test_a_dependency_is_pretrained_only_while_its_dependent_has_probes_to_run(tmp_path, monkeypatch):
    """feature-vis/checkpoint needs the dead-leaves encoder; once its probe is on disk (a fresh checkout of the
    committed results), nothing is retrained."""
    from noisevision.comparison import suite

    pretrained: list[str] = []
    monkeypatch.setattr(suite.SuiteRun, "pretrain_entry", lambda self, e, cfg, run_dir: pretrained.append(e.key))
    monkeypatch.setattr(suite.SuiteRun, "probe_entry", lambda self, e, ds, enc, seed, timings=None: {"entry": e.key})
    monkeypatch.setattr(suite, "write_report", lambda *a, **k: {"datasets": []})
    args = dict(only=["feature-vis/checkpoint"], out=tmp_path, progress=False)
    suite.run_suite("cpu", **args)
    assert pretrained == ["dead-leaves/mixed", "feature-vis/checkpoint"]  # the dependency first, unreported
    run = suite.SuiteRun(get_profile("cpu"), tmp_path)
    fv, cifar = suite.suite_entry("feature-vis/checkpoint"), suite.parse_datasets("cifar10")
    assert run.probes_missing(fv, cifar, 0)
    (_, encoder, _, _), = run.encoders(fv, cifar, 0)
    path = run.probe_path(fv, cifar[0], encoder, 0)
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    assert not run.probes_missing(fv, cifar, 0)
    pretrained.clear()
    suite.run_suite("cpu", **args)
    assert pretrained == []


def test_extra_seeds_run_every_selected_entry_and_the_dependency_of_each_seed(tmp_path, monkeypatch):
    """--extra-seeds 1,2 runs each selected entry with seeds 0, 1 and 2 (a spread entry's own spread seeds once),
    and feature-vis of seed s pretrains the dead-leaves encoder of seed s first."""
    from noisevision.comparison import suite

    pretrained: list[tuple[str, int]] = []
    monkeypatch.setattr(suite.SuiteRun, "pretrain_entry",
                        lambda self, e, cfg, run_dir: pretrained.append((e.key, cfg["seed"])))
    monkeypatch.setattr(suite.SuiteRun, "probe_entry",
                        lambda self, e, ds, enc, seed, timings=None: {"entry": e.key, "seed": seed})
    monkeypatch.setattr(suite, "write_report", lambda rows, *a, **k: {"datasets": [], "rows": rows})
    summary = suite.run_suite("cpu", only=["feature-vis/checkpoint", "stat/spectrum"], extra_seeds=(1, 2),
                              out=tmp_path, progress=False, analyze=False)
    assert sorted((r["entry"], r["seed"]) for r in summary["rows"]) == [
        (key, s) for key in ("feature-vis/checkpoint", "stat/spectrum") for s in (0, 1, 2)]
    deps = [p for p in pretrained if p[0] == "dead-leaves/mixed"]
    assert deps == [("dead-leaves/mixed", s) for s in (0, 1, 2)]
    for s in (0, 1, 2):  # each seed's dependency before the feature visualisation that uses it
        assert pretrained.index(("dead-leaves/mixed", s)) < pretrained.index(("feature-vis/checkpoint", s))
    spread = get_profile("cpu")
    assert spread.seeds_of("dead-leaves/mixed", 0, (2, 3)) == [0, 1, 2, 3]
    assert spread.seeds_of("stat/spectrum", 1, (0, 1)) == [1, 0]


def test_random_init_baseline_has_the_profile_architecture(tmp_path):
    from noisevision.comparison.suite import SuiteRun, suite_entry
    from noisevision.models import build_encoder

    run = SuiteRun(get_profile("cpu"), tmp_path)
    (_, spec, run_dir, _), = run.encoders(suite_entry("baseline/random-init"), [], 0)
    assert spec == "random:smallalexnet32:width=0.5" and run_dir is None
    assert build_encoder(spec, 0, None)[0].arch_kwargs["width"] == 0.5  # what the pretrained encoders record


def test_cache_keys_do_not_depend_on_the_output_location(tmp_path):
    """Committed results are found again from another checkout or --out path."""
    from noisevision.comparison.suite import SuiteRun, suite_entry

    cpu = get_profile("cpu")
    keys = []
    for out in (tmp_path / "a", tmp_path / "elsewhere" / "b"):
        run = SuiteRun(cpu, out)
        fv_dir, fv_cfg = run.run_dir_for(suite_entry("feature-vis/checkpoint"), None, 0)  # embeds a checkpoint path
        keys.append((fv_dir.name, Path(fv_cfg["data"]).name))
    assert keys[0] == keys[1]
    assert SuiteRun(cpu, tmp_path).run_dir_for(suite_entry("stat/spectrum"), None, 0)[0].name.split("-")[-1] != \
        SuiteRun(cpu, tmp_path).run_dir_for(suite_entry("stat/spectrum"), None, 1)[0].name.split("-")[-1]


def test_a_generator_revision_is_part_of_the_cache_key(tmp_path, monkeypatch):
    """Results of a generator's first revision keep their keys; a later revision gets its own data and runs."""
    from noisevision.comparison.suite import SuiteRun, suite_entry
    from noisevision.generators import GENERATORS

    run, entry = SuiteRun(get_profile("cpu"), tmp_path), suite_entry("stat/spectrum")
    first = run.generator_config(entry, 0)
    assert "revision" not in first
    before = run.data_key(entry, 0), run.run_dir_for(entry, None, 0)[0]
    monkeypatch.setitem(GENERATORS._items, "stat/spectrum", dataclasses.replace(GENERATORS.get("stat/spectrum"),
                                                                                revision=2))
    assert run.generator_config(entry, 0) == {**first, "revision": 2}
    after = run.data_key(entry, 0), run.run_dir_for(entry, None, 0)[0]
    assert before[0] != after[0] and before[1] != after[1]


def test_the_recorded_config_names_paths_under_the_working_directory_relatively(tmp_path, monkeypatch):
    """A suite run with an absolute --out inside a checkout records it as the checkout-relative path."""
    from noisevision.comparison.suite import recorded_path

    monkeypatch.chdir(tmp_path)
    assert recorded_path(tmp_path / "docs" / "results" / "cpu") == "docs/results/cpu"
    assert recorded_path("docs/results/cpu") == "docs/results/cpu"
    elsewhere = tmp_path.parent / "elsewhere"
    assert recorded_path(elsewhere) == str(elsewhere) and recorded_path(None) is None


def test_stored_results_name_no_machine_paths(tmp_path):
    """Entry JSONs store paths relative to the output folder and the evaluation data by its name."""
    from noisevision.comparison.suite import SuiteRun

    out = tmp_path / "results"
    run = SuiteRun(get_profile("cpu"), out, data_root=str(tmp_path / "datasets"))
    result = {"encoder": {"path": str(out.resolve() / "runs" / "x-s0-abc"), "spec": "random:smallalexnet32"},
              "dataset": {"path": "/cache/datasets/cifar10"},
              "encoder_config": {"data": "/cache/datasets/cifar10/train", "gen_params": [str(out / "runs" / "y")]},
              "config": {"data_root": str(tmp_path / "datasets")}}
    portable = run.portable_result(result, "/cache/datasets/cifar10", "cifar10")
    assert portable == {"encoder": {"path": "runs/x-s0-abc", "spec": "random:smallalexnet32"},
                        "dataset": {"path": "cifar10"},
                        "encoder_config": {"data": "cifar10/train", "gen_params": ["runs/y"]},
                        "config": {"data_root": "$NOISEVISION_DATA"}}


def test_report_maths_spearman_gap_and_seed_spread(tmp_path):
    rows = [
        _row("baseline/random-init", 50.0, kind="random", family="baseline"),
        _row("baseline/real", 70.0, kind="real", family="baseline"),
        _row("a", 55.0, paper=30.0), _row("b", 60.0, paper=35.0), _row("c", 58.0, paper=40.0),
        _row("d", 64.0, paper=45.0, seed=0), _row("d", 66.0, paper=45.0, seed=1),
        {**_row("fractal", 52.0, paper=50.0), "paper_family": False},  # shown with a paper number, not ranked
    ]
    for r, bn in zip(rows, (52.0, 75.0, 54.0, 61.0, 57.0, 66.0, 68.0, 53.0)):
        r["top1_bn"] = bn  # BN re-estimation: ranks a<c<b<d again
    agg = aggregate(rows)
    d = next(r for r in agg if r["entry"] == "d")
    assert d["top1"] == pytest.approx(65.0) and d["top1_std"] == pytest.approx(2 ** 0.5)
    s = comparison_summary(agg, "cifar10")
    # ours: a<c<b<d ; paper: a<b<c<d -> ranks (1,3,2,4) vs (1,2,3,4): rho = 1 - 6*2/(4*15) = 0.8
    assert s["spearman_vs_paper"] == pytest.approx(0.8)
    assert s["best_entry"] == "d" and s["gap_closure"] == pytest.approx((65 - 50) / (70 - 50))
    assert s["real_minus_random"] == 20.0 and s["largest_seed_sd_entry"] == "d"
    assert s["gap_in_seed_sds"] == pytest.approx(20 / 2 ** 0.5)
    summary = write_report(rows, tmp_path, "t", ["cifar10"])
    text = (tmp_path / "results.md").read_text()
    assert "Real minus random: **20.0** points, 14 times the largest seed-to-seed sd (1.41, d)." in text
    assert "0.80" in text and "75%" in text and "| dead leaves | d | 65.0 | 1.41 | 67.0 |" in text
    assert "top-1 BN re-est." in text and "Seed-to-seed spread of d (seeds 0, 1): top-1 sd **1.41**, 1.41 with BN" in text
    bn = summary["datasets"][0]["other_metrics"]["top1_bn"]
    assert bn["gap_closure"] == pytest.approx((67 - 52) / (75 - 52)) and bn["spearman_vs_paper"] == pytest.approx(0.8)
    assert (tmp_path / "chart_cifar10.png").stat().st_size > 1000
    assert summary["datasets"][0]["gap_closure"] == pytest.approx(0.75)
    # rows without per-image outcomes: no interval, and the report says why
    ci = summary["datasets"][0]["spearman_ci"]
    assert not ci["available"] and ci["estimate"] == pytest.approx(0.8) and "no per-image top1 outcomes" in ci["reason"]
    assert "Linear top-1: **0.80**, interval unavailable: 4 of 4 paper families" in text
    ranks = {r["entry"]: (r["paper_rank"], r["top1_rank"], r["top1_bn_rank"]) for r in summary["datasets"][0]["rank_table"]}
    assert ranks == {"d": (1, 1, 1), "c": (2, 3, 3), "b": (3, 2, 2), "a": (4, 4, 4)}  # fractal is not ranked
    assert "| dead leaves | c | 40.0 | 2 | 58.0 | 3 | 57.0 | 3 |" in text
    within = summary["datasets"][0]["orders"]["within_family"]
    assert within[0]["swapped"] == [["c", "b"]] and within[0]["kendall_tau"] == pytest.approx(2 / 3)


def test_entry_results_keep_per_image_outcomes_of_both_probes(tmp_path, monkeypatch):
    """The entry JSON keeps which test images each probe got right (also with BN re-estimated), and its row
    carries them to the report; re-reading the cached JSON gives the same row."""
    from noisevision.comparison import suite
    from noisevision.eval import decode_outcomes, encode_outcomes

    calls: list[bool] = []

    def fake_probe(**cfg):
        bn = cfg.get("bn_recalibrate", False)
        calls.append(bn)
        per = {"n_test": 4, "test_set": "abc", "encoding": "packbits-base64url",
               "linear_top1": encode_outcomes([True, bn, False, False]), "knn_top1": encode_outcomes([True] * 4)}
        return {"metrics": {"top1": 50.0 if bn else 25.0, "top5": 100.0, "knn_top1": 100.0, "alignment": None,
                            "uniformity": None},
                "dataset": {"path": str(tmp_path / "cifar10")}, "bn_recalibrate": {"enabled": bn},
                "timings_s": {"total_s": 1.0}, "per_image": per}

    monkeypatch.setattr(suite, "probe", fake_probe)
    run = suite.SuiteRun(get_profile("cpu"), tmp_path / "out")  # probes with and without BN re-estimation
    entry, (ds,) = suite.suite_entry("baseline/random-init"), suite.parse_datasets("cifar10")
    row = run.probe_entry(entry, ds, run.random_encoder(), 0)
    assert calls == [False, True]
    stored = json.loads((tmp_path / "out" / row["result_file"]).read_text())
    assert stored["per_image"]["n_test"] == 4 and stored["bn_recalibrated"]["per_image"]["test_set"] == "abc"
    o = row["outcomes"]
    assert (o["n_test"], o["test_set"]) == (4, "abc")
    assert decode_outcomes(o["top1"], 4).tolist() == [True, False, False, False]
    assert decode_outcomes(o["top1_bn"], 4).tolist() == [True, True, False, False]
    assert decode_outcomes(o["knn"], 4).all()
    assert run.probe_entry(entry, ds, run.random_encoder(), 0) == row and calls == [False, True]  # cached


def test_a_cached_result_keeps_the_timings_of_the_run_it_probed(tmp_path, monkeypatch):
    """Timings fill in what a cached result lacks; a retrained run (a fresh machine lost the cache) does not
    overwrite the committed run's."""
    from noisevision.comparison import suite

    monkeypatch.setattr(suite, "probe", lambda **cfg: {
        "metrics": {"top1": 25.0}, "dataset": {"path": str(tmp_path / "cifar10")}, "timings_s": {"total_s": 1.0}})
    run = suite.SuiteRun(dataclasses.replace(get_profile("cpu"), probe_bn_recalibrate=False), tmp_path / "out")
    entry, (ds,) = suite.suite_entry("dead-leaves/mixed"), suite.parse_datasets("cifar10")
    first = run.probe_entry(entry, ds, str(run.out / "runs/x/encoder.pt"), 0, {"pretrain_seconds": 100.0})
    assert first["pretrain_seconds"] == 100.0 and "gen_seconds" not in first
    again = run.probe_entry(entry, ds, str(run.out / "runs/x/encoder.pt"), 0, {"pretrain_seconds": 250.0, "gen_seconds": 9.0})
    assert (again["pretrain_seconds"], again["gen_seconds"]) == (100.0, 9.0)
    stored = json.loads((tmp_path / "out" / first["result_file"]).read_text())["suite"]
    assert (stored["pretrain_seconds"], stored["gen_seconds"]) == (100.0, 9.0)


def test_compute_time_counts_each_run_once_and_probes_per_dataset():
    rows = [
        {"entry": "a", "seed": 0, "dataset": "cifar10", "gen_seconds": 60, "pretrain_seconds": 480, "probe_seconds": 180},
        {"entry": "a", "seed": 0, "dataset": "tiny", "gen_seconds": 60, "pretrain_seconds": 480, "probe_seconds": 360},
        {"entry": "a", "seed": 1, "dataset": "cifar10", "gen_seconds": 60, "pretrain_seconds": 420, "probe_seconds": 120},
        {"entry": "baseline/random-init", "seed": 0, "dataset": "cifar10", "probe_seconds": 180},
    ]
    c = compute_time(rows)
    assert c["runs"] == 3 and c["gen_hours"] == pytest.approx(120 / 3600, abs=0.01)
    assert c["total_hours"] == pytest.approx((120 + 900 + 840) / 3600, abs=0.01)
    assert c["longest_run"] == {"entry": "a", "seed": 0, "minutes": 18.0}
    assert compute_time([]) == {}


def test_pretrain_time_of_a_resumed_run_counts_all_its_steps(tmp_path):
    from noisevision.comparison.suite import _pretrain_timing

    # 40 steps of 256 images; killed after step 20, resumed: the last process ran 20 steps in 40 s
    resumed = {"wall_s": 40.0, "steps": 40, "batch_size": 256, "images_per_s": 20 * 256 / 40.0}
    metrics = tmp_path / "metrics.jsonl"
    speeds = {10: 256.0, 20: 128.0, 30: 128.0}  # logged every 10 steps: 10 s, 20 s, 20 s
    metrics.write_text("".join(json.dumps({"step": k, "images_per_s": v}) + "\n" for k, v in speeds.items()))
    t = _pretrain_timing(resumed, 128, metrics)
    assert t["pretrain_seconds"] == pytest.approx(10 + 20 + 20 + 20)  # the last 10 steps at the final speed
    assert t["pretrain_images_per_s"] == pytest.approx(40 * 256 / 70, abs=0.1)
    # without metric lines: all steps at the last process's speed
    assert _pretrain_timing(resumed, 128)["pretrain_seconds"] == pytest.approx(80.0)
    whole = {"wall_s": 480.0, "steps": 390, "batch_size": 256, "images_per_s": 208.0}
    assert _pretrain_timing(whole, 128, metrics) == {"pretrain_seconds": 480.0, "pretrain_images_per_s": 208.0}
    old = {"wall_s": 480.0, "steps": 390}  # an older summary without images_per_s
    assert _pretrain_timing(old, 256) == {"pretrain_seconds": 480.0, "pretrain_images_per_s": 208.0}


def test_bench_cli_bad_input(capsys):
    assert main(["compare", "--profile", "huge"]) == 2
    assert "unknown profile" in capsys.readouterr().err
    assert main(["compare", "--only", "nothing/*"]) == 2
    assert main(["bench", "--profile", "huge"]) == 2  # the old name still works for one release, with a note
    assert "`bench` is now `compare`" in capsys.readouterr().err


def test_the_demo_profile_says_what_it_can_show():
    """`make demo` runs the demo profile: two entries, and one sentence on what a run that size can show."""
    demo = get_profile("demo")
    assert demo.entries == ("baseline/random-init", "dead-leaves/squares") and demo.probe_bn_recalibrate
    assert "kNN" in demo.note and "cannot" in demo.note


def test_a_profile_file_and_a_config_file(tmp_path, capsys):
    """--profile takes a YAML file as well as a shipped name; --config takes the run's settings."""

    from noisevision.comparison.suite import PROFILE_DIR

    mine = tmp_path / "mine.yaml"
    mine.write_text((PROFILE_DIR / "quick.yaml").read_text() + "epochs: 3\n")
    assert get_profile(mine).epochs == 3 and get_profile(mine).name == "mine"
    mine.write_text("epochz: 3\n")
    with pytest.raises(UserError, match="did you mean: epochs"):
        get_profile(mine)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"profile": "quick", "only": ["nothing/*"]}))
    assert main(["compare", "--config", str(tmp_path / "run.yaml")]) == 2
    assert "no suite entry matches 'nothing/*'" in capsys.readouterr().err


def _one_line_error(capsys, message: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("noisevision: error:") and err.count("\n") == 1 and message in err, err


def test_bad_datasets_and_outputs_fail_before_any_work(tmp_path, capsys, monkeypatch, deny_writes):
    """A dataset that is not there, an --out that is a file or read-only: one line, nothing generated."""
    from noisevision.comparison.suite import SuiteRun

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the inputs were checked")

    monkeypatch.setattr(SuiteRun, "run_entry", refuse)
    out = tmp_path / "out"
    assert main(["compare", "--datasets", "bogus", "--out", str(out)]) == 2
    _one_line_error(capsys, "unknown dataset 'bogus'")
    assert main(["compare", "--datasets", f"imagefolder:{tmp_path / 'nowhere'}", "--out", str(out)]) == 2
    _one_line_error(capsys, "does not exist")
    only_train = tmp_path / "only_train"
    (only_train / "train" / "a").mkdir(parents=True)
    assert main(["compare", "--datasets", f"imagefolder:{only_train}", "--out", str(out)]) == 2
    _one_line_error(capsys, "has no 'test' split (found: train)")
    assert not out.exists()
    (only_train / "test" / "a").mkdir(parents=True)
    data = f"imagefolder:{only_train}"  # both splits now: the output checks come next
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert main(["compare", "--datasets", data, "--out", str(a_file)]) == 2
    _one_line_error(capsys, "is a file, not a folder")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    deny_writes(read_only)
    assert main(["compare", "--datasets", data, "--out", str(read_only / "results")]) == 2
    _one_line_error(capsys, "permission denied")
    assert main(["compare", "--datasets", data, "--out", str(read_only)]) == 2
    _one_line_error(capsys, "permission denied")
    assert list(read_only.iterdir()) == [] and a_file.read_text() == "mine"


@pytest.mark.parametrize("setting, message", [
    ("method: byol", "unknown method 'byol'"),
    ("arch_kwargs: {width: abc}", "invalid arguments for encoder 'smallalexnet32': width must be a number"),
    ("aug: tiny", "unknown augmentation preset 'tiny'"),
    ("gen_workers: 0", "gen_workers must be at least 1"),
    ("batch_size: 100000", "batch_size 100000 is more than the"),
    ("probe_protocol: slow", "probe_protocol must be one of fast, paper"),
])
def test_bad_profile_settings_fail_before_any_work(tmp_path, capsys, monkeypatch, setting, message):
    """A profile's mistake is found before the first entry generates, trains or probes, not hours later."""
    from noisevision.comparison.suite import PROFILE_DIR, SuiteRun

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the profile was checked")

    monkeypatch.setattr(SuiteRun, "run_entry", refuse)
    mine = tmp_path / "mine.yaml"
    mine.write_text((PROFILE_DIR / "quick.yaml").read_text() + setting + "\n")
    for split in ("train", "test"):
        (tmp_path / "data" / split / "a").mkdir(parents=True)
    out = tmp_path / "out"
    assert main(["compare", "--profile", str(mine), "--datasets", f"imagefolder:{tmp_path / 'data'}",
                 "--out", str(out)]) == 2
    _one_line_error(capsys, message)
    assert not out.exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "{}"])
def test_a_damaged_cached_result_is_named(tmp_path, content):
    """A result file changed or cut short elsewhere is named with what to do, not a traceback."""
    from noisevision.comparison.suite import SuiteRun, parse_datasets, suite_entry

    run, entry, ds = SuiteRun(get_profile("quick"), tmp_path), suite_entry("baseline/random-init"), \
        parse_datasets("cifar10")[0]
    path = run.probe_path(entry, ds, run.random_encoder(), 0)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(UserError, match=f"{path.name} is damaged .*; delete it to compute it again"):
        run.probe_entry(entry, ds, run.random_encoder(), 0)


@pytest.mark.slow
def test_quick_profile_end_to_end_and_cached_rerun(tmp_path, data_root, capsys):
    out = tmp_path / "quick"
    args = ["compare", "--profile", "quick", "--datasets", "cifar10", "--out", str(out), "--data-root", str(data_root),
            "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    # two paper families and no real-data baseline: no correlation or gap closure, the margins instead
    assert "No ranking against the paper: this run has 2 of its families" in printed
    assert "cifar10, linear top-1: best minus random init" in printed and "n/a" not in printed
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert {r["entry"] for r in rows} == {"baseline/random-init", "dead-leaves/mixed", "stat/spectrum"}
    for r in rows:
        assert 10.0 < r["top1"] <= 100.0 and 10.0 < r["knn"] <= 100.0  # CIFAR-10 chance is 10%
        assert 10.0 < r["top1_bn"] <= 100.0  # the quick profile also probes with BN statistics re-estimated
        if r["kind"] == "generator":
            assert r["pretrain_seconds"] > 0 and r["pretrain_images_per_s"] > 0 and r["gen_seconds"] > 0
        assert r["probe_seconds"] > 0
        assert r["outcomes"]["n_test"] == 2000 and {"top1", "top1_bn", "knn"} <= set(r["outcomes"])
    report = (out / "results.md").read_text()
    assert (out / "chart_cifar10.png").exists() and "| dead leaves |" in report and "Measured compute of these 3 runs" in report
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if "entries" in p.parts}
    assert main(args) == 0  # cached: nothing is recomputed
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.json") if "entries" in p.parts}
    assert before == after
    # a fresh checkout holds only the committed entry JSONs: the table is rebuilt without any training
    shutil.rmtree(out / "runs")
    shutil.rmtree(out / "data")
    assert main(args) == 0
    again = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert again == rows and not (out / "runs").exists()


@pytest.mark.slow
def test_gpu_profile_runs_on_cpu_at_a_tiny_scale(tmp_path, capsys, two_class_folder):
    """The gpu profile's geometry (128 px renders, 64 px crops, the 64 px SmallAlexNet, 64 px probe) runs
    end to end; only the budget is shrunk, so a GPU run meets no untested setting."""

    from noisevision.comparison.suite import PROFILE_DIR

    profile = yaml.safe_load((PROFILE_DIR / "gpu.yaml").read_text())
    assert (profile["image_size"], profile["crop_size"], profile["probe_image_size"]) == (128, 64, 64)
    profile.update(num_images=64, epochs=1, batch_size=32, generator_num_images={}, spread_entries=[],
                   probe_max_train=300, probe_max_test=200, note="a smoke run, too small to show anything")
    (tmp_path / "gpu-tiny.yaml").write_text(yaml.safe_dump(profile))
    folder = two_class_folder()  # a probe of seconds
    out = tmp_path / "out"
    args = ["compare", "--profile", str(tmp_path / "gpu-tiny.yaml"), "--only", "baseline/random-init",
            "--only", "dead-leaves/squares", "--datasets", f"imagefolder:{folder}", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "What this shows: a smoke run, too small to show anything" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert {r["entry"] for r in rows} == {"baseline/random-init", "dead-leaves/squares"}
    assert all(75.0 <= r["top1"] <= 100.0 for r in rows)  # squares against 1/f noise: easily told apart
    (run_config,) = (yaml.safe_load(p.read_text()) for p in out.glob("runs/*/config.yaml"))
    assert (run_config["image_size"], run_config["crop_size"], run_config["arch"]) == (128, 64, "smallalexnet")


@pytest.mark.parametrize("precision, expected", [("fp32", "fp32"), ("auto", "bfloat16")])
def test_a_profile_pins_its_precision_on_a_machine_that_prefers_bf16(precision, expected, tmp_path,
                                                                       monkeypatch, two_class_folder):
    """A suite run in pieces may resume on a CPU where `auto` picks bf16 (one with AMX): a profile that says
    fp32 trains and probes in fp32 there, and the rows record the arithmetic each run used."""

    from noisevision import accel
    from noisevision.comparison.suite import PROFILE_DIR

    monkeypatch.setattr(accel, "cpu_bf16_is_faster", lambda: True)  # what `auto` finds on an AMX CPU
    profile = yaml.safe_load((PROFILE_DIR / "cpu.yaml").read_text())
    assert profile["precision"] == "fp32"
    profile.update(num_images=64, image_size=32, epochs=1, batch_size=32, generator_num_images={}, spread_entries=[],
                   analyze=False, probe_max_train=300, probe_max_test=200, precision=precision)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(profile))
    out = tmp_path / "out"
    assert main(["compare", "--profile", str(tmp_path / "tiny.yaml"), "--only", "dead-leaves/squares", "--datasets",
                 f"imagefolder:{two_class_folder()}", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    (run_summary,) = (json.loads(p.read_text()) for p in out.glob("runs/*/summary.json"))
    (row,) = (json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines())
    assert run_summary["precision"] == expected
    assert row["precision"] == {"pretrain": expected, "probe": expected}
    assert json.loads((out / "summary.json").read_text())["precision"] == {expected: 1}
    assert accel.autocast_dtype("cpu") == torch.bfloat16  # the pin ends with the suite


def test_the_report_flags_runs_of_mixed_precision(tmp_path):
    rows = [_row("baseline/random-init", 50.0, kind="random", family="baseline"),
            _row("dead-leaves/squares", 55.0), _row("stylegan/oriented", 57.0, family="stylegan")]
    rows[0]["precision"] = {"pretrain": None, "probe": "fp32"}
    rows[1]["precision"] = {"pretrain": "fp32", "probe": "fp32"}
    rows[2]["precision"] = {"pretrain": "bfloat16", "probe": "fp32"}
    summary = write_report(rows, tmp_path, "t", ["cifar10"])
    assert summary["precision"] == {"fp32": 2, "train bfloat16, probe fp32": 1}
    text = (tmp_path / "results.md").read_text()
    assert "**Mixed precision**" in text and "train bfloat16, probe fp32: stylegan/oriented (seed 0)" in text
    rows[2]["precision"] = {"pretrain": "fp32", "probe": "fp32"}
    write_report(rows, tmp_path, "t", ["cifar10"])
    assert "Mixed precision" not in (tmp_path / "results.md").read_text()


def _refuse_work(monkeypatch, why: str) -> None:
    """Make generating, training, probing and analysing fail the test."""
    from noisevision.comparison import suite

    def refuse(*args, **kwargs):
        raise AssertionError(why)

    monkeypatch.setattr(suite.SuiteRun, "pretrain_entry", refuse)
    monkeypatch.setattr(suite, "probe", refuse)
    monkeypatch.setattr(suite, "analyze", refuse)


COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.parametrize("profile", sorted(p.parent.name for p in COMMITTED.glob("*/summary.json")
                                           if p.parent.name != "study"))
def test_committed_results_rebuild_without_training(profile, tmp_path, data_root, capsys, monkeypatch):
    """docs/results/<profile> holds only entry JSONs (and statistics): re-running the profile there must find
    every one of them (cache keys unchanged by later code) and rewrite the same report without generating,
    training, probing or analysing. A suite committed part-way is re-read with --report-only."""
    _refuse_work(monkeypatch, f"a committed result was not found: the {profile} profile's cache keys changed "
                              f"(profile or generator settings); re-run it into docs/results/{profile} and commit")
    committed = COMMITTED / profile
    for path in committed.glob("entries/*/*.json"):  # no machine's absolute paths in committed results
        assert '"/' not in path.read_text(), f"{path} holds an absolute path"
    files = {str(p.relative_to(committed)) for p in committed.glob("entries/*/*.json")}
    if (committed / "sweep.json").exists():  # a sweep sharing the folder keeps its points beside the suite's
        files -= {r["result_file"] for r in json.loads((committed / "sweep.json").read_text())["rows"] if not r["default"]}
    out = tmp_path / profile
    shutil.copytree(committed, out, ignore=shutil.ignore_patterns("data", "runs"))
    part_way = "not_run" in json.loads((committed / "summary.json").read_text())
    extra_seeds = yaml.safe_load((committed / "config.yaml").read_text()).get("extra_seeds")  # as it was run
    args = ["compare", "--profile", profile, "--datasets", "cifar10", "--out", str(out), "--data-root", str(data_root),
            "--no-progress"] + (["--report-only"] if part_way else []) + (
            ["--extra-seeds", ",".join(map(str, extra_seeds))] if extra_seeds else [])
    assert main(args) == 0
    assert not (out / "runs").exists() and not (out / "data").exists()
    rows = (out / "rows.jsonl").read_text()
    assert {json.loads(line)["result_file"] for line in rows.splitlines()} == files  # every committed result
    assert rows == (committed / "rows.jsonl").read_text()
    assert (out / "results.md").read_text() == (committed / "results.md").read_text()
    assert "Spearman" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("verb", [["compare"], ["sweep", "--generator", "dead-leaves/mixed", "--param", "max_shapes",
                                              "--values", "10", "20"]], ids=["compare", "sweep"])
def test_a_device_the_machine_lacks_fails_before_any_work(verb, tmp_path, data_root, capsys):
    out = tmp_path / "quick"
    args = [*verb, "--profile", "quick", "--out", str(out), "--data-root", str(data_root), "--device", "cuda"]
    assert main(args) == 2
    assert "CUDA is not available" in capsys.readouterr().err and not out.exists()


def test_report_only_reads_what_is_on_disk_and_lists_the_rest(tmp_path, data_root, capsys, monkeypatch):
    """A suite run in pieces can be reported between them: runs without results are listed, never started."""
    _refuse_work(monkeypatch, "--report-only started work")
    out = tmp_path / "cpu-390"
    shutil.copytree(COMMITTED / "cpu-390", out, ignore=shutil.ignore_patterns("data", "runs"))
    shutil.rmtree(out / "entries" / "stat_wmm")
    (seed1,) = (out / "entries" / "dead-leaves_mixed").glob("cifar10-s1-*.json")
    seed1.unlink()
    args = ["compare", "--profile", "cpu-390", "--datasets", "cifar10", "--data-root", str(data_root),
            "--no-progress", "--report-only"]
    assert main(args + ["--out", str(out)]) == 0
    report = (out / "results.md").read_text()
    assert "**Part-way**: 2 runs" in report and "Not run yet: dead-leaves/mixed (seed 1), stat/wmm." in report
    assert json.loads((out / "summary.json").read_text())["not_run"] == ["dead-leaves/mixed (seed 1)", "stat/wmm"]
    entries = [json.loads(line)["entry"] for line in (out / "rows.jsonl").read_text().splitlines()]
    assert "stat/wmm" not in entries and entries.count("dead-leaves/mixed") == 2
    capsys.readouterr()
    for missing in (tmp_path / "empty", tmp_path / "typo"):  # an empty folder, and one that is not there
        if missing.name == "empty":
            missing.mkdir()
        assert main(args + ["--out", str(missing)]) == 2
        _one_line_error(capsys, "no results of profile 'cpu-390'")
    assert not (tmp_path / "typo").exists()  # reading only creates nothing
