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
def no_cuda(monkeypatch):
    """Make CUDA look absent, whatever this machine has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
