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
