"""The benchmark scripts under bench/: a partial run replaces its own rows and keeps the others."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
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
