"""Pretraining: config, LR schedule, run directory, CLI errors, resume after SIGKILL."""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from noisevision.cli import main
from noisevision.errors import UserError
from noisevision.train import PretrainConfig, build_config, lr_at

REPO = Path(__file__).resolve().parents[1]
# A tiny, fast recipe: 32 px SmallAlexNet with narrow fc layers, 16-image batches, fp32.
TINY = ["--arch", "smallalexnet32", "--arch-kwargs", "fc_dim=256", "--crop-size", "32", "--batch-size", "16",
        "--precision", "fp32", "--log-every", "1", "--workers", "0"]


@pytest.fixture(scope="module")
def tiny_npy(blocky_npy) -> Path:
    """96 blocky random 32 px images (enough structure for the augmentations)."""
    return blocky_npy(96)


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["pretrain", *args])
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------- config and schedule


def test_config_validation() -> None:
    PretrainConfig()
    for bad in ({"epochs": 0}, {"batch_size": -1}, {"lr_schedule": "linear"}, {"precision": "fp8"},
                {"lr_milestones": (5, 3)}, {"device": "tpu"}, {"warmup_epochs": 300}, {"lr": math.nan},
                {"lr": math.inf}, {"weight_decay": math.inf}, {"lr_gamma": math.nan}, {"aug_kwargs": {"p": [0, math.nan]}}):
        with pytest.raises(ValueError):
            PretrainConfig(**bad)


def test_yaml_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"epochs": 7, "lr": 0.5, "lr_milestones": [3, 5], "method_kwargs": {"temperature": 0.3}}))
    c = build_config(path, {"lr": "0.25", "epochs": None, "arch_kwargs": ["stem=cifar", "width=0.5"], "fixed": True})
    assert (c.epochs, c.lr, c.lr_milestones, c.fixed) == (7, 0.25, (3, 5), True)
    assert c.method_kwargs == {"temperature": 0.3} and c.arch_kwargs == {"stem": "cifar", "width": 0.5}
    with pytest.raises(UserError, match="did you mean"):
        build_config(None, {"epoch": 3})
    with pytest.raises(UserError, match="epochs must be positive"):
        build_config(None, {"epochs": "0"})
    # The written config reads back to the same object.
    path2 = tmp_path / "again.yaml"
    path2.write_text(yaml.safe_dump(c.to_dict()))
    assert build_config(path2) == c


def test_lr_schedules() -> None:
    # Paper recipe: lr 0.12 per 256 -> 0.36 at batch 768; x0.1 at 155, 170, 185 of 200 epochs.
    c = PretrainConfig(batch_size=768)
    assert math.isclose(c.scaled_lr, 0.36) and c.milestones == (155, 170, 185)
    spe = 10
    assert math.isclose(lr_at(c, 154 * spe + 9, spe), 0.36)
    assert math.isclose(lr_at(c, 155 * spe, spe), 0.036)
    assert math.isclose(lr_at(c, 199 * spe, spe), 0.00036)
    assert PretrainConfig(epochs=20).milestones == (16, 17, 18)  # the same fractions of a shorter run
    assert PretrainConfig(lr=0.3, lr_reference_batch=None, batch_size=64).scaled_lr == 0.3
    cos = PretrainConfig(lr_schedule="cosine", epochs=10, lr=0.1, lr_reference_batch=None, warmup_epochs=2)
    assert math.isclose(lr_at(cos, 0, 5), 0.01) and math.isclose(lr_at(cos, 9, 5), 0.1)
    assert math.isclose(lr_at(cos, 10, 5), 0.1) and math.isclose(lr_at(cos, 30, 5), 0.05)
    assert lr_at(cos, 49, 5) < 0.001


# ---------------------------------------------------------------------- a short run


