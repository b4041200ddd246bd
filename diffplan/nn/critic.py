"""Critics of plans, for selection and guidance by a learned value: V(s) summed over planned states (DV's recipe)
and Q(s, a) of the first planned step (IQL's critic, as IDQL selects with it)."""

from __future__ import annotations

import torch
from torch import nn

from diffplan.configurable import Configurable


def mlp(width: int, hidden: int, depth: int) -> nn.Sequential:
    """``width -> hidden x depth (Mish) -> 1``."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.Mish()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, 1))


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
        self.net = mlp(obs_dim, hidden, depth)
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


class ActionCritic(nn.Module, Configurable):
    """``(observations (B, H, O), actions (B, H, A)) in environment units -> (B,)``: Q(s_0, a_0) of the plan's
    first step, the one the planner executes (IDQL's selection: keep the sampled action with the highest Q).

    Q is the minimum of two MLPs (IQL's clipped double Q). As in ``StateCritic``, input statistics and the output
    scale are buffers, so the critic reads environment units and returns discounted returns.
    ``diffplan.algorithms.critic.CriticTraining(target="iql")`` trains it.

    Args:
        obs_dim: state size O.
        act_dim: action size A.
        hidden: width of the MLPs' hidden layers.
        depth: number of hidden layers.
    """

    reads_actions = True

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, depth: int = 2):
        super().__init__()
        self.save_config(locals())
        self.q1, self.q2 = mlp(obs_dim + act_dim, hidden, depth), mlp(obs_dim + act_dim, hidden, depth)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("value_shift", torch.zeros(()))
        self.register_buffer("value_scale", torch.ones(()))
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def both_values(self, observations: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., O) states and (..., A) actions -> the two heads' Q(s, a), each (...)."""
        if observations.shape[-1] != self.obs_dim or actions.shape[-1] != self.act_dim:
            raise ValueError(f"ActionCritic was trained on {self.obs_dim}-dim states and {self.act_dim}-dim actions, "
                             f"got shapes {tuple(observations.shape)} and {tuple(actions.shape)}; it belongs to "
                             f"another task.")
        dtype = observations.dtype
        x = torch.cat([(observations - self.obs_mean.to(dtype)) / self.obs_std.to(dtype), actions.to(dtype)], -1)
        shift, scale = self.value_shift.to(dtype), self.value_scale.to(dtype)
        return shift + scale * self.q1(x).squeeze(-1), shift + scale * self.q2(x).squeeze(-1)

    def action_values(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(..., O) states and (..., A) actions -> (...) min of the two heads' Q(s, a)."""
        return torch.minimum(*self.both_values(observations, actions))

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(B, H, O) planned states and (B, H, A) actions -> (B,) Q of the first planned step."""
        return self.action_values(observations[:, 0], actions[:, 0])
