"""Encoders (SmallAlexNet, ResNet-18/50, ViT-Tiny), projection heads and the encoder checkpoint format.

>>> enc = create_encoder("resnet18", stem="cifar", width=0.5)
>>> enc(torch.randn(2, 3, 32, 32)).shape            # (2, 256)
>>> enc.features(x, "layer3").shape                 # flattened
>>> save_encoder("run/encoder.pt", enc, meta={"epochs": 10}); load_encoder("run")
"""
from __future__ import annotations

from .base import Encoder, L2Normalize
from .checkpoint import FORMAT, FORMAT_VERSION, load_encoder, save_encoder
from .factory import ENCODERS, create_encoder, list_encoders
from .heads import MoCoV2Head, ProjectionHead, SimCLRHead
from .resnet import BasicBlock, Bottleneck, ResNet
from .smallalexnet import SmallAlexNet
from .vit import VisionTransformer

__all__ = [
    "ENCODERS", "FORMAT", "FORMAT_VERSION", "BasicBlock", "Bottleneck", "Encoder", "L2Normalize", "MoCoV2Head",
    "ProjectionHead", "ResNet", "SimCLRHead", "SmallAlexNet", "VisionTransformer", "create_encoder", "list_encoders", "load_encoder",
    "save_encoder",
]
