"""Encoders: shapes for every registered architecture, paper details, checkpoint round trip and errors."""
from __future__ import annotations

import pytest
import torch

from noisevision.errors import UserError
from noisevision.models import (
    ENCODERS,
    MoCoV2Head,
    SimCLRHead,
    build_encoder,
    create_encoder,
    list_encoders,
    load_encoder,
    save_encoder,
    spec_kind,
)

# Small configurations so every registered encoder is tested quickly.
SMALL_KW = {"smallalexnet": {"fc_dim": 64}, "smallalexnet32": {"fc_dim": 64},
            "resnet18": {"stem": "cifar", "width": 0.25}, "resnet50": {"stem": "cifar", "width": 0.125},
            "vit_tiny": {"depth": 2}}


@pytest.mark.parametrize("arch", list_encoders())
def test_every_encoder_has_the_interface(arch: str) -> None:
    enc = create_encoder(arch, **SMALL_KW.get(arch, {})).eval()
    x = torch.randn(2, 3, enc.input_size, enc.input_size)
    out = enc(x)
    assert out.shape == (2, enc.out_dim)
    assert enc.default_probe_layer in enc.layer_names
    for layer in enc.layer_names:
        f = enc.features(x, layer)
        assert f.ndim == 2 and f.shape[0] == 2
    last = enc.layer_names[-1]
    torch.testing.assert_close(enc.features(x, last), out)
    rebuilt = create_encoder(enc.arch, **enc.arch_kwargs)
    assert type(rebuilt) is type(enc) and rebuilt.out_dim == enc.out_dim


@pytest.mark.parametrize("arch", list_encoders())
def test_every_encoder_keeps_the_contract(arch: str, tmp_path) -> None:
    """Registry-wide: forward_features for every layer (stops there; one pass with the embedding),
    the declared fixed input size, and a checkpoint round trip."""
    enc = create_encoder(arch, **SMALL_KW.get(arch, {})).eval()
    x = torch.randn(2, 3, enc.input_size, enc.input_size)
    with torch.no_grad():
        out = enc(x)
        last_stage = list(enc.stages.values())[-1]
        for layer in enc.layer_names:
            calls = []
            hook = last_stage.register_forward_hook(lambda *_: calls.append(1))
            try:
                raw = enc.forward_features(x, layer)
            finally:
                hook.remove()
            assert raw.shape[0] == 2
            torch.testing.assert_close(raw.flatten(1), enc.features(x, layer))
            assert bool(calls) == (layer == list(enc.stages)[-1])  # stops after the layer
            feat, emb = enc.forward_features(x, layer, with_embedding=True)
            torch.testing.assert_close(feat, raw)
            torch.testing.assert_close(emb, out)
        with pytest.raises(UserError, match="no layer"):
            enc.forward_features(x, "no-such-layer")

        assert enc.export_naming is not None  # `noisevision export` dispatches on it
        exported = [enc.export_naming.export_key(k) for k in enc.state_dict()]  # raises on a key it cannot name
        assert len({k for k in exported if k}) == len([k for k in exported if k])

        fixed = enc.fixed_input_size
        if fixed is not None:  # declared: the native size is that size, and twice it does not fit
            assert enc.input_size == fixed
            with pytest.raises((RuntimeError, UserError)):  # a shape error, or our own words for it
                enc(torch.randn(2, 3, 2 * fixed, 2 * fixed))
        else:  # none declared: another size works too
            other = enc.input_size + 16
            assert enc(torch.randn(2, 3, other, other)).shape == (2, enc.out_dim)

        path = save_encoder(tmp_path / "encoder.pt", enc)
        loaded, _ = load_encoder(path, expected_arch=arch)
        assert type(loaded) is type(enc) and loaded.arch_kwargs == enc.arch_kwargs
        assert loaded.fixed_input_size == fixed and loaded.layer_names == enc.layer_names
        torch.testing.assert_close(loaded(x), out)


