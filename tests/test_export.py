"""noisevision export: torchvision key names and shapes, bit-exact read-back, one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

import noisevision
from noisevision.cli import main
from noisevision.errors import UserError
from noisevision.models import create_encoder, save_encoder
from noisevision.train.export import build_backbone, export, load_exported


def _bn(name: str, channels: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.weight", (channels,)), (f"{name}.bias", (channels,)), (f"{name}.running_mean", (channels,)),
            (f"{name}.running_var", (channels,)), (f"{name}.num_batches_tracked", ())]


# torchvision.models.resnet18's state dict as documented (torchvision/models/resnet.py: BasicBlock, layers
# [2, 2, 2, 2], widths 64-128-256-512, 7x7/2 conv1, 1x1/2 conv + BN downsample in the first block of
# layer2..4), module by module, without the classifier fc (512 -> 1000). Written out by hand on purpose.
RESNET18_CONVS_AND_BNS = [
    ("conv1", (64, 3, 7, 7)), ("bn1", 64),
    ("layer1.0.conv1", (64, 64, 3, 3)), ("layer1.0.bn1", 64), ("layer1.0.conv2", (64, 64, 3, 3)), ("layer1.0.bn2", 64),
    ("layer1.1.conv1", (64, 64, 3, 3)), ("layer1.1.bn1", 64), ("layer1.1.conv2", (64, 64, 3, 3)), ("layer1.1.bn2", 64),
    ("layer2.0.conv1", (128, 64, 3, 3)), ("layer2.0.bn1", 128), ("layer2.0.conv2", (128, 128, 3, 3)), ("layer2.0.bn2", 128),
    ("layer2.0.downsample.0", (128, 64, 1, 1)), ("layer2.0.downsample.1", 128),
    ("layer2.1.conv1", (128, 128, 3, 3)), ("layer2.1.bn1", 128), ("layer2.1.conv2", (128, 128, 3, 3)), ("layer2.1.bn2", 128),
    ("layer3.0.conv1", (256, 128, 3, 3)), ("layer3.0.bn1", 256), ("layer3.0.conv2", (256, 256, 3, 3)), ("layer3.0.bn2", 256),
    ("layer3.0.downsample.0", (256, 128, 1, 1)), ("layer3.0.downsample.1", 256),
    ("layer3.1.conv1", (256, 256, 3, 3)), ("layer3.1.bn1", 256), ("layer3.1.conv2", (256, 256, 3, 3)), ("layer3.1.bn2", 256),
    ("layer4.0.conv1", (512, 256, 3, 3)), ("layer4.0.bn1", 512), ("layer4.0.conv2", (512, 512, 3, 3)), ("layer4.0.bn2", 512),
    ("layer4.0.downsample.0", (512, 256, 1, 1)), ("layer4.0.downsample.1", 512),
    ("layer4.1.conv1", (512, 512, 3, 3)), ("layer4.1.bn1", 512), ("layer4.1.conv2", (512, 512, 3, 3)), ("layer4.1.bn2", 512),
]
RESNET18_KEYS = dict(
    item for name, shape in RESNET18_CONVS_AND_BNS
    for item in (_bn(name, shape) if isinstance(shape, int) else [(f"{name}.weight", shape)])
)
# torchvision's documented parameter counts (weights tables): resnet18 11,689,512 and resnet50 25,557,032,
# of which the classifier fc has 512*1000+1000 and 2048*1000+1000.
TORCHVISION_PARAMS_WITHOUT_FC = {"resnet18": 11_689_512 - 513_000, "resnet50": 25_557_032 - 2_049_000}


def _run_dir(tmp_path, arch: str, **kwargs):
    """A run folder holding an encoder.pt whose BN statistics moved away from their init."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        enc = create_encoder(arch, **kwargs)
        enc.train()
        with torch.no_grad():
            enc(torch.randn(4, 3, enc.input_size, enc.input_size))
    run = tmp_path / "run"
    save_encoder(run / "encoder.pt", enc, meta={"config": {"arch": arch, "aug": "small"}})
    return run, enc.eval()


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def test_resnet18_keys_and_shapes_match_torchvision(tmp_path):
    run, _ = _run_dir(tmp_path, "resnet18")
    out = tmp_path / "r18.safetensors"
    result = export(run=str(run), out=str(out))
    state, meta = load_exported(out)
    assert _shapes(state) == RESNET18_KEYS  # exactly torchvision's keys minus fc.weight / fc.bias
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    assert result["parameters"] == TORCHVISION_PARAMS_WITHOUT_FC["resnet18"]
    assert meta["torchvision_compatible"] == "true" and meta["naming"] == "torchvision-resnet"


