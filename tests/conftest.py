"""Shared fixtures: the real-data root and small helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Where the real evaluation archives live (``NOISEVISION_DATA``, else ../shared/datasets)."""
    root = Path(os.environ.get("NOISEVISION_DATA", REPO.parent / "shared" / "datasets"))
    if not root.exists():
        pytest.skip(f"no real-data root at {root} (set NOISEVISION_DATA)")
    return root


@pytest.fixture
def toy_plugin(monkeypatch):
    """Register tests/plugins/toygen.py (``test/toy``) here and in spawned worker processes."""
    monkeypatch.setenv("NOISEVISION_PLUGINS", "tests.plugins.toygen")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(REPO))
    import tests.plugins.toygen  # noqa: F401


@pytest.fixture
def one_thread():
    """Run this test's in-process torch work on one thread, restored afterwards.

    fp32 reductions take another order with another thread count, and a few steps of
    training amplify that rounding: a test that compares an in-process run with a
    subprocess (started with ``OMP_NUM_THREADS=1``) pins both to one thread.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_cuda(monkeypatch):
    """Make CUDA look absent, whatever this machine has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def deny_writes(monkeypatch: pytest.MonkeyPatch):
    """``deny_writes(folder)``: creating files or folders inside ``folder`` fails with EACCES, as in a
    read-only folder (``chmod`` does not stop root, which runs some test machines)."""
    import errno
    import tempfile

    denied: list[Path] = []

    def check(path) -> None:
        if path is not None and any(Path(os.path.abspath(path)).is_relative_to(d) for d in denied):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    real_mkdir, real_mkstemp, real_named = os.mkdir, tempfile.mkstemp, tempfile.NamedTemporaryFile

    def mkdir(path, *args, **kwargs):
        check(os.path.dirname(os.path.abspath(path)))
        return real_mkdir(path, *args, **kwargs)

    def mkstemp(*args, dir=None, **kwargs):
        check(dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    def named(*args, dir=None, **kwargs):
        check(dir)
        return real_named(*args, dir=dir, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", named)
    return lambda folder: denied.append(Path(os.path.abspath(folder)))


@pytest.fixture(scope="session")
def two_class_folder(tmp_path_factory: pytest.TempPathFactory):
    """``two_class_folder(per_class=40, test_per_class=None)``: a new ImageFolder with train/ and test/ splits
    of two easily told apart classes (dead-leaves squares and 1/f noise, 32 px PNGs), so a probe of it takes
    seconds; the test split has ``per_class`` images per class unless ``test_per_class`` says otherwise."""
    from PIL import Image

    from noisevision.generators import create_generator

    def make(per_class: int = 40, test_per_class: int | None = None) -> Path:
        folder = tmp_path_factory.mktemp("eval")
        for split, first, n in (("train", 0, per_class), ("test", 40, test_per_class or per_class)):
            for name in ("dead-leaves/squares", "stat/spectrum"):
                images = create_generator(name).render(range(first, first + n), seed=0, size=32)
                (folder / split / name.replace("/", "-")).mkdir(parents=True)
                for i, image in enumerate(images):
                    Image.fromarray(image).save(folder / split / name.replace("/", "-") / f"{i}.png")
        return folder

    return make


@pytest.fixture(scope="session")
def blocky_npy(tmp_path_factory: pytest.TempPathFactory):
    """``blocky_npy(n, cells=4, seed=0)``: a new ``images.npy`` of ``n`` 32 px images made of ``cells`` x ``cells``
    random colour blocks: enough structure for the crops and colour augmentations, and quick to train on."""
    import numpy as np

    def make(n: int, cells: int = 4, seed: int = 0) -> Path:
        low = np.random.default_rng(seed).integers(0, 256, (n, cells, cells, 3)).astype(np.uint8)
        block = 32 // cells
        path = tmp_path_factory.mktemp("npy") / "images.npy"
        np.save(path, np.repeat(np.repeat(low, block, axis=1), block, axis=2))
        return path

    return make


@pytest.fixture
def refused_cheaply():
    """``refused_cheaply(call, match)``: ``call()`` raises a UserError matching ``match`` while Python
    and numpy (which report their buffers to tracemalloc) allocate under 64 MiB on the way."""
    import tracemalloc

    from noisevision.errors import UserError

    def check(call, match: str) -> None:
        tracemalloc.start()
        try:
            with pytest.raises(UserError, match=match):
                call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"

    return check