def test_encoder_specs() -> None:
    """``pixels`` and ``random:<arch>`` are registered specs; anything else is a checkpoint path."""
    assert spec_kind("pixels").name == "pixels" and spec_kind("random:resnet18").name == "random"
    assert spec_kind("random") is None and spec_kind("pixels:x") is None and spec_kind("runs/a") is None
    pixels, meta, info = build_encoder("pixels", image_size=16)
    x = torch.randn(2, 3, 16, 16)
    assert meta == {} and info["arch"] == "pixels" and pixels.fixed_input_size == 16
    torch.testing.assert_close(pixels(x), x.flatten(1))
    torch.testing.assert_close(pixels.forward_features(x, "pixels"), x.flatten(1))
    a, _, info = build_encoder("random:smallalexnet32:fc_dim=16", seed=3)
    b, _, _ = build_encoder("random:smallalexnet32:fc_dim=16", seed=3)
    c, _, _ = build_encoder("random:smallalexnet32:fc_dim=16", seed=4)
    assert info["kind"] == "random-init" and a.arch_kwargs["fc_dim"] == 16 and not a.training
    w = [e.stages["conv1"][0].weight for e in (a, b, c)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    with pytest.raises(UserError, match="'resnet18' was expected"):
        build_encoder("random:smallalexnet32", expected_arch="resnet18")
    with pytest.raises(UserError, match="bad encoder spec"):
        build_encoder("random::fc_dim=16")


def test_smallalexnet_matches_the_paper() -> None:
    enc = create_encoder("smallalexnet")
    assert enc.input_size == 64 and enc.out_dim == 128 and enc.default_probe_layer == "fc6"
    fc6 = enc.stages["fc6"][1]
    assert fc6.in_features == 192 * 7 * 7 and fc6.out_features == 4096
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 192, 384, 384, 192]
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    pools = [name for name in enc.layer_names[:5] if any(isinstance(m, torch.nn.MaxPool2d) for m in enc.stages[name])]
    assert pools == ["conv1", "conv2", "conv5"]
    # N(0, 0.02) initialisation of the big fc layer.
    assert abs(fc6.weight.std().item() - 0.02) < 0.001 and abs(fc6.weight.mean().item()) < 0.001
    x = torch.randn(3, 3, 64, 64)
    assert enc.eval().features(x, "conv5").shape == (3, 192 * 7 * 7)
    assert enc.features(x, "fc6").shape == (3, 4096)
    torch.testing.assert_close(enc(x).norm(dim=1), torch.ones(3))


def test_smallalexnet32_fc6_input() -> None:
    enc = create_encoder("smallalexnet32", fc_dim=32)
    assert enc.stages["fc6"][1].in_features == 192 * 3 * 3
    assert enc.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 128)


def test_smallalexnet_width_scales_the_convs_only(tmp_path) -> None:
    enc = create_encoder("smallalexnet32", width=0.5, fc_dim=32)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [48, 96, 192, 192, 96]
    assert enc.stages["fc6"][1].in_features == 96 * 3 * 3 and enc.stages["fc6"][1].out_features == 32
    assert enc.arch_kwargs["width"] == 0.5 and "width" not in create_encoder("smallalexnet32", fc_dim=32).arch_kwargs
    loaded, _ = load_encoder(save_encoder(tmp_path / "e.pt", enc))  # the width travels with the checkpoint
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), enc.eval()(x))
    with pytest.raises(UserError, match="width"):
        create_encoder("smallalexnet32", width=0)


