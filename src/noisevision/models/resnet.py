"""ResNet-18/50 in plain PyTorch with an ImageNet or CIFAR stem and a width multiplier.

ImageNet stem: 7x7/2 conv + 3x3/2 max-pool (native input 224 px).
CIFAR stem: 3x3/1 conv, no max-pool (native input 32 px), the usual choice
for small images. ``forward`` returns the global-average-pooled features
(512*width for ResNet-18, 2048*width for ResNet-50), so any input size works
(``fixed_input_size`` is None).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Encoder, ExportNaming, register_encoder
from .fastconv import FastConv2d

STEMS = ("imagenet", "cifar")


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = FastConv2d(in_ch, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = FastConv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, ch * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), with a shortcut."""

    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = FastConv2d(ch, ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, ch * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(ch * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, ch * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(FastConv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


# Exported backbone in torchvision's key names (every stage; our encoder has no classifier `fc`).
TORCHVISION_RESNET_NAMING = ExportNaming(
    "torchvision-resnet",
    (("stages.stem.0.", "conv1."), ("stages.stem.1.", "bn1."))
    + tuple((f"stages.layer{i}.", f"layer{i}.") for i in range(1, 5)),  # block internals already match
)


class ResNet(Encoder):
    """A ResNet encoder; stages ``stem, layer1..layer4, avgpool``."""

    layer_names = ("layer1", "layer2", "layer3", "layer4", "avgpool")
    default_probe_layer = "avgpool"
    export_naming = TORCHVISION_RESNET_NAMING

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        depths: tuple[int, int, int, int],
        arch: str,
        stem: str = "imagenet",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        widths = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        if stem == "imagenet":
            stem_mod = nn.Sequential(
                nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            stem_mod = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages: dict[str, nn.Module] = {"stem": stem_mod}
        in_ch = widths[0]
        for i, (ch, depth) in enumerate(zip(widths, depths), start=1):
            blocks = []
            for j in range(depth):
                blocks.append(block(in_ch, ch, stride=2 if (j == 0 and i > 1) else 1))
                in_ch = ch * block.expansion
            stages[f"layer{i}"] = nn.Sequential(*blocks)
        stages["avgpool"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.stages = nn.ModuleDict(stages)
        self.out_dim = in_ch
        self.input_size = 224 if stem == "imagenet" else 32
        self.arch = arch
        self.arch_kwargs = {"stem": stem, "width": float(width)}
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal (fan_out, ReLU) convs; BN weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def export_compatibility(self) -> tuple[bool, str]:
        """An exported ResNet loads into torchvision's model of the same name unless its shapes differ."""
        stem, width = self.arch_kwargs["stem"], self.arch_kwargs["width"]
        if width != 1.0:
            return False, f"width={width:g}: every channel count differs from torchvision's {self.arch}"
        if stem == "cifar":
            return False, (
                f"CIFAR stem: conv1.weight is {tuple(self.stages['stem'][0].weight.shape)} (3x3, stride 1) and "
                "there is no max-pool; before load_state_dict set model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, "
                "bias=False) and model.maxpool = nn.Identity()"
            )
        return True, f"loads into torchvision.models.{self.arch}() with strict=False; missing: fc.weight, fc.bias"


@register_encoder("resnet18")
def resnet18(stem: str = "imagenet", width: float = 1.0) -> Encoder:
    """ResNet-18 (BasicBlock, 2-2-2-2), 512*width-d features."""
    return ResNet(BasicBlock, (2, 2, 2, 2), arch="resnet18", stem=stem, width=width)


@register_encoder("resnet50")
def resnet50(stem: str = "imagenet", width: float = 1.0) -> Encoder:
    """ResNet-50 (Bottleneck, 3-4-6-3), 2048*width-d features."""
    return ResNet(Bottleneck, (3, 4, 6, 3), arch="resnet50", stem=stem, width=width)
