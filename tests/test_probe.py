"""The probe end to end on tiny datasets with known answers, and its bad-input errors."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisevision.cli import main
from noisevision.errors import UserError
from noisevision.eval import decode_outcomes, encode_outcomes, probe
from noisevision.eval.features import extract_features, normalization_for, prepare_encoder, recalibrate_batchnorm
from noisevision.models import create_encoder, save_encoder

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (230, 30, 30), "yellow": (220, 210, 30)}


@pytest.fixture(scope="module")
def solid_colours(tmp_path_factory) -> Path:
    """Four classes of noisy solid-colour 32 px images: linearly separable, and kNN-separable."""
    root = tmp_path_factory.mktemp("solid")
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 8)):
        for cls, rgb in COLOURS.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                img = np.clip(np.array(rgb) + rng.normal(0, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / cls / f"{i}.png")
    return root


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _run(argv: list[str]) -> int:
    return main(argv)


def test_fast_probe_separates_solid_colours(solid_colours, cache, tmp_path, capsys):
    out = tmp_path / "res.json"
    code = _run(["probe", "--encoder", "random:smallalexnet32", "--dataset", f"imagefolder:{solid_colours}",
                 "--out", str(out), "--bn-recalibrate"])
    assert code == 0
    result = json.loads(out.read_text())
    m = result["metrics"]
    assert m["top1"] == pytest.approx(100.0) and m["knn_top1"] == pytest.approx(100.0)
    assert result["layer"] == "fc6" and result["feature_dim"] == 4096 and result["embedding_dim"] == 128
    assert result["dataset"]["n_train"] == 96 and result["dataset"]["n_test"] == 32
    assert result["bn_recalibrate"]["enabled"] and result["bn_recalibrate"]["bn_layers"] == 7
    assert 0.0 <= m["alignment"] <= 4.0 and -4.0 <= m["uniformity"] <= 0.0
    for key in ("encoder", "dataset", "timings_s", "torch", "device", "seed", "config"):
        assert key in result
    per = result["per_image"]  # which test images each classifier got right
    assert per["n_test"] == 32 and per["encoding"] == "packbits-base64url" and len(per["test_set"]) == 16
    assert decode_outcomes(per["linear_top1"], 32).all() and decode_outcomes(per["knn_top1"], 32).all()
    printed = capsys.readouterr().out
    assert "linear top-1" in printed and "100.00" in printed


def test_pixels_baseline_and_paper_protocol(solid_colours, cache):
    fast = probe(encoder="pixels", dataset=f"imagefolder:{solid_colours}", progress=False, align_images=0)
    assert fast["metrics"]["top1"] == pytest.approx(100.0)
    assert fast["feature_dim"] == 3 * 32 * 32
    paper = probe(encoder="pixels", dataset=f"imagefolder:{solid_colours}", protocol="paper", epochs=20,
                  progress=False, align_images=0)
    assert paper["metrics"]["top1"] >= 90.0
    assert paper["linear"]["lr_milestones"] == [12, 16]
    correct = decode_outcomes(paper["per_image"]["linear_top1"], paper["dataset"]["n_test"])
    assert 100 * correct.mean() == pytest.approx(paper["metrics"]["top1"], abs=1e-3)


def test_per_image_outcomes_round_trip_and_bad_text_is_refused():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 1001):
        bits = rng.random(n) < 0.5
        np.testing.assert_array_equal(decode_outcomes(encode_outcomes(bits), n), bits)
    assert encode_outcomes([True] * 8) == "_w=="  # URL-safe: no "/" that could pass for a path
    with pytest.raises(ValueError, match="1001 images need 126"):
        decode_outcomes(encode_outcomes([True] * 9), 1001)
    with pytest.raises(ValueError, match="past the image count"):
        decode_outcomes(encode_outcomes([True] * 8), 7)
    with pytest.raises(ValueError, match="not valid base64"):
        decode_outcomes("abc", 3)
    with pytest.raises(ValueError, match="1-d"):
        encode_outcomes(np.zeros((2, 2), bool))


def test_random_encoder_is_seeded_and_max_train_subsets(solid_colours, cache):
    kw = dict(encoder="random:smallalexnet32", dataset=f"imagefolder:{solid_colours}", progress=False, max_train=40, align_images=16)
    a, b = probe(seed=3, **kw), probe(seed=3, **kw)
    assert a["dataset"]["n_train"] == 40
    assert a["metrics"] == b["metrics"]  # same seed: same init, subset, split and views
    torch_state = torch.random.get_rng_state()
    probe(seed=4, **kw)
    assert torch.equal(torch_state, torch.random.get_rng_state())  # global RNG untouched


def test_checkpoint_encoder_and_run_dir(solid_colours, cache, tmp_path):
    enc = create_encoder("smallalexnet32")
    save_encoder(tmp_path / "run" / "encoder.pt", enc, meta={"config": {"aug": "aug-plus"}})
    result = probe(encoder=str(tmp_path / "run"), dataset=f"imagefolder:{solid_colours}", progress=False,
                   expected_arch="smallalexnet32", align_images=8, layer="conv5")
    assert result["encoder"]["kind"] == "checkpoint" and result["layer"] == "conv5"
    assert result["normalization"]["preset"] == "aug-plus"
    assert result["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_an_encoder_with_nan_weights_is_refused_before_fitting(solid_colours, cache, tmp_path):
    enc = create_encoder("smallalexnet32")
    with torch.no_grad():
        next(enc.parameters()).fill_(float("nan"))
    save_encoder(tmp_path / "nan.pt", enc)
    with pytest.raises(UserError, match="gives NaN or infinite features on imagefolder:.*training diverged"):
        probe(encoder=str(tmp_path / "nan.pt"), dataset=f"imagefolder:{solid_colours}", progress=False,
              align_images=8)


def test_batchnorm_recalibration_uses_batch_statistics():
    enc = prepare_encoder(create_encoder("smallalexnet32"), torch.device("cpu"))
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    _, mean, std = normalization_for(None)
    assert recalibrate_batchnorm(enc, images, 32, mean, std, batch_size=32, amp=False) == 7
    assert not enc.training
    conv1 = enc.stages["conv1"]
    from noisevision.eval.features import to_model_input

    with torch.no_grad():
        pre_bn = conv1[0](to_model_input(images, 32, mean, std))
    torch.testing.assert_close(conv1[1].running_mean, pre_bn.mean((0, 2, 3)), atol=1e-4, rtol=1e-3)
    feats, emb = extract_features(enc, images, "fc6", 32, mean, std, progress=False, amp=False)
    assert feats.shape == (64, 4096) and torch.allclose(emb.norm(dim=1), torch.ones(64), atol=1e-4)


# ------------------------------------------------------------------ bad input: one line, exit status 2


def _expect_error(argv: list[str], capsys, pattern: str) -> None:
    assert _run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("noisevision: error:") and len(err.splitlines()) == 1
    import re

    assert re.search(pattern, err), err


def test_bad_inputs(solid_colours, cache, tmp_path, capsys):
    ds = f"imagefolder:{solid_colours}"
    base = ["probe", "--dataset", ds]
    _expect_error(base + ["--encoder", "random:smallalexnet32", "--layer", "fc9"], capsys,
                  r"no layer 'fc9'; valid layers: conv1, conv2, conv3, conv4, conv5, fc6, fc7, fc8")
    _expect_error(base + ["--encoder", "random:smallalexnet32", "--test-split", "val"], capsys,
                  r"split 'val' not found.*available splits: test, train")
    _expect_error(["probe", "--dataset", f"imagefolder:{tmp_path / 'nope'}", "--encoder", "pixels"], capsys, "does not exist")
    _expect_error(["probe", "--dataset", "cifar100", "--encoder", "pixels"], capsys, "unknown dataset 'cifar100'")
    _expect_error(base + ["--encoder", "random:alexnet"], capsys, "unknown encoder 'alexnet'")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    _expect_error(base + ["--encoder", str(tmp_path / "other.pt")], capsys, "not a noisevision encoder")
    save_encoder(tmp_path / "sa.pt", create_encoder("smallalexnet32"))
    _expect_error(base + ["--encoder", str(tmp_path / "sa.pt"), "--arch", "resnet18"], capsys,
                  r"holds a 'smallalexnet32' encoder, but 'resnet18' was expected")
    _expect_error(base + ["--encoder", str(tmp_path / "missing.pt")], capsys, "not found")
    _expect_error(base + ["--encoder", "pixels", "--max-train", "0"], capsys, "max_train must be positive")
    (tmp_path / "a_file").write_text("mine")
    _expect_error(base + ["--encoder", "pixels", "--out", str(tmp_path / "a_file" / "r.json")], capsys,
                  "a_file is a file, not a folder")
    (tmp_path / "results").mkdir()
    _expect_error(base + ["--encoder", "pixels", "--out", str(tmp_path / "results")], capsys,
                  "results is a folder; give the path of the file to write")
    _expect_error(["probe", "--dataset", f"imagefolder:{tmp_path / 'a_file'}", "--encoder", "pixels"], capsys,
                  "a_file is a file, not a folder")
    _expect_error(["probe", "--dataset", "imagefolder:", "--encoder", "pixels"], capsys,
                  "'imagefolder:' names no folder")
    _expect_error(base + ["--encoder", "random:smallalexnet32", "--image-size", "64"], capsys,
                  r"'smallalexnet32' takes only 32 px inputs; pass --image-size 32")


def test_image_size_and_single_class_errors(solid_colours, cache, tmp_path, capsys):
    ds = f"imagefolder:{solid_colours}"
    # SmallAlexNet-32's fc6 fixes its input size; a huge size is refused before anything is allocated.
    _expect_error(["probe", "--dataset", ds, "--encoder", "random:smallalexnet32", "--image-size", "20"], capsys,
                  r"takes only 32 px inputs; pass --image-size 32")
    _expect_error(["probe", "--dataset", ds, "--encoder", "random:smallalexnet32", "--image-size", "100000"], capsys,
                  r"--image-size 100000 is out of range")
    _expect_error(["probe", "--dataset", ds, "--encoder", "pixels", "--image-size", "100000"], capsys,
                  r"--image-size 100000 is out of range")
    # One class: every image is "right", so the probe would report 100 %.
    one = tmp_path / "one"
    for split in ("train", "test"):
        shutil.copytree(solid_colours / split / "red", one / split / "red")
    _expect_error(["probe", "--dataset", f"imagefolder:{one}", "--encoder", "pixels"], capsys,
                  r"has only one class \('red'\).*at least two class folders")


def test_mismatched_classes_and_bad_images(tmp_path, cache, capsys):
    root = tmp_path / "ds"
    for split, classes in (("train", ("cat", "dog")), ("test", ("cat", "emu"))):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (8, 8), (i * 50, 9, 9)).save(root / split / cls / f"{i}.png")
    _expect_error(["probe", "--encoder", "pixels", "--dataset", f"imagefolder:{root}"], capsys,
                  r"different classes \(only in train: dog; only in test: emu\)")
    (root / "test" / "emu").rename(root / "test" / "dog")
    (root / "train" / "cat" / "3.png").write_bytes(b"\x89PNG broken")
    (root / "train" / "cat" / "notes.txt").write_text("ignored")
    _expect_error(["probe", "--encoder", "pixels", "--dataset", f"imagefolder:{root}"], capsys,
                  r"1 image file\(s\).*cat/3\.png.*--skip-bad-images")
    out = tmp_path / "r.json"
    assert _run(["probe", "--encoder", "pixels", "--dataset", f"imagefolder:{root}", "--skip-bad-images",
                 "--out", str(out)]) == 0
    d = json.loads(out.read_text())["dataset"]
    assert d["bad_images"] == 1 and d["ignored_files"] == 1 and d["n_train"] == 6


@pytest.mark.slow
def test_cli_probe_real_cifar10_subset(data_root, tmp_path, capsys):
    """End to end on the real CIFAR-10 archive: random-init SmallAlexNet beats chance by far."""
    if not (data_root / "cifar10.tar.gz").is_file() and not (data_root / "cifar10").is_dir():
        pytest.skip("no cifar10 in the data root")
    out = tmp_path / "cifar.json"
    code = _run(["probe", "--encoder", "random:smallalexnet32", "--dataset", "cifar10", "--data-root", str(data_root),
                 "--max-train", "2000", "--max-test", "500", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["dataset"]["n_classes"] == 10 and result["dataset"]["n_train"] == 2000
    assert result["metrics"]["top1"] > 25.0 and result["metrics"]["knn_top1"] > 20.0  # chance is 10
    assert os.path.getsize(out) > 0