def test_resnet_stems_and_width() -> None:
    r18 = create_encoder("resnet18")
    assert r18.out_dim == 512 and r18.input_size == 224 and r18.default_probe_layer == "avgpool"
    assert r18.stages["stem"][0].stride == (2, 2)
    cifar = create_encoder("resnet18", stem="cifar", width=0.5)
    assert cifar.out_dim == 256 and cifar.input_size == 32 and cifar.stages["stem"][0].kernel_size == (3, 3)
    x = torch.randn(2, 3, 32, 32)
    assert cifar.eval().features(x, "layer4").shape == (2, 256 * 4 * 4)  # no stem downsampling: 32/8
    assert create_encoder("resnet50", width=0.25).out_dim == 512
    # standard init: BN identity, kaiming conv (std = sqrt(2 / fan_out))
    conv = cifar.stages["layer1"][0].conv1
    expected = (2.0 / (conv.out_channels * 9)) ** 0.5
    assert abs(conv.weight.std().item() / expected - 1) < 0.1


def test_vit_tiny_dims_patches_and_class_token(tmp_path) -> None:
    enc = create_encoder("vit_tiny")  # ViT-Tiny: 192-d, 12 pre-norm blocks, 3 heads, MLP 4x, 32 px by default
    blocks = enc.stages["blocks"]
    assert enc.out_dim == 192 and len(blocks) == 12 and enc.input_size == 32
    assert blocks[0].attn.num_heads == 3 and blocks[0].mlp[0].out_features == 4 * 192
    assert enc.default_probe_layer == "cls" and enc.layer_names == ("patch_embed", "blocks", "cls")
    for size, patch in ((32, 4), (64, 8)):  # an 8x8 grid of patches by default
        small = create_encoder("vit_tiny", input_size=size, depth=2).eval()
        assert small.stages["patch_embed"].proj.kernel_size == (patch, patch) and small.arch_kwargs["patch_size"] == patch
        x = torch.randn(2, 3, size, size)
        assert small(x).shape == (2, 192)
        assert small.features(x, "patch_embed").shape == (2, 65 * 192)  # class token + 64 patches
        assert small.features(x, "blocks").shape == (2, 65 * 192)
        torch.testing.assert_close(small.features(x, "cls"), small(x))
    explicit = create_encoder("vit_tiny", input_size=32, patch_size=8, depth=1, embed_dim=48).eval()
    assert explicit.stages["patch_embed"].pos_embed.shape == (1, 1 + 16, 48)
    # The class token is the embedding: it depends on every patch (attention), and the position
    # embeddings fix the input size.
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[..., 28:, 28:] += 1.0
    assert not torch.allclose(explicit(x), explicit(y))
    with pytest.raises(UserError, match="32 px"):
        explicit(torch.randn(1, 3, 64, 64))
    for bad in ({"input_size": 30}, {"patch_size": 5}, {"embed_dim": 100}):
        with pytest.raises(UserError, match="vit_tiny"):
            create_encoder("vit_tiny", **bad)
    # Checkpoint round trip keeps every dimension.
    loaded, _ = load_encoder(save_encoder(tmp_path / "vit.pt", explicit), expected_arch="vit_tiny")
    assert loaded.arch_kwargs == explicit.arch_kwargs
    torch.testing.assert_close(loaded(x), explicit(x))


def test_heads() -> None:
    head = MoCoV2Head(2048)
    linears = [m for m in head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 2048), (2048, 128)]
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in head)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in SimCLRHead(64))


def test_unknown_names_are_user_errors() -> None:
    with pytest.raises(UserError, match="resnet18"):
        create_encoder("resnet19")
    with pytest.raises(UserError, match="stem"):
        create_encoder("resnet18", stem="weird")
    with pytest.raises(UserError):
        create_encoder("resnet18", depth=3)



