"""Scheduling matrices: which noise level each token has at each sampling step (Diffusion Forcing).

A matrix is an (M, H) integer tensor of training timesteps: row 0 is where sampling starts, each later row is
one denoising step, and the last row is all ``-1`` (clean). Every token's level never rises from one row to the
next, and a token whose level does not change in a row is passed through that step unchanged.

Levels: with S sampling steps, level S is the start (the noisiest DDIM timestep), level 0 is clean; level l is
the DDIM timestep ``sampling_timesteps(S)[S - l]`` (``-1`` for l = 0).
"""

from __future__ import annotations

import math

import torch

from diffplan.diffusion.schedules import NoiseSchedule


def _to_timesteps(levels: torch.Tensor, schedule: NoiseSchedule, steps: int) -> torch.Tensor:
    """(M, H) levels in [0, S] -> training timesteps (0 -> -1 = clean)."""
    by_level = torch.cat([torch.tensor([-1]), schedule.sampling_timesteps(steps).flip(0).long()])
    return by_level[levels]


def full_sequence(schedule: NoiseSchedule, steps: int, horizon: int) -> torch.Tensor:
    """(S + 1, H): every token at the same level, the plain sampler's chain."""
    levels = torch.arange(steps, -1, -1)[:, None].expand(-1, horizon)
    return _to_timesteps(levels, schedule, steps)


def pyramid(schedule: NoiseSchedule, steps: int, horizon: int, uncertainty: float = 1.0) -> torch.Tensor:
    """(S + floor((H - 1) u) + 1, H): token h lags ``h * u`` levels behind token 0, so near tokens are sampled
    first and far ones stay more uncertain (``entry[m, h] = clip(S + floor(h u) - m, 0, S)``)."""
    if uncertainty < 0:
        raise ValueError(f"uncertainty must be >= 0, got {uncertainty}.")
    lag = torch.floor(torch.arange(horizon) * uncertainty).long()
    rows = steps + int(lag[-1]) + 1
    levels = (steps + lag[None, :] - torch.arange(rows)[:, None]).clamp(0, steps)
    return _to_timesteps(levels, schedule, steps)


def autoregressive(schedule: NoiseSchedule, steps: int, horizon: int) -> torch.Tensor:
    """(S H + 1, H): one token fully denoised after another (a pyramid with u = S)."""
    return pyramid(schedule, steps, horizon, uncertainty=float(steps))


def scheduling_matrix(kind: str, schedule: NoiseSchedule, steps: int, horizon: int,
                      uncertainty: float = 1.0) -> torch.Tensor:
    """Build a matrix by name: ``"full_sequence"``, ``"pyramid"`` (with ``uncertainty``) or ``"autoregressive"``."""
    if kind == "full_sequence":
        return full_sequence(schedule, steps, horizon)
    if kind == "pyramid":
        return pyramid(schedule, steps, horizon, uncertainty)
    if kind == "autoregressive":
        return autoregressive(schedule, steps, horizon)
    raise ValueError(f"Unknown scheduling matrix {kind!r}; use 'full_sequence', 'pyramid' or 'autoregressive'.")


def rows_needed(kind: str, steps: int, horizon: int, uncertainty: float = 1.0) -> int:
    """Denoiser calls of a matrix (its rows minus the final clean one)."""
    u = {"full_sequence": 0.0, "pyramid": uncertainty, "autoregressive": float(steps)}[kind]
    return steps + math.floor((horizon - 1) * u)
