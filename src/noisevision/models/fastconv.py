"""A drop-in ``nn.Conv2d`` whose bf16 weight gradient on small, wide maps is computed as GEMMs.

oneDNN's bf16 weight-gradient kernel is slow and erratic on CPU for small spatial
maps with many input channels. Measured on this project's CPU (AMX, 2 cores,
batch 256, median of 5): 384->384 at 7x7 (SmallAlexNet-32 conv4) 3.2 s vs 0.26 s
as GEMMs; 384->192 at 15x15 5.5 s vs 0.6 s; 256->256 at 8x8 4.0 s vs 0.13 s;
512->512 at 4x4 3.9 s vs 0.17 s; but 96->192 at 31x31 0.34 s vs 1.7 s and
64->64 at 32x32 0.49 s vs 0.60 s favour oneDNN. So bf16 (autocast or bf16
weights), stride-1, ungrouped, bias-free 3x3-style convolutions on CPU whose map
has at most ``SMALL_MAP_PIXELS`` pixels, or at most ``MEDIUM_MAP_PIXELS`` with
at least ``WIDE_CHANNELS`` input channels, compute ``grad_weight`` as one GEMM per
kernel tap; strided convs (ResNet downsampling) always take the GEMM path
(oneDNN stalled ~2 s per call on them in profiles). Forward and ``grad_input`` stay oneDNN's. The module is an
``nn.Conv2d`` subclass with the same parameters and state dict; fp32 is untouched.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMALL_MAP_PIXELS = 64
MEDIUM_MAP_PIXELS = 256
WIDE_CHANNELS = 128


def conv_weight_grad_by_taps(grad_out: torch.Tensor, x: torch.Tensor, kernel: tuple[int, int],
                             padding: tuple[int, int]) -> torch.Tensor:
    """grad of a stride-1 conv's weight: (N, K, H, W) grad, (N, C, H+2ph-kh+1...) input -> (K, C, kh, kw).

    Both tensors are zero-padded to the padded input grid (Hp, Wp) and flattened to
    (N*Hp*Wp, channels) rows. For kernel tap (dy, dx) the input row of output row p is
    p + dy*Wp + dx, so the tap's gradient is ONE matmul of two contiguous row ranges:
    grad rows that fall into padding are zero and cancel every wrap-around term.
    """
    n, k, h, w = grad_out.shape
    c = x.shape[1]
    kh, kw = kernel
    xp = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    hp, wp = xp.shape[-2:]
    rows_x = xp.permute(0, 2, 3, 1).contiguous().view(-1, c)  # (N*Hp*Wp, C)
    rows_g = F.pad(grad_out, (0, wp - w, 0, hp - h)).permute(0, 2, 3, 1).contiguous().view(-1, k)  # (N*Hp*Wp, K)
    m = rows_g.shape[0]
    taps = [rows_g[: m - (dy * wp + dx)].T @ rows_x[dy * wp + dx :] for dy in range(kh) for dx in range(kw)]
    return torch.stack(taps, dim=2).view(k, c, kh, kw)


def strided_conv_weight_grad(grad_out: torch.Tensor, x: torch.Tensor, kernel: tuple[int, int],
                             padding: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """grad_weight of a strided conv: one GEMM per kernel tap on the (copied) strided input slice."""
    n, k, h, w = grad_out.shape
    c = x.shape[1]
    kh, kw = kernel
    sy, sx = stride
    rows_g = grad_out.permute(0, 2, 3, 1).reshape(-1, k)
    xp = F.pad(x, (padding[1], padding[1], padding[0], padding[0])).permute(0, 2, 3, 1)
    taps = [rows_g.T @ xp[:, dy : dy + sy * (h - 1) + 1 : sy, dx : dx + sx * (w - 1) + 1 : sx, :].reshape(-1, c)
            for dy in range(kh) for dx in range(kw)]
    return torch.stack(taps, dim=2).view(k, c, kh, kw)


class _SmallMapConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int],  # type: ignore[override]
                stride: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.stride = padding, stride
        return F.conv2d(x, weight, None, stride, padding)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, list(ctx.stride), list(ctx.padding), [1, 1], False, [0, 0], 1,
                [True, False, False],
            )[0]
        if ctx.needs_input_grad[1]:
            kernel = tuple(weight.shape[-2:])
            if ctx.stride == (1, 1):
                grad_w = conv_weight_grad_by_taps(grad_out, x, kernel, ctx.padding)
            else:
                grad_w = strided_conv_weight_grad(grad_out, x, kernel, ctx.padding, ctx.stride)
            grad_w = grad_w.to(weight.dtype)
        return grad_x, grad_w, None, None


class FastConv2d(nn.Conv2d):
    """``nn.Conv2d`` that routes small-map CPU training convs through :class:`_SmallMapConv`."""

    def _small_map_eligible(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu" and torch.is_grad_enabled() and self.weight.requires_grad
            and self.bias is None and self.groups == 1 and self.dilation == (1, 1)
            and self.padding_mode == "zeros" and isinstance(self.padding, tuple)
            and (self.stride != (1, 1) or self._small_or_wide(x.shape[1], x.shape[-2] * x.shape[-1]))
        )

    @staticmethod
    def _small_or_wide(channels: int, pixels: int) -> bool:
        return pixels <= SMALL_MAP_PIXELS or (pixels <= MEDIUM_MAP_PIXELS and channels >= WIDE_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._small_map_eligible(x):
            return super().forward(x)
        if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
            return _SmallMapConv.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), self.padding, self.stride)
        if x.dtype == torch.bfloat16 and self.weight.dtype == torch.bfloat16:
            return _SmallMapConv.apply(x, self.weight, self.padding, self.stride)
        return super().forward(x)  # fp32 etc.: oneDNN is fine there