@pytest.mark.parametrize("arch, kwargs, message", [
    ("smallalexnet32", {"width": "abc"}, "width must be a number, got 'abc'"),
    ("smallalexnet32", {"fc_dim": 1.5}, "fc_dim must be an integer, got 1.5"),
    ("smallalexnet32", {"fc_dim": True}, "fc_dim must be an integer"),
    ("smallalexnet32", {"fc_dim": 0}, "fc_dim >= 1"),
    ("smallalexnet32", {"out_dim": 0}, "out_dim >= 1"),
    ("resnet18", {"stem": 3}, "stem must be a string"),
    ("vit_tiny", {"patch_size": "4"}, "patch_size must be an integer"),
    ("vit_tiny", {"embed_dim": 0}, "positive embed_dim"),
    ("vit_tiny", {"depth": 10**7}, "depth must be at most 1000"),  # refused before building ten million blocks
])
def test_bad_encoder_arguments_are_one_line_errors(arch: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        create_encoder(arch, **kwargs)


def test_a_whole_number_is_a_float_argument() -> None:
    assert create_encoder("smallalexnet32", fc_dim=16, width=1).arch_kwargs["fc_dim"] == 16
    enc = create_encoder("smallalexnet32", fc_dim=16)
    with pytest.raises(UserError, match="fc6"):
        enc.features(torch.randn(1, 3, 32, 32), "avgpool")
    assert "smallalexnet" in ENCODERS


def test_checkpoint_round_trip(tmp_path) -> None:
    enc = create_encoder("resnet18", stem="cifar", width=0.25)
    with torch.no_grad():
        enc(torch.randn(4, 3, 32, 32))  # move BN running stats away from their init
    path = save_encoder(tmp_path / "run" / "encoder.pt", enc, meta={"epochs": 3, "dir": tmp_path, "tags": ("a", "b")})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "noisevision-encoder" and raw["format_version"] == 1
    assert raw["arch"] == "resnet18" and raw["arch_kwargs"] == {"stem": "cifar", "width": 0.25}
    loaded, meta = load_encoder(tmp_path / "run", expected_arch="resnet18")  # a run directory works
    assert meta == {"epochs": 3, "dir": str(tmp_path), "tags": ["a", "b"]}
    assert not loaded.training
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), enc.eval()(x))
    assert not list(tmp_path.glob("run/.*tmp"))


