"""A DiT-style 1-D transformer denoiser ("What Makes a Good Diffusion Planner": transformers beat U-Nets).

Each token is one plan point; the timestep (one per sample or one per token) and the optional condition are
embedded and modulate every block through adaptive LayerNorm (adaLN-Zero, Peebles & Xie 2023). Attention is
``torch.nn.MultiheadAttention`` (fused SDPA kernels); ``causal=True`` masks future tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from diffplan.configurable import Configurable
from diffplan.nn.embeddings import TimestepMLP


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    def __init__(self, d_model: int, heads: int, emb_dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d_model))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 6 * d_model))
        nn.init.zeros_(self.ada[1].weight)  # adaLN-Zero: every block starts as the identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(emb).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        x = x + gate1 * self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class TransformerDenoiser(nn.Module, Configurable):
    """Denoiser ``(x (B, H, C), t (B,) or (B, H), cond (B, cond_dim) | None) -> (B, H, C)``.

    Args:
        transition_dim, horizon: C and H (H sets the learned position embedding's length).
        d_model, depth, heads: width, number of blocks and attention heads.
        emb_dim: size of the timestep / condition embedding.
        cond_dim: size of an optional condition vector (0 = none).
        causal: each token attends only to itself and earlier tokens.
    """

    def __init__(self, transition_dim: int, horizon: int, d_model: int = 128, depth: int = 2, heads: int = 4,
                 emb_dim: int = 64, cond_dim: int = 0, causal: bool = False):
        super().__init__()
        self.save_config(locals())
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}.")
        self.horizon = horizon
        self.inp = nn.Linear(transition_dim, d_model)
        self.pos = nn.Parameter(torch.randn(1, horizon, d_model) * 0.02)
        self.time = TimestepMLP(emb_dim)
        self.cond = nn.Sequential(nn.Linear(cond_dim, emb_dim * 2), nn.SiLU(), nn.Linear(emb_dim * 2, emb_dim)) \
            if cond_dim else None
        self.blocks = nn.ModuleList(DiTBlock(d_model, heads, emb_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * d_model))
        self.out = nn.Linear(d_model, transition_dim)
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)
        mask = torch.triu(torch.ones(horizon, horizon, dtype=torch.bool), 1) if causal else None
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        b, h, _ = x.shape
        if h > self.horizon:
            raise ValueError(f"TransformerDenoiser was built for horizon <= {self.horizon}, got {h}.")
        if t.dim() not in (1, 2) or (t.dim() == 2 and t.shape[1] != h):
            raise ValueError(f"t must be (B,) or (B, H) = ({b}, {h}), got {tuple(t.shape)}.")
        emb = self.time(t)  # (B, E) or (B, H, E)
        if self.cond is not None and cond is not None:
            c = self.cond(cond)
            emb = emb + (c if emb.dim() == 2 else c[:, None])
        emb = emb[:, None] if emb.dim() == 2 else emb  # broadcast over tokens
        z = self.inp(x) + self.pos[:, :h]
        mask = None if self.mask is None else self.mask[:h, :h]
        for block in self.blocks:
            z = block(z, emb, mask)
        shift, scale = self.ada(emb).chunk(2, dim=-1)
        return self.out(modulate(self.norm(z), shift, scale))
