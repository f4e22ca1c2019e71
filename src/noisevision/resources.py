"""What this machine lets a command use: CPUs for worker processes.

A ``--workers`` count is checked against the CPUs this process may run on
(its affinity mask, which container and batch-system limits set), so a typo
such as ``--workers 1000`` fails at once instead of starting a thousand
processes of a few hundred MB each.
"""
from __future__ import annotations

import os

from .errors import UserError

# Up to this many workers are always allowed, even on a one-CPU machine: two processes
# sharing one CPU are slow but harmless, and tests and examples use two.
MIN_WORKER_LIMIT = 2


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def max_workers() -> int:
    """The largest worker count :func:`check_workers` accepts on this machine."""
    return max(available_cpus(), MIN_WORKER_LIMIT)


def check_workers(workers: object, flag: str = "--workers", allow_zero: bool = False) -> int:
    """Return ``workers`` as an int if it is a sensible process count here, else raise UserError.

    Args:
        workers: the requested number of worker processes.
        flag: the option name used in the message.
        allow_zero: accept 0 (meaning "work in the main process", as data loaders do).

    Raises:
        UserError: not an integer, below the minimum, or more than the CPUs available
            (the message names the maximum).
    """
    lowest = 0 if allow_zero else 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < lowest:
        kind = "a non-negative" if allow_zero else "a positive"
        raise UserError(f"{flag} must be {kind} integer, got {workers!r}")
    limit = max_workers()
    if workers > limit:
        raise UserError(
            f"{flag} {workers} is more than the {available_cpus()} CPU(s) this machine gives the process; "
            f"use at most {flag} {limit}"
        )
    return workers
