"""`noisevision verify DIR` and `generate --verify`: deleted or changed files are found and re-rendered."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from noisevision.cli import main
from noisevision.data.manifest import read_manifest
from noisevision.data.writer import generate_dataset, verify_dataset

pytestmark = pytest.mark.usefixtures("toy_plugin")  # conftest.py: registers test/toy


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "npy.lock"}


def _verify(out: Path, capsys) -> tuple[int, str, str]:
    code = main(["verify", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_verify_finds_deleted_and_corrupted_images_and_generate_verify_repairs(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["generate", "test/toy", "-n", "2500", "-s", "8", "-o", str(out), "--no-progress"]
    assert main(argv) == 0
    before = _files(out)
    code, stdout, _ = _verify(out, capsys)
    assert code == 0 and "all 3 bucket(s) match" in stdout

    (out / "train/00000/00000007.jpg").unlink()
    (out / "train/00002/00002400.jpg").write_bytes(b"not a jpeg")
    code, stdout, err = _verify(out, capsys)
    assert code == 2
    assert "bucket 00000: images 0-999" in stdout and "bucket 00002: images 2000-2499" in stdout
    assert "00001" not in stdout
    assert err.startswith("noisevision: error:") and "2 item(s) failed verification" in err and "\n" not in err
    assert "--verify" in err

    assert main(argv) == 0  # a plain re-run trusts the done markers: nothing is noticed
    assert "rendered 0 images" in capsys.readouterr().out
    assert main(argv + ["--verify"]) == 0
    assert "re-rendered 2 bucket(s) that failed verification: 00000, 00002" in capsys.readouterr().out
    assert _files(out) == before  # byte-identical, manifest included
    assert _verify(out, capsys)[0] == 0
    assert generate_dataset("test/toy", 2500, 8, out, verify=True, progress=False).repaired == []


def test_npy_corruption_and_deletion_are_repaired_byte_identical(tmp_path, capsys):
    out = tmp_path / "n"
    generate_dataset("test/toy", 1500, 8, out, seed=4, format="npy", progress=False)
    before = _files(out)
    with open(out / "images.npy", "r+b") as f:  # flip one byte of image 1200 (bucket 1)
        f.seek(-(300 * 8 * 8 * 3), 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert verify_dataset(out) == ["00001"]
    res = generate_dataset("test/toy", 1500, 8, out, seed=4, format="npy", verify=True, progress=False)
    assert res.repaired == [1] and res.rendered == 500 and res.complete
    assert _files(out) == before

    (out / "images.npy").unlink()
    assert verify_dataset(out) == ["00000", "00001"]
    assert generate_dataset("test/toy", 1500, 8, out, seed=4, format="npy", verify=True, progress=False).repaired == [0, 1]
    assert _files(out) == before
    assert not (out / "images.npy.partial").exists()


def test_changed_labels_are_found_and_rewritten(tmp_path, capsys):
    out = tmp_path / "d"
    generate_dataset("test/toy", 30, 8, out, progress=False)
    labels = np.load(out / "labels.npy")
    np.save(out / "labels.npy", labels[::-1].copy())
    code, stdout, err = _verify(out, capsys)
    assert code == 2 and "labels.npy: differs or is missing" in stdout and "1 item(s)" in err
    generate_dataset("test/toy", 30, 8, out, verify=True, progress=False)
    np.testing.assert_array_equal(np.load(out / "labels.npy"), labels)
    assert verify_dataset(out) == []


def test_marker_that_disagrees_with_the_manifest_is_rendered_again(tmp_path):
    out = tmp_path / "d"
    generate_dataset("test/toy", 1200, 8, out, progress=False)
    before = _files(out)
    marker = out / ".noisevision" / "buckets" / "00001.json"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps(dict(data, sha256="0" * 64)))
    assert generate_dataset("test/toy", 1200, 8, out, verify=True, progress=False).repaired == [1]
    assert _files(out) == before


@pytest.mark.parametrize("case, message", [
    ("missing", "is not a directory"),
    ("file", "is not a directory"),
    ("foreign", "has no manifest.json"),
    ("incomplete", "is incomplete"),
])
def test_verify_bad_input_is_one_line(tmp_path, capsys, case, message):
    target = tmp_path / "t"
    if case == "file":
        target.write_text("x")
    elif case == "foreign":
        target.mkdir()
    elif case == "incomplete":
        generate_dataset("test/toy", 2100, 8, target, shard="0/2", progress=False)
        assert not read_manifest(target)["complete"]
    code, _, err = _verify(target, capsys)
    assert code == 2 and message in err and "\n" not in err


@pytest.mark.parametrize("field, value", [("bucket_size", 0), ("bucket_size", 10**9), ("num_images", -1),
                                          ("size", 10**6), ("bucket_size", "many")])
def test_a_manifest_with_sizes_out_of_range_is_damaged(tmp_path, capsys, field, value):
    """bucket_size 0 divided by zero; a huge one read the whole array at once (twice) before any check."""
    out = tmp_path / "d"
    generate_dataset("test/toy", 12, 8, out, format="npy", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(dict(manifest, **{field: value})))
    code, _, err = _verify(out, capsys)
    assert code == 2 and "manifest.json is damaged" in err and "\n" not in err

