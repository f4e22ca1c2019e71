"""The generation engine: layout, manifest, split invariance, resume, bad input."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from noisevision.cli import main
from noisevision.data.manifest import read_manifest, write_manifest
from noisevision.data.writer import generate_dataset, parse_shard, verify_dataset
from noisevision.errors import UserError
from noisevision.generators import base as generator_base

pytestmark = pytest.mark.usefixtures("toy_plugin")  # conftest.py: registers test/toy


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "train").rglob("*")) if p.is_file()}


def test_jpeg_layout_manifest_and_checksums(tmp_path):
    res = generate_dataset("test/toy", 2300, 16, tmp_path / "d", seed=3, progress=False)
    assert res.complete and res.rendered == 2300
    files = _files(tmp_path / "d")
    assert len(files) == 2300
    assert "train/00000/00000000.jpg" in files and "train/00002/00002299.jpg" in files
    m = read_manifest(tmp_path / "d")
    assert m["generator"] == "test/toy" and m["num_images"] == 2300 and m["seed"] == 3 and m["format"] == "jpeg"
    assert m["params"] == {"noise": 20.0} and m["complete"] and set(m["checksums"]) == {"00000", "00001", "00002"}
    assert np.load(tmp_path / "d" / "labels.npy").tolist() == [i % 3 for i in range(2300)]
    assert verify_dataset(tmp_path / "d") == []
    (tmp_path / "d/train/00001/00001005.jpg").write_bytes(b"corrupted")
    assert verify_dataset(tmp_path / "d") == ["00001"]


def test_any_split_gives_identical_files(tmp_path):
    generate_dataset("test/toy", 2100, 12, tmp_path / "one", seed=1, progress=False)
    generate_dataset("test/toy", 2100, 12, tmp_path / "two", seed=1, workers=2, batch_size=7, progress=False)
    for i in range(3):  # three shards, run one after another
        r = generate_dataset("test/toy", 2100, 12, tmp_path / "shards", seed=1, shard=f"{i}/3", progress=False)
        assert r.complete == (i == 2)
    ref = _files(tmp_path / "one")
    assert _files(tmp_path / "two") == ref
    assert _files(tmp_path / "shards") == ref
    m1, m3 = read_manifest(tmp_path / "one"), read_manifest(tmp_path / "shards")
    assert m1["checksums"] == m3["checksums"]


def test_npy_format_equals_rendered_images(tmp_path):
    from noisevision.generators import create_generator

    generate_dataset("test/toy", 1500, 8, tmp_path / "n", seed=5, format="npy", workers=2, progress=False)
    arr = np.load(tmp_path / "n" / "images.npy", mmap_mode="r")
    assert arr.shape == (1500, 8, 8, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr[1234:1240], create_generator("test/toy").render(range(1234, 1240), 5, 8))
    assert not (tmp_path / "n" / "images.npy.partial").exists()
    assert verify_dataset(tmp_path / "n") == []


def test_rerun_skips_complete_work_and_refills_missing(tmp_path):
    out = tmp_path / "d"
    generate_dataset("test/toy", 1200, 8, out, progress=False)
    before = _files(out)
    (out / "train/00001/00001100.jpg").unlink()
    (out / ".noisevision/buckets/00001.json").unlink()
    res = generate_dataset("test/toy", 1200, 8, out, progress=False)
    assert res.rendered == 1 and res.skipped == 1199
    assert _files(out) == before
    assert generate_dataset("test/toy", 1200, 8, out, progress=False).rendered == 0


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jpeg", "npy"])
def test_resume_after_sigkill(tmp_path, fmt):
    """Kill a real `noisevision generate` mid-run; the re-run completes exactly the same dataset."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "noisevision", "generate", "test/toy", "-n", "6000", "-s", "24", "--out", str(out),
           "--format", fmt, "--no-progress", "-p", "noise=30"]
    proc = subprocess.Popen(cmd, env=os.environ.copy())
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / ".noisevision" / "buckets").glob("*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    m = read_manifest(out)
    assert m is not None and not m["complete"], "the run finished before it could be killed"
    # nothing visible under a final name is half-written
    if fmt == "jpeg":
        from PIL import Image

        for p in (out / "train").rglob("*.jpg"):
            Image.open(p).load()
    else:
        assert not (out / "images.npy").exists()
    assert subprocess.run(cmd, env=os.environ.copy()).returncode == 0
    generate_dataset("test/toy", 6000, 24, tmp_path / "clean", format=fmt, params={"noise": "30"}, progress=False)
    assert read_manifest(out)["checksums"] == read_manifest(tmp_path / "clean")["checksums"]
    assert not list(out.rglob(".*.tmp"))


def test_refuses_directory_with_another_dataset(tmp_path, capsys):
    out = tmp_path / "d"
    generate_dataset("test/toy", 10, 8, out, progress=False)
    with pytest.raises(UserError, match=r"another dataset \(seed: 0 here vs 1 requested"):
        generate_dataset("test/toy", 10, 8, out, seed=1, progress=False)
    res = generate_dataset("test/toy", 10, 8, out, seed=1, overwrite=True, progress=False)
    assert res.complete and read_manifest(out)["seed"] == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="not a noisevision dataset"):
        generate_dataset("test/toy", 10, 8, tmp_path / "mine", overwrite=True, progress=False)
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_a_new_generator_revision_is_another_dataset(tmp_path, monkeypatch):
    """A release that changes a generator's renders neither resumes nor repairs a dataset of the old renders;
    a manifest from before revisions were recorded counts as the first revision."""
    out = tmp_path / "d"
    generate_dataset("test/toy", 20, 8, out, progress=False)
    manifest = read_manifest(out)
    assert manifest["generator_revision"] == 1
    del manifest["generator_revision"]
    write_manifest(out, manifest)
    assert generate_dataset("test/toy", 20, 8, out, progress=False).rendered == 0
    spec = generator_base.GENERATORS.get("test/toy")
    monkeypatch.setitem(generator_base.GENERATORS._items, "test/toy", dataclasses.replace(spec, revision=2))
    with pytest.raises(UserError, match="rendered by revision 1 of test/toy, this release renders revision 2"):
        generate_dataset("test/toy", 20, 8, out, progress=False)
    res = generate_dataset("test/toy", 20, 8, out, overwrite=True, progress=False)
    assert res.rendered == 20 and read_manifest(out)["generator_revision"] == 2


