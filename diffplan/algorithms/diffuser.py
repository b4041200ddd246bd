"""Diffuser (Janner et al., ICML 2022): trajectory diffusion, start/goal inpainting, value guidance."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from diffplan.data.layout import TrajectoryLayout
from diffplan.data.normalizer import Normalizer
from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.objective import TrajectoryDiffusion, denoiser_arguments, sampler_settings
from diffplan.diffusion.sampler import denoise, randn
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.guidance.base import Guidance
from diffplan.guidance.value import ValueGuidance
from diffplan.nn.traced import TracedCache
from diffplan.planner import DenoisingChain, Plan, PlanContext, Planner, steer
from diffplan.tasks import Task


class Diffuser(TrajectoryDiffusion):
    """The Diffuser objective is the base objective: x0 prediction over [actions, observations].

    Args:
        goal_pinning: pin the goal dims (``goal_dims``, linked from the task) of each window's last point to their
            clean values in training, and the episode's goal there at sampling time. False trains a planner with
            no goal input: it plans from the start state alone, and goals reach it only through test-time
            guidance (``{"type": "reach", "target": "goal"}``).
        Other arguments: as ``TrajectoryDiffusion``.
    """

    def __init__(self, normalizer: Normalizer, horizon: int, goal_pinning: bool = True, goal_dims: tuple[int, ...] = (),
                 **kwargs: Any):
        super().__init__(normalizer, horizon, goal_dims=goal_dims if goal_pinning else (), **kwargs)
        self.goal_pinning = goal_pinning

    def to_planner(self, task: Task, stride: int, **planner_kwargs: Any) -> DiffuserPlanner:
        if not self.goal_pinning:
            planner_kwargs.setdefault("goal_dims", [])
        return DiffuserPlanner(task=task, normalizer=self.normalizer, denoiser=self.denoiser, value=self.value,
                               schedule=self.schedule.config, horizon=self.horizon, stride=stride, **planner_kwargs)

    @classmethod
    def planner_arguments(cls, planner: DiffuserPlanner) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(planner, DiffuserPlanner):
            raise TypeError(f"Diffuser.from_planner needs a DiffuserPlanner folder, got a {type(planner).__name__}.")
        arguments = {"normalizer": planner.normalizer, "horizon": planner.horizon, "value_head": planner.value is not None,
                     "goal_pinning": bool(planner.goal_dims), "goal_dims": tuple(planner.goal_dims), **denoiser_arguments(planner)}
        return arguments, sampler_settings(planner, ("schedule", "horizon"))


class DiffuserPlanner(Planner):
    """Sample a plan from the start state to the goal (both inpainted), optionally value-guided.

    Args:
        normalizer, denoiser, value: trained components (``value`` may be None).
        schedule: the training noise schedule (``NoiseSchedule.config``).
        horizon, stride: plan points and env steps between them.
        num_inference_steps: DDIM steps (the schedule's length gives DDPM's full chain with ``eta=1``).
        guidance_scale, n_guide_steps, t_stopgrad: value guidance (scale 0 = off; see ``ValueGuidance``).
        n_samples: plans sampled per observation; the one with the highest value is kept.
        jit: run a traced, frozen copy of the denoiser (one per input shape): faster on CPU at batch 1, same
            plans up to float rounding. The copy is made at the first plan, so set it on a trained planner.
        goal_dims: observation dims the goal pins at the last plan point (default: the task's, e.g. x, y; ``[]``
            for a planner trained without goal pinning, which leaves the goal to guidance).
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
        self.schedule.sampling_timesteps(num_inference_steps)  # checks the step count now
        if guidance_scale and value is None:
            raise ValueError("guidance_scale > 0 needs a value head; train with value_head=True.")
        self.eval()

    @property
    def timesteps(self) -> torch.Tensor:
        """(S,) DDIM timesteps of the current ``num_inference_steps`` (a setting that may change after loading)."""
        return self.schedule.sampling_timesteps(self.num_inference_steps)

    @property
    def obs_dim(self) -> int:
        return self.layout.obs_dim

    def value_guidance(self) -> Guidance | None:
        """The planner's own guidance: Diffuser's value gradient, when ``guidance_scale`` > 0."""
        if self.guidance_scale and self.value is not None:
            return ValueGuidance(self.value, self.guidance_scale, self.n_guide_steps, self.t_stopgrad)
        return None

    def constraints(self, obs: torch.Tensor, goal: torch.Tensor | None, like: torch.Tensor) -> Inpaint:
        """Start state at plan point 0; goal position at the last plan point."""
        c = Inpaint.empty(like).pin(0, self.layout.channels("observations"),
                                    self.normalizer.normalize("observations", obs))
        if goal is not None and self.goal_dims:
            dims = self.goal_dims
            c.pin(-1, self.layout.channels("observations", dims), self.normalizer.normalize("observations", goal, dims))
        return c

    def chain(self, context: PlanContext, like: torch.Tensor) -> DenoisingChain:
        return DenoisingChain(self.constraints(context.obs, context.goal, like), lambda denoiser: denoiser,
                              self.normalizer.is_bounded("observations", "actions"))

    def model_fn(self) -> Any:
        """The denoiser as ``(x, t) -> prediction`` (traced and frozen if ``jit``; gradients to ``x`` still flow)."""
        return self._traced.bind(self.denoiser) if self.jit else self.denoiser

    @torch.no_grad()
    def sample(self, context: PlanContext, n: int = 1, guidance: Guidance | None = None,
               generator: torch.Generator | None = None) -> Plan:
        """``n`` plans per row, each the highest-valued of ``n_samples`` candidates (see ``Planner.sample``)."""
        device = self.device
        context = context.to(device)
        per_row = n * self.n_samples
        b = context.batch_size * per_row
        x_obs = context.obs.repeat_interleave(per_row, 0)
        g = context.goal.repeat_interleave(per_row, 0) if context.goal is not None else None
        noise = randn((b, self.horizon, self.layout.transition_dim), generator, device)
        guidance = steer(self.value_guidance(), guidance)
        x = denoise(self.model_fn(), self.schedule, noise, self.timesteps,
                    constraints=self.constraints(x_obs, g, noise), guidance=guidance, eta=self.eta,
                    clip_denoised=self.normalizer.is_bounded("observations", "actions"), generator=generator,
                    context={"normalizer": self.normalizer, "layout": self.layout, "goal": g})
        values = self.value(x, torch.zeros(b, dtype=torch.long, device=device)) if self.value is not None else None
        if self.n_samples > 1:
            groups = torch.arange(b // self.n_samples, device=device) * self.n_samples
            best = groups + (values.view(-1, self.n_samples).argmax(1) if values is not None else 0)
            x, values = x[best], None if values is None else values[best]
        fields = self.layout.unpack(x)
        return Plan(observations=self.normalizer.unnormalize("observations", fields["observations"]),
                    actions=self.normalizer.unnormalize("actions", fields["actions"]),
                    stride=self.stride, values=values, normalized=x)
