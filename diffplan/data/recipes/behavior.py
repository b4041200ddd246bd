"""Behaviour policies for locomotion recipes: a SAC actor stored as safetensors + JSON (never a pickle).

Stable-baselines3 saves models as zip files whose ``data`` entry is cloudpickled; loading one runs pickled
code. diffplan only reads SB3 models at training time (``benchmarks/locomotion/train_behavior.py``), copies the
actor's weights into :class:`BehaviorPolicy`, and ships that folder; data generation loads the folder with
``diffplan.io.load_module`` (safetensors + JSON).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from diffplan.configurable import Configurable

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SB3's clamp of the actor's log-std


class BehaviorPolicy(nn.Module, Configurable):
    """SAC actor ``obs (B, obs_dim) -> tanh-squashed Gaussian action (B, act_dim)`` in ``[low, high]``.

    Args:
        obs_dim, act_dim: sizes of the env's observation and action vectors.
        hidden: widths of the ReLU MLP trunk (SB3 ``net_arch``).
        action_low, action_high: the env's action bounds (the squashed action is rescaled to them).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], action_low: list[float],
                 action_high: list[float]):
        super().__init__()
        self.save_config(locals())
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.mu = nn.Linear(width, act_dim)
        self.log_std = nn.Linear(width, act_dim)
        self.register_buffer("low", torch.tensor(action_low, dtype=torch.float32))
        self.register_buffer("high", torch.tensor(action_high, dtype=torch.float32))

    @torch.no_grad()
    def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Mean action if ``noise`` is None, else ``tanh(mu + std * noise)``; noise is (B, act_dim) N(0, 1)."""
        h = self.trunk(obs)
        pre = self.mu(h)
        if noise is not None:
            pre = pre + self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX).exp() * noise
        return self.low + (torch.tanh(pre) + 1.0) * 0.5 * (self.high - self.low)

    def act(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """One numpy action; stochastic (SB3 ``predict``'s default) when ``rng`` is given, else the mean."""
        x = torch.as_tensor(np.asarray(obs, np.float32))[None]
        noise = None if rng is None else torch.as_tensor(rng.standard_normal((1, self.mu.out_features)),
                                                         dtype=torch.float32)
        return self(x, noise)[0].numpy()

    @classmethod
    def from_sb3(cls, model: Any) -> BehaviorPolicy:
        """Copy the actor of a trained stable-baselines3 SAC ``model`` (MlpPolicy)."""
        actor = model.policy.actor
        hidden = [m.out_features for m in actor.latent_pi if isinstance(m, nn.Linear)]
        space = model.action_space
        policy = cls(int(np.prod(model.observation_space.shape)), int(np.prod(space.shape)), hidden,
                     [float(v) for v in space.low], [float(v) for v in space.high])
        linears = [m for m in actor.latent_pi if isinstance(m, nn.Linear)]
        for mine, theirs in zip([m for m in policy.trunk if isinstance(m, nn.Linear)], linears, strict=True):
            mine.load_state_dict(theirs.state_dict())
        policy.mu.load_state_dict(actor.mu.state_dict())
        policy.log_std.load_state_dict(actor.log_std.state_dict())
        return policy
