"""Value guidance (Diffuser): ascend a learned value of the noisy trajectory after each denoising step."""

from __future__ import annotations

import torch
from torch import nn

from diffplan.guidance.base import Guidance


class ValueGuidance(Guidance):
    """``x <- x + scale * grad_x V(x, t)``, ``n_guide_steps`` times, skipped once ``t < t_stopgrad``.

    Args:
        value: a value head ``(x (B, H, C), t (B,)) -> (B,)`` trained on noisy trajectories.
        scale: gradient step size (0 disables guidance exactly).
    """

    def __init__(self, value: nn.Module, scale: float = 0.1, n_guide_steps: int = 2, t_stopgrad: int = 2):
        super().__init__()
        self.value, self.scale, self.n_guide_steps, self.t_stopgrad = value, scale, n_guide_steps, t_stopgrad

    def step(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_b = t.clamp(min=0).expand(x.shape[0]) if t.dim() == 0 else t.clamp(min=0)
        if self.scale == 0 or int(t_b.max()) < self.t_stopgrad:
            return x
        for _ in range(self.n_guide_steps):
            with torch.enable_grad():
                x_ = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.value(x_, t_b).sum(), x_)
            x = x + self.scale * grad
        return x
