"""Diffuser (Janner et al., ICML 2022): trajectory diffusion, start/goal inpainting, value guidance."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffplan.data.layout import TrajectoryLayout
from diffplan.data.normalizer import Normalizer
from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.objective import TrajectoryDiffusion
from diffplan.diffusion.sampler import denoise
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.guidance.base import Guidance
from diffplan.guidance.value import ValueGuidance
from diffplan.nn.traced import TracedCache
from diffplan.planner import Plan, Planner
from diffplan.tasks import Task


class Diffuser(TrajectoryDiffusion):
    """The Diffuser objective is the base objective: x0 prediction over [actions, observations]."""

    def to_planner(self, task: Task, stride: int, **planner_kwargs: Any) -> DiffuserPlanner:
        return DiffuserPlanner(task=task, normalizer=self.normalizer, denoiser=self.denoiser, value=self.value,
                               schedule=self.schedule.config, horizon=self.horizon, stride=stride, **planner_kwargs)


class DiffuserPlanner(Planner):
    """Sample a plan from the start state to the goal (both inpainted), optionally value-guided.

    Args:
        normalizer, denoiser, value: trained components (``value`` may be None).
        schedule: the training noise schedule (``NoiseSchedule.config``).
        horizon, stride: plan points and env steps between them.
        num_inference_steps: DDIM steps (the schedule's length gives DDPM's full chain with ``eta=1``).
        guidance_scale, n_guide_steps, t_stopgrad: value guidance (scale 0 = off).
        n_samples: plans sampled per observation; the one with the highest value is kept.
        jit: run a traced, frozen copy of the denoiser (one per input shape): faster on CPU at batch 1, same
            plans up to float rounding. The copy is made at the first plan, so set it on a trained planner.
        goal_dims: observation dims the goal pins at the last plan point (default: the task's, e.g. x, y).
    """

    components = ("normalizer", "denoiser", "value")

    def __init__(self, task: Task, normalizer: Normalizer, denoiser: nn.Module, schedule: dict[str, Any],
                 horizon: int, stride: int = 1, value: nn.Module | None = None, num_inference_steps: int = 10,
                 eta: float = 0.0, guidance_scale: float = 0.0, n_guide_steps: int = 2, t_stopgrad: int = 2,
                 n_samples: int = 1, jit: bool = False, goal_dims: list[int] | None = None, **planner_kwargs: Any):
        super().__init__(task, **planner_kwargs)
        self.save_config(locals())
        self.normalizer, self.denoiser, self.value = normalizer, denoiser, value
        self.schedule = NoiseSchedule.from_config(schedule)
        dims = normalizer.config["dims"]
        self.layout = TrajectoryLayout(obs_dim=dims["observations"], act_dim=dims["actions"])
        self.horizon, self.stride = horizon, stride
        self.num_inference_steps, self.eta = num_inference_steps, eta
        self.guidance_scale, self.n_guide_steps, self.t_stopgrad = guidance_scale, n_guide_steps, t_stopgrad
        self.n_samples, self.jit = n_samples, jit
        self.goal_dims = list(task.goal_dims if goal_dims is None else goal_dims)
        self._traced = TracedCache()
        self.timesteps = self.schedule.sampling_timesteps(num_inference_steps)
        if guidance_scale and value is None:
            raise ValueError("guidance_scale > 0 needs a value head; train with value_head=True.")
        self.eval()

    @property
    def obs_dim(self) -> int:
        return self.layout.obs_dim

    def guidance(self) -> Guidance | None:
        if self.guidance_scale and self.value is not None:
            return ValueGuidance(self.value, self.guidance_scale, self.n_guide_steps, self.t_stopgrad)
        return None

    def constraints(self, obs: torch.Tensor, goal: torch.Tensor | None, like: torch.Tensor) -> Inpaint:
        """Start state at plan point 0; goal position at the last plan point."""
        c = Inpaint.empty(like).pin(0, self.layout.channels("observations"),
                                    self.normalizer.normalize("observations", obs))
        if goal is not None:
            dims = self.goal_dims
            c.pin(-1, self.layout.channels("observations", dims), self.normalizer.normalize("observations", goal, dims))
        return c

    def model_fn(self) -> Any:
        """The denoiser as ``(x, t) -> prediction`` (traced and frozen if ``jit``)."""
        if not self.jit:
            return self.denoiser
        return lambda x, t: self._traced(self.denoiser, x, t)

    def plan(self, obs: Any, goal: Any = None, generator: torch.Generator | None = None) -> Plan:
        """Plan from ``obs`` (one or a batch; numpy, torch or dict) to ``goal`` (or the dict's goal)."""
        x_obs, g, _ = self.parse_observation(obs, goal)
        return self.sample(x_obs, g, generator)

    @torch.no_grad()
    def sample(self, x_obs: torch.Tensor, g: torch.Tensor | None, generator: torch.Generator | None = None) -> Plan:
        """Sample plans from checked tensors: start states (B, obs_dim), goals (B, len(goal_dims)) or None."""
        device = next(self.denoiser.parameters()).device
        b, n = x_obs.shape[0], self.n_samples
        x_obs = x_obs.to(device).repeat_interleave(n, 0)
        g = g.to(device).repeat_interleave(n, 0) if g is not None else None
        shape = (b * n, self.horizon, self.layout.transition_dim)
        noise = torch.randn(shape, generator=generator, device=device)
        x = denoise(self.model_fn(), self.schedule, noise, self.timesteps,
                    constraints=self.constraints(x_obs, g, noise), guidance=self.guidance(), eta=self.eta,
                    generator=generator)
        values = self.value(x, torch.zeros(b * n, dtype=torch.long, device=device)) if self.value is not None else None
        if n > 1 and values is not None:
            best = values.view(b, n).argmax(1) + torch.arange(b, device=device) * n
            x, values = x[best], values[best]
        elif n > 1:
            x = x[::n]
        fields = self.layout.unpack(x)
        return Plan(observations=self.normalizer.unnormalize("observations", fields["observations"]).cpu(),
                    actions=self.normalizer.unnormalize("actions", fields["actions"]).cpu(),
                    stride=self.stride, values=None if values is None else values.cpu())
