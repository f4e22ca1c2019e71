"""``noisevision sweep``: values parsed against the generator, one cached suite entry per value, end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from noisevision.cli import main
from noisevision.comparison.suite import SuiteRun, get_profile, parse_datasets, select_entries
from noisevision.comparison.sweep import (
    SweepConfig,
    plot_sweep,
    point_profile,
    random_floor_rows,
    sweep,
    sweep_entry,
    sweep_markdown,
    sweep_points,
    with_differences_from_default,
)
from noisevision.eval.outcomes import encode_outcomes
from noisevision.parsing import make_config


def test_values_become_typed_generator_parameters() -> None:
    quick = get_profile("quick")
    points = sweep_points(quick, "stat/spectrum", "exponent_range", ["1,1", "2.5,2.5", "1,3"], include_default=True)
    assert [p.label for p in points] == ["1,1", "2.5,2.5", "1,3", "default (0.5,3.5)"]
    assert [p.x for p in points] == [1.0, 2.5, None, None]  # a range with equal ends sits on a numeric axis
    assert points[0].params == {"exponent_range": (1.0, 1.0)} and points[-1].params == {} and points[-1].default
    # spaces in one string, numbers and pairs from the API all read as the CLI's text
    cfg = make_config(SweepConfig, None, {"generator": "stat/spectrum", "param": "exponent_range",
                                          "values": ["1,1", (2, 2), 3.0]}, "sweep")
    assert cfg.values == ("1,1", "2,2", "3")


def test_the_table_gives_each_value_its_difference_from_the_default() -> None:
    def row(value, correct, default=False):
        bits = encode_outcomes(correct)
        return {"dataset": "cifar10", "value": value, "default": default, "top1": 100 * correct.mean(),
                "knn": 100 * correct.mean(), "outcomes": {"n_test": correct.size, "test_set": "t", "top1": bits,
                                                          "knn": bits}}

    reference = np.arange(1000) % 2 == 0  # 50%
    better = reference | (np.arange(1000) % 10 == 1)  # 60%: right on 100 more images, wrong on none more
    rows = with_differences_from_default([row("2,2", better), row("default (0.5,3.5)", reference, default=True)])
    assert rows[0]["top1_vs_default"]["diff"] == pytest.approx(10.0) and "top1_vs_default" not in rows[1]
    assert 8.0 < rows[0]["top1_vs_default"]["low"] < 10.0 < rows[0]["top1_vs_default"]["high"] < 12.0
    table = sweep_markdown({"generator": "stat/spectrum", "param": "exponent_range", "profile": "cpu",
                            "datasets": ["cifar10"], "rows": rows})
    assert "| 2,2 | 60.0 |  | 60.0 | +10.0 (+8.1 to +11.9) | +10.0 (+8.1 to +11.9) |" in table
    assert "Best: exponent_range = 2,2 (60.0% linear top-1)." in table
    # A best value whose interval includes zero is said to be within noise of the default.
    close = reference.copy()
    close[:20] = ~close[:20]  # right on 10 images the default misses, wrong on 10 it gets, then one more
    close[21] = True
    rows = with_differences_from_default([row("3,3", close), row("default (0.5,3.5)", reference, default=True)])
    table = sweep_markdown({"generator": "stat/spectrum", "param": "exponent_range", "profile": "cpu",
                            "datasets": ["cifar10"], "rows": rows})
    assert "Best: exponent_range = 3,3 (50.1% linear top-1; within test-image noise of the default)." in table
    # Without a default there is nothing to subtract, and no such columns.
    alone = with_differences_from_default([row("2,2", better)])
    assert "default (95% CI)" not in sweep_markdown({"generator": "g", "param": "p", "profile": "cpu",
                                                     "datasets": ["cifar10"], "rows": alone})


def test_random_init_is_the_floor_of_the_table_and_the_plot(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``include_random`` probes the suite's random-init entry at the profile's random-init seeds; the
    table shows it as one row (mean ± sd) and the best value's distance to it, the plot as dotted lines."""
    probed = []

    def fake_run_entry(self, entry, datasets, seed):
        probed.append((entry.key, seed))
        return [{"entry": entry.key, "kind": entry.kind, "dataset": "cifar10", "seed": seed, "top1": 50.0 + seed,
                 "top1_bn": 51.0, "knn": 40.0}]

    monkeypatch.setattr(SuiteRun, "run_entry", fake_run_entry)
    cpu = get_profile("cpu")  # runs random init with seeds 1 and 2 besides the sweep's seed
    cfg = SweepConfig(profile="cpu", generator="stat/spectrum", param="exponent_range", values=("2,2",),
                      include_random=True)
    floor = random_floor_rows(cpu, cfg, tmp_path, parse_datasets("cifar10"))
    assert probed == [("baseline/random-init", 0), ("baseline/random-init", 1), ("baseline/random-init", 2)]
    assert all(r["floor"] and not r["default"] and r["x"] is None for r in floor)
    swept = {"entry": "stat/spectrum", "dataset": "cifar10", "seed": 0, "value": "2,2", "x": 2.0, "default": False,
             "top1": 54.0, "top1_bn": 55.0, "knn": 41.0, "analysis": {"spectrum_alpha": 1.93, "fid": 712.4}}
    result = {"generator": "stat/spectrum", "param": "exponent_range", "profile": "cpu", "datasets": ["cifar10"],
              "rows": with_differences_from_default([swept, *floor])}
    table = sweep_markdown(result)
    assert "| random init (3 seeds) | 51.0 ± 1.0 | 51.0 ± 0.0 | 40.0 ± 0.0 |" in table
    assert "Best: exponent_range = 2,2 (54.0% linear top-1; +3.0 against random init)." in table
    # the value's dataset statistics, when it was analysed
    assert "| exponent_range | top-1 | spectrum slope alpha |" in table and "| 2,2 | 54.0 | 1.93 |" in table
    assert "vs_default" not in str(result["rows"])  # no default run: nothing to subtract
    plot_sweep(result, parse_datasets("cifar10")[0], tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_each_value_is_its_own_cached_entry(tmp_path: Path) -> None:
    quick = get_profile("quick")
    ds = parse_datasets("cifar10")[0]
    points = sweep_points(quick, "stat/spectrum", "exponent_range", ["1,1", "2,2"], include_default=True)
    run = SuiteRun(quick, tmp_path)
    run_dirs, probes = set(), set()
    for point in points:
        entry = sweep_entry("stat/spectrum", point)
        assert entry.family == "statistical" and entry.kind == "generator"
        over = run.generator_overrides(entry, 0)
        assert over.get("exponent_range") == point.params.get("exponent_range")
        run_dir, cfg = run.run_dir_for(entry, None, 0)
        run_dirs.add(run_dir)
        probes.add(run.probe_path(entry, ds, str(run_dir), 0))
    assert len(run_dirs) == len(probes) == 3
    # the default point is exactly the suite's own stat/spectrum entry: a shared --out reuses compare's work
    suite_entry = next(e for e in select_entries(quick) if e.key == "stat/spectrum")
    assert run.run_dir_for(suite_entry, None, 0)[0] == run.run_dir_for(sweep_entry("stat/spectrum", points[-1]), None, 0)[0]


def test_image_counts_keep_the_number_of_steps(tmp_path: Path) -> None:
    quick = get_profile("quick")  # 2048 images x 2 epochs
    points = sweep_points(quick, "stat/spectrum", "num_images", ["1024", "4096"], include_default=True)
    assert [(p.label, p.num_images, p.default) for p in points] == [
        ("1024", 1024, False), ("4096", 4096, False), ("default (2048)", 2048, True)]
    configs = []
    for point in points:
        run = SuiteRun(point_profile(quick, "stat/spectrum", point), tmp_path)
        entry = sweep_entry("stat/spectrum", point)
        assert run.generator_config(entry, 0)["n"] == point.num_images
        configs.append(run.run_dir_for(entry, None, 0))
    assert [cfg["epochs"] for _, cfg in configs] == [4, 1, 2]
    assert len({run_dir for run_dir, _ in configs}) == 3
    # a count already among the values is marked as the default instead of running twice
    again = sweep_points(quick, "stat/spectrum", "num_images", ["1024", "2048"], include_default=True)
    assert [(p.label, p.default) for p in again] == [("1024", False), ("2048", True)]


@pytest.mark.parametrize("args, message", [
    (["--generator", "stat/spectra", "--param", "exponent_range", "--values", "2,2"], "unknown generator 'stat/spectra' (did you mean: stat/spectrum"),
    (["--generator", "stat/spectrum", "--param", "exponent", "--values", "2,2"], "has no parameter 'exponent'"),
    (["--generator", "stat/spectrum", "--param", "exponent_range", "--values", "2,x"], "bad value for exponent_range"),
    (["--generator", "stat/spectrum", "--param", "exponent_range", "--values", "3,1"], "exponent_range must satisfy"),
    (["--generator", "stat/spectrum", "--param", "exponent_range", "--values", "2"], "needs 2 comma-separated"),
    (["--generator", "stat/spectrum", "--param", "exponent_range", "--values", "2,2", "2,2"], "given twice"),
    (["--generator", "stat/spectrum", "--param", "num_images", "--values", "64"], "smaller than the profile's batch"),
    (["--generator", "stat/spectrum", "--param", "num_images", "--values", "lots"], "bad value 'lots'"),
    (["--generator", "stat/spectrum", "--param", "exponent_range"], "sweep needs --values"),
    (["--generator", "mix:stat/spectrum+dead-leaves/squares", "--param", "p", "--values", "1"], "not the combinator"),
    (["--generator", "stat/spectrum", "--param", "exponent_range", "--values", "2,2", "--datasets", "cifar11"],
     "unknown dataset 'cifar11'"),
    (["--generator", "stat/spectrum", "--param", "exponent_range", "--values", "2,2", "--profile", "fastest"],
     "unknown profile 'fastest'"),
])
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["sweep", *args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("noisevision: error:") and message in err and "\n" not in err, err
    assert not out.exists()  # nothing was started


@pytest.mark.slow
def test_sweep_runs_end_to_end_and_resumes_from_its_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture, two_class_folder) -> None:
    from noisevision.comparison import suite

    profile = yaml.safe_load((suite.PROFILE_DIR / "quick.yaml").read_text())
    profile.update(num_images=64, epochs=1, batch_size=32, arch_kwargs={"width": 0.25, "fc_dim": 256},
                   probe_bn_recalibrate=False, probe_max_train=None, probe_max_test=None)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(profile))
    folder = two_class_folder(per_class=30)  # a probe of seconds
    out = tmp_path / "sweep"
    args = ["sweep", "--profile", str(tmp_path / "tiny.yaml"), "--generator", "stat/spectrum", "--param",
            "exponent_range", "--values", "1,1", "3,3", "--include-default", "--include-random",
            "--datasets", f"imagefolder:{folder}",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| exponent_range | linear top-1 (%)" in printed and "| default (0.5,3.5) |" in printed
    assert "linear - default (95% CI)" in printed and "| random init (seed 0) |" in printed
    result = json.loads((out / "sweep.json").read_text())
    assert [r["value"] for r in result["rows"]] == ["1,1", "3,3", "default (0.5,3.5)", "random init"]
    assert all(0.0 <= r["top1"] <= 100.0 for r in result["rows"])
    assert len({r["result_file"] for r in result["rows"]}) == 4
    (plot,) = out.glob("sweep_*.png")
    assert plot.stat().st_size > 0 and (out / "sweep.md").is_file()

    # Run again: every value is found in the cache; nothing is generated, trained or probed.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished value ran again")

    monkeypatch.setattr(SuiteRun, "pretrain_entry", refuse)
    monkeypatch.setattr(suite, "probe", refuse)
    again = sweep(profile=str(tmp_path / "tiny.yaml"), generator="stat/spectrum", param="exponent_range",
                  values="1,1 3,3", include_default=True, include_random=True, datasets=f"imagefolder:{folder}",
                  out=str(out), progress=False)
    assert [r["top1"] for r in again["rows"]] == [r["top1"] for r in result["rows"]]
