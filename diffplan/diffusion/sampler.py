"""denoise(): THE sampling loop. Every planner samples through it."""

from __future__ import annotations

from collections.abc import Callable

import torch

from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.guidance.base import Guidance

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def denoise(model_fn: ModelFn, schedule: NoiseSchedule, x: torch.Tensor, timesteps: torch.Tensor,
            constraints: Inpaint | None = None, guidance: Guidance | None = None, eta: float = 0.0,
            clip_denoised: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Run the reverse chain from noise ``x`` (B, H, C) through ``timesteps``.

    Args:
        model_fn: denoiser ``(x_t (B, H, C), t) -> prediction`` (x0 or epsilon, per ``schedule``).
        timesteps: (S,) decreasing scalar timesteps, or (S, B) / (S, B, H) per-sample / per-token ones.
            After the last row the chain reaches t = -1 (clean).
        constraints: inpainting applied to the start noise and after every step.
        guidance: prediction-level and sample-level hooks (identity when None).
        eta: 0 = deterministic DDIM, 1 = DDPM-like ancestral noise.
        clip_denoised: clamp predicted x0 to the normalized range [-1, 1].
        generator: the only source of randomness (start noise is passed in; step noise comes from here).

    Returns:
        (B, H, C) sample at t = -1, constraints applied.
    """
    guidance = guidance or Guidance()
    apply = constraints.apply if constraints is not None else (lambda v: v)
    x = apply(x)
    b = x.shape[0]
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else torch.full_like(t, -1)
        t_model = t.expand(b) if t.dim() == 0 else t
        prediction = guidance.predict(model_fn, x, t_model.to(x.device))
        x0 = schedule.to_x0(prediction, x, t)
        if clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) if eta > 0 else None
        x = schedule.step(x, x0, t, t_prev, eta, noise)
        x = apply(guidance.step(x, t_prev.expand(b) if t_prev.dim() == 0 else t_prev))
    return x
