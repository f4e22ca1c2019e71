"""Process-wide settings that must be in place before ``torch`` is imported.

``OMP_WAIT_POLICY=PASSIVE``: with the default (active) policy two OpenMP threads
spin and stall for seconds on the small ops of a contrastive training step on
a 2-core CPU. Importing :mod:`noisevision` sets it (without overriding a value
the user chose) before anything imports torch.
"""
from __future__ import annotations

import os


def configure_process_env() -> None:
    """Set environment defaults needed by torch/OpenMP; never overrides the user."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("KMP_BLOCKTIME", "0")


configure_process_env()
