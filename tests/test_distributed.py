"""Distributed helpers: 2 gloo CPU processes must reproduce the 1-process loss and gradients."""
from __future__ import annotations

import gc
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from noisevision import distributed as nvdist
from noisevision.errors import UserError
from noisevision.losses import align_loss, nt_xent_loss, uniform_loss

WORLD = 2
LOCAL_BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(6, 5)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(WORLD * LOCAL_BATCH, 6, generator=g)
    return x, x + 0.3 * torch.randn(x.shape, generator=g)


LOSSES = {
    # name: (loss on the gathered global batch, local part computed per rank)
    "uniform": lambda z1, z2, gather: uniform_loss(gather(z1)),
    "nt_xent": lambda z1, z2, gather: nt_xent_loss(gather(z1), gather(z2), 0.5),
    "align_uniform": lambda z1, z2, gather: align_loss(z1, z2) + (uniform_loss(gather(z1)) + uniform_loss(gather(z2))) / 2,
}


def _embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(model(x), dim=1)


def _worker(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = nvdist.init_distributed("cpu")
    try:
        _check_against_one_process(rank, info)
        gc.collect()  # free the DDP reducers (and their gloo threads) before leaving the group
        nvdist.barrier()
    finally:
        nvdist.cleanup()


def _check_against_one_process(rank: int, info: nvdist.DistInfo) -> None:
    assert (info.rank, info.world_size, nvdist.get_rank(), nvdist.get_world_size()) == (rank, WORLD, rank, WORLD)
    assert nvdist.is_distributed()
    x1, x2 = _data()
    local = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    gathered = nvdist.gather_no_grad(x1[local])
    torch.testing.assert_close(gathered, x1)
    for name, loss_fn in LOSSES.items():
        # reference: one process, whole global batch, no collectives
        ref_model = _model()
        ref_loss = loss_fn(_embed(ref_model, x1), _embed(ref_model, x2), lambda z: z)
        ref_loss.backward()
        # distributed: DDP averages parameter gradients, gather_with_grad routes the rest
        ddp = nn.parallel.DistributedDataParallel(_model())
        loss = loss_fn(_embed(ddp, x1[local]), _embed(ddp, x2[local]), nvdist.gather_with_grad)
        loss.backward()
        losses = nvdist.gather_no_grad(loss.detach().reshape(1))
        torch.testing.assert_close(losses.mean(), ref_loss.detach(), msg=f"{name}: loss")
        for p, q in zip(ddp.module.parameters(), ref_model.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=f"{name}: gradient")


def test_two_gloo_processes_match_one_process() -> None:
    mp.spawn(_worker, args=(_free_port(),), nprocs=WORLD, join=True)


def test_single_process_helpers_are_identities(monkeypatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = nvdist.init_distributed("cpu")
    assert (info.rank, info.world_size, info.local_rank, info.device.type, info.is_main) == (0, 1, 0, "cpu", True)
    assert not nvdist.is_distributed() and nvdist.get_rank() == 0 and nvdist.get_world_size() == 1
    x = torch.randn(3, 2, requires_grad=True)
    assert nvdist.gather_with_grad(x) is x
    assert not nvdist.gather_no_grad(x).requires_grad
    nvdist.barrier()
    nvdist.cleanup()
    assert not dist.is_initialized()


@pytest.mark.parametrize("env, message", [
    ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR and MASTER_PORT are not: launch with torchrun"),
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "1"}, "RANK 2 is not below WORLD_SIZE 2"),
])
def test_a_distributed_environment_without_torchrun_is_one_line(monkeypatch, env, message) -> None:
    """RANK and WORLD_SIZE left over in a shell (not set by torchrun) must not reach torch's rendezvous."""
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(UserError, match=message):
        nvdist.init_distributed("cpu")
    assert not dist.is_initialized()
