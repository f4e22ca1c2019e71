"""Encoders (SmallAlexNet, ResNet-18/50, ViT-Tiny), projection heads, the encoder checkpoint format and encoder specs.

>>> enc = create_encoder("resnet18", stem="cifar", width=0.5)
>>> enc(torch.randn(2, 3, 32, 32)).shape            # (2, 256)
>>> enc.forward_features(x, "layer3").shape         # (2, 128, 8, 8), stops after layer3
>>> save_encoder("run/encoder.pt", enc, meta={"epochs": 10}); load_encoder("run")
>>> build_encoder("random:smallalexnet32", seed=0)  # or "pixels", or a checkpoint path
"""
from __future__ import annotations

from .base import Encoder, L2Normalize, register_encoder
from .checkpoint import FORMAT, FORMAT_VERSION, load_encoder, save_encoder
from .factory import ENCODER_MODULES, ENCODERS, create_encoder, encoder_kwargs, list_encoders
from .heads import MoCoV2Head, ProjectionHead, SimCLRHead
from .resnet import BasicBlock, Bottleneck, ResNet
from .smallalexnet import SmallAlexNet
from .specs import ENCODER_SPECS, PixelEncoder, build_encoder, list_encoder_specs, register_encoder_spec, spec_kind
from .vit import VisionTransformer

__all__ = [
    "ENCODERS", "ENCODER_MODULES", "ENCODER_SPECS", "FORMAT", "FORMAT_VERSION", "BasicBlock", "Bottleneck", "Encoder",
    "L2Normalize", "MoCoV2Head", "PixelEncoder", "ProjectionHead", "ResNet", "SimCLRHead", "SmallAlexNet", "VisionTransformer",
    "build_encoder", "create_encoder", "encoder_kwargs", "list_encoder_specs", "list_encoders", "load_encoder",
    "register_encoder", "register_encoder_spec", "save_encoder", "spec_kind",
]
