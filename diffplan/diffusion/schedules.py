"""Noise schedules from diffusers, with forward noising and a DDIM/DDPM step vectorised over per-token t.

diffusers' ``DDPMScheduler`` defines the training schedule (betas, ``alphas_cumprod``) and saves it;
``DDIMScheduler`` chooses the sampling timesteps. diffusers' ``add_noise``/``step`` take one timestep per
sample, while Diffusion Forcing needs one per token, so the arithmetic below gathers ``alphas_cumprod`` for
any timestep shape. ``tests/test_schedules.py`` checks it against ``DDIMScheduler.step`` for scalar t.

Timesteps ``t`` may be () , (B,) or (B, H) integer tensors; ``-1`` means clean (alpha_bar = 1). A token whose
``t`` equals ``t_prev`` passes through a step bit-unchanged, so one step can move some tokens and hold others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler


@dataclass
class StepCoefficients:
    """The coefficients of one step x_t -> x_{t_prev}, broadcast against the sample (B, H, C).

    ``x_prev = sqrt(alpha_bar_prev) x0 + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z`` (DDIM with eta; eta = 1
    between consecutive timesteps is DDPM's ancestral step, the memoryless SDE discretisation).
    """

    alpha_bar: torch.Tensor
    alpha_bar_prev: torch.Tensor
    sigma: torch.Tensor
    moves: torch.Tensor  # bool: False where t == t_prev (the token is held)

    @property
    def alpha(self) -> torch.Tensor:
        """alpha_bar / alpha_bar_prev: the one-step signal retention between the two levels."""
        return self.alpha_bar / self.alpha_bar_prev


@dataclass
class StepOutput:
    """What a step returns (as diffusers' scheduler output): the new sample, the x0 it used, mean and noise std."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


class NoiseSchedule:
    """A VP diffusion schedule over ``num_train_timesteps`` levels (diffusers' DDPM betas)."""

    def __init__(self, num_train_timesteps: int = 100, beta_schedule: str = "squaredcos_cap_v2",
                 prediction_type: str = "sample"):
        if prediction_type not in ("sample", "epsilon"):
            raise ValueError(f"prediction_type must be 'sample' (x0) or 'epsilon', got {prediction_type!r}.")
        self.scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                                       prediction_type=prediction_type, clip_sample=False,
                                       timestep_spacing="trailing")
        self.num_train_timesteps = num_train_timesteps
        self.prediction_type = prediction_type
        # index 0 holds t = -1 (clean data, alpha_bar = 1), index k + 1 holds t = k
        self.alphas_cumprod = torch.cat([torch.ones(1), self.scheduler.alphas_cumprod.float()])
        self._tables: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self._sampling_timesteps: dict[int, torch.Tensor] = {}  # per step count: planners ask at every plan

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NoiseSchedule:
        return cls(config["num_train_timesteps"], config["beta_schedule"], config["prediction_type"])

    @property
    def config(self) -> dict[str, Any]:
        return {"num_train_timesteps": self.num_train_timesteps, "prediction_type": self.prediction_type,
                "beta_schedule": self.scheduler.config.beta_schedule}

    @staticmethod
    def _broadcast(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values`` of shape () / (B,) / (B, H) with trailing singleton dims, to broadcast against ``like``."""
        return values.reshape(*values.shape, *([1] * (like.dim() - values.dim())))

    def _table(self, like: torch.Tensor) -> torch.Tensor:
        """``alphas_cumprod`` on ``like``'s device and dtype, kept per (device, dtype): a sampling step reads it a
        few times, and copying it each time cost more than the arithmetic."""
        key = (like.device, like.dtype)
        if key not in self._tables:
            self._tables[key] = self.alphas_cumprod.to(device=like.device, dtype=like.dtype)
        return self._tables[key]

    def alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar(t) broadcast against ``like`` (B, H, C): t of shape () / (B,) / (B, H)."""
        return self._broadcast(self._table(like)[t.to(device=like.device, dtype=torch.long) + 1], like)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alpha_bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def renoise(self, x: torch.Tensor, t_from: torch.Tensor, t_to: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward-noise a sample from level ``t_from`` to the higher level ``t_to`` (q(x_to | x_from)).

        Tokens with ``t_to == t_from`` are returned bit-unchanged (used by recurrence: re-noise and repeat a step).
        """
        ratio = self.alpha_bar(t_to, x) / self.alpha_bar(t_from, x)
        moved = ratio.sqrt() * x + (1 - ratio).clamp(min=0).sqrt() * noise
        return torch.where(self._broadcast(t_to.to(x.device) != t_from.to(x.device), x), moved, x)

    def to_x0(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "sample":
            return model_output
        a = self.alpha_bar(t, x_t)
        return (x_t - (1 - a).sqrt() * model_output) / a.sqrt()

    def to_epsilon(self, x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
        """The noise implied by (x_t, x0); 0 for clean tokens (alpha_bar = 1), never NaN."""
        noise_std = (1 - alpha_bar).sqrt()
        return torch.where(noise_std > 0, (x_t - alpha_bar.sqrt() * x0) / noise_std.clamp(min=1e-12),
                           torch.zeros_like(x_t))

    def target(self, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x0 if self.prediction_type == "sample" else noise

    def sampling_timesteps(self, num_inference_steps: int) -> torch.Tensor:
        """Decreasing timesteps (S,) as diffusers' DDIM chooses them; S = T gives DDPM's full chain."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}], "
                             f"got {num_inference_steps}.")
        if num_inference_steps not in self._sampling_timesteps:
            ddim = DDIMScheduler.from_config(self.scheduler.config)
            ddim.set_timesteps(num_inference_steps)
            self._sampling_timesteps[num_inference_steps] = ddim.timesteps.clone()
        return self._sampling_timesteps[num_inference_steps]

    def coefficients(self, t: torch.Tensor, t_prev: torch.Tensor, eta: float, like: torch.Tensor) -> StepCoefficients:
        """Step coefficients for (t, t_prev) of any shape () / (B,) / (B, H), broadcast against ``like``."""
        a_t, a_prev = self.alpha_bar(t, like), self.alpha_bar(t_prev, like)
        moves = self._broadcast(t.to(like.device) != t_prev.to(like.device), like)
        # DDIM's sigma; 0 for held tokens (a_t = a_prev) and for clean tokens
        var = ((1 - a_prev) / (1 - a_t).clamp(min=1e-12) * (1 - a_t / a_prev)).clamp(min=0)
        sigma = torch.where(moves, eta * var.sqrt(), torch.zeros_like(var))
        return StepCoefficients(a_t, a_prev, sigma, moves)

    def step_mean(self, x_t: torch.Tensor, x0: torch.Tensor, c: StepCoefficients) -> torch.Tensor:
        """Mean of x_{t_prev} given x_t and the predicted x0 (held tokens: x_t itself)."""
        eps = self.to_epsilon(x_t, x0, c.alpha_bar)
        mean = c.alpha_bar_prev.sqrt() * x0 + (1 - c.alpha_bar_prev - c.sigma**2).clamp(min=0).sqrt() * eps
        return torch.where(c.moves, mean, x_t)

    def step(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, eta: float,
             noise: torch.Tensor | None, coefficients: StepCoefficients | None = None) -> StepOutput:
        """One DDIM step x_t -> x_{t_prev} given the predicted x0 (eta = 1 between consecutive t is DDPM);
        ``coefficients`` of (t, t_prev, eta) when the caller has them already."""
        c = coefficients if coefficients is not None else self.coefficients(t, t_prev, eta, x_t)
        mean = self.step_mean(x_t, x0, c)
        x_prev = torch.where(c.moves, mean + c.sigma * noise, x_t) if (eta > 0 and noise is not None) else mean
        return StepOutput(prev_sample=x_prev, pred_original_sample=x0, mean=mean, std=c.sigma)
