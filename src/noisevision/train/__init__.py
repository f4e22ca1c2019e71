"""Contrastive pretraining: config, loop, run directories, resume and DDP.

>>> from noisevision.train import PretrainConfig, pretrain
>>> summary = pretrain(PretrainConfig(data="gen:dead-leaves/mixed", num_images=5000, crop_size=32,
...                                   arch="smallalexnet32", epochs=5, batch_size=256, out="runs/dl32"))
"""
from __future__ import annotations

from .config import PretrainConfig, build_config, lr_at
from .loop import check_model_settings, pretrain

__all__ = ["PretrainConfig", "build_config", "check_model_settings", "lr_at", "pretrain"]
