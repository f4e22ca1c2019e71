"""SmallAlexNet: the small-scale encoder of the paper (Wang & Isola 2020 variant).

Five 3x3 conv blocks (96, 192, 384, 384, 192 channels; conv without bias, BN,
ReLU; padding 1) with max-pool 3/2 after blocks 1, 2 and 5, then fc6 (-> 4096,
BN, ReLU), fc7 (4096, BN, ReLU), fc8 (-> 128), L2-normalised. Weights N(0, 0.02).

Spatial sizes with padding 1 and un-padded 3/2 pools:
64 px: 64 -> 31 -> 15 -> 7, so fc6 sees 192*7*7 as in the paper.
32 px (``smallalexnet32``): 32 -> 15 -> 7 -> 3, so fc6 sees 192*3*3 = 1728;
every other layer is identical.

``width`` scales the five conv widths (fc6/fc7 keep ``fc_dim``): ``width=0.5``
(48-96-192-192-96) costs about a third of the FLOPs, for CPU-budget runs.
"""
from __future__ import annotations

from torch import nn

from .base import Encoder, ExportNaming, L2Normalize, register_encoder
from .fastconv import FastConv2d

CONV_CHANNELS = (96, 192, 384, 384, 192)
POOL_AFTER = (True, True, False, False, True)


def _final_map_size(input_size: int) -> int:
    size = input_size
    for pool in POOL_AFTER:
        if pool:
            size = (size - 3) // 2 + 1
    return size


# Exported backbone: conv1..conv5 and fc6 (the probe layer); fc7/fc8 are the projection the loss sees.
SMALLALEXNET_NAMING = ExportNaming(
    "noisevision-smallalexnet-v1",
    tuple(p for i in range(1, 6) for p in ((f"stages.conv{i}.0.", f"conv{i}."), (f"stages.conv{i}.1.", f"bn{i}.")))
    + (("stages.fc6.1.", "fc6."), ("stages.fc6.2.", "bn6.")),
    dropped=("fc7", "fc8"),
)


class SmallAlexNet(Encoder):
    """SmallAlexNet for ``input_size`` px input (64 in the paper); see the module docstring."""

    default_probe_layer = "fc6"
    export_naming = SMALLALEXNET_NAMING
    embedding_is_projected = True

    def __init__(self, input_size: int = 64, fc_dim: int = 4096, out_dim: int = 128, width: float = 1.0,
                 arch: str = "smallalexnet") -> None:
        super().__init__()
        if input_size < 16:
            raise ValueError(f"SmallAlexNet needs input_size >= 16, got {input_size}")
        if not 0 < width <= 16:
            raise ValueError(f"SmallAlexNet width must be in (0, 16], got {width}")
        if fc_dim < 1 or out_dim < 1:
            raise ValueError(f"SmallAlexNet needs fc_dim >= 1 and out_dim >= 1, got fc_dim={fc_dim}, out_dim={out_dim}")
        stages: dict[str, nn.Module] = {}
        in_ch = 3
        channels = [max(1, round(c * width)) for c in CONV_CHANNELS]
        for i, (ch, pool) in enumerate(zip(channels, POOL_AFTER), start=1):
            block: list[nn.Module] = [
                FastConv2d(in_ch, ch, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU(inplace=True),
            ]
            if pool:
                block.append(nn.MaxPool2d(kernel_size=3, stride=2))
            stages[f"conv{i}"] = nn.Sequential(*block)
            in_ch = ch
        side = _final_map_size(input_size)
        stages["fc6"] = nn.Sequential(
            nn.Flatten(1), nn.Linear(in_ch * side * side, fc_dim, bias=False), nn.BatchNorm1d(fc_dim), nn.ReLU(inplace=True)
        )
        stages["fc7"] = nn.Sequential(nn.Linear(fc_dim, fc_dim, bias=False), nn.BatchNorm1d(fc_dim), nn.ReLU(inplace=True))
        stages["fc8"] = nn.Sequential(nn.Linear(fc_dim, out_dim), L2Normalize())
        self.stages = nn.ModuleDict(stages)
        self.layer_names = tuple(stages)
        self.out_dim = out_dim
        self.input_size = input_size
        self.fixed_input_size = input_size  # fc6 is a dense layer on the last conv map's fixed grid
        self.fc_input_dim = in_ch * side * side
        self.arch = arch
        self.arch_kwargs = {"input_size": input_size, "fc_dim": fc_dim, "out_dim": out_dim}
        if width != 1.0:  # only when set, so checkpoints of full-width encoders keep their kwargs
            self.arch_kwargs["width"] = width
        self._init_weights()

    def _init_weights(self) -> None:
        """Conv/linear weights N(0, 0.02), biases 0, BN identity (as in the paper's code)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def num_features(self) -> int:
        """fc6's width: the exported backbone ends at fc6."""
        return self.arch_kwargs["fc_dim"]


@register_encoder("smallalexnet")
def smallalexnet(input_size: int = 64, fc_dim: int = 4096, out_dim: int = 128, width: float = 1.0) -> Encoder:
    """The paper's small-scale encoder for 64 px input (fc6 sees 192x7x7)."""
    return SmallAlexNet(input_size=input_size, fc_dim=fc_dim, out_dim=out_dim, width=width, arch="smallalexnet")


@register_encoder("smallalexnet32")
def smallalexnet32(input_size: int = 32, fc_dim: int = 4096, out_dim: int = 128, width: float = 1.0) -> Encoder:
    """SmallAlexNet for 32 px input: same layers, fc6 sees 192x3x3."""
    return SmallAlexNet(input_size=input_size, fc_dim=fc_dim, out_dim=out_dim, width=width, arch="smallalexnet32")
