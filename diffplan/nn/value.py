"""Value head: predicts a trajectory's (normalized) return from its noisy version, for value guidance."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from diffplan.configurable import Configurable
from diffplan.nn.embeddings import TimestepMLP
from diffplan.nn.unet import ResidualTemporalBlock


class TemporalValue(nn.Module, Configurable):
    """``(x (B, H, C), t (B,)) -> (B,)``: the down path of the temporal U-Net, pooled, then an MLP."""

    def __init__(self, transition_dim: int, horizon: int, dim: int = 32, dim_mults: tuple[int, ...] = (1, 2, 4),
                 kernel: int = 5):
        super().__init__()
        self.save_config(locals())
        self.time = TimestepMLP(dim)
        self.inp = nn.Conv1d(transition_dim, dim, 1)
        blocks, c = [], dim
        for m in dim_mults:
            blocks.append(nn.ModuleList([ResidualTemporalBlock(c, dim * m, dim, kernel), nn.Conv1d(dim * m, dim * m, 3, 2, 1)]))
            c = dim * m
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Linear(c + dim, c), nn.SiLU(), nn.Linear(c, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(t)
        h = self.inp(rearrange(x, "b h c -> b c h"))
        for block, down in self.blocks:
            h = down(block(h, emb))
        return self.head(torch.cat([h.mean(-1), emb], dim=-1)).squeeze(-1)
