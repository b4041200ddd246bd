"""An MLP denoiser over a whole short trajectory: the cheap choice for a few plan points (HD's low level).

At batch 1 on CPU a U-Net's cost is its number of kernels, not its FLOPs; an MLP over the flattened
(H x C) segment runs in a handful of matmuls, and for H <= ~8 it has nothing to gain from convolutions.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from diffplan.configurable import Configurable
from diffplan.nn.embeddings import TimestepMLP


class MLPDenoiser(nn.Module, Configurable):
    """Denoiser ``(x (B, H, C), t (B,), cond (B, cond_dim) | None) -> (B, H, C)`` on the flattened trajectory.

    Args:
        transition_dim, horizon: C and H (fixed: the weights see H x C inputs).
        hidden: width of the hidden layers; depth: number of hidden layers.
        dim: timestep embedding size; cond_dim: size of an optional condition vector (0 = none).
    """

    def __init__(self, transition_dim: int, horizon: int, hidden: int = 256, depth: int = 3, dim: int = 32,
                 cond_dim: int = 0):
        super().__init__()
        self.save_config(locals())
        self.horizon, self.transition_dim = horizon, transition_dim
        self.time = TimestepMLP(dim)
        self.cond = nn.Sequential(nn.Linear(cond_dim, dim * 4), nn.SiLU(), nn.Linear(dim * 4, dim)) if cond_dim else None
        layers: list[nn.Module] = [nn.Linear(horizon * transition_dim + dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, horizon * transition_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1:] != (self.horizon, self.transition_dim):
            raise ValueError(f"MLPDenoiser was built for (H, C) = ({self.horizon}, {self.transition_dim}), "
                             f"got {tuple(x.shape[1:])}; an MLP cannot change its horizon after training.")
        emb = self.time(t)
        if self.cond is not None and cond is not None:
            emb = emb + self.cond(cond)
        out = self.net(torch.cat([rearrange(x, "b h c -> b (h c)"), emb], dim=-1))
        return rearrange(out, "b (h c) -> b h c", h=self.horizon)
