"""Noise schedules from diffusers, with forward noising and a DDIM/DDPM step vectorised over per-token t.

diffusers' ``DDPMScheduler`` defines the training schedule (betas, ``alphas_cumprod``) and saves it;
``DDIMScheduler`` chooses the sampling timesteps. diffusers' ``add_noise``/``step`` take one timestep per
sample, while Diffusion Forcing needs one per token, so the arithmetic below gathers ``alphas_cumprod`` for
any timestep shape. ``tests/test_schedules.py`` checks it against ``DDIMScheduler.step`` for scalar t.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler


class NoiseSchedule:
    """A VP diffusion schedule. Timesteps ``t`` may be () , (B,) or (B, H) integer tensors; -1 means clean."""

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

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NoiseSchedule:
        return cls(config["num_train_timesteps"], config["beta_schedule"], config["prediction_type"])

    @property
    def config(self) -> dict[str, Any]:
        return {"num_train_timesteps": self.num_train_timesteps, "prediction_type": self.prediction_type,
                "beta_schedule": self.scheduler.config.beta_schedule}

    def alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar(t) broadcast against ``like`` (B, H, C): t of shape () / (B,) / (B, H)."""
        a = self.alphas_cumprod.to(like.device)[t.long() + 1]
        return a.reshape(*a.shape, *([1] * (like.dim() - a.dim()))).to(like.dtype)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alpha_bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def to_x0(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "sample":
            return model_output
        a = self.alpha_bar(t, x_t)
        return (x_t - (1 - a).sqrt() * model_output) / a.sqrt()

    def target(self, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x0 if self.prediction_type == "sample" else noise

    def sampling_timesteps(self, num_inference_steps: int) -> torch.Tensor:
        """Decreasing timesteps (S,) as diffusers' DDIM chooses them; S = T gives DDPM's full chain."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}], "
                             f"got {num_inference_steps}.")
        ddim = DDIMScheduler.from_config(self.scheduler.config)
        ddim.set_timesteps(num_inference_steps)
        return ddim.timesteps.clone()

    def step(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, eta: float,
             noise: torch.Tensor | None) -> torch.Tensor:
        """One DDIM step x_t -> x_{t_prev} given the predicted x0 (eta = 1 between consecutive t is DDPM)."""
        a_t, a_prev = self.alpha_bar(t, x_t), self.alpha_bar(t_prev, x_t)
        eps = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).clamp(min=0).sqrt()
        x_prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and noise is not None:
            x_prev = x_prev + sigma * noise
        return x_prev