def test_resnet50_parameter_count_and_bottleneck_names(tmp_path):
    run, _ = _run_dir(tmp_path, "resnet50")
    result = export(run=str(run), out=str(tmp_path / "r50.safetensors"))
    state, _ = load_exported(tmp_path / "r50.safetensors")
    assert result["parameters"] == TORCHVISION_PARAMS_WITHOUT_FC["resnet50"]
    assert len(state) == 320 - 2  # torchvision's resnet50 state dict has 320 entries, 2 of them fc
    assert _shapes(state)["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)  # 64 -> 256 expansion
    assert _shapes(state)["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert not any(k.startswith(("fc.", "stages.")) for k in state)


def test_read_back_is_bit_exact_and_rebuilds_the_backbone(tmp_path):
    run, enc = _run_dir(tmp_path, "resnet18", stem="cifar", width=0.25)
    out = tmp_path / "r18c.safetensors"
    export(run=str(run), out=str(out))
    state, meta = load_exported(out)
    ours = enc.state_dict()
    assert torch.equal(state["conv1.weight"], ours["stages.stem.0.weight"])
    assert torch.equal(state["bn1.running_var"], ours["stages.stem.1.running_var"])
    assert torch.equal(state["layer3.0.downsample.1.running_mean"], ours["stages.layer3.0.downsample.1.running_mean"])
    assert len(state) == len(ours)
    rebuilt = build_backbone(out)
    for key, value in rebuilt.state_dict().items():
        assert value.dtype == ours[key].dtype and torch.equal(value, ours[key]), key
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), enc(x))
    assert json.loads(meta["arch_kwargs"]) == {"stem": "cifar", "width": 0.25}
    assert meta["source"].endswith("encoder.pt") and meta["noisevision_version"] == noisevision.__version__
    assert json.loads(meta["config"]) == {"arch": "resnet18", "aug": "small"}
    assert json.loads(meta["normalization"])["preset"] == "small"


def test_cifar_stem_is_recorded_as_not_torchvision_shaped(tmp_path):
    run, _ = _run_dir(tmp_path, "resnet18", stem="cifar")
    out = tmp_path / "c.safetensors"
    export(run=str(run / "encoder.pt"), out=str(out))
    state, meta = load_exported(out)
    assert tuple(state["conv1.weight"].shape) == (64, 3, 3, 3)
    assert meta["torchvision_compatible"] == "false"
    assert "maxpool" in meta["compatibility_note"] and "(64, 3, 3, 3)" in meta["compatibility_note"]
    assert _shapes(state) == {**RESNET18_KEYS, "conv1.weight": (64, 3, 3, 3)}


def test_smallalexnet_exports_conv1_to_fc6_only(tmp_path):
    run, enc = _run_dir(tmp_path, "smallalexnet32", width=0.25, fc_dim=32)
    out = tmp_path / "sa.safetensors"
    export(run=str(run), out=str(out))
    state, meta = load_exported(out)
    expected = {f"conv{i}.weight" for i in range(1, 6)} | {"fc6.weight"} | {
        f"bn{i}.{p}" for i in range(1, 7) for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert set(state) == expected  # fc7 / fc8 (the projection) are not part of the backbone
    assert meta["naming"] == "noisevision-smallalexnet-v1" and meta["num_features"] == "32"
    rebuilt = build_backbone(out)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), enc.features(x, "fc6"))
    assert rebuilt.layer_names[-1] == "fc6" and rebuilt.out_dim == 32


