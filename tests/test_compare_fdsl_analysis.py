"""The comparison's FDSL group (entry keys, methods, shared data) and its dataset statistics (analysis columns,
their rank correlation with accuracy, caching)."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from noisevision.cli import main
from noisevision.comparison import suite
from noisevision.comparison.paper import FDSL_GENERATORS, PAPER_FAMILIES
from noisevision.comparison.report import analysis_correlations, write_report
from noisevision.comparison.suite import SuiteRun, get_profile, paper_suite, select_entries
from noisevision.errors import UserError

FDSL_KEYS = {k for g in FDSL_GENERATORS for k in (g, g + "@supervised")}


def test_fdsl_group_keys_selection_and_methods(tmp_path):
    gpu, cpu, quick = get_profile("gpu"), get_profile("cpu"), get_profile("quick")
    fdsl = [e for e in paper_suite() if e.family == "fdsl"]
    assert {e.key for e in fdsl} == FDSL_KEYS
    assert not any(e.paper_family for e in fdsl) and not FDSL_KEYS & set(PAPER_FAMILIES)  # not ranked
    # selectable by group, by group/key and by key; in the full suite, not in the quick (CI) profile
    assert {e.key for e in select_entries(cpu, only=["fdsl"])} == FDSL_KEYS
    assert {e.key for e in select_entries(cpu, only=["fdsl/*"])} == FDSL_KEYS
    assert [e.key for e in select_entries(cpu, only=["*@supervised"])] == [g + "@supervised" for g in FDSL_GENERATORS]
    assert FDSL_KEYS <= {e.key for e in select_entries(gpu)}
    assert FDSL_KEYS <= {e.key for e in select_entries(cpu)}
    assert not FDSL_KEYS & {e.key for e in select_entries(get_profile("cpu-390"))}  # excluded by the profile
    assert not FDSL_KEYS & {e.key for e in select_entries(gpu, exclude=["fdsl"])}
    assert len(select_entries(quick)) == 3
    with pytest.raises(UserError, match="did you mean: fdsl"):
        select_entries(cpu, only=["fdls"])
    with pytest.raises(UserError, match="no suite entry matches 'fdls'"):  # a profile's exclude is checked too
        select_entries(dataclasses.replace(cpu, exclude=("fdls",)))
    with pytest.raises(UserError, match="analyze_images must be in 2..100000"):
        suite.resolve_params(suite.Profile, {"name": "t"}, {**dataclasses.asdict(cpu), "analyze_images": 1}, "profile")
    run = SuiteRun(cpu, tmp_path)
    for gen in FDSL_GENERATORS:
        ssl, sup = suite.suite_entry(gen), suite.suite_entry(gen + "@supervised")
        assert (ssl.generator, sup.generator) == (gen, gen)
        ssl_dir, ssl_cfg = run.run_dir_for(ssl, None, 0)
        sup_dir, sup_cfg = run.run_dir_for(sup, None, 0)
        assert (ssl_cfg["method"], sup_cfg["method"]) == (cpu.method, "supervised")
        assert ssl_dir != sup_dir and ssl_cfg["data"] == sup_cfg["data"]  # one dataset, two pretrainings
        assert ssl_cfg["epochs"] == sup_cfg["epochs"] == cpu.epochs  # the same step budget as every entry
        # classes sized to the image count: 100 for the cpu profile's 10k images, 200 for the gpu's 20k
        assert run.generator_overrides(sup, 0)["num_classes"] == 100
        assert SuiteRun(gpu, tmp_path).generator_overrides(ssl, 0)["num_classes"] == 200
        assert sup.slug == gen.replace("/", "_") + "_supervised"
    # the profiles keep their architecture (no ViT needed for the group)
    assert {p.arch for p in (cpu, gpu, quick)} == {"smallalexnet32", "smallalexnet"}


def test_fdsl_paper_numbers_only_where_comparable():
    by_key = {e.key: e for e in paper_suite()}
    assert by_key["fractal/fractaldb"].paper_top1 == 33.4  # the noise paper's SSL recipe on FractalDB-1k
    assert all(by_key[k].paper_top1 is None for k in FDSL_KEYS - {"fractal/fractaldb"})


def _tiny_setup(tmp_path, two_class_folder):
    """A tiny cpu-like profile and a small two-class image folder to probe on (seconds, not minutes)."""
    profile = yaml.safe_load((suite.PROFILE_DIR / "cpu.yaml").read_text())
    profile.update(num_images=64, image_size=32, epochs=1, batch_size=32, generator_num_images={}, spread_entries=[], analyze=False,
                   probe_bn_recalibrate=False, probe_max_train=80, probe_max_test=80, analyze_images=48)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(profile))
    folder = two_class_folder()
    return tmp_path / "tiny.yaml", folder


def test_fdsl_entries_end_to_end_with_cached_statistics(tmp_path, monkeypatch, two_class_folder):
    profile, folder = _tiny_setup(tmp_path, two_class_folder)
    out = tmp_path / "out"
    args = ["compare", "--profile", str(profile), "--only", "fractal/fractaldb*", "--datasets", f"imagefolder:{folder}",
            "--out", str(out), "--no-progress", "--analyze"]
    assert main(args) == 0
    rows = {r["entry"]: r for r in map(json.loads, (out / "rows.jsonl").read_text().splitlines())}
    assert set(rows) == {"fractal/fractaldb", "fractal/fractaldb@supervised"}
    assert rows["fractal/fractaldb@supervised"]["method"] == "supervised" and "method" not in rows["fractal/fractaldb"]
    assert all(0.0 <= r["top1"] <= 100.0 and r["family"] == "fdsl" for r in rows.values())
    configs = {c["method"]: c for c in (yaml.safe_load(p.read_text()) for p in out.glob("runs/*/config.yaml"))}
    assert set(configs) == {"supervised", "alignuniform"}
    assert configs["supervised"]["method_kwargs"]["num_classes"] == 2  # 64 images at 100 per class: at least 2
    (data,) = out.glob("data/*")  # both entries trained on one generated dataset, with its labels
    assert (data / "labels.npy").is_file()
    # one analysis of that data, without machine paths, on both rows; the report relates it to accuracy
    (analysis,) = out.glob("analysis/*/*.json")
    assert analysis.parent.name == data.name and '"/' not in analysis.read_text()
    stats = json.loads(analysis.read_text())["summary"]
    assert all(r["analysis"] == stats for r in rows.values()) and stats["fid"] is not None
    summary = json.loads((out / "summary.json").read_text())
    (per_dataset,) = summary["analysis"].values()
    assert per_dataset["entries"] == 1  # the @supervised entry shares the data: counted once
    assert (out / per_dataset["chart"]).is_file() and "Does the paper's finding hold here" in (out / "results.md").read_text()

    # the analysis is cached (read, not recomputed); without data or analysis (committed results) it is missing
    def refuse(*args, **kwargs):
        raise AssertionError("the cached analysis was recomputed")

    monkeypatch.setattr(suite, "analyze", refuse)
    (ds,) = suite.parse_datasets(f"imagefolder:{folder}")
    entry = suite.suite_entry("fractal/fractaldb@supervised")
    before = analysis.stat().st_mtime_ns
    assert SuiteRun(get_profile(profile), out, analyze=True).analyze_entry(entry, ds, 0) == stats
    assert analysis.stat().st_mtime_ns == before
    assert SuiteRun(get_profile(profile), tmp_path / "fresh", analyze=True).analyze_entry(entry, ds, 0) is None


def _row(entry, top1, analysis, method=None, family="dead leaves"):
    row = {"entry": entry, "family": family, "kind": "generator", "dataset": "cifar10", "seed": 0, "top1": top1,
           "paper_top1": None, "paper_family": False, "analysis": analysis}
    if method:
        row["method"] = method
    return row


def test_analysis_correlations_and_report(tmp_path):
    def stats(fid, diversity, alpha):
        return {"fid": fid, "kid": fid / 100, "diversity": diversity, "spectrum_alpha": alpha, "saturation": 0.3}

    rows = [_row("a", 50.0, stats(3.0, 0.1, 1.0)), _row("b", 55.0, stats(2.0, 0.2, 2.0)),
            _row("c", 60.0, stats(1.0, 0.3, 1.5)), _row("d", 65.0, stats(0.5, 0.4, 1.2)),
            _row("e", 99.0, stats(99.0, 0.0, 9.0), method="supervised"),  # shares data: left out
            _row("f", 70.0, None)]  # analysis missing
    corr = {c["statistic"]: c for c in analysis_correlations(rows, "cifar10")}
    assert corr["fid"]["spearman"] == pytest.approx(-1.0) and corr["fid"]["agrees_with_paper"] is True
    assert corr["diversity"]["spearman"] == pytest.approx(1.0) and corr["diversity"]["agrees_with_paper"] is True
    assert corr["spectrum_alpha"]["spearman"] == pytest.approx(0.2) and corr["spectrum_alpha"]["agrees_with_paper"] is None
    assert corr["fid"]["entries"] == 4
    assert corr["saturation"]["spearman"] is None  # constant: no rank correlation
    assert corr["edge_density"]["spearman"] is None and corr["edge_density"]["entries"] == 0
    summary = write_report(rows, tmp_path, "t", ["cifar10"])
    assert summary["analysis"]["cifar10"]["missing"] == ["f"] and summary["analysis"]["cifar10"]["entries"] == 4
    assert (tmp_path / "analysis_cifar10.png").is_file()
    report = (tmp_path / "results.md").read_text()
    assert "**yes**: 3 of 3 predicted signs found" in report and "No statistics for f" in report
    # no analysed row: the report is what it was (no section, no summary key, no chart)
    plain = [{k: v for k, v in r.items() if k != "analysis"} for r in rows]
    assert "analysis" not in write_report(plain, tmp_path / "plain", "t", ["cifar10"])
    assert not (tmp_path / "plain" / "analysis_cifar10.png").exists()
