"""SSL methods: the loss drops with SGD, MoCo's momentum/queue bookkeeping, heads and param groups."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from noisevision.accel import autocast, to_channels_last
from noisevision.errors import UserError
from noisevision.methods import METHODS, MoCoV2, create_method, list_methods
from noisevision.models import MoCoV2Head, SimCLRHead, create_encoder


def tiny_resnet() -> nn.Module:
    return create_encoder("resnet18", stem="cifar", width=0.125)


def tiny_views(n: int = 32, size: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """n random 'images' and two slightly perturbed views of each (a learnable positive pair)."""
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(n, 3, size, size, generator=g)
    return data + 0.1 * torch.randn(data.shape, generator=g), data + 0.1 * torch.randn(data.shape, generator=g)


def train_losses(method: nn.Module, views: tuple[torch.Tensor, torch.Tensor], steps: int, lr: float = 0.05) -> list[float]:
    opt = torch.optim.SGD(method.param_groups(1e-4), lr=lr, momentum=0.9)
    losses = []
    for _ in range(steps):
        out = method(*views)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        method.on_train_step_end()
        losses.append(out["loss"].item())
    return losses


@pytest.mark.parametrize(
    "name, kwargs, first",
    [("alignuniform", {}, 0), ("simclr", {}, 0), ("mocov2", {"queue_size": 64, "momentum": 0.9}, 2)],
)
def test_loss_drops_with_sgd(name: str, kwargs: dict, first: int) -> None:
    # MoCo: compare from step 2 on, when the queue of 64 holds real keys instead of its random init.
    torch.manual_seed(0)
    method = create_method(name, tiny_resnet(), **kwargs)
    losses = train_losses(method, tiny_views(), steps=12)
    assert losses[-1] < losses[first] - 0.3, losses
    assert set(method(*tiny_views(8)).keys()) >= {"loss"}


def test_alignuniform_on_smallalexnet_follows_the_paper() -> None:
    torch.manual_seed(0)
    enc = create_encoder("smallalexnet32", input_size=16, fc_dim=32)
    method = create_method("alignuniform", enc)
    assert isinstance(method.head, nn.Identity)  # fc7/fc8 already are the head
    losses = train_losses(method, tiny_views(16), steps=6)
    assert losses[-1] < losses[0] - 0.3, losses
    out = method(*tiny_views(16))
    assert torch.isclose(out["loss"], out["align"] + out["uniform"])
    assert not out["align"].requires_grad and out["loss"].requires_grad


def test_default_heads() -> None:
    assert isinstance(create_method("mocov2", tiny_resnet(), queue_size=8).head, MoCoV2Head)
    simclr = create_method("simclr", tiny_resnet())
    assert isinstance(simclr.head, SimCLRHead) and simclr.head.dims == (64, 64, 128)
    assert isinstance(create_method("simclr", tiny_resnet(), head=False).head, nn.Identity)
    moco = create_method("mocov2", create_encoder("smallalexnet32", fc_dim=16), queue_size=8)
    assert isinstance(moco.head, nn.Identity) and moco.queue.shape == (8, 128)


def test_param_groups_skip_decay_on_norms_and_biases() -> None:
    method = create_method("mocov2", tiny_resnet(), queue_size=8)
    decay, no_decay = method.param_groups(weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    bn_and_bias = {id(p) for m in method.modules() if isinstance(m, (nn.BatchNorm2d, nn.Linear))
                   for n, p in m.named_parameters(recurse=False) if n == "bias" or isinstance(m, nn.BatchNorm2d)}
    trainable = [p for p in method.parameters() if p.requires_grad]
    assert {id(p) for p in no_decay["params"]} == {i for i in bn_and_bias if any(id(p) == i for p in trainable)}
    assert len(decay["params"]) + len(no_decay["params"]) == len(trainable)
    momentum_ids = {id(p) for p in method.momentum_encoder.parameters()}
    assert not momentum_ids & {id(p) for g in (decay, no_decay) for p in g["params"]}


def test_moco_momentum_update_is_an_ema() -> None:
    torch.manual_seed(0)
    method: MoCoV2 = create_method("mocov2", tiny_resnet(), queue_size=16, momentum=0.75)
    for p in method.encoder.parameters():
        p.data.add_(1.0)  # make online and key encoders differ
    before = [p.clone() for p in method.momentum_encoder.parameters()]
    online = [p.clone() for p in method.encoder.parameters()]
    method.on_train_step_end()
    for b, o, k in zip(before, online, method.momentum_encoder.parameters()):
        torch.testing.assert_close(k, 0.75 * b + 0.25 * o)
    assert not any(p.requires_grad for p in method.momentum_encoder.parameters())


def test_moco_queue_is_a_ring_buffer() -> None:
    method: MoCoV2 = create_method("mocov2", tiny_resnet(), queue_size=5)
    keys = torch.arange(3 * 128, dtype=torch.float32).reshape(3, 128)
    method.enqueue(keys)
    method.enqueue(keys + 1000)
    assert method.queue_ptr.item() == 1
    torch.testing.assert_close(method.queue[3:5], keys[:2] + 1000)
    torch.testing.assert_close(method.queue[0], keys[2] + 1000)
    torch.testing.assert_close(method.queue[1:3], keys[1:3])
    big = torch.randn(12, 128)
    method.enqueue(big)  # more keys than slots: the last 5 survive
    assert sorted(method.queue.sum(1).tolist()) == pytest.approx(sorted(big[-5:].sum(1).tolist()))


def test_moco_enqueues_step_keys_only_in_training() -> None:
    method: MoCoV2 = create_method("mocov2", tiny_resnet(), queue_size=64, symmetric=True)
    views = tiny_views(8)
    method.eval()
    method(*views)
    method.on_train_step_end()
    assert method.queue_ptr.item() == 0
    method.train()
    out = method(*views)
    out["loss"].backward()  # the queue is still intact for backward
    method.on_train_step_end()
    assert method.queue_ptr.item() == 16  # symmetric: keys of both views
    with torch.no_grad():
        keys = method.embed_keys(views[1])
    torch.testing.assert_close(method.queue[:8], keys, atol=0.05, rtol=0)  # keys of view 2 (BN batch stats)


def test_methods_run_under_bf16_autocast_and_channels_last() -> None:
    kwargs = {"mocov2": {"queue_size": 32}, "supervised": {"num_classes": 3}}
    for name in list_methods():
        method = to_channels_last(create_method(name, tiny_resnet(), **kwargs.get(name, {})))
        views = [v.contiguous(memory_format=torch.channels_last) for v in tiny_views(8)][: method.num_views]
        extra = {"labels": torch.arange(8) % 3} if method.needs_labels else {}
        with autocast("cpu"):
            out = method(*views, **extra)
        assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
        out["loss"].backward()


def test_supervised_learns_labels_with_one_view() -> None:
    torch.manual_seed(0)
    method = create_method("supervised", tiny_resnet(), num_classes=4)
    assert method.needs_labels and method.num_views == 1 and method.head.out_features == 4
    view, _ = tiny_views(32)
    labels = torch.arange(32) % 4
    opt = torch.optim.SGD(method.param_groups(1e-4), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(12):
        out = method(view, labels=labels)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0] - 0.3, losses
    assert 0 <= out["accuracy"] <= 1 and not out["accuracy"].requires_grad
    for bad in ({"num_classes": 0}, {"num_classes": 2.5}, {}, {"num_classes": 3, "label_smoothing": 1.0}):
        with pytest.raises(UserError):
            create_method("supervised", tiny_resnet(), **bad)
    assert not any(METHODS.get(n).needs_labels for n in ("alignuniform", "mocov2", "simclr"))


def test_create_method_errors() -> None:
    assert {"alignuniform", "mocov2", "simclr"} <= set(METHODS)  # the paper's methods (others may be added)
    with pytest.raises(UserError, match="alignuniform"):
        create_method("byol", tiny_resnet())
    with pytest.raises(UserError, match="temperature"):
        create_method("simclr", tiny_resnet(), temperature=0)
    with pytest.raises(UserError):
        create_method("mocov2", tiny_resnet(), queue=3)
    with pytest.raises(UserError, match="'mocov2': queue_size must be an integer, got 1.5"):
        create_method("mocov2", tiny_resnet(), queue_size=1.5)
    with pytest.raises(UserError, match="'simclr': temperature must be a number, got 'abc'"):
        create_method("simclr", tiny_resnet(), temperature="abc")
    assert create_method("mocov2", tiny_resnet(), queue_size=None, momentum=0.5).queue.shape[0] == 65536
