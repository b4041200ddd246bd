"""A fine-tuning problem with a known answer: a Gaussian base whose exact denoiser is closed-form, a linear reward.

For data ``N(m, s^2)`` (per channel) and ``r(x) = a . x`` the tilted distribution ``N(m, s^2) exp(lam r)`` is
``N(m + lam s^2 a, s^2)``. A finite DDPM chain run with the exact denoiser samples a Gaussian close to the data's;
``chain_moments`` gives that Gaussian exactly (the chain is affine), so the fine-tuned chain must reach
``N(mean + lam var a, var)`` of it. Used by the tests and by ``benchmarks/finetune/toy_tilt.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.finetune.adjoint_matching import adjoint_matching_loss, step_mean


class GaussianDenoiser(nn.Module):
    """The exact denoiser of data ``N(mean, std^2)`` per channel: ``E[x0 | x_t]`` (or the implied noise).

    Args:
        mean, std: (C,) data moments; schedule: gives alpha_bar(t) and the prediction type.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], schedule: NoiseSchedule):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("var", torch.tensor(std, dtype=torch.float32) ** 2)
        self.schedule = schedule

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.schedule.alpha_bar(t, x)
        gain = a.sqrt() * self.var / (a * self.var + 1 - a)
        x0 = self.mean + gain * (x - a.sqrt() * self.mean)
        return x0 if self.schedule.prediction_type == "sample" else self.schedule.to_epsilon(x, x0, a)


class ResidualDenoiser(nn.Module):
    """``base(x, t) + bias[t] + scale[t] * x``: a per-level affine correction, zero at the start (so it is the base).

    Enough to represent the tilted chain of a Gaussian base (its optimum is affine in x at every level).
    """

    def __init__(self, base: nn.Module, num_train_timesteps: int, channels: int):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.bias = nn.Parameter(torch.zeros(num_train_timesteps, channels))
        self.scale = nn.Parameter(torch.zeros(num_train_timesteps, channels))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.long()
        return self.base(x, t) + self.bias[t][:, None] + self.scale[t][:, None] * x


def linear_reward(a: Sequence[float]) -> nn.Module:
    """``r(x) = sum_{h, c} a_c x_{h, c}``, (B, H, C) -> (B,)."""

    class Linear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("a", torch.tensor(a, dtype=torch.float32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * self.a).flatten(1).sum(1)

    return Linear()


@torch.no_grad()
def chain_moments(model_fn: nn.Module, schedule: NoiseSchedule, timesteps: torch.Tensor, channels: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and variance (C,) of the DDPM (eta = 1) chain's output for a denoiser affine in x, from N(0, I).

    Each step is ``x_prev = A x + c + s z`` per channel; A and c are read off the step mean at x = 0 and x = 1.
    """
    mean, var = torch.zeros(channels), torch.ones(channels)
    levels = torch.cat([timesteps, torch.tensor([-1])])
    for i in range(len(timesteps)):
        t, t_prev = levels[i].expand(2), levels[i + 1].expand(2)
        x = torch.stack([torch.zeros(1, channels), torch.ones(1, channels)])
        mu, std = step_mean(model_fn, schedule, x, t, t_prev, clip_denoised=False)
        gain, offset = mu[1, 0] - mu[0, 0], mu[0, 0]
        mean, var = gain * mean + offset, gain**2 * var + std[0].reshape(-1) ** 2
    return mean, var


def fit_toy(model: ResidualDenoiser, schedule: NoiseSchedule, timesteps: torch.Tensor, reward: nn.Module, lam: float,
            steps: int, batch_size: int = 256, lr: float = 1e-2, last_k: int = 5, random_k: int = 5,
            seed: int = 0) -> list[float]:
    """Adjoint Matching on the toy (one plan point, C channels) with Adam; returns the loss of every step."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([model.bias, model.scale], lr=lr)
    channels = model.bias.shape[1]
    history = []
    for _ in range(steps):
        noise = torch.randn(batch_size, 1, channels, generator=generator)
        loss, _ = adjoint_matching_loss(model, model.base, schedule, noise, timesteps, reward, lam,
                                        last_k=last_k, random_k=random_k, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history
