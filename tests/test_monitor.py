"""The live kNN monitor of pretrain: subsets, untouched training state, and a run with and without it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from noisevision.cli import main
from noisevision.models import create_encoder
from noisevision.train import PretrainConfig, pretrain
from noisevision.train.monitor import KnnMonitor, stratified_subset

STL_MEAN, STL_STD = (0.43, 0.42, 0.39), (0.27, 0.26, 0.27)

@pytest.fixture(scope="module")
def labelled_folder(two_class_folder) -> Path:
    """train/ and test/ splits of two classes (two generators) of 32 px PNGs."""
    return two_class_folder(per_class=24, test_per_class=12)


@pytest.fixture(scope="module")
def tiny_npy(blocky_npy) -> Path:
    return blocky_npy(64)

def test_stratified_subset_is_even_seeded_and_fills_from_larger_classes() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 4)
    pick = stratified_subset(labels, 12, seed=0, purpose="t")
    assert np.bincount(labels[pick]).tolist() == [4, 4, 4]
    assert np.array_equal(pick, stratified_subset(labels, 12, seed=0, purpose="t"))
    assert not np.array_equal(pick, stratified_subset(labels, 12, seed=1, purpose="t"))
    assert np.all(np.diff(pick) > 0)
    # class 2 has only 4 images: its unused share goes to the others (the remainder to the first)
    assert np.bincount(labels[stratified_subset(labels, 31, 0, "t")]).tolist() == [14, 13, 4]
    assert np.bincount(labels[stratified_subset(labels, 60, 0, "t")]).tolist() == [28, 28, 4]
    assert len(stratified_subset(labels, 1000, 0, "t")) == len(labels)

def test_evaluation_leaves_the_model_as_it_was(labelled_folder: Path) -> None:
    monitor = KnnMonitor(f"imagefolder:{labelled_folder}", 32, STL_MEAN, STL_STD, train_images=30, test_images=20)
    assert (len(monitor.train_labels), len(monitor.test_labels)) == (30, 20)
    assert np.bincount(monitor.train_labels.numpy()).tolist() == [15, 15]
    torch.manual_seed(0)
    encoder = create_encoder("smallalexnet32", fc_dim=64).train()
    encoder.stages["conv1"][1].eval()  # a frozen part stays frozen
    with torch.no_grad():  # running statistics that eval mode would use, and train mode would change
        encoder(torch.randn(8, 3, 32, 32))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    flags = [m.training for m in encoder.modules()]
    rng = torch.get_rng_state()
    acc = monitor.evaluate(encoder, device=torch.device("cpu"))
    assert 0.0 <= acc <= 100.0
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    assert [m.training for m in encoder.modules()] == flags
    assert torch.equal(torch.get_rng_state(), rng)
    assert monitor.evaluate(encoder, device=torch.device("cpu")) == acc  # the same images every time

def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]

def test_monitor_does_not_change_the_run_and_logs_its_curve(tiny_npy: Path, labelled_folder: Path,
                                                            tmp_path: Path) -> None:
    common = dict(data=str(tiny_npy), arch="smallalexnet32", arch_kwargs={"fc_dim": 64, "width": 0.25}, crop_size=32,
                  batch_size=16, epochs=2, precision="fp32", workers=0, log_every=3, progress=False)

    plain = pretrain(PretrainConfig(**common, out=str(tmp_path / "plain")))
    watched = pretrain(PretrainConfig(**common, out=str(tmp_path / "watched"), monitor=f"imagefolder:{labelled_folder}",
                                      monitor_every=2, monitor_images=30, monitor_test_images=20))
    a, b = _state(tmp_path / "plain"), _state(tmp_path / "watched")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-exact, BN buffers included
    assert plain["final_loss"] == watched["final_loss"]
    rows = [json.loads(line) for line in (tmp_path / "watched" / "metrics.jsonl").read_text().splitlines()]
    monitored = [r["step"] for r in rows if "monitor_knn_top1" in r]
    assert monitored == [0, 2, 4, 6, 8]  # the initial weights, every 2 steps; the end (step 8) is one of them
    assert [r["step"] for r in rows if "monitor_knn_top1" not in r] == [3]  # the plain log rows go on
    assert "loss" not in rows[0] and rows[0]["monitor_seconds"] >= 0  # step 0: before any training
    assert all("loss" in r and r["monitor_seconds"] >= 0 for r in rows[1:] if "monitor_knn_top1" in r)
    assert (tmp_path / "watched" / "curves.png").stat().st_size > 0
    assert not (tmp_path / "plain" / "curves.png").exists()
    assert watched["monitor_knn_top1"] == rows[-1]["monitor_knn_top1"]
    assert watched["monitor_layer"] == "fc6" and 0 <= watched["monitor_fraction"] <= 1
    assert json.loads((tmp_path / "watched" / "summary.json").read_text())["monitor_seconds"] >= 0
    assert "monitor_seconds" not in plain

def test_monitor_steps_are_multiples_and_the_end(tiny_npy: Path, labelled_folder: Path, tmp_path: Path) -> None:
    args = ["pretrain", "--data", str(tiny_npy), "--arch", "smallalexnet32", "--arch-kwargs", "fc_dim=64", "width=0.25",
            "--batch-size", "16", "--epochs", "2", "--precision", "fp32", "--workers", "0", "--log-every", "0",
            "--no-progress", "--monitor", f"imagefolder:{labelled_folder}", "--monitor-every", "3",
            "--monitor-images", "10", "--monitor-test-images", "10", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3, 6, 8]  # --log-every 0 writes only the monitor's rows
    assert main(["pretrain", "--resume", "--out", str(tmp_path / "run")]) == 0  # a resumed run: no second step 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows].count(0) == 1

def test_bad_monitor_settings_are_one_line_errors(tiny_npy: Path, labelled_folder: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    base = ["pretrain", "--data", str(tiny_npy), "--arch", "smallalexnet32", "--batch-size", "16", "--epochs", "1",
            "--no-progress"]
    for extra, message in (
        (["--monitor", "cifar11"], "unknown dataset 'cifar11'"),
        (["--monitor", f"imagefolder:{tmp_path / 'nowhere'}"], "does not exist"),
        (["--monitor", f"imagefolder:{labelled_folder / 'train'}"], "does not exist"),  # no train/ split in it
        (["--monitor", "cifar10", "--monitor-every", "0"], "monitor_every must be positive"),
        (["--monitor", "cifar10", "--monitor-images", "-5"], "monitor_images must be positive"),
    ):
        out = tmp_path / f"run{len(extra)}-{abs(hash(message))}"
        assert main([*base, *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("noisevision: error:") and message in err and "\n" not in err, err
        assert not out.exists()  # a failed start leaves no run folder


@pytest.mark.slow
def test_under_ddp_rank0_monitors_and_the_weights_do_not_change(tiny_npy: Path, labelled_folder: Path,
                                                                tmp_path: Path) -> None:
    """2 processes (gloo): rank 0 evaluates while rank 1 waits at the barrier; the weights match a run
    without the monitor bit for bit (both runs distributed, so their reductions run in the same order)."""
    import os
    import subprocess
    import sys

    def torchrun(out: Path, *extra: str) -> None:
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "noisevision", "pretrain", "--data", str(tiny_npy), "--arch", "smallalexnet32", "--arch-kwargs",
               "fc_dim=64", "width=0.25", "--batch-size", "16", "--epochs", "1", "--num-images", "48",
               "--precision", "fp64", "--log-every", "1", "--workers", "0", "--device", "cpu", "--no-progress",
               "--out", str(out), *extra]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]

    torchrun(tmp_path / "plain")
    # --monitor-dataset: torchrun's parser would take --monitor for an abbreviation of its --monitor-interval
    torchrun(tmp_path / "watched", "--monitor-dataset", f"imagefolder:{labelled_folder}", "--monitor-every", "2",
             "--monitor-images", "20", "--monitor-test-images", "10")
    a, b = _state(tmp_path / "plain"), _state(tmp_path / "watched")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "watched" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "monitor_knn_top1" in r] == [0, 2, 3]
