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


class _ScaledCritic(nn.Module):
    """What both critics share: input statistics and an output scale kept as buffers, so a critic reads environment
    units, returns discounted returns (``value_shift + value_scale * mlp``, the MLP working on numbers of order one)
    and travels in its folder with them."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("value_shift", torch.zeros(()))
        self.register_buffer("value_scale", torch.ones(()))
        self.obs_dim = obs_dim

    def standardized(self, observations: torch.Tensor) -> torch.Tensor:
        """(..., O) states in environment units -> (..., O) the MLP's inputs."""
        dtype = observations.dtype
        return (observations - self.obs_mean.to(dtype)) / self.obs_std.to(dtype)

    def in_return_units(self, raw: torch.Tensor) -> torch.Tensor:
        """(..., 1) MLP outputs -> (...) discounted returns."""
        return self.value_shift.to(raw.dtype) + self.value_scale.to(raw.dtype) * raw.squeeze(-1)


class StateCritic(_ScaledCritic, Configurable):
    """``observations (B, H, O) in environment units -> (B,)``: the sum over planned states of an MLP V(s).

    Diffusion Veteran selects plans by the sum of a TD-trained V(s) over the planned states. It reads environment
    units and returns discounted returns (see ``_ScaledCritic``). ``diffplan.algorithms.critic.CriticTraining`` trains
    it.

    Args:
        obs_dim: state size O.
        hidden: width of the MLP's hidden layers.
        depth: number of hidden layers.
    """

    def __init__(self, obs_dim: int, hidden: int = 256, depth: int = 2):
        super().__init__(obs_dim)
        self.save_config(locals())
        self.net = mlp(obs_dim, hidden, depth)

    def state_values(self, observations: torch.Tensor) -> torch.Tensor:
        """(..., O) states -> (...) V(s) of every state."""
        if observations.shape[-1] != self.obs_dim:
            raise ValueError(f"StateCritic was trained on {self.obs_dim}-dim states, got observations of shape "
                             f"{tuple(observations.shape)}; it belongs to another task.")
        return self.in_return_units(self.net(self.standardized(observations)))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, H, O) planned states -> (B,) the sum of their values."""
        return self.state_values(observations).sum(dim=1)


class ActionCritic(_ScaledCritic, Configurable):
    """``(observations (B, H, O), actions (B, H, A)) in environment units -> (B,)``: Q(s_0, a_0) of the plan's
    first step, the one the planner executes (IDQL's selection: keep the sampled action with the highest Q).

    Q is the minimum of two MLPs (IQL's clipped double Q). It reads environment units and returns discounted returns
    (see ``_ScaledCritic``).
    ``diffplan.algorithms.critic.CriticTraining(target="iql")`` trains it.

    Args:
        obs_dim: state size O.
        act_dim: action size A.
        hidden: width of the MLPs' hidden layers.
        depth: number of hidden layers.
    """

    reads_actions = True

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, depth: int = 2):
        super().__init__(obs_dim)
        self.save_config(locals())
        self.q1, self.q2 = mlp(obs_dim + act_dim, hidden, depth), mlp(obs_dim + act_dim, hidden, depth)
        self.act_dim = act_dim

    def both_values(self, observations: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., O) states and (..., A) actions -> the two heads' Q(s, a), each (...)."""
        if observations.shape[-1] != self.obs_dim or actions.shape[-1] != self.act_dim:
            raise ValueError(f"ActionCritic was trained on {self.obs_dim}-dim states and {self.act_dim}-dim actions, "
                             f"got shapes {tuple(observations.shape)} and {tuple(actions.shape)}; it belongs to "
                             f"another task.")
        x = torch.cat([self.standardized(observations), actions.to(observations.dtype)], -1)
        return self.in_return_units(self.q1(x)), self.in_return_units(self.q2(x))

    def action_values(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(..., O) states and (..., A) actions -> (...) min of the two heads' Q(s, a)."""
        return torch.minimum(*self.both_values(observations, actions))

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(B, H, O) planned states and (B, H, A) actions -> (B,) Q of the first planned step."""
        return self.action_values(observations[:, 0], actions[:, 0])