def test_checkpoint_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_encoder(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        load_encoder(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a noisevision encoder"):
        load_encoder(tmp_path / "other.pt")
    path = save_encoder(tmp_path / "e.pt", create_encoder("smallalexnet32", fc_dim=16))
    with pytest.raises(UserError, match="'smallalexnet' was expected"):
        load_encoder(path, expected_arch="smallalexnet")
    with pytest.raises(UserError, match="not found"):
        load_encoder(tmp_path)  # a directory without encoder.pt


@pytest.mark.parametrize("autocast_bf16", [False, True])
def test_fast_conv_matches_conv2d(autocast_bf16: bool) -> None:
    """FastConv2d's tap-wise weight gradient (small maps) equals nn.Conv2d's, in fp32 and under bf16 autocast."""
    from noisevision.models.fastconv import FastConv2d, conv_weight_grad_by_taps

    torch.manual_seed(0)
    fast = FastConv2d(8, 6, 3, padding=1, bias=False)
    plain = torch.nn.Conv2d(8, 6, 3, padding=1, bias=False)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(4, 8, 7, 7).contiguous(memory_format=torch.channels_last)
    grads = []
    for conv in (fast, plain):
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
            y = conv(xi)
        (y.float() * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads.append((y.float(), xi.grad, conv.weight.grad))
    for a, b in zip(*grads):
        if autocast_bf16:
            # bf16 keeps 8 significant bits and the two paths round partial sums in different orders (the
            # kernel oneDNN picks depends on the machine), so single elements near zero can differ by a
            # large factor; the error relative to the whole tensor is what rounding bounds (~2^-8).
            assert (a - b).norm() <= 2e-2 * b.norm(), float((a - b).norm() / b.norm())
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # the helper itself against autograd of F.conv2d in float64
    x64, w64 = torch.randn(2, 3, 5, 5, dtype=torch.float64), torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    go = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    torch.nn.functional.conv2d(x64, w64, padding=1).backward(go)
    torch.testing.assert_close(conv_weight_grad_by_taps(go, x64, (3, 3), (1, 1)), w64.grad)


@pytest.mark.parametrize("kernel, stride, padding, size", [(3, 2, 1, 8), (1, 2, 0, 8), (3, 2, 1, 7)])
def test_strided_weight_grad_matches_autograd(kernel: int, stride: int, padding: int, size: int) -> None:
    from noisevision.models.fastconv import FastConv2d, strided_conv_weight_grad

    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    w = torch.randn(4, 3, kernel, kernel, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, stride=stride, padding=padding)
    go = torch.randn_like(y)
    y.backward(go)
    got = strided_conv_weight_grad(go, x, (kernel, kernel), (padding, padding), (stride, stride))
    torch.testing.assert_close(got, w.grad)
    conv = FastConv2d(3, 4, kernel, stride, padding, bias=False)
    xi = x.float().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(xi)
    out.float().sum().backward()
    assert conv.weight.grad.shape == conv.weight.shape and xi.grad.shape == xi.shape


def test_checkpoint_contents_are_checked_before_the_model_is_built(tmp_path, monkeypatch) -> None:
    """arch_kwargs asking for a huge model (fc_dim=1000000 was OOM-killed), or a broken structure,
    are refused before any real allocation: the only build allowed is on the meta device."""
    import noisevision.models.checkpoint as checkpoint_module

    good = save_encoder(tmp_path / "good.pt", create_encoder("smallalexnet32", fc_dim=16))
    payload = torch.load(good, weights_only=True)

    def variant(name: str, **changes) -> object:
        torch.save({**payload, **changes}, tmp_path / name)
        return tmp_path / name

    built_on: list[str] = []
    real_create = checkpoint_module.create_encoder

    def spy(arch, **kwargs):
        built_on.append(torch.get_default_device().type)
        return real_create(arch, **kwargs)

    monkeypatch.setattr(checkpoint_module, "create_encoder", spy)
    cases = [
        (variant("huge.pt", arch_kwargs={**payload["arch_kwargs"], "fc_dim": 1_000_000}),
         r"do not fit .* stages\.fc6\.1\.weight has shape \(16, 1728\), expected \(1000000, 1728\)"),
        (variant("five.pt", arch_kwargs=5), "arch_kwargs .* are not a mapping"),
        (variant("nested.pt", arch_kwargs={"fc_dim": [1, 2]}), "arch_kwargs .* are not a mapping"),
        (variant("none.pt", state_dict=None), "holds no weights"),
        (variant("strings.pt", state_dict={"stages.fc8.0.bias": "zeros"}), "is not a named tensor"),
        (variant("arch.pt", arch=None), "its arch is None"),
        (variant("meta.pt", meta=[1]), "its meta is list"),
        (variant("missing.pt", state_dict={k: v for k, v in payload["state_dict"].items() if "fc8" not in k}),
         r"2 tensor\(s\) missing"),
    ]
    for path, pattern in cases:
        built_on.clear()
        with pytest.raises(UserError, match=pattern):
            load_encoder(path)
        assert set(built_on) <= {"meta"}, (path, built_on)
    encoder, _ = load_encoder(good)
    assert built_on[-1] == "cpu" and encoder.arch_kwargs["fc_dim"] == 16


def test_checkpoint_read_errors_are_our_own_words(tmp_path) -> None:
    """torch's messages advise weights_only=False and hold colour codes: neither reaches the user."""
    import fractions

    torch.save({"format": "noisevision-encoder", "third": fractions.Fraction(1, 3)}, tmp_path / "objects.pt")
    torch.save({"x": torch.zeros(100)}, tmp_path / "whole.pt")
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "five.pt").write_bytes(data[:5])
    for name, pattern in [("objects.pt", "holds Python objects other than tensors"),
                          ("cut.pt", "damaged, truncated or not a torch file"),
                          ("five.pt", "damaged, truncated or not a torch file")]:
        with pytest.raises(UserError, match=pattern) as info:
            load_encoder(tmp_path / name)
        message = str(info.value)
        assert "weights_only" not in message and "\x1b" not in message and "\n" not in message, message
