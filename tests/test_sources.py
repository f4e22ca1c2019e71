"""Training data sources (npy, ImageFolder, gen:) and the batch stream."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from noisevision.data.sources import ArraySource, GeneratorSource, open_source
from noisevision.data.stream import EpochBatches, batch_keys, iterate_batches
from noisevision.errors import UserError

GEN = "dead-leaves/squares"


@pytest.fixture()
def npy_dir(tmp_path: Path) -> Path:
    # Image i is filled with the value i, so a batch reveals which indices it holds.
    images = np.broadcast_to(np.arange(40, dtype=np.uint8)[:, None, None, None], (40, 16, 16, 3)).copy()
    np.save(tmp_path / "images.npy", images)
    return tmp_path


def ids(batch) -> list[int]:
    return batch[:, 0, 0, 0].tolist()


def test_npy_dir_and_file_are_memory_mapped(npy_dir: Path) -> None:
    for data in (str(npy_dir), str(npy_dir / "images.npy")):
        src = open_source(data, seed=0, min_size=16)
        assert isinstance(src, ArraySource) and src.num_images == 40 and src.image_size == 16
        assert isinstance(src.array, np.memmap)
        assert ids(src.load(np.array([7, 3, 9]))) == [7, 3, 9]


def test_npy_epoch_order_is_a_seeded_permutation(npy_dir: Path) -> None:
    src = open_source(str(npy_dir), seed=5, num_images=30, min_size=8)
    e0, e1 = src.epoch_indices(0), src.epoch_indices(1)
    assert sorted(e0) == list(range(30)) and sorted(e1) == list(range(30))
    assert not np.array_equal(e0, e1)  # reshuffled each epoch
    assert np.array_equal(e0, open_source(str(npy_dir), seed=5, num_images=30).epoch_indices(0))
    assert not np.array_equal(e0, open_source(str(npy_dir), seed=6, num_images=30).epoch_indices(0))


def test_batches_cover_each_epoch_once_and_drop_the_rest(npy_dir: Path) -> None:
    src = open_source(str(npy_dir), seed=0)
    seen = [(e, b, ids(x.numpy())) for e, b, x in iterate_batches(src, 16, epochs=2)]
    assert [(e, b) for e, b, _ in seen] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    epoch0 = seen[0][2] + seen[1][2]
    assert len(set(epoch0)) == 32 and epoch0 == src.epoch_indices(0)[:32].tolist()


def test_rank_slices_partition_the_global_batch(npy_dir: Path) -> None:
    src = open_source(str(npy_dir), seed=1)
    whole = EpochBatches(src, 16)[(1, 1)][2]
    halves = [EpochBatches(src, 16, rank=r, world_size=2)[(1, 1)][2] for r in (0, 1)]
    assert ids(np.concatenate([h.numpy() for h in halves])) == ids(whole.numpy())


def test_resume_keys_skip_done_batches() -> None:
    assert batch_keys(0, 3, 2) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert batch_keys(4, 3, 2) == [(1, 1), (1, 2)]


def test_gen_source_fresh_and_fixed_epochs() -> None:
    fresh = open_source(f"gen:{GEN}", seed=3, num_images=6, image_size=16)
    assert isinstance(fresh, GeneratorSource)
    assert fresh.epoch_indices(0).tolist() == list(range(6))
    assert fresh.epoch_indices(2).tolist() == list(range(12, 18))
    fixed = open_source(f"gen:{GEN}", seed=3, num_images=6, image_size=16, fixed=True)
    assert sorted(fixed.epoch_indices(2)) == list(range(6))
    # Image i is the generator's image i for this seed, whatever batch it lands in.
    from noisevision.generators import create_generator

    expected = create_generator(GEN).render([13, 4], 3, 16)
    assert np.array_equal(fresh.load(np.array([13, 4])), expected)
    assert not np.array_equal(fresh.load(np.array([0])), fresh.load(np.array([6])))


def test_gen_params_reach_the_generator(npy_dir: Path) -> None:
    from noisevision.generators import create_generator

    src = open_source(f"gen:{GEN}", seed=0, num_images=4, image_size=16, gen_params={"sigma": "2"})
    expected = create_generator(GEN, sigma=2.0).render([1, 2], 0, 16)
    assert np.array_equal(src.load(np.array([1, 2])), expected)
    assert not np.array_equal(expected, create_generator(GEN).render([1, 2], 0, 16))
    with pytest.raises(UserError, match="no parameter"):
        open_source(f"gen:{GEN}", seed=0, num_images=4, gen_params={"nonsense": 1})
    with pytest.raises(UserError, match="only to gen:"):
        open_source(str(npy_dir), seed=0, gen_params={"sigma": 2})


def test_gen_stream_same_with_and_without_workers() -> None:
    src = open_source(f"gen:{GEN}", seed=0, num_images=8, image_size=16)
    inline = [x.numpy() for _, _, x in iterate_batches(src, 4, epochs=2, workers=0)]
    workers = [x.numpy() for _, _, x in iterate_batches(src, 4, epochs=2, workers=2)]
    assert len(inline) == 4
    for a, b in zip(inline, workers):
        assert np.array_equal(a, b)
    assert not np.array_equal(inline[0], inline[2])  # epoch 1 sees fresh images


def test_image_folder_source(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c in ("0000", "0001"):
        (tmp_path / "train" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "train" / c / f"{i}.png")
    (tmp_path / "train" / "0001" / "broken.jpg").write_bytes(b"not an image")
    src = open_source(str(tmp_path), seed=0, image_size=16, min_size=16, cache_dir=str(tmp_path / "cache"), progress=False)
    assert src.kind == "folder" and src.num_images == 6 and src.load(np.arange(6)).shape == (6, 16, 16, 3)


@pytest.mark.parametrize(
    "data, kwargs, message",
    [
        ("", {}, "no training data"),
        ("/nonexistent/data", {}, "does not exist"),
        ("gen:", {}, "needs a generator name"),
        (f"gen:{GEN}", {}, "--num-images"),
        ("gen:no-such-generator", {"num_images": 4}, "unknown generator"),
    ],
)
def test_bad_sources(data: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        open_source(data, seed=0, **kwargs)


def test_bad_arrays_and_folders(tmp_path: Path, npy_dir: Path) -> None:
    with pytest.raises(UserError, match="smaller than the 32 px crop"):
        open_source(str(npy_dir), seed=0, min_size=32)
    with pytest.raises(UserError, match="more than the 40 images"):
        open_source(str(npy_dir), seed=0, num_images=41)
    np.save(tmp_path / "empty.npy", np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="holds no images"):
        open_source(str(tmp_path / "empty.npy"), seed=0)
    np.save(tmp_path / "float.npy", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(UserError, match="uint8"):
        open_source(str(tmp_path / "float.npy"), seed=0)
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(UserError, match="junk.npy is not a .npy file"):
        open_source(str(tmp_path / "junk.npy"), seed=0)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))  # pickled objects are never loaded
    with pytest.raises(UserError, match="cannot read .*objects.npy as a .npy array"):
        open_source(str(tmp_path / "objects.npy"), seed=0)
    bad = tmp_path / "folder" / "a"
    bad.mkdir(parents=True)
    (bad / "x.jpg").write_bytes(b"junk")
    with pytest.raises(UserError, match="no readable images"):
        open_source(str(tmp_path / "folder"), seed=0, min_size=8, cache_dir=str(tmp_path / "c"), progress=False)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError):
        open_source(str(tmp_path / "nothing"), seed=0)
