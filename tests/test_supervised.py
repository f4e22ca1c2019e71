"""Supervised pretraining: labels from gen:, npy and ImageFolder data, the loss falls, errors for unlabelled data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from noisevision.cli import main
from noisevision.data.sources import open_source
from noisevision.data.stream import EpochBatches
from noisevision.data.writer import generate_dataset
from noisevision.errors import UserError
from noisevision.train import PretrainConfig, pretrain

TINY = ["--arch", "smallalexnet32", "--arch-kwargs", "fc_dim=64", "width=0.25", "--crop-size", "32",
        "--batch-size", "8", "--epochs", "1", "--precision", "fp32", "--workers", "0", "--method", "supervised"]


@pytest.fixture()
def labelled_npy(tmp_path: Path) -> Path:
    """40 images, image i filled with the value i (so a batch reveals its indices), labels i % 5."""
    images = np.broadcast_to(np.arange(40, dtype=np.uint8)[:, None, None, None], (40, 32, 32, 3)).copy()
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", np.arange(40) % 5)
    return tmp_path


def first_batch(source, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    _, _, images, labels = EpochBatches(source, batch_size, labels=True)[(0, 0)]
    return images.numpy(), labels.numpy()


# ---------------------------------------------------------------------- labels from the three sources


def test_labels_from_gen_sources() -> None:
    src = open_source("gen:fractal/ifs", seed=3, num_images=12, image_size=16, gen_params={"num_systems": 3, "points": 1024})
    assert src.num_classes() == 3
    for fixed in (False, True):
        src.fixed = fixed
        dataset = EpochBatches(src, 6, labels=True)
        _, _, images, labels = dataset[(1, 0)]
        assert images.shape == (6, 16, 16, 3)
        np.testing.assert_array_equal(labels.numpy(), dataset.indices(1, 0) % 3)  # the IFS system of each image
    # Without num_systems every image is its own class: no fixed class count.
    with pytest.raises(UserError, match="num_systems"):
        open_source("gen:fractal/ifs", seed=0, num_images=4, image_size=16).num_classes()
    assert open_source("gen:dead-leaves/squares", seed=0, num_images=4, image_size=16).num_classes() is None


def test_labels_from_npy(labelled_npy: Path) -> None:
    for data in (labelled_npy, labelled_npy / "images.npy"):
        src = open_source(str(data), seed=1)
        assert src.num_classes() == 5
        images, labels = first_batch(src)
        np.testing.assert_array_equal(labels, images[:, 0, 0, 0] % 5)  # labels follow the shuffled images
    # An array under another name takes FILE.labels.npy; a subset counts only its own classes.
    np.save(labelled_npy / "other.npy", np.load(labelled_npy / "images.npy"))
    np.save(labelled_npy / "other.labels.npy", (np.arange(40) // 4).astype(np.int32))
    src = open_source(str(labelled_npy / "other.npy"), seed=1, num_images=8)
    assert src.num_classes() == 2
    images, labels = first_batch(src)
    np.testing.assert_array_equal(labels, images[:, 0, 0, 0] // 4)
    # Malformed labels files are refused with the reason.
    (labelled_npy / "labels.npy").unlink()
    assert open_source(str(labelled_npy), seed=0).num_classes() is None
    np.save(labelled_npy / "labels.npy", np.arange(39))
    with pytest.raises(UserError, match=r"shape \(40,\)"):
        open_source(str(labelled_npy), seed=0).num_classes()
    np.save(labelled_npy / "labels.npy", np.linspace(0, 1, 40))
    with pytest.raises(UserError, match="integer"):
        open_source(str(labelled_npy), seed=0).num_classes()
    np.save(labelled_npy / "labels.npy", np.arange(40) - 1)
    with pytest.raises(UserError, match="non-negative"):
        open_source(str(labelled_npy), seed=0).num_classes()
    np.save(labelled_npy / "labels.npy", np.full(40, 10**12))  # would size a 10^12-way supervised head
    with pytest.raises(UserError, match="below 1,000,000"):
        open_source(str(labelled_npy), seed=0).num_classes()


def test_labels_from_image_folders(tmp_path: Path) -> None:
    # A plain ImageFolder: one class per sub-folder (image colour = 50 * class).
    for c, name in enumerate(("ant", "bee", "cat")):
        (tmp_path / "classes" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((20, 20, 3), 50 * c, np.uint8)).save(tmp_path / "classes" / name / f"{i}.png")
    src = open_source(str(tmp_path / "classes"), seed=0, image_size=16, cache_dir=str(tmp_path / "cache"), progress=False)
    assert src.num_classes() == 3
    images, labels = first_batch(src)
    np.testing.assert_array_equal(labels, images[:, 0, 0, 0] // 50)
    # `generate` output: its sub-folders are buckets, so the labels come from labels.npy by image index ...
    generate_dataset("fractal/ifs", 6, 16, tmp_path / "gen", format="png", params={"num_systems": 4, "points": 1024})
    src = open_source(str(tmp_path / "gen"), seed=0, cache_dir=str(tmp_path / "cache"), progress=False, min_size=16)
    assert src.num_classes() == 4
    np.testing.assert_array_equal(src.load_labels(np.arange(6)), np.arange(6) % 4)
    labels_file = tmp_path / "gen" / "labels.npy"
    good_labels = np.load(labels_file)
    np.save(labels_file, good_labels - 1)  # a generated folder's labels are checked for negatives too
    with pytest.raises(UserError, match="non-negative"):
        open_source(str(tmp_path / "gen"), seed=0, cache_dir=str(tmp_path / "cache"), progress=False, min_size=16)
    np.save(labels_file, good_labels)
    # ... and an unlabelled generator's folder has no labels (not one class per bucket).
    generate_dataset("dead-leaves/squares", 4, 16, tmp_path / "dl", format="png")
    src = open_source(str(tmp_path / "dl"), seed=0, cache_dir=str(tmp_path / "cache"), progress=False, min_size=16)
    assert src.num_classes() is None


# ---------------------------------------------------------------------- training


def test_supervised_loss_falls_on_fractal_classes(tmp_path: Path) -> None:
    """4 IFS systems, 16 steps: the cross-entropy must fall clearly (measured: 1.39 -> about 1.05)."""
    summary = pretrain(PretrainConfig(
        data="gen:fractal/ifs", gen_params={"num_systems": 4, "points": 2000}, num_images=64, fixed=True,
        image_size=32, crop_size=32, arch="smallalexnet32", arch_kwargs={"fc_dim": 256}, method="supervised",
        aug_kwargs={"scale": (0.5, 1.0), "jitter_p": 0.0}, batch_size=16, epochs=4, lr=0.05, lr_reference_batch=None,
        lr_schedule="constant", precision="fp32", out=str(tmp_path / "r"), log_every=1, workers=0,
    ))
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert summary["steps"] == 16 and len(losses) == 16 and "accuracy" in rows[0]
    assert abs(np.mean(losses[:2]) - np.log(4)) < 0.1  # starts at chance
    assert np.mean(losses[-4:]) < np.mean(losses[:2]) - 0.15, losses
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["method_kwargs"] == {"num_classes": 4}  # taken from the generator, stored for resume


def test_supervised_run_resumes_with_its_class_count(labelled_npy: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(labelled_npy), *TINY, "--out", str(out)]) == 0, capsys.readouterr().err
    assert yaml.safe_load((out / "config.yaml").read_text())["method_kwargs"] == {"num_classes": 5}
    head = torch.load(out / "checkpoint.pt", weights_only=True)["model"]["head.weight"]
    assert head.shape == (5, 128)  # a linear classifier on the 128-d embedding
    assert main(["pretrain", "--resume", "--out", str(out)]) == 0
    # The same settings again (num_classes not given): the saved count resumes; a smaller one is refused.
    config = PretrainConfig(data=str(labelled_npy), arch="smallalexnet32", arch_kwargs={"fc_dim": 64, "width": 0.25},
                            crop_size=32, batch_size=8, epochs=1, precision="fp32", workers=0, method="supervised",
                            out=str(out), resume=True)
    assert pretrain(config)["steps"] == 5
    with pytest.raises(UserError, match="fewer than the 5 classes"):
        pretrain(config, out=str(tmp_path / "other"), resume=False, method_kwargs={"num_classes": 3})


def test_vit_tiny_trains_supervised(labelled_npy: Path, tmp_path: Path) -> None:
    """A narrow 2-block vit_tiny through the whole loop (channels_last, native-size check, encoder file)."""
    summary = pretrain(PretrainConfig(
        data=str(labelled_npy), arch="vit_tiny", arch_kwargs={"embed_dim": 48, "depth": 2}, method="supervised",
        batch_size=8, epochs=1, num_images=16, precision="fp32", workers=0, out=str(tmp_path / "vit"),
    ))
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    from noisevision.models import load_encoder

    encoder, meta = load_encoder(tmp_path / "vit")
    assert encoder.arch == "vit_tiny" and encoder.input_size == 32 and meta["method"] == "supervised"


# ---------------------------------------------------------------------- errors


def test_unlabelled_data_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    np.save(tmp_path / "images.npy", np.zeros((16, 32, 32, 3), np.uint8))
    for data in ("gen:dead-leaves/mixed", str(tmp_path)):
        code = main(["pretrain", "--data", data, "--num-images", "16", *TINY, "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "has no labels" in err and "supervised" in err and "labels.npy" in err
    code = main(["pretrain", "--data", "gen:fractal/ifs", "--num-images", "16", *TINY, "--out", str(tmp_path / "run")])
    assert code == 2 and "num_systems" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written
