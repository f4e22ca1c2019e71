"""CIFAR-10 python reader, dataset resolution, safe unpacking and the checked download."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from noisevision.data import roots
from noisevision.data.cifar import load_cifar10_python
from noisevision.data.roots import download, load_split, resolve_dataset, safe_extract
from noisevision.errors import UserError

CLASSES = [b"airplane", b"automobile", b"bird"]


def _fake_cifar_dir(folder: Path, per_batch: int = 4) -> dict[str, np.ndarray]:
    """Write a tiny cifar-10-batches-py folder (5 train batches + test); return the test data rows."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, len(CLASSES), per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, f, protocol=2)
        rows[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": CLASSES, b"num_vis": 3072}, f, protocol=2)
    return rows


def _tar_gz(path: Path, source: Path, arcname: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=arcname)
    return path


def test_python_batches_layout_and_labels(tmp_path):
    rows = _fake_cifar_dir(tmp_path / "cifar-10-batches-py")
    train = load_cifar10_python(tmp_path / "cifar-10-batches-py", "train")
    test = load_cifar10_python(tmp_path / "cifar-10-batches-py", "test")
    assert train.images.shape == (20, 32, 32, 3) and test.images.shape == (4, 32, 32, 3)
    assert train.classes == ["airplane", "automobile", "bird"]
    data, labels = rows["test_batch"]
    # channel-planar rows: the first 1024 bytes are the red plane, row-major
    np.testing.assert_array_equal(test.images[1, :, :, 0], data[1, :1024].reshape(32, 32))
    np.testing.assert_array_equal(test.images[1, :, :, 2], data[1, 2048:].reshape(32, 32))
    np.testing.assert_array_equal(test.labels, labels)
    assert load_cifar10_python(tmp_path / "cifar-10-batches-py", "test", size=16).images.shape == (4, 16, 16, 3)
    with pytest.raises(UserError, match="available splits: train, test"):
        load_cifar10_python(tmp_path / "cifar-10-batches-py", "val")


def test_refuses_pickles_with_code(tmp_path):
    _fake_cifar_dir(tmp_path / "c")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "c" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(UserError, match="not a valid CIFAR-10 python batch"):
        load_cifar10_python(tmp_path / "c", "test")


def test_safe_extract_is_complete_and_refuses_escapes(tmp_path):
    src = tmp_path / "src" / "ds"
    (src / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(src / "train" / "a" / "0.png")
    archive = _tar_gz(tmp_path / "ds.tar.gz", src, "ds")
    out = safe_extract(archive, tmp_path / "cache", "ds")
    assert (out / "train" / "a" / "0.png").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["ds"]  # no temp folders left

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        payload = b"gotcha"
        for name in ("evil/ok.txt", "../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(UserError, match="unsafe paths"):
        safe_extract(evil, tmp_path / "cache2", "evil")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "cache2" / "evil").exists()  # nothing half-extracted under the final name
    assert list((tmp_path / "cache2").iterdir()) == []


def test_safe_extract_stops_before_filling_the_disk(tmp_path, monkeypatch):
    """A few KB of gzip can expand into gigabytes: unpacking stops once the members pass the free space."""
    src = tmp_path / "src" / "ds"
    src.mkdir(parents=True)
    (src / "zeros.bin").write_bytes(bytes(200_000))  # compresses to a few hundred bytes
    archive = _tar_gz(tmp_path / "ds.tar.gz", src, "ds")
    assert archive.stat().st_size < 5_000
    real = shutil.disk_usage
    monkeypatch.setattr(roots.shutil, "disk_usage", lambda p: real(p)._replace(free=100_000))
    with pytest.raises(UserError, match=r"holds more than the 0\.0 GiB free"):
        safe_extract(archive, tmp_path / "cache", "ds")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-extracted is kept
    monkeypatch.setattr(roots.shutil, "disk_usage", real)
    assert (safe_extract(archive, tmp_path / "cache", "ds") / "zeros.bin").stat().st_size == 200_000


def test_download_checks_md5_and_deletes_mismatch(tmp_path):
    payload = b"x" * 3_000_000
    src = tmp_path / "file.bin"
    src.write_bytes(payload)
    url = src.as_uri()
    good = download(url, tmp_path / "dl" / "file.bin", md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert good.read_bytes() == payload
    with pytest.raises(UserError, match="checksum mismatch.*deleted"):
        download(url, tmp_path / "dl" / "other.bin", md5="0" * 32, progress=False)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["file.bin"]
    with pytest.raises(UserError, match="download of .* failed"):
        download((tmp_path / "missing.bin").as_uri(), tmp_path / "dl" / "m.bin", progress=False)


def test_cifar10_resolution_downloads_official_archive(tmp_path, monkeypatch, capsys):
    _fake_cifar_dir(tmp_path / "build" / "cifar-10-batches-py")
    archive = _tar_gz(tmp_path / "served.tar.gz", tmp_path / "build" / "cifar-10-batches-py", "cifar-10-batches-py")
    monkeypatch.setattr(roots, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(roots, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    monkeypatch.delenv("NOISEVISION_DATA", raising=False)
    source = resolve_dataset("cifar10", data_root=tmp_path / "empty_root", cache_dir=tmp_path / "cache")
    assert source.kind == "cifar-python"
    assert f"the data root {tmp_path / 'empty_root'} is not a folder; looking online" in capsys.readouterr().out
    assert (tmp_path / "cache" / "datasets" / "cifar-10-python.tar.gz").is_file()
    assert len(load_split(source, "train", 32)) == 20
    # second time: found in the cache, no download
    monkeypatch.setattr(roots, "CIFAR10_URL", (tmp_path / "gone").as_uri())
    assert resolve_dataset("cifar10", cache_dir=tmp_path / "cache").path == source.path


def test_cifar10_download_with_bad_checksum(tmp_path, monkeypatch):
    served = tmp_path / "served.tar.gz"
    served.write_bytes(b"not the real archive")
    monkeypatch.setattr(roots, "CIFAR10_URL", served.as_uri())
    monkeypatch.delenv("NOISEVISION_DATA", raising=False)
    with pytest.raises(UserError, match="checksum mismatch"):
        resolve_dataset("cifar10", cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache" / "datasets").iterdir())


def test_named_dataset_resolution_from_imagefolder_archive(tmp_path):
    src = tmp_path / "build" / "tiny-imagenet-32"
    for split in ("train", "val"):
        (src / split / "n01").mkdir(parents=True)
        Image.new("RGB", (32, 32), (5, 6, 7)).save(src / split / "n01" / "a.JPEG")
    (src / "wnids.txt").write_text("n01\n")
    (tmp_path / "root").mkdir()
    _tar_gz(tmp_path / "root" / "tiny-imagenet-32.tar.gz", src, "tiny-imagenet-32")
    source = resolve_dataset("tiny-imagenet-32", data_root=tmp_path / "root", cache_dir=tmp_path / "cache")
    assert source.kind == "imagefolder" and source.path == tmp_path / "cache" / "datasets" / "tiny-imagenet-32"
    val = load_split(source, "val", 32, cache_dir=tmp_path / "cache", progress=False)
    assert val.classes == ["n01"]
    np.testing.assert_allclose(val.images[0, 0, 0], [5, 6, 7], atol=2)  # JPEG
    with pytest.raises(UserError, match="available splits: train, val"):
        load_split(source, "test", 32, cache_dir=tmp_path / "cache")


def test_dataset_registry(tmp_path, monkeypatch):
    """Named datasets are registrations: their default test split, and a new one resolves through its resolver."""
    assert roots.list_datasets() == ["cifar10", "tiny-imagenet-32", "imagefolder:<path>"]
    assert roots.default_test_split("tiny-imagenet-32") == "val" and roots.default_test_split("cifar10") == "test"
    assert roots.default_test_split(f"imagefolder:{tmp_path}") == "test"
    assert all(info.test_split in info.splits for info in map(roots.DATASETS.get, roots.DATASETS))
    monkeypatch.setattr(roots, "DATASETS", roots.Registry("dataset"))  # a registry of its own, left unchanged
    (tmp_path / "root" / "mine").mkdir(parents=True)
    roots.register_dataset("mine", roots.resolve_local_only, splits=("train", "holdout"), test_split="holdout")
    source = resolve_dataset("mine", data_root=tmp_path / "root", cache_dir=tmp_path / "cache")
    assert source.kind == "imagefolder" and source.path == tmp_path / "root" / "mine"
    assert roots.default_test_split("mine") == "holdout"
    with pytest.raises(ValueError, match="not one of its splits"):
        roots.register_dataset("bad", roots.resolve_local_only, splits=("train",), test_split="test")


def test_unknown_and_missing_datasets(tmp_path, monkeypatch):
    monkeypatch.delenv("NOISEVISION_DATA", raising=False)
    with pytest.raises(UserError, match="unknown dataset 'cifar100'.*imagefolder:<path>"):
        resolve_dataset("cifar100")
    with pytest.raises(UserError, match="tiny-imagenet-32' not found"):
        resolve_dataset("tiny-imagenet-32", data_root=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(UserError, match="does not exist"):
        resolve_dataset(f"imagefolder:{tmp_path / 'nope'}")
    with pytest.raises(UserError, match=r"in .*typo \(no such folder\) and"):  # a mistyped data root is said so
        resolve_dataset("tiny-imagenet-32", data_root=tmp_path / "typo", cache_dir=tmp_path / "cache")
    (tmp_path / "tiny-imagenet-32.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(UserError, match=r"^cannot unpack .*tiny-imagenet-32.tar.gz: [^\n]*$"):  # one line
        resolve_dataset("tiny-imagenet-32", data_root=tmp_path, cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_shared_cifar10_archive_is_found(data_root, tmp_path):
    """The real shared archive resolves to an ImageFolder with the ten classes (unpacked once into the cache)."""
    if not (data_root / "cifar10.tar.gz").is_file() and not (data_root / "cifar10").is_dir():
        pytest.skip("no cifar10 in the data root")
    cache = Path(os.environ.get("NOISEVISION_CACHE", Path.home() / ".cache" / "noisevision"))
    source = resolve_dataset("cifar10", data_root=data_root, cache_dir=cache)
    assert source.kind == "imagefolder"
    assert sorted(p.name for p in (source.path / "test").iterdir())[:3] == ["airplane", "automobile", "bird"]


class _Reduce:
    """Pickles as an arbitrary (callable, args[, state]) triple, like a tampered file would."""

    def __init__(self, *reduce_value):
        self.reduce_value = reduce_value

    def __reduce__(self):
        return self.reduce_value


def _huge_array_pickles() -> dict[str, object]:
    from numpy._core.multiarray import _reconstruct

    huge = (2**40,)  # 1 TiB
    return {
        "reconstruct": _Reduce(_reconstruct, (np.ndarray, huge, b"b")),
        "ndarray call": _Reduce(np.ndarray, (huge,)),
        "object state": _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, huge, np.dtype("O"), False, [])),
    }


@pytest.mark.parametrize("case", sorted(_huge_array_pickles()))
def test_pickles_asking_for_huge_arrays_are_refused_before_allocating(tmp_path, case, refused_cheaply):
    _fake_cifar_dir(tmp_path / "c")
    with open(tmp_path / "c" / "test_batch", "wb") as f:
        pickle.dump({b"data": _huge_array_pickles()[case], b"labels": [0]}, f, protocol=2)
    refused_cheaply(lambda: load_cifar10_python(tmp_path / "c", "test"), "not a valid CIFAR-10 python batch")


def test_a_stored_byte_string_reused_by_many_arrays_is_refused(tmp_path, refused_cheaply):
    """A pickle's memo lets one stored byte string fill many arrays: 1 MiB on disk asking for 200 MiB."""
    from numpy._core.multiarray import _reconstruct

    data = bytes(2**20)  # one object, so the pickler stores it once and refers to it 200 times
    arrays = [_Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (2**20,), np.dtype(">u1"), False, data))
              for _ in range(200)]
    _fake_cifar_dir(tmp_path / "c")
    with open(tmp_path / "c" / "test_batch", "wb") as f:
        pickle.dump({b"data": arrays, b"labels": [0]}, f, protocol=2)
    assert (tmp_path / "c" / "test_batch").stat().st_size < 2 * 2**20
    refused_cheaply(lambda: load_cifar10_python(tmp_path / "c", "test"), "more bytes than the file")


def test_batches_are_checked_after_unpickling(tmp_path, monkeypatch):
    from noisevision.data import cifar

    _fake_cifar_dir(tmp_path / "c")
    cases = [
        ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}, "3 images but 2 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 7]}, r"labels must lie in 0\.\.2"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"shape \(N, 3072\)"),
        ({b"labels": [0, 1]}, "expected 'data'"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "expected 'labels'"),
    ]
    for batch, message in cases:
        with open(tmp_path / "c" / "test_batch", "wb") as f:
            pickle.dump(batch, f, protocol=2)
        with pytest.raises(UserError, match=message):
            load_cifar10_python(tmp_path / "c", "test")
    monkeypatch.setattr(cifar, "MAX_PICKLE_BYTES", 1000)
    with pytest.raises(UserError, match="more than a CIFAR-10 batch can be"):
        load_cifar10_python(tmp_path / "c", "test")


class _CutOffResponse:
    """An HTTP response that delivers ``sent`` bytes of an announced ``length``, then ends as ``how`` says."""

    def __init__(self, length: int, sent: int, how: str):
        self.headers = {"Content-Length": str(length)}
        self.blocks = [b"x" * sent]
        self.how = how

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, n: int = -1) -> bytes:
        if self.blocks:
            return self.blocks.pop()
        if self.how == "reset":
            import http.client

            raise http.client.IncompleteRead(b"", 10)
        if self.how == "ctrl-c":
            raise KeyboardInterrupt
        return b""  # "short": the server closed the connection early


@pytest.mark.parametrize("how, error", [("reset", UserError), ("short", UserError), ("ctrl-c", KeyboardInterrupt)])
def test_download_cut_off_leaves_nothing(tmp_path, how, error):
    dest = tmp_path / "dl" / "archive.tar.gz"
    with pytest.raises(error) as info:
        download("https://example.invalid/a.tar.gz", dest, progress=False,
                 opener=lambda url: _CutOffResponse(3000, 1000, how))
    if error is UserError:
        assert "cut off after 1000 of 3000 bytes" in str(info.value) and "try again" in str(info.value)
    assert list((tmp_path / "dl").iterdir()) == []  # neither the archive nor a .part
