"""The benchmark scripts under bench/: a partial run replaces its own rows and keeps the others."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script is executed
    spec.loader.exec_module(module)
    return module


def test_generate_speed_partial_run_merges_rows(tmp_path, toy_plugin):
    speed = _load("generate_speed")
    out_json, out_md = tmp_path / "speed.json", tmp_path / "bench.md"
    other = {"generator": "dead-leaves/squares", "settings": "defaults", "16px_1w": 1.0}
    out_json.write_text(json.dumps({"env": {}, "rows": [other]}))
    out_md.write_text("# Benchmarks\n")
    argv = ["--pattern", "test/toy", "--sizes", "16", "--workers", "1", "--seconds", "0.05",
            "--out-json", str(out_json), "--out-md", str(out_md)]
    threads = torch.get_num_threads()
    assert speed.main(argv) == 0
    assert torch.get_num_threads() == threads  # the in-process worker gives its thread count back
    rows = {r["generator"]: r for r in json.loads(out_json.read_text())["rows"]}
    assert rows["dead-leaves/squares"] == other  # a row this run did not measure is kept as it was
    toy = rows["test/toy"]
    assert toy["16px_1w"] > 0 and toy["16px_per_cpu_s"] > 0
    assert {"measured", "load_avg"} <= set(toy)
    assert "| test/toy |" in out_md.read_text() and "| dead-leaves/squares |" in out_md.read_text()
    assert speed.main(argv) == 0  # measuring it again replaces its row rather than adding one
    assert [r["generator"] for r in json.loads(out_json.read_text())["rows"]].count("test/toy") == 1


def test_protocol_study_report_gives_one_table_per_knob_from_the_finished_runs(tmp_path, monkeypatch, capsys):
    study = _load("protocol_study")
    monkeypatch.setattr(study, "OUT", tmp_path)
    (tmp_path / "runs").mkdir()
    readouts = dict.fromkeys(study.READOUTS, 0.0)

    def put(run, fc6: float, knn: float) -> None:
        result = {"run": run.name, "settings": study.asdict(run),
                  "evals": {"cifar10": {**readouts, "fc6": fc6, "knn": knn}}}
        (tmp_path / "runs" / f"{run.name}.json").write_text(json.dumps(result))

    Run = study.StudyRun
    put(Run("random"), 50.0, 30.0)
    put(Run("random", seed=1), 52.0, 32.0)
    put(Run("real", steps=390), 56.0, 45.0)
    put(Run("real", steps=1560), 62.0, 53.0)
    put(Run("stylegan", render=32, steps=390), 54.0, 40.0)
    put(Run("stylegan", render=128, steps=390), 55.5, 41.5)
    put(Run("deadleaves", render=64, steps=390), 53.0, 39.0)
    put(Run("deadleaves", render=128, steps=390), 50.5, 31.5)
    put(Run("stylegan", render=128, steps=1560, online=True), 60.0, 44.0)  # not a fixed-image run: no anchor order
    text = study.write_report()
    assert (tmp_path / "tables.md").read_text() == text + "\n"
    assert "![top-1 against training steps](training_length.png)" in text  # real has two training lengths
    assert (tmp_path / "training_length.png").read_bytes().startswith(b"\x89PNG")
    length = text.split("### Training length")[1].split("###")[0]
    assert "| anchor | 390 steps | 1,560 steps |" in length
    assert "| real | 56.0 / 45.0 | 62.0 / 53.0 |" in length
    assert "Random init (mean of its seeds): 51.0 / 31.0." in length
    render = text.split("### Render size")[1].split("##")[0]
    assert "| anchor | 32 px | 64 px | 128 px |" in render
    assert "| deadleaves |  | 53.0 / 39.0 | 50.5 / 31.5 |" in render
    assert "| stylegan | 54.0 / 40.0 |  | 55.5 / 41.5 |" in render
    assert "| real" not in render  # the real baseline has no render size
    assert "### Fresh images" not in text  # one value of a knob (stylegan online only): no table
    assert ("Anchor order at 390 steps (paper: stylegan > deadleaves > spectrum > random; random init is the mean "
            "of its seeds): fc6: stylegan > random > deadleaves;") in text  # random's mean 51.0 sits between them
    assert "Anchor order at 1,560" not in text
    # a run records what it trained on without this machine's paths
    assert study._data_label(Run("deadleaves"), str(tmp_path / "data" / "dl-r128"), tmp_path) == "data/dl-r128"
    assert study._data_label(Run("deadleaves", online=True), "gen:dead-leaves/textured", tmp_path).startswith("gen:")
    assert study._data_label(Run("real"), str(tmp_path / "cifar"), tmp_path) == "cifar10/train"
    capsys.readouterr()
    assert study.main(["--list", "--datasets", "cifar10"]) == 0
    assert "done  real-t390\n" in capsys.readouterr().out
    assert study.main(["--list", "--datasets", "cifar10,tin100"]) == 0
    listing = capsys.readouterr().out
    assert "part  real-t390  (evaluated on cifar10)\n" in listing
    assert "      spectrum-r128-t390\n" in listing  # not run at all