def test_run_directory_and_encoder(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    code, err = run_cli(["--data", str(tiny_npy.parent), *TINY, "--epochs", "2", "--num-images", "48", "--out", str(out)], capsys)
    assert code == 0, err
    assert {"config.yaml", "checkpoint.pt", "encoder.pt", "metrics.jsonl", "summary.json"} <= {p.name for p in out.iterdir()}
    payload = torch.load(out / "encoder.pt", weights_only=True)
    assert payload["format"] == "noisevision-encoder" and payload["arch"] == "smallalexnet32"
    assert payload["meta"]["method"] == "alignuniform" and payload["meta"]["epochs"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert {"loss", "lr", "images_per_s", "epoch"} <= set(rows[0]) and all(math.isfinite(r["loss"]) for r in rows)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["epoch"] == 2
    from noisevision.models import load_encoder

    encoder, _ = load_encoder(out)
    saved = payload["state_dict"]
    assert set(encoder.state_dict()) == set(saved)
    assert all(torch.equal(v, saved[k]) for k, v in encoder.state_dict().items())
    # The same --out again without --resume is refused; --resume of a finished run is a no-op.
    code, err = run_cli(["--data", str(tiny_npy.parent), *TINY, "--epochs", "2", "--num-images", "48", "--out", str(out)], capsys)
    assert code == 2 and "--resume" in err
    code, err = run_cli(["--resume", "--out", str(out)], capsys)
    assert code == 0, err
    # Resuming with a different setting is refused and names it.
    code, err = run_cli(["--resume", "--out", str(out), "--lr", "0.5"], capsys)
    assert code == 2 and "lr" in err and "differs" in err


def test_training_reduces_the_loss(tmp_path: Path) -> None:
    """Online dead leaves, mild augmentations: the AlignUniform loss must drop within 12 steps."""
    from noisevision.train import pretrain

    summary = pretrain(PretrainConfig(
        data="gen:dead-leaves/squares", num_images=64, fixed=True, image_size=32, crop_size=32,
        arch="smallalexnet32", arch_kwargs={"fc_dim": 256}, aug_kwargs={"scale": (0.5, 1.0), "jitter_p": 0.0},
        batch_size=16, epochs=3, lr=0.05, lr_reference_batch=None, lr_schedule="constant", precision="fp32",
        out=str(tmp_path / "r"), log_every=1, workers=0,
    ))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert summary["steps"] == 12 and len(losses) == 12
    assert np.mean(losses[-4:]) < np.mean(losses[:2]) - 0.3


@pytest.mark.parametrize("method, kwargs", [("simclr", {"temperature": 0.2}), ("mocov2", {"queue_size": 64})])
def test_other_methods_with_background_generation(method: str, kwargs: dict, tmp_path: Path) -> None:
    """MoCo v2 / SimCLR through the loop, images generated online by a worker process."""
    from noisevision.train import pretrain

    summary = pretrain(PretrainConfig(
        data="gen:dead-leaves/squares", num_images=32, image_size=32, crop_size=32, arch="smallalexnet32",
        arch_kwargs={"fc_dim": 256}, method=method, method_kwargs=kwargs, aug="aug-plus", batch_size=16,
        epochs=1, precision="fp32", out=str(tmp_path / method), log_every=1, workers=1,
    ))
    assert summary["steps"] == 2 and math.isfinite(summary["final_loss"])
    state = torch.load(tmp_path / method / "checkpoint.pt", weights_only=True)["model"]
    if method == "mocov2":  # the queue is part of the resumable state
        assert any("queue" in key for key in state)


def test_example_configs_are_valid() -> None:
    paths = sorted((REPO / "configs" / "pretrain").glob("*.yaml"))
    assert paths
    for path in paths:
        config = build_config(path, {"data": "gen:dead-leaves/mixed", "num_images": 1000})
        assert config.epochs > 0


# ---------------------------------------------------------------------- bad input


def test_bad_input_errors(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = ["--data", str(tiny_npy)]
    out = ["--out", str(tmp_path / "bad")]
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk" / "cls"
    junk.mkdir(parents=True)
    (junk / "a.jpg").write_bytes(b"not a jpeg")
    cases = [
        (["--data", str(tmp_path / "missing"), *TINY, *out], "does not exist"),
        (["--data", str(tmp_path / "empty"), *TINY, *out], "no class sub-folders"),
        (["--data", str(tmp_path / "junk"), *TINY, *out], "no readable images"),
        ([*data, *TINY, "--crop-size", "64", *out], "smaller than the 64 px crop"),
        ([*data, *TINY, "--batch-size", "128", *out], "larger than the 96 training images"),
        ([*data, *TINY, "--method", "byol", *out], "unknown method"),
        ([*data, *TINY, "--arch", "vgg16", *out], "unknown encoder"),
        ([*data, *TINY, "--aug", "fancy", *out], "fancy"),
        ([*data, *TINY], "--out"),
        ([*data, *TINY, "--epochs", "0", *out], "epochs must be positive"),
        ([*data, *TINY, "--crop-size", "24", *out], "takes only 32 px inputs; pass --crop-size 32"),
    ]
    for args, message in cases:
        code, err = run_cli(args, capsys)
        assert code == 2, (args, err)
        assert message in err and err.count("\n") == 1, (args, err)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "nan"
    code, err = run_cli(["--data", str(tiny_npy), *TINY, "--epochs", "3", "--lr", "1e36", "--save-every", "1",
                         "--lr-schedule", "constant", "--precision", "fp32", "--out", str(out)], capsys)
    assert code == 2 and "at step" in err, err
    bad_step = int(err.split("at step ")[1].split()[0])
    assert bad_step >= 1
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == bad_step  # the state before the bad step, nothing after it
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def _one_line_error(code: int, err: str, message: str) -> None:
    """Exit status 2 and one error line naming the problem (after any progress lines), no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("noisevision: error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


def test_workers_beyond_the_machine_are_refused(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--workers 1000 started a thousand loader processes of ~300 MB each; now it is one line, before any work."""
    from noisevision.resources import max_workers

    out = tmp_path / "never"
    _one_line_error(*run_cli(["--data", str(tiny_npy), *TINY, "--workers", str(max_workers() + 1), "--out", str(out)],
                             capsys), f"use at most --workers {max_workers()}")
    assert not out.exists()


def test_non_finite_numbers_and_bad_yaml_kwargs(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = ["--out", str(tmp_path / "never")]
    for args, message in [
        (["--lr", "nan"], "lr must be a finite number"),
        (["--lr", "inf"], "lr must be a finite number"),
        (["--momentum", "nan"], "momentum must be a finite number"),
        (["--momentum", "2"], "momentum must be below 1"),
        (["--method-kwargs", "t=nan"], "method_kwargs must hold finite numbers only"),
    ]:
        _one_line_error(*run_cli(["--data", str(tiny_npy), *TINY, *args, *out], capsys), message)
    bad = tmp_path / "bad.yaml"
    bad.write_text("arch_kwargs: 5\n")
    _one_line_error(*run_cli(["--config", str(bad), "--data", str(tiny_npy), *out], capsys),
                    "arch_kwargs must be a mapping of key: value")
    assert not (tmp_path / "never").exists()


def test_out_that_cannot_hold_a_run(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                    deny_writes) -> None:
    args = ["--data", str(tiny_npy), *TINY, "--num-images", "32", "--epochs", "1"]
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    _one_line_error(*run_cli([*args, "--out", str(a_file)], capsys), "is a file, not a folder")
    assert a_file.read_text() == "mine"
    # A folder of the user's own files is not overwritten (generate refuses such folders too).
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    _one_line_error(*run_cli([*args, "--out", str(mine)], capsys), "is not empty and is not a run")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # --resume needs a run to resume.
    _one_line_error(*run_cli(["--resume", "--out", str(tmp_path / "typo")], capsys), "the folder does not exist")
    _one_line_error(*run_cli(["--resume", "--out", str(mine)], capsys), "is not a run")
    assert not (tmp_path / "typo").exists()
    # A read-only folder fails before any training, inside it or as --out.
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    deny_writes(read_only)
    _one_line_error(*run_cli([*args, "--out", str(read_only / "run")], capsys), "permission denied")
    _one_line_error(*run_cli([*args, "--out", str(read_only)], capsys), "permission denied")
    assert list(read_only.iterdir()) == []


def test_nan_loss_before_any_checkpoint_names_none(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "nan"
    code, err = run_cli(["--data", str(tiny_npy), *TINY, "--epochs", "3", "--lr", "1e36", "--save-every", "0",
                         "--lr-schedule", "constant", "--out", str(out)], capsys)
    _one_line_error(code, err, "no checkpoint had been written yet")
    assert not (out / "checkpoint.pt").exists()


def test_disk_full_while_saving_a_checkpoint(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The second checkpoint write meets ENOSPC: one line, the first checkpoint intact, no temporary left."""
    import errno

    import noisevision.models.checkpoint as ckpt

    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:
            f.write(b"PK partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", save)
    out = tmp_path / "full"
    code, err = run_cli(["--data", str(tiny_npy), *TINY, "--num-images", "64", "--epochs", "1", "--save-every", "2",
                         "--out", str(out)], capsys)
    _one_line_error(code, err, "no space left on the device")
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert not list(out.glob(".*.tmp")) and not (out / "encoder.pt").exists()


def test_resume_with_a_checkpoint_of_another_architecture(tiny_npy: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    args = ["--data", str(tiny_npy), *TINY, "--num-images", "32", "--epochs", "2", "--save-every", "1"]
    code, err = run_cli([*args, "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    code, err = run_cli([*args, "--arch", "resnet18", "--arch-kwargs", "stem=cifar", "width=0.125",
                         "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    (tmp_path / "b" / "checkpoint.pt").replace(tmp_path / "a" / "checkpoint.pt")
    code, err = run_cli(["--resume", "--out", str(tmp_path / "a")], capsys)
    _one_line_error(code, err, "holds a 'resnet18' model, not this run's 'smallalexnet32'")


def test_training_checkpoint_structure_is_checked(tmp_path: Path) -> None:
    from noisevision.train.checkpoint import CHECKPOINT_FORMAT, load_checkpoint

    good = {"format": CHECKPOINT_FORMAT, "format_version": 1, "model": {"w": torch.zeros(2)},
            "optimizer": {"state": {}, "param_groups": []}, "step": 3, "epoch": 1, "steps_per_epoch": 3,
            "rng": {"torch": torch.get_rng_state()}, "scaler": None}
    torch.save(good, tmp_path / "good.pt")
    assert load_checkpoint(tmp_path / "good.pt")["step"] == 3
    for change, message in [({"model": None}, "holds no weights"), ({"optimizer": 5}, "no optimizer state"),
                            ({"step": "3"}, "its step is '3'"), ({"steps_per_epoch": 0}, "its steps_per_epoch is 0"),
                            ({"rng": {}}, "no random-number state"), ({"format_version": 2}, "format version 2")]:
        torch.save({**good, **change}, tmp_path / "bad.pt")
        with pytest.raises(UserError, match=message):
            load_checkpoint(tmp_path / "bad.pt")


def test_resume_cleans_temporaries_and_works_from_another_folder(tiny_npy: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """--data is stored as an absolute path; a temporary left by a kill during a save is removed."""
    (tmp_path / "first").mkdir()
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(tiny_npy, tmp_path / "first" / "images.npy")
    monkeypatch.chdir(tmp_path / "first")
    code, err = run_cli(["--data", "images.npy", *TINY, "--num-images", "32", "--epochs", "1", "--out", "run"], capsys)
    assert code == 0, err
    run = tmp_path / "first" / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == str(tmp_path / "first" / "images.npy")
    stale = run / ".checkpoint.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, err = run_cli(["--resume", "--out", str(run), "--epochs", "2"], capsys)  # epochs differ: refused...
    assert code == 2 and "epochs" in err
    code, err = run_cli(["--resume", "--out", str(run)], capsys)  # ...the same run resumes from here
    assert code == 0, err
    assert not stale.exists()
    summary = (run / "summary.json").read_text()
    code, err = run_cli(["--resume", "--out", str(run)], capsys)  # finished: nothing to train, its summary stands
    assert code == 0, err
    assert (run / "summary.json").read_text() == summary and math.isfinite(json.loads(summary)["final_loss"])


def test_undecodable_training_images_are_counted_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "folder" / "cls"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(32):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG cut short")
    out = tmp_path / "run"
    code = main(["pretrain", "--data", str(tmp_path / "folder"), *TINY, "--epochs", "1", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "1 of 33 image files" in warnings[0] and "broken.png" in warnings[0]
    assert "1 undecodable image file(s) left out" in captured.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["bad_images"] == 1 and summary["data"]["num_images"] == 32


# ---------------------------------------------------------------------- resume after SIGKILL


def _cli_args(data: Path, out: Path) -> list[str]:
    return ["--data", str(data), *TINY, "--num-images", "64", "--epochs", "3", "--save-every", "2", "--lr-milestones", "2",
            "--seed", "7", "--out", str(out)]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tiny_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                        one_thread: None) -> None:
    # The killed run is a subprocess and the resumed and straight runs run here: all three on one thread, so
    # they reduce in the same order whatever thread count earlier tests left behind.
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "noisevision", "pretrain", *_cli_args(tiny_npy, killed)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (killed / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = torch.load(killed / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < interrupted_at < 12  # killed before the end
    assert not (killed / "encoder.pt").exists()

    code, err = run_cli(["--resume", "--out", str(killed)], capsys)  # flags come from the saved config
    assert code == 0, err
    straight = tmp_path / "straight"
    code, err = run_cli(_cli_args(tiny_npy, straight), capsys)
    assert code == 0, err

    a = torch.load(killed / "checkpoint.pt", weights_only=True)
    b = torch.load(straight / "checkpoint.pt", weights_only=True)
    assert (a["step"], a["epoch"], a["scheduler"]["lr"]) == (b["step"], b["epoch"], b["scheduler"]["lr"]) == (12, 3, b["scheduler"]["lr"])
    assert math.isclose(b["scheduler"]["lr"], 0.1 * 0.12 * 16 / 256)
    for key, value in b["model"].items():
        assert torch.allclose(a["model"][key].float(), value.float(), rtol=1e-5, atol=1e-6), key
    rows = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, 13))  # lines after the checkpoint were dropped and redone once