def test_vit_exports_every_stage_in_its_own_naming(tmp_path):
    run, enc = _run_dir(tmp_path, "vit_tiny", embed_dim=24, depth=2, num_heads=2)
    out = tmp_path / "vit.safetensors"
    export(run=str(run), out=str(out))
    state, meta = load_exported(out)
    assert set(state) == {key.removeprefix("stages.") for key in enc.state_dict()}
    assert meta["naming"] == "noisevision-vit-v1" and meta["num_features"] == "24"
    assert meta["torchvision_compatible"] == "false"
    rebuilt = build_backbone(out)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), enc(x))


def test_untrusted_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        export(run=str(tmp_path / "nope"), out=str(tmp_path / "x.safetensors"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a pretrain run directory"):
        export(run=str(tmp_path / "empty"), out=str(tmp_path / "x.safetensors"))
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(UserError, match="has not finished"):
        export(run=str(tmp_path / "unfinished"), out=str(tmp_path / "x.safetensors"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "encoder.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    with pytest.raises(UserError, match="cannot read encoder checkpoint"):
        export(run=str(bad), out=str(tmp_path / "x.safetensors"))
    run, _ = _run_dir(tmp_path, "smallalexnet32", width=0.25, fc_dim=16)
    with pytest.raises(UserError, match=r"\.safetensors file"):
        export(run=str(run), out=str(tmp_path / "x.pt"))
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        export(run=str(run), out=str(tmp_path / "dir.safetensors"))
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x*"))  # nothing half-written


def test_loader_refuses_truncated_and_foreign_files(tmp_path):
    from safetensors.torch import save_file

    run, _ = _run_dir(tmp_path, "smallalexnet32", width=0.25, fc_dim=16)
    good = tmp_path / "good.safetensors"
    export(run=str(run), out=str(good))
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot read"):
        load_exported(tmp_path / "cut.safetensors")
    (tmp_path / "huge.safetensors").write_bytes((2**62).to_bytes(8, "little") + b"{}")  # header size beyond the file
    with pytest.raises(UserError, match="cannot read"):
        load_exported(tmp_path / "huge.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(UserError, match="not a noisevision backbone"):
        load_exported(tmp_path / "foreign.safetensors")
    with pytest.raises(UserError, match="not found"):
        load_exported(tmp_path / "missing.safetensors")


def test_metadata_asking_for_a_huge_model_is_refused_before_building_it(tmp_path, refused_cheaply):
    """An exported file's arch_kwargs are checked against its weights on the meta device first."""
    from safetensors.torch import save_file

    run, _ = _run_dir(tmp_path, "smallalexnet32", width=0.25, fc_dim=16)
    good = tmp_path / "good.safetensors"
    export(run=str(run), out=str(good))
    state, meta = load_exported(good)
    save_file(state, str(tmp_path / "huge.safetensors"),
              metadata={**meta, "arch_kwargs": json.dumps({"width": 0.25, "fc_dim": 10**9})})  # 4 TB of fc6
    refused_cheaply(lambda: build_backbone(tmp_path / "huge.safetensors"), "do not fit a 'smallalexnet32' backbone")
    save_file(state, str(tmp_path / "odd.safetensors"), metadata={**meta, "num_features": "many"})
    with pytest.raises(UserError, match="num_features metadata that is not a number"):
        build_backbone(tmp_path / "odd.safetensors")


def test_cli_export(tmp_path, capsys):
    run, _ = _run_dir(tmp_path, "resnet18", width=0.125)
    out = tmp_path / "cli.safetensors"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert "resnet18 backbone" in capsys.readouterr().out and out.is_file()
    assert main(["export", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("noisevision: error:") and "\n" not in err


def test_config_checks_and_mapping_config(tmp_path):
    from noisevision.train.export import ExportConfig

    run, _ = _run_dir(tmp_path, "smallalexnet32", width=0.25, fc_dim=16)
    with pytest.raises(UserError, match="name the run"):
        export(out=str(tmp_path / "x.safetensors"))
    result = export({"run": run, "out": tmp_path / "m.safetensors"})  # a mapping, pathlib paths
    assert result["path"].endswith("m.safetensors")
    cfg = ExportConfig(run=str(run), out=str(tmp_path / "a.safetensors"))
    assert export(cfg, out=str(tmp_path / "b.safetensors"))["path"].endswith("b.safetensors")
    assert main(["export", str(run)]) == 2  # --out is required
