"""Multi-process helpers (torchrun / DistributedDataParallel); identities when not distributed.

Launch with ``torchrun --nproc_per_node=K -m noisevision pretrain ...``:
:func:`init_distributed` reads RANK / WORLD_SIZE / LOCAL_RANK and joins the
process group (gloo on CPU, nccl on CUDA).

Gradient convention of :func:`gather_with_grad`: the backward pass sums the
gradients that every rank computed for rank r's slice and hands that sum to
rank r. Together with DDP's averaging of parameter gradients over ranks, a
K-process run then gives the same parameter gradients as one process on the
concatenated global batch (when the loss is the global-batch mean, or a loss
computed identically on every rank from gathered tensors).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .accel import select_device
from .errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, number of processes, rank on this host, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return self.rank == 0


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_distributed(device_pref: str | None = "auto") -> DistInfo:
    """Join the torchrun process group if the environment asks for one; else single-process.

    On CUDA each process uses ``cuda:LOCAL_RANK`` and nccl; on CPU, gloo.
    """
    device = select_device(device_pref)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(device=device)
    try:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise UserError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (are you launching with torchrun?)") from None
    if not 0 <= rank < world_size:
        raise UserError(f"RANK {rank} is not below WORLD_SIZE {world_size} (are you launching with torchrun?)")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing and not dist.is_initialized():
        raise UserError(f"RANK and WORLD_SIZE are set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                        "not: launch with torchrun, or unset RANK and WORLD_SIZE to run one process")
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward all-reduces (sums) the incoming gradient and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.batch = x.shape[0]
        ctx.rank = dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.batch : (ctx.rank + 1) * ctx.batch]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(N, ...) on every rank -> (world*N, ...) in rank order, differentiable (see module docstring).

    Every rank must pass the same N. Identity when not distributed.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """(N, ...) on every rank -> (world*N, ...) in rank order, detached. Identity when not distributed."""
    if not is_distributed():
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


def barrier() -> None:
    """Wait for all ranks (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
