"""Inverse dynamics: the action that takes state s to state s' (Decision Diffuser's action head)."""

from __future__ import annotations

import torch
from torch import nn

from diffplan.configurable import Configurable


class InverseDynamics(nn.Module, Configurable):
    """``(s (B, obs_dim), s_next (B, obs_dim)) -> a (B, act_dim)``, all in normalized units.

    Args:
        hidden: width of the ReLU hidden layers (512 in the paper, 256 in its released code).
        depth: number of hidden layers.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 512, depth: int = 2):
        super().__init__()
        self.save_config(locals())
        layers: list[nn.Module] = []
        width = 2 * obs_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, act_dim), nn.Tanh())  # actions are normalized to [-1, 1]

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s, s_next], dim=-1))
