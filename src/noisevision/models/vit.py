"""A small Vision Transformer (ViT-Tiny dimensions) in plain torch.

ViT-Tiny (Touvron et al. 2021, DeiT-Ti): embedding 192, 12 pre-norm blocks of
3-head self-attention and a 4x MLP, a class token, learnable position
embeddings, a final LayerNorm. Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
kernels where the device has them).

Small images get small patches: by default the patch is ``input_size / 8``
(an 8x8 grid of 64 tokens), so patch 4 at 32 px and patch 8 at 64 px, as the
formula-driven pretraining papers use at those sizes; ``patch_size`` sets it
explicitly. The position embeddings fix the input size: other sizes are refused.

Stages (for ``features``): ``patch_embed`` (tokens with the class token and
position embeddings), ``blocks`` (the transformer), ``cls`` (the class token
after the final LayerNorm: the embedding and the default probe layer).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import Encoder, ExportNaming, register_encoder

GRID = 8  # default tokens per side: patch = input_size / GRID


class PatchEmbed(nn.Module):
    """(N, 3, H, W) -> (N, 1 + T, D): patch projection, class token prepended, position embeddings added."""

    def __init__(self, input_size: int, patch_size: int, embed_dim: int, arch: str) -> None:
        super().__init__()
        self.input_size, self.patch_size, self.arch = input_size, patch_size, arch
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        num_patches = (input_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise UserError(
                f"encoder {self.arch} was built for {self.input_size} px inputs (its position embeddings fit that size), "
                f"got {x.shape[-2]}x{x.shape[-1]}; feed {self.input_size} px images (pretrain --crop-size, probe "
                f"--image-size) or build it for that size (--arch-kwargs input_size={x.shape[-1]})"
            )
        tokens = self.proj(x).flatten(2).transpose(1, 2)  # (N, T, D)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return torch.cat([cls, tokens], dim=1) + self.pos_embed.to(tokens.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, T, d/heads)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ClassToken(nn.Module):
    """Final LayerNorm, then the class token: (N, 1 + T, D) -> (N, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x[:, 0])


# Exported backbone: every stage (the class token after the final norm is the feature), our own names.
VIT_NAMING = ExportNaming("noisevision-vit-v1", (("stages.", ""),))


# Far deeper than any ViT trained (the largest have 48 blocks); a checkpoint asking for more is damaged.
MAX_DEPTH = 1000


class VisionTransformer(Encoder):
    """A ViT encoder; stages ``patch_embed, blocks, cls`` (see the module docstring)."""

    layer_names = ("patch_embed", "blocks", "cls")
    default_probe_layer = "cls"
    export_naming = VIT_NAMING

    def __init__(self, input_size: int = 32, patch_size: int | None = None, embed_dim: int = 192, depth: int = 12,
                 num_heads: int = 3, mlp_ratio: float = 4.0, arch: str = "vit_tiny") -> None:
        super().__init__()
        if patch_size is None:
            if input_size % GRID:
                raise ValueError(f"input_size {input_size} is not a multiple of {GRID}; pass patch_size explicitly")
            patch_size = input_size // GRID
        if patch_size < 1 or input_size % patch_size:
            raise ValueError(f"patch_size must divide input_size {input_size}, got {patch_size}")
        if depth < 1 or num_heads < 1 or embed_dim < 1 or embed_dim % num_heads:
            raise ValueError(f"need depth >= 1 and a positive embed_dim divisible by num_heads, got depth={depth}, "
                             f"embed_dim={embed_dim}, num_heads={num_heads}")
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {mlp_ratio}")
        if depth > MAX_DEPTH:  # each block is a Python module even on the meta device: bound the work
            raise ValueError(f"depth must be at most {MAX_DEPTH}, got {depth}")
        self.stages = nn.ModuleDict({
            "patch_embed": PatchEmbed(input_size, patch_size, embed_dim, arch),
            "blocks": nn.Sequential(*(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))),
            "cls": ClassToken(embed_dim),
        })
        self.out_dim = embed_dim
        self.input_size = input_size
        self.fixed_input_size = input_size  # the position embeddings fit one grid of patches
        self.arch = arch
        self.arch_kwargs = {"input_size": input_size, "patch_size": patch_size, "embed_dim": embed_dim,
                            "depth": depth, "num_heads": num_heads, "mlp_ratio": float(mlp_ratio)}
        self._init_weights()

    def _init_weights(self) -> None:
        """timm/DeiT initialisation: truncated normal(0.02) for linears and embeddings, zero biases, LN identity."""
        embed = self.stages["patch_embed"]
        nn.init.trunc_normal_(embed.pos_embed, std=0.02)
        nn.init.trunc_normal_(embed.cls_token, std=0.02)
        w = embed.proj.weight  # patch projection initialised like a linear layer (as in MAE)
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(embed.proj.bias)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@register_encoder("vit_tiny")
def vit_tiny(input_size: int = 32, patch_size: int | None = None, embed_dim: int = 192, depth: int = 12,
             num_heads: int = 3, mlp_ratio: float = 4.0) -> Encoder:
    """ViT-Tiny (192-d, 12 blocks, 3 heads, MLP 4x); patch input_size/8 by default (4 at 32 px, 8 at 64 px)."""
    return VisionTransformer(input_size=input_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, mlp_ratio=mlp_ratio, arch="vit_tiny")
