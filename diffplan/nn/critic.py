"""A critic of planned state sequences, for selection and guidance by a learned value (DV's recipe)."""

from __future__ import annotations

import torch
from torch import nn

from diffplan.configurable import Configurable


class StateCritic(nn.Module, Configurable):
    """``observations (B, H, O) in environment units -> (B,)``: the sum over planned states of an MLP V(s).

    Diffusion Veteran selects plans by the sum of a TD-trained V(s) over the planned states. The input statistics
    (``obs_mean``, ``obs_std``) are buffers, so the critic reads environment units and travels in its folder.

    Args:
        obs_dim: state size O.
        hidden: width of the MLP's hidden layers.
        depth: number of hidden layers.
    """

    def __init__(self, obs_dim: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.save_config(locals())
        layers: list[nn.Module] = []
        width = obs_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.Mish()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def state_values(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, H) V(s) of every planned state."""
        x = (observations - self.obs_mean.to(observations.dtype)) / self.obs_std.to(observations.dtype)
        return self.net(x).squeeze(-1)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.state_values(observations).sum(dim=1)
