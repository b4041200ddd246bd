"""Value guidance (Diffuser): ascend a learned value of the noisy trajectory, scaled by the posterior variance."""

from __future__ import annotations

import torch
from torch import nn

from diffplan.guidance.base import Guidance, GuidanceContext


class ValueGuidance(Guidance):
    """Diffuser's ``n_step_guided_p_sample``, as a hook on the sample after each step.

    ``n_guide_steps`` times: ``x <- x + scale * var_t * grad_x V(x, t)``, then re-pin the constraints; skipped
    where ``t < t_stopgrad``. ``var_t`` is DDPM's one-step posterior variance at the sample's level t,
    ``beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)`` (the reference's ``scale_grad_by_std``; it multiplies
    by the variance, not the std). Guiding x_{t} after the step that made it is the same as guiding it before
    the next step's prediction, which is where the reference does it.

    Args:
        value: a value head ``(x (B, H, C), t (B,)) -> (B,)`` trained on noisy trajectories.
        scale: gradient step size (0 disables guidance exactly).
        scale_grad_by_variance: False gives the unscaled gradient step (an option some users prefer).
    """

    def __init__(self, value: nn.Module, scale: float = 0.1, n_guide_steps: int = 2, t_stopgrad: int = 2,
                 scale_grad_by_variance: bool = True):
        super().__init__()
        self.value, self.scale, self.n_guide_steps, self.t_stopgrad = value, scale, n_guide_steps, t_stopgrad
        self.scale_grad_by_variance = scale_grad_by_variance

    @staticmethod
    def posterior_variance(ctx: GuidanceContext, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """DDPM's posterior variance of q(x_{t-1} | x_t, x0) at level t, broadcast against ``like``."""
        a_t = ctx.schedule.alpha_bar(t, like)
        a_before = ctx.schedule.alpha_bar(t - 1, like)
        return (1 - a_t / a_before) * (1 - a_before) / (1 - a_t).clamp(min=1e-12)

    def guide_step(self, x: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        t = ctx.t_prev  # the level of the sample just made
        t_b = t if t.dim() == 1 else t.max(dim=-1).values
        if self.scale == 0 or int(t_b.max()) < self.t_stopgrad:
            return x
        active = (t_b >= self.t_stopgrad).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        weight = self.scale * active
        if self.scale_grad_by_variance:
            weight = weight * self.posterior_variance(ctx, t_b.clamp(min=0), x)
        for _ in range(self.n_guide_steps):
            with torch.enable_grad():
                x_ = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.value(x_, t_b.clamp(min=0)).sum(), x_)
            x = ctx.apply_constraints(x + weight * grad)
        return x
