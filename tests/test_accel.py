"""Automatic precision: bf16 autocast on CPU only where it is measured to be faster (or forced by env)."""
from __future__ import annotations

import pytest
import torch

from noisevision import accel


@pytest.fixture
def fresh_choice():
    accel.cpu_bf16_is_faster.cache_clear()
    yield
    accel.cpu_bf16_is_faster.cache_clear()


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("1", True), ("yes", True)])
def test_env_override(monkeypatch, fresh_choice, value: str, expected: bool) -> None:
    monkeypatch.setenv("NOISEVISION_CPU_BF16", value)
    # forcing bf16 on still needs native bf16 instructions
    assert accel.cpu_bf16_is_faster() is (expected and accel.cpu_supports_bf16())
    assert accel.autocast_dtype("cpu") == (torch.bfloat16 if accel.cpu_bf16_is_faster() else None)


def test_measured_choice_follows_the_timing(monkeypatch, fresh_choice) -> None:
    """With native bf16, the choice is whichever dtype the timed matmul favours by the margin."""
    monkeypatch.delenv("NOISEVISION_CPU_BF16", raising=False)
    monkeypatch.setattr(accel, "cpu_supports_bf16", lambda: True)
    clock = iter(range(10_000))
    costs = {torch.float32: 1.0, torch.bfloat16: 3.0}  # bf16 slower: fp32 wins
    real_matmul = torch.Tensor.__matmul__

    def fake_perf_counter() -> float:
        return float(next(clock))

    def timed(a, b):
        for _ in range(int(costs[a.dtype])):
            next(clock)
        return real_matmul(a, b)

    import time

    monkeypatch.setattr(time, "perf_counter", fake_perf_counter)
    monkeypatch.setattr(torch.Tensor, "__matmul__", timed)
    assert accel.cpu_bf16_is_faster() is False
    accel.cpu_bf16_is_faster.cache_clear()
    costs.update({torch.float32: 6.0, torch.bfloat16: 1.0})  # an AMX-like CPU: bf16 6x faster
    assert accel.cpu_bf16_is_faster() is True


def test_autocast_uses_the_dtype_given() -> None:
    if not accel.cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16")
    with accel.autocast("cpu", dtype=torch.bfloat16):
        out = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    with accel.autocast("cpu", enabled=False, dtype=torch.bfloat16):
        assert torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4)).dtype == torch.float32


def test_a_pinned_precision_overrides_auto_only_inside_its_block(monkeypatch) -> None:
    monkeypatch.setattr(accel, "cpu_bf16_is_faster", lambda: True)  # a CPU where auto picks bf16
    assert accel.autocast_dtype("cpu") == torch.bfloat16
    with accel.pinned_precision("fp32"):
        assert accel.autocast_dtype("cpu") is None
        with accel.pinned_precision("auto"):
            assert accel.autocast_dtype("cpu") == torch.bfloat16
        assert accel.autocast_dtype("cpu") is None
    assert accel.autocast_dtype("cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of auto, fp32"):
        with accel.pinned_precision("bf16"):
            pass


def test_precision_labels_match_what_results_record() -> None:
    # rows.jsonl and the report group runs by these strings; a changed label would split a table
    assert accel.precision_label(None) == "fp32"
    assert accel.precision_label(torch.bfloat16) == "bfloat16"
    assert accel.precision_label(torch.float16) == "float16"
