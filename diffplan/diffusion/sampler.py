"""denoise(): THE sampling loop. Every planner samples through it.

Per step: ``predict`` hook -> x0 (clipped for bounded normalizers) -> ``guide_x0`` hook -> scheduler step ->
``guide_step`` hook -> constraints; optionally repeated (recurrence) with re-noising in between. Unguided sampling
runs without autograd; a guidance with ``needs_grad`` gets x0 with a graph back to x_t.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.guidance.base import Guidance, GuidanceContext

ModelFn = Callable[..., torch.Tensor]


@dataclass
class Trajectory:
    """Every sample of a chain: ``samples`` (S + 1, B, H, C) from the start noise to the result, and the level
    each was at, ``timesteps`` (S + 1, B) or (S + 1, B, H) (-1 = clean)."""

    samples: torch.Tensor
    timesteps: torch.Tensor


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise on ``device``, drawn on the generator's own device (a CPU generator can feed a GPU
    sampler; the numbers depend only on the generator)."""
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source, dtype=dtype).to(device)


def _per_sample(t: torch.Tensor, b: int, device: torch.device) -> torch.Tensor:
    """A row of timesteps as (B,) or (B, H)."""
    t = t.to(device)
    return t.expand(b) if t.dim() == 0 else t


@torch.no_grad()
def denoise(model_fn: ModelFn, schedule: NoiseSchedule, x: torch.Tensor, timesteps: torch.Tensor,
            constraints: Inpaint | None = None, guidance: Guidance | None = None, eta: float = 0.0,
            clip_denoised: bool = True, generator: torch.Generator | None = None,
            return_trajectory: bool = False, recurrence: int | None = None,
            context: dict[str, Any] | None = None) -> torch.Tensor | tuple[torch.Tensor, Trajectory]:
    """Run the reverse chain from noise ``x`` (B, H, C) through ``timesteps``.

    Args:
        model_fn: denoiser ``(x_t (B, H, C), t) -> prediction`` (x0 or epsilon, per ``schedule``); ``t`` is a row.
        timesteps: decreasing rows: (S,) scalar timesteps, (S, B) per sample or (S, B, H) per token (a
            scheduling matrix expanded over the batch). After the last row the chain reaches t = -1 (clean);
            trailing all-clean rows are dropped. Tokens whose t does not change in a row pass through unchanged.
        constraints: inpainting applied to the start noise and after every step.
        guidance: hooks (see ``diffplan.guidance.base``); identity when None.
        eta: 0 = deterministic DDIM, 1 = DDPM-like ancestral noise (the memoryless chain).
        clip_denoised: clamp predicted x0 to [-1, 1] (only for bounded normalizers).
        generator: the only source of randomness (start noise is passed in; step noise comes from here).
        return_trajectory: also return every x_t with its t.
        recurrence: repeat each step N times, re-noising in between (default: the guidance's).
        context: extra fields of the :class:`GuidanceContext` (normalizer, layout).

    Returns:
        (B, H, C) sample at t = -1 with constraints applied; with ``return_trajectory``, also the Trajectory.
    """
    guidance = guidance or Guidance()
    recurrence = recurrence or guidance.recurrence
    apply = constraints.apply if constraints is not None else (lambda v: v)
    timesteps = torch.as_tensor(timesteps)
    while len(timesteps) > 1 and bool((timesteps[-1] < 0).all()):
        timesteps = timesteps[:-1]
    b, device = x.shape[0], x.device
    x = apply(x)
    record, record_t = [x], []
    for i in range(len(timesteps)):
        t = _per_sample(timesteps[i], b, device)
        t_prev = _per_sample(timesteps[i + 1], b, device) if i + 1 < len(timesteps) else torch.full_like(t, -1)
        ctx = GuidanceContext(schedule=schedule, t=t, t_prev=t_prev, eta=eta, step_index=i, num_steps=len(timesteps),
                              constraints=constraints, generator=generator, timesteps=timesteps,
                              coefficients=schedule.coefficients(t, t_prev, eta, x), **(context or {}))
        for r in range(recurrence):
            ctx.scratch.clear()
            x_next = _step(model_fn, schedule, x, ctx, guidance, clip_denoised, apply)
            if r + 1 < recurrence:  # re-noise x_{t_prev} back to level t and repeat the step
                x_next = apply(schedule.renoise(x_next, t_prev, t, randn(x.shape, generator, device, x.dtype)))
            x = x_next
        record.append(x)
        record_t.append(t)
    if not return_trajectory:
        return x
    record_t.append(torch.full_like(record_t[-1], -1))
    return x, Trajectory(torch.stack(record), torch.stack(record_t))


def _step(model_fn: ModelFn, schedule: NoiseSchedule, x: torch.Tensor, ctx: GuidanceContext, guidance: Guidance,
          clip_denoised: bool, apply: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One step x_t -> x_{t_prev} with all hooks."""
    with torch.enable_grad() if guidance.needs_grad else contextlib.nullcontext():
        x_in = x.detach().requires_grad_(True) if guidance.needs_grad else x
        x0 = schedule.to_x0(guidance.predict(model_fn, x_in, ctx.t, ctx), x_in, ctx.t)
        if clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
        x0 = guidance.guide_x0(x0, x_in, ctx)
    x0 = x0.detach()
    noise = randn(x.shape, ctx.generator, x.device, x.dtype) if ctx.eta > 0 else None
    out = schedule.step(x, x0, ctx.t, ctx.t_prev, ctx.eta, noise, ctx.coefficients)
    return apply(guidance.guide_step(out.prev_sample, ctx).detach())
