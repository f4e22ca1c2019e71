"""DistributedDataParallel on CPU (gloo): 2 processes must match 1 process on the same global batch.

Each of the 2 processes trains on its half of every 16-image global batch. For
the comparison to be exact up to float rounding:

* augmentations are made deterministic (full-image crop, no flip/jitter/grayscale),
  since each process draws its own random views;
* BatchNorm statistics are synchronised over the global batch (``sync_bn``, on CPU
  via ``AllReduceBatchNorm``), and the uniformity term uses embeddings gathered
  from both processes with gradients;
* the runs train in float64 (``--precision fp64``). Two processes sum gradients and
  BatchNorm statistics in another order than one process, and this tiny-batch
  training amplifies the rounding differences chaotically: in fp32 the weights
  differed by 3e-5 on one machine and 5e-4 on another after 3 steps, too close to
  what a bug gives. In fp64 rounding is 1e-9 times smaller: measured 5e-15.

Every run is deterministic (the same run twice gives identical weights, whatever
the machine's load), and one thread per process keeps the reductions in the same
order in both runs. A control run without ``sync_bn`` (per-process BatchNorm
statistics) differs by 4e-2, which shows the check detects a wrong implementation.

Supervised pretraining is checked the same way: each process classifies its half
and the loss is the cross-entropy of the logits gathered from both.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from noisevision.cli import main

pytestmark = pytest.mark.slow

DETERMINISTIC_AUG = ["scale=[1,1]", "ratio=[1,1]", "hflip_p=0", "jitter_p=0", "grayscale_p=0"]


def _args(data: Path, out: Path) -> list[str]:
    return [
        "--data", str(data), "--arch", "smallalexnet32", "--arch-kwargs", "fc_dim=256", "--crop-size", "32",
        "--batch-size", "16", "--epochs", "1", "--num-images", "48", "--lr", "0.02", "--lr-reference-batch", "none",
        "--lr-schedule", "constant", "--precision", "fp64", "--no-channels-last", "--aug-kwargs", *DETERMINISTIC_AUG,
        "--log-every", "1", "--workers", "0", "--device", "cpu", "--out", str(out),
    ]


def _torchrun(args: list[str]) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "noisevision", "pretrain", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def _result(run: Path) -> tuple[list[float], dict[str, torch.Tensor]]:
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    return losses, torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def _rel_l2_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||b|| over all floating-point weights and BatchNorm statistics together."""
    keys = [k for k, v in b.items() if v.is_floating_point()]
    diff = torch.cat([(a[k] - b[k]).flatten() for k in keys])
    return float(diff.norm() / torch.cat([b[k].flatten() for k in keys]).norm())


@pytest.fixture(scope="module")
def data(blocky_npy) -> Path:
    return blocky_npy(48, cells=8, seed=1)


def test_two_processes_match_one_process(data: Path, tmp_path: Path, one_thread: None) -> None:
    assert main(["pretrain", *_args(data, tmp_path / "one")]) == 0
    _torchrun(_args(data, tmp_path / "two"))
    _torchrun([*_args(data, tmp_path / "two-nosync"), "--no-sync-bn"])

    losses1, weights1 = _result(tmp_path / "one")
    losses2, weights2 = _result(tmp_path / "two")
    losses3, weights3 = _result(tmp_path / "two-nosync")
    assert len(losses1) == len(losses2) == 3
    np.testing.assert_allclose(losses2, losses1, rtol=1e-6)  # logged as fp32: 1 ulp is 6e-8
    assert all(v.dtype == torch.float64 for v in weights1.values() if v.is_floating_point())
    synced = _rel_l2_diff(weights2, weights1)
    unsynced = _rel_l2_diff(weights3, weights1)
    # Measured: synced 5e-15 (fp64 rounding, eps 2.2e-16, amplified over 3 steps), per-process
    # BatchNorm 4e-2. The bound leaves a factor 1e5 to rounding and 1e7 to the control.
    assert synced < 1e-9, synced
    assert unsynced > 1e-3, unsynced  # the check catches per-process BatchNorm statistics
    # Only rank 0 wrote files; the run is a normal run directory.
    assert (tmp_path / "two" / "encoder.pt").exists()
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3


def test_supervised_two_processes_match_one_process(data: Path, tmp_path: Path, one_thread: None) -> None:
    """Cross-entropy on the labels of labels.npy: same technique and bounds as above (measured after
    3 steps: 2 processes 6e-8, with per-process BatchNorm 9e-3)."""
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    (labelled / "images.npy").symlink_to(data)
    np.save(labelled / "labels.npy", np.arange(48) % 3)
    args = ["--method", "supervised"]
    assert main(["pretrain", *_args(labelled, tmp_path / "one"), *args]) == 0
    _torchrun([*_args(labelled, tmp_path / "two"), *args])
    _torchrun([*_args(labelled, tmp_path / "two-nosync"), *args, "--no-sync-bn"])

    losses1, weights1 = _result(tmp_path / "one")
    losses2, weights2 = _result(tmp_path / "two")
    _, weights3 = _result(tmp_path / "two-nosync")
    assert len(losses1) == len(losses2) == 3 and abs(losses1[0] - np.log(3)) < 0.2
    np.testing.assert_allclose(losses2, losses1, rtol=1e-5, atol=1e-6)  # the global batch's loss on rank 0
    assert "head.weight" in weights2 and weights2["head.weight"].shape[0] == 3
    synced, unsynced = _rel_l2_diff(weights2, weights1), _rel_l2_diff(weights3, weights1)
    assert synced < 3e-4, synced
    assert unsynced > 30 * max(synced, 1e-5), (synced, unsynced)
