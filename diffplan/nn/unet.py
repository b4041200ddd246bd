"""Temporal U-Net over trajectories (Janner et al. 2022), with an optional condition embedding.

Written here rather than taken from diffusers' ``UNet1DModel`` because that model has no condition input:
Decision Diffuser (returns, classifier-free guidance) feeds an embedding through the same path as the
timestep, and every denoiser in diffplan shares the (B, H, C) interface.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from diffplan.configurable import Configurable
from diffplan.nn.embeddings import TimestepMLP


class ConvBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int = 8):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.SiLU())


class ResidualTemporalBlock(nn.Module):
    """Two conv blocks with the embedding added in between; (B, C_in, L), (B, E) -> (B, C_out, L)."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int, kernel: int = 5):
        super().__init__()
        self.block1, self.block2 = ConvBlock(c_in, c_out, kernel), ConvBlock(c_out, c_out, kernel)
        self.embed = nn.Sequential(nn.SiLU(), nn.Linear(embed_dim, c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x) + self.embed(emb)[..., None]
        return self.block2(h) + self.skip(x)


class TemporalUnet(nn.Module, Configurable):
    """Denoiser ``(x (B, H, C), t (B,), cond (B, cond_dim) | None) -> (B, H, C)``.

    Args:
        transition_dim: channels C (actions + observations).
        horizon: H; must be divisible by 2 ** (len(dim_mults) - 1).
        dim: base channel width; level i has ``dim * dim_mults[i]`` channels.
        cond_dim: size of an optional condition vector added to the timestep embedding (0 = none).
    """

    def __init__(self, transition_dim: int, horizon: int, dim: int = 32, dim_mults: tuple[int, ...] = (1, 2, 4),
                 kernel: int = 5, cond_dim: int = 0):
        super().__init__()
        self.save_config(locals())
        factor = 2 ** (len(dim_mults) - 1)
        if horizon % factor:
            raise ValueError(f"horizon {horizon} must be divisible by {factor} for dim_mults={tuple(dim_mults)}; "
                             f"pick a horizon that is a multiple of {factor}.")
        widths = [dim * m for m in dim_mults]
        self.time = TimestepMLP(dim)
        self.cond = nn.Sequential(nn.Linear(cond_dim, dim * 4), nn.SiLU(), nn.Linear(dim * 4, dim)) if cond_dim else None
        self.inp = nn.Conv1d(transition_dim, dim, 1)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        c = dim
        for i, w in enumerate(widths):
            last = i == len(widths) - 1
            self.down.append(nn.ModuleList([ResidualTemporalBlock(c, w, dim, kernel), ResidualTemporalBlock(w, w, dim, kernel),
                                            nn.Conv1d(w, w, 3, 2, 1) if not last else nn.Identity()]))
            c = w
        self.mid = nn.ModuleList([ResidualTemporalBlock(c, c, dim, kernel), ResidualTemporalBlock(c, c, dim, kernel)])
        for i, w in enumerate(reversed(widths[:-1])):
            self.up.append(nn.ModuleList([ResidualTemporalBlock(c + c, w, dim, kernel), ResidualTemporalBlock(w, w, dim, kernel),
                                          nn.ConvTranspose1d(w, w, 4, 2, 1)]))
            c = w
        self.out = nn.Sequential(ConvBlock(c, dim, kernel), nn.Conv1d(dim, transition_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if t.dim() != 1:
            raise ValueError(f"TemporalUnet takes one timestep per sample (B,), got shape {tuple(t.shape)}; "
                             f"per-token timesteps need a causal/transformer denoiser.")
        emb = self.time(t)
        if self.cond is not None and cond is not None:
            emb = emb + self.cond(cond)
        h = self.inp(rearrange(x, "b h c -> b c h"))
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, emb), emb)
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, emb)
        for res1, res2, up in self.up:  # pops the skips of levels n-1 .. 1 (Diffuser's wiring)
            h = up(res2(res1(torch.cat([h, skips.pop()], dim=1), emb), emb))
        return rearrange(self.out(h), "b c h -> b h c")
