"""The guidance interface: one hook before sampling and three per step of the sampling loop.

Before sampling, ``condition(context)`` may change what the plan is conditioned on (e.g. a waypoint in place of the
goal); ``Planner.sample_steered`` calls it once per plan. Per denoising step, ``denoise`` runs ``predict`` -> x0 ->
``guide_x0`` -> scheduler step -> ``guide_step`` -> constraints, and may repeat the step (``recurrence``); these
hooks see a :class:`GuidanceContext` and return the (possibly changed) tensor they were given.

- ``predict(model_fn, x_t, t, ctx)``: the denoiser's output; combine several calls here (classifier-free guidance).
- ``guide_x0(x0, x_t, ctx)``: the predicted clean sample; move it here (mean guidance). When ``needs_grad`` is
  True the loop builds ``x0`` with a graph back to ``x_t`` (which requires grad), so a hook can take
  DPS-style gradients ``d f(x0(x_t)) / d x_t`` through the denoiser.
- ``guide_step(x_prev, ctx)``: the sample after the step (value gradients, variance guidance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from diffplan.data.layout import TrajectoryLayout
    from diffplan.data.normalizer import Normalizer
    from diffplan.diffusion.constraints import Inpaint
    from diffplan.diffusion.schedules import NoiseSchedule, StepCoefficients
    from diffplan.planner import PlanContext

ModelFn = Callable[..., torch.Tensor]


@dataclass
class GuidanceContext:
    """What a guidance hook may read about the current step.

    Attributes:
        schedule: the noise schedule; ``coefficients`` gives alpha_bar, alpha_bar_prev, sigma of this step.
        t, t_prev: this step's levels, (B,) or (B, H) integer tensors (-1 = clean).
        eta: the step's stochasticity (0 = DDIM, 1 = DDPM).
        step_index, num_steps: position in the chain.
        timesteps: the chain's rows, (S,), (S, B) or (S, B, H) (schedules that weigh steps against the whole chain,
            e.g. TFG's; None in hand-built contexts).
        constraints: the inpainting constraints (None: nothing pinned); ``mask`` is their (B, H, C) bool mask.
        normalizer, layout: map packed normalized samples to environment units (None in bare ``denoise`` calls).
        goal: (B, goal_dim) the episode's goals in environment units, or None; ``to_env`` hands them to objectives
            as ``"goal"`` (``{"type": "reach", "target": "goal"}``).
        generator: the sampler's randomness (for hooks that draw noise).
        scratch: per-step storage for hooks that act at two hook points (cleared every step).
    """

    schedule: NoiseSchedule
    t: torch.Tensor
    t_prev: torch.Tensor
    eta: float
    step_index: int
    num_steps: int
    constraints: Inpaint | None = None
    normalizer: Normalizer | None = None
    layout: TrajectoryLayout | None = None
    generator: torch.Generator | None = None
    coefficients: StepCoefficients | None = None
    scratch: dict[str, Any] = field(default_factory=dict)
    timesteps: torch.Tensor | None = None
    goal: torch.Tensor | None = None

    def to_env(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Packed normalized (B, H, C) -> {"observations": (B, H, O), "actions": (B, H, A)} in environment units
        (differentiable, so objectives can be written in metres and m/s), plus ``"goal"`` (B, goal_dim) when the
        context has goals. ``x`` may stack k copies of the batch (k * B rows, copy-major, as TFG's perturbations)."""
        if self.normalizer is None or self.layout is None:
            raise ValueError("This sampling call has no normalizer/layout; sample through a Planner to use "
                             "objectives in environment units.")
        fields = self.layout.unpack(x)
        env = {name: self.normalizer.unnormalize(name, v) for name, v in fields.items() if v.shape[-1]}
        if self.goal is not None:
            copies, rest = divmod(x.shape[0], self.goal.shape[0])
            if rest:
                raise ValueError(f"The sample has {x.shape[0]} rows, not a multiple of the {self.goal.shape[0]} "
                                 f"goals; pass one goal per sampled row.")
            env["goal"] = self.goal.repeat(copies, 1).to(x.dtype)
        return env

    def from_env(self, fields: dict[str, torch.Tensor]) -> torch.Tensor:
        """The inverse of ``to_env``."""
        if self.normalizer is None or self.layout is None:
            raise ValueError("This sampling call has no normalizer/layout.")
        return self.layout.pack({name: self.normalizer.normalize(name, v) for name, v in fields.items()})

    @property
    def mask(self) -> torch.Tensor | None:
        return None if self.constraints is None else self.constraints.mask

    def apply_constraints(self, x: torch.Tensor) -> torch.Tensor:
        """Re-pin the constrained entries (between guide steps, as Diffuser does)."""
        return x if self.constraints is None else self.constraints.apply(x)

    @property
    def free(self) -> torch.Tensor | None:
        """(B, H, C) float, 1 where entries are free to move (guidance gradients should be masked with it)."""
        return None if self.mask is None else (~self.mask).to(torch.float32)


class Guidance(nn.Module):
    """Identity hooks; subclasses override the ones they need.

    Attributes:
        needs_grad: the loop must build x0 with a graph back to x_t (gradients through the denoiser).
        recurrence: repeat every step this many times, re-noising in between (TFG's N_recur; 1 = no repeat).
    """

    needs_grad: bool = False
    recurrence: int = 1

    def condition(self, context: PlanContext) -> PlanContext:
        return context

    def predict(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        return model_fn(x, t)

    def guide_x0(self, x0: torch.Tensor, x_t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        return x0

    def guide_step(self, x_prev: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        return x_prev


class Compose(Guidance):
    """Apply several guidances: predictions nest (first outermost), the other hooks run in order."""

    def __init__(self, *guidances: Guidance | None):
        super().__init__()
        self.guidances = nn.ModuleList([g for g in guidances if g is not None])
        self.needs_grad = any(g.needs_grad for g in self.guidances)
        self.recurrence = max([g.recurrence for g in self.guidances], default=1)

    def condition(self, context: PlanContext) -> PlanContext:
        for g in self.guidances:
            context = g.condition(context)
        return context

    def predict(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        for g in reversed(self.guidances):
            model_fn = _bind(g, model_fn, ctx)
        return model_fn(x, t)

    def guide_x0(self, x0: torch.Tensor, x_t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        for g in self.guidances:
            x0 = g.guide_x0(x0, x_t, ctx)
        return x0

    def guide_step(self, x_prev: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        for g in self.guidances:
            x_prev = g.guide_step(x_prev, ctx)
        return x_prev


def _bind(g: Guidance, model_fn: ModelFn, ctx: GuidanceContext) -> ModelFn:
    return lambda x, t: g.predict(model_fn, x, t, ctx)


def compose(*guidances: Guidance | None) -> Guidance | None:
    """One guidance from several (None entries dropped); None when there is none."""
    present = [g for g in guidances if g is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Compose(*present)
