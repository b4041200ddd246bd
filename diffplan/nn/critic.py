"""A critic of planned state sequences, for selection and guidance by a learned value (DV's recipe)."""

from __future__ import annotations

import torch
from torch import nn

from diffplan.configurable import Configurable


class StateCritic(nn.Module, Configurable):
    """``observations (B, H, O) in environment units -> (B,)``: the sum over planned states of an MLP V(s).

    Diffusion Veteran selects plans by the sum of a TD-trained V(s) over the planned states. The input statistics
    (``obs_mean``, ``obs_std``) and the output scale (``V = value_shift + value_scale * mlp(s)``, so the MLP works on
    numbers of order one while V is in return units) are buffers: the critic reads environment units, returns
    discounted returns, and travels in its folder. ``diffplan.algorithms.critic.CriticTraining`` trains it.

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
        self.register_buffer("value_shift", torch.zeros(()))
        self.register_buffer("value_scale", torch.ones(()))
        self.obs_dim = obs_dim

    def state_values(self, observations: torch.Tensor) -> torch.Tensor:
        """(..., O) states -> (...) V(s) of every state."""
        if observations.shape[-1] != self.obs_dim:
            raise ValueError(f"StateCritic was trained on {self.obs_dim}-dim states, got observations of shape "
                             f"{tuple(observations.shape)}; it belongs to another task.")
        dtype = observations.dtype
        x = (observations - self.obs_mean.to(dtype)) / self.obs_std.to(dtype)
        return self.value_shift.to(dtype) + self.value_scale.to(dtype) * self.net(x).squeeze(-1)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, H, O) planned states -> (B,) the sum of their values."""
        return self.state_values(observations).sum(dim=1)
