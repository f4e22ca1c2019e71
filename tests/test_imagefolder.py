"""ImageFolder reader: colour modes, resizing, caching, bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from noisevision.data import imagefolder
from noisevision.data.imagefolder import load_image_folder
from noisevision.errors import UserError
from noisevision.imagefiles import decode_image


def _write(path: Path, img: Image.Image, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def _solid_tree(root: Path, colours: dict[str, tuple[int, int, int]], per_class: int = 3, size: int = 8) -> Path:
    for split in ("train", "test"):
        for cls, rgb in colours.items():
            for i in range(per_class):
                _write(root / split / cls / f"{i}.png", Image.new("RGB", (size, size), rgb))
    return root


def test_colour_modes_become_rgb(tmp_path):
    # greyscale, palette, RGBA (composited on black), CMYK, 16-bit greyscale
    grey = _write(tmp_path / "g.png", Image.new("L", (4, 4), 200))
    pal = _write(tmp_path / "p.gif", Image.new("RGB", (4, 4), (255, 0, 0)).convert("P"))
    rgba = _write(tmp_path / "a.png", Image.new("RGBA", (4, 4), (200, 100, 50, 128)))
    cmyk = _write(tmp_path / "c.jpg", Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "JPEG")
    g16 = _write(tmp_path / "i16.png", Image.fromarray(np.full((4, 4), 65535, np.uint16)))

    np.testing.assert_array_equal(decode_image(grey, 4), np.full((4, 4, 3), 200, np.uint8))
    np.testing.assert_array_equal(decode_image(pal, 4)[0, 0], [255, 0, 0])
    np.testing.assert_allclose(decode_image(rgba, 4)[0, 0], [100, 50, 25], atol=2)
    red = decode_image(cmyk, 4)[0, 0].astype(int)
    assert red[0] > 200 and red[1] < 40 and red[2] < 40
    np.testing.assert_array_equal(decode_image(g16, 4), np.full((4, 4, 3), 255, np.uint8))
    for p in (grey, pal, rgba, cmyk, g16):
        out = decode_image(p, 4)
        assert out.shape == (4, 4, 3) and out.dtype == np.uint8


def test_resize_shorter_side_then_centre_crop(tmp_path):
    # a 16x8 image: left half black, middle white, right half black -> centre crop keeps the middle
    arr = np.zeros((8, 16, 3), np.uint8)
    arr[:, 4:12] = 255
    p = _write(tmp_path / "wide.png", Image.fromarray(arr))
    out = decode_image(p, 4)
    assert out.shape == (4, 4, 3)
    assert out.min() > 200  # only the white middle survives the centre crop


def test_load_labels_classes_and_ignored(tmp_path):
    root = _solid_tree(tmp_path / "ds", {"blue": (0, 0, 255), "red": (255, 0, 0)})
    (root / "train" / "red" / "notes.txt").write_text("not an image")
    (root / "train" / "README").write_text("stray")
    data = load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    assert data.classes == ["blue", "red"]
    assert data.images.shape == (6, 4, 4, 3) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 1, 1])
    assert data.labels.dtype == np.int64
    assert data.n_ignored == 2 and data.n_bad == 0
    np.testing.assert_array_equal(data.images[data.labels == 1][:, 0, 0], [[255, 0, 0]] * 3)


def test_generate_output_layout_with_buckets(tmp_path):
    # noisevision generate writes DIR/train/<bucket>/<i>.jpg; buckets act as dummy classes
    for i in range(5):
        _write(tmp_path / "gen" / "train" / f"{i // 3:04d}" / f"{i:07d}.jpg", Image.new("RGB", (16, 16), (i * 40, 0, 0)), "JPEG")
    data = load_image_folder(tmp_path / "gen", "train", 8, cache_dir=tmp_path / "cache")
    assert len(data) == 5 and data.classes == ["0000", "0001"]


def test_second_load_reads_cache_without_decoding(tmp_path, monkeypatch):
    root = _solid_tree(tmp_path / "ds", {"a": (10, 20, 30), "b": (200, 100, 0)})
    calls = {"n": 0}
    real = imagefolder.decode_image

    def counting(path, size):
        calls["n"] += 1
        return real(path, size)

    monkeypatch.setattr(imagefolder, "decode_image", counting)
    first = load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    assert calls["n"] == 6
    second = load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    assert calls["n"] == 6  # no decoding the second time
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert second.files == first.files
    # a different size, or a changed file, invalidates the cache
    load_image_folder(root, "train", 5, cache_dir=tmp_path / "cache")
    assert calls["n"] == 12
    _write(root / "train" / "a" / "0.png", Image.new("RGB", (9, 9), (1, 2, 3)))
    third = load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    assert calls["n"] == 18
    np.testing.assert_array_equal(third.images[0, 0, 0], [1, 2, 3])
    # a damaged cache (images of another shape under the right file list) is decoded again, not trusted
    shutil.rmtree(tmp_path / "cache")
    load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    assert calls["n"] == 24
    (cache_file,) = (tmp_path / "cache").rglob("*.npz")
    with np.load(cache_file) as z:
        parts = dict(z)
    with open(cache_file, "wb") as f:
        np.savez(f, **{**parts, "images": parts["images"][:2]})
    fourth = load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    assert calls["n"] == 30
    np.testing.assert_array_equal(fourth.images, third.images)


def test_corrupt_and_truncated_images(tmp_path):
    root = _solid_tree(tmp_path / "ds", {"a": (10, 20, 30), "b": (200, 100, 0)})
    (root / "train" / "a" / "broken.jpg").write_bytes(b"definitely not a jpeg")
    good = root / "train" / "b" / "big.jpg"
    _write(good, Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")
    good.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # truncated
    with pytest.raises(UserError, match=r"2 image file\(s\).*broken\.jpg.*big\.jpg.*skip-bad-images"):
        load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    # also from the cache: the bad files are remembered, the error repeats
    with pytest.raises(UserError, match="2 image file"):
        load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    data = load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache", skip_bad_images=True)
    assert len(data) == 6 and data.n_bad == 2
    assert sorted(data.bad_files) == [str(Path("a/broken.jpg")), str(Path("b/big.jpg"))]
    assert all("broken" not in f and "big" not in f for f in data.files)


def test_bad_input_errors(tmp_path):
    root = _solid_tree(tmp_path / "ds", {"a": (1, 2, 3)})
    with pytest.raises(UserError, match=r"split 'val' not found.*available splits: test, train"):
        load_image_folder(root, "val", 4, cache_dir=tmp_path / "cache")
    with pytest.raises(UserError, match="does not exist"):
        load_image_folder(tmp_path / "nope", "train", 4)
    (root / "train" / "empty").mkdir()
    with pytest.raises(UserError, match="no images.*empty"):
        load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")
    (tmp_path / "flat").mkdir()
    with pytest.raises(UserError, match="no class sub-folders"):
        load_image_folder(tmp_path / "flat", None, 4)


def test_an_unreadable_file_is_an_error_and_not_cached_as_corrupt(tmp_path, monkeypatch):
    """Permissions are the user's to fix: the file is not skipped as corrupt, nor remembered as bad."""
    root = _solid_tree(tmp_path / "ds", {"a": (1, 2, 3), "b": (4, 5, 6)})
    real = imagefolder.decode_image

    def denied(path, size):
        if Path(path).parent.name == "a":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, size)

    monkeypatch.setattr(imagefolder, "decode_image", denied)
    with pytest.raises(UserError, match=r"cannot read .*a/.*: permission denied"):
        load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache", skip_bad_images=True)
    assert not list((tmp_path / "cache").rglob("*.npz"))
    monkeypatch.setattr(imagefolder, "decode_image", real)
    assert len(load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache")) == 6


def test_parallel_decode_matches_serial(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefolder, "_CHUNK", 2)
    monkeypatch.setattr(imagefolder, "_MIN_PARALLEL_CHUNKS", 2)
    root = _solid_tree(tmp_path / "ds", {"a": (10, 20, 30), "b": (200, 100, 0)}, per_class=3)
    (root / "train" / "a" / "bad.png").write_bytes(b"xx")
    folder = root / "train"
    _, files, _, _ = imagefolder.scan_image_folder(folder)
    serial, bad_s = imagefolder.decode_files(folder, files, 4, workers=1, progress=False)
    parallel, bad_p = imagefolder.decode_files(folder, files, 4, workers=2, progress=False)
    np.testing.assert_array_equal(serial, parallel)
    assert bad_s == bad_p == [files.index(str(Path("a/bad.png")))]


def _listing(folder: Path) -> list[tuple[str, int]]:
    _, files, labels, _ = imagefolder.scan_image_folder(folder)
    return sorted(zip(files, labels.tolist()))


def test_symlink_loops_are_not_followed(tmp_path):
    """A link back up the tree (or to another class) would list images again under the wrong class, or never end."""
    root = _solid_tree(tmp_path / "ds", {"cat": (1, 1, 1), "dog": (2, 2, 2)}, per_class=2)
    train = root / "train"
    expected = [(str(Path(c) / f"{i}.png"), label) for label, c in enumerate(("cat", "dog")) for i in range(2)]
    (train / "cat" / "up").symlink_to("..", target_is_directory=True)
    with pytest.warns(UserWarning, match=r"not following 1 link\(s\).*cat/up"):
        assert _listing(train) == expected
    # more loops (two hung the scan), one to the dataset root (it holds the test split) and one into another class
    (train / "cat" / "top").symlink_to("../..", target_is_directory=True)
    (train / "dog" / "cats").symlink_to("../cat", target_is_directory=True)
    (train / "dog" / "self").symlink_to(".", target_is_directory=True)
    with pytest.warns(UserWarning, match=r"not following 4 link\(s\).*cat/top, cat/up, dog/cats"):
        data = load_image_folder(root, "train", 4, cache_dir=tmp_path / "cache", progress=False)
    assert sorted(zip(data.files, data.labels.tolist())) == expected


def test_symlinks_to_other_places_still_work(tmp_path, recwarn):
    root = _solid_tree(tmp_path / "ds", {"cat": (1, 1, 1)}, per_class=1)
    train = root / "train"
    elsewhere = tmp_path / "elsewhere"
    _write(elsewhere / "birds" / "b.png", Image.new("RGB", (4, 4), (3, 3, 3)))
    _write(elsewhere / "more" / "m.png", Image.new("RGB", (4, 4), (1, 1, 1)))
    _write(elsewhere / "single.png", Image.new("RGB", (4, 4), (1, 1, 1)))
    (train / "bird").symlink_to(elsewhere / "birds", target_is_directory=True)  # a class folder kept elsewhere
    (train / "cat" / "more").symlink_to(elsewhere / "more", target_is_directory=True)  # a sub-folder kept elsewhere
    (train / "cat" / "single.png").symlink_to(elsewhere / "single.png")  # a file link
    assert _listing(train) == [("bird/b.png", 0), ("cat/0.png", 1), ("cat/more/m.png", 1), ("cat/single.png", 1)]
    assert not [w for w in recwarn if "link" in str(w.message)]
    # the same outside folder linked twice into one class is read once
    (train / "cat" / "more2").symlink_to(elsewhere / "more", target_is_directory=True)
    with pytest.warns(UserWarning, match="cat/more2"):
        assert len(_listing(train)) == 4
