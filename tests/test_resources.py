"""Worker counts are checked against the CPUs this process may use."""
from __future__ import annotations

import os

import pytest

from noisevision import resources
from noisevision.errors import UserError
from noisevision.resources import available_cpus, check_workers, max_workers


def test_limit_follows_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    assert available_cpus() == 6 and max_workers() == 6
    assert check_workers(6) == 6
    with pytest.raises(UserError, match=r"--workers 7 is more than the 6 CPU\(s\).*use at most --workers 6"):
        check_workers(7)
    with pytest.raises(UserError, match="--jobs 1000 .*use at most --jobs 6"):
        check_workers(1000, flag="--jobs")


def test_small_machines_still_allow_the_minimum(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert max_workers() == resources.MIN_WORKER_LIMIT
    assert check_workers(resources.MIN_WORKER_LIMIT) == resources.MIN_WORKER_LIMIT


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2", None])
def test_not_a_positive_integer(bad):
    with pytest.raises(UserError, match="must be a positive integer"):
        check_workers(bad)


def test_zero_allowed_where_it_means_in_process():
    assert check_workers(0, allow_zero=True) == 0
    with pytest.raises(UserError, match="non-negative"):
        check_workers(-1, allow_zero=True)