def test_a_deleted_npy_array_is_rendered_again_and_a_damaged_manifest_named(tmp_path):
    out = tmp_path / "d"
    generate_dataset("test/toy", 20, 8, out, format="npy", progress=False)
    before = np.load(out / "images.npy")
    (out / "images.npy").unlink()
    res = generate_dataset("test/toy", 20, 8, out, format="npy", progress=False)  # without --verify
    assert res.complete and res.rendered == 20 and np.array_equal(np.load(out / "images.npy"), before)
    (out / "manifest.json").write_bytes(b"\xff\xfe not text")
    with pytest.raises(UserError, match="not a readable noisevision manifest .*utf-8.*; choose another --out, "
                                        "or delete .* to start again"):
        generate_dataset("test/toy", 20, 8, out, format="npy", progress=False)
    with pytest.raises(UserError, match="not a readable noisevision manifest"):
        verify_dataset(out)


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard(None, {"RANK": "1", "WORLD_SIZE": "3"}) == (1, 3)
    assert parse_shard(None, {}) == (0, 1)
    for bad in ("4/4", "a/b", "1", "-1/2", "0/0"):
        with pytest.raises(UserError):
            parse_shard(bad)


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "test/toyy", "-n", "5", "-o", "{out}"], "did you mean: test/toy"),
        (["generate", "test/toy", "-n", "0", "-o", "{out}"], "positive"),
        (["generate", "test/toy", "-n", "5", "-s", "4", "-o", "{out}"], "too small"),
        (["generate", "test/toy", "-n", "5", "-s", "100000", "-o", "{out}"], "too large"),
        (["generate", "test/toy", "-n", "5", "--shard", "3/2", "-o", "{out}"], "bad shard"),
        (["generate", "test/toy", "-n", "5", "-p", "noise=-1", "-o", "{out}"], "noise must be"),
        (["generate", "test/toy", "-n", "5", "-p", "nois=1", "-o", "{out}"], "did you mean: noise"),
        (["generate", "test/toy", "-n", "5", "--workers", "0", "-o", "{out}"], "workers"),
        (["generate", "test/toy", "-n", "5", "--workers", "100000", "-o", "{out}"], "use at most --workers"),
        (["generate", "test/toy", "-n", "5", "-o", "/proc/noisevision-test"], "cannot write"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, args, message):
    args = [a.replace("{out}", str(tmp_path / "o")) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("noisevision: error:") and message in err and "\n" not in err


def test_unwritable_directory_leaves_nothing_half_written(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(["generate", "test/toy", "-n", "5", "-o", str(out)]) == 2
        assert "permission denied" in capsys.readouterr().err
    finally:
        out.chmod(0o700)


def test_disk_full_is_reported_and_leaves_no_partial_files(tmp_path, monkeypatch, capsys):
    import errno

    import noisevision.data.writer as writer

    real_open = open
    calls = {"n": 0}

    def full_disk_open(path, mode="r", *a, **k):
        if "w" in mode and str(path).endswith(".tmp") and "train" in str(path):
            calls["n"] += 1
            if calls["n"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(writer, "open", full_disk_open, raising=False)
    out = tmp_path / "full"
    assert main(["generate", "test/toy", "-n", "20", "-o", str(out), "--no-progress"]) == 2
    assert "no space left" in capsys.readouterr().err
    assert len(list((out / "train").rglob("*.jpg"))) == 3
    assert not list(out.rglob("*.tmp"))


def test_cli_generate_list_and_preview(tmp_path, capsys):
    assert main(["generate", "test/toy", "-n", "30", "-s", "16", "-o", str(tmp_path / "g"), "--format", "png",
                 "--no-progress"]) == 0
    assert "rendered 30 images" in capsys.readouterr().out
    assert len(list((tmp_path / "g" / "train" / "00000").glob("*.png"))) == 30
    assert main(["list", "test/*", "-v"]) == 0
    out = capsys.readouterr().out
    assert "test/toy" in out and "noise = 20.0" in out
    assert main(["list", "tset/*"]) == 2  # a pattern that matches nothing printed only the footer
    assert capsys.readouterr().err.strip() == ("noisevision: error: no generator matches 'tset/*'; "
                                               "run `noisevision list` to see them all")
    assert main(["preview", "test/toy", "--out", str(tmp_path / "s.png"), "--rows", "2", "--size", "16"]) == 0
    from PIL import Image

    im = Image.open(tmp_path / "s.png")
    assert im.width > 8 * 16 and im.height > 2 * 16
    assert main(["preview", "--all", "--pattern", "test/*", "--out", str(tmp_path / "sheets"), "--rows", "1"]) == 0
    assert (tmp_path / "sheets" / "test_toy.png").exists()
    json.loads((tmp_path / "g" / "manifest.json").read_text())


def _leftovers(root: Path) -> list[str]:
    """Temporary or partial files under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith((".tmp", ".partial")))


def test_npy_full_disk_is_a_clear_error_not_sigbus(tmp_path, monkeypatch, capsys):
    """The packed array's space is reserved before any memory-mapped write, so ENOSPC is caught and reported."""
    import errno

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    out = tmp_path / "full"
    assert main(["generate", "test/toy", "-n", "1500", "-s", "8", "-o", str(out), "--format", "npy",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no space left" in err and "\n" not in err
    assert not (out / "images.npy").exists()
    assert _leftovers(out) == []
    assert not read_manifest(out)["complete"]


def test_npy_without_native_preallocation_is_identical(tmp_path, monkeypatch):
    """Where the file system cannot preallocate, the space is reserved by writing zeros: same dataset."""
    import errno

    generate_dataset("test/toy", 1100, 8, tmp_path / "ref", seed=2, format="npy", progress=False)

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported, raising=False)
    generate_dataset("test/toy", 1100, 8, tmp_path / "zeros", seed=2, format="npy", progress=False)
    assert (tmp_path / "zeros" / "images.npy").read_bytes() == (tmp_path / "ref" / "images.npy").read_bytes()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert main(["generate", "test/toy", "-n", "5", "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is an existing file" in err and "\n" not in err
    assert target.read_text() == "mine"


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_fails_before_writing(tmp_path, capsys, no_cuda, device):
    out = tmp_path / "d"
    assert main(["generate", "test/toy", "-n", "5", "-o", str(out), "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert "CUDA is not available" in err and "--device cpu" in err and "\n" not in err
    assert not out.exists()


def test_missing_plugin_module_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("NOISEVISION_PLUGINS", "tests.plugins.toygen, no_such_plugin_module")
    monkeypatch.setattr(generator_base, "_loaded", False)
    assert main(["list"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'no_such_plugin_module'" in err and "PYTHONPATH" in err and "\n" not in err
