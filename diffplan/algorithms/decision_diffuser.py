"""Decision Diffuser (Ajay et al., ICLR 2023): state-only diffusion, classifier-free guidance, inverse dynamics.

- The denoiser sees states only; actions come from an inverse-dynamics MLP ``a_t = f(s_t, s_{t+1})``.
- Conditions (the normalized return-to-go, or other named window features, see ``conditions.py``) enter as a vector of
  ``[values, present-flag]`` per condition; training drops each condition with ``condition_dropout`` (all zeros
  = "no condition"), so one network gives both the conditional and unconditional predictions.
- History conditioning (the paper's Alg. 1, absent from its released code): the first ``history`` plan points
  are the last observed states, inpainted; plan point ``history`` is the current state.
- Composition: ``pred(null) + sum_i scale_i (pred(c_i) - pred(null))`` over several conditions.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffplan.action_sources import InverseDynamicsActions
from diffplan.algorithms.conditions import check_conditions, condition_size, condition_value
from diffplan.data.layout import TrajectoryLayout
from diffplan.data.normalizer import Normalizer
from diffplan.diffusion.constraints import Inpaint
from diffplan.diffusion.objective import TrajectoryDiffusion, denoiser_arguments, sampler_settings
from diffplan.diffusion.sampler import denoise, randn
from diffplan.diffusion.schedules import NoiseSchedule
from diffplan.guidance.base import Guidance
from diffplan.guidance.cfg import ClassifierFreeGuidance
from diffplan.nn.inverse_dynamics import InverseDynamics
from diffplan.nn.traced import TracedCache
from diffplan.planner import DenoisingChain, Plan, PlanContext, Planner, steer
from diffplan.tasks import Task


class DecisionDiffuser(TrajectoryDiffusion):
    """The DD objective: epsilon prediction over states with condition dropout, plus inverse dynamics.

    Args:
        conditions: condition names (``diffplan.algorithms.conditions``), e.g. ``["returns", "obs_mean:5"]``.
        history: past states inpainted before the current one (K in the paper; 0 = the released code).
        condition_dropout: probability of dropping each condition in training (0.25 in the paper).
        inverse_dynamics_kwargs: ``InverseDynamics`` size (hidden, depth).
        Other arguments: as ``TrajectoryDiffusion`` (denoiser class and size, schedule, optimizer).
    """

    def __init__(self, normalizer: Normalizer, horizon: int, conditions: list[str] | None = None, history: int = 0,
                 condition_dropout: float = 0.25, inverse_dynamics_kwargs: dict[str, Any] | None = None,
                 denoiser_class: str = "diffplan.nn.unet.TemporalUnet", denoiser_kwargs: dict[str, Any] | None = None,
                 prediction_type: str = "epsilon", goal_dims: tuple[int, ...] = (), **kwargs: Any):
        conditions = list(conditions or ["returns"])
        cond_dim = check_conditions(conditions, normalizer)
        if not 0 <= history < horizon - 1:
            raise ValueError(f"history={history} must leave at least 2 plan points in horizon={horizon}.")
        super().__init__(normalizer, horizon, denoiser_class=denoiser_class,
                         denoiser_kwargs={**(denoiser_kwargs or {}), "cond_dim": cond_dim},
                         prediction_type=prediction_type, value_head=False, diffuse_actions=False, **kwargs)
        self.conditions, self.history, self.condition_dropout = conditions, history, condition_dropout
        dims = normalizer.config["dims"]
        self.inverse_dynamics = InverseDynamics(dims["observations"], dims["actions"],
                                                **(inverse_dynamics_kwargs or {}))

    def to_planner(self, task: Task, stride: int, **planner_kwargs: Any) -> DecisionDiffuserPlanner:
        if stride != 1:
            raise ValueError(f"Decision Diffuser needs consecutive states (stride 1) for its inverse dynamics, "
                             f"got stride {stride}.")
        return DecisionDiffuserPlanner(task=task, normalizer=self.normalizer, denoiser=self.denoiser,
                                       inverse_dynamics=self.inverse_dynamics, schedule=self.schedule.config,
                                       horizon=self.horizon, history=self.history, conditions=self.conditions,
                                       **planner_kwargs)

    @classmethod
    def planner_arguments(cls, planner: DecisionDiffuserPlanner) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(planner, DecisionDiffuserPlanner):
            raise TypeError(f"DecisionDiffuser.from_planner needs a DecisionDiffuserPlanner folder, got a "
                            f"{type(planner).__name__}.")
        arguments = {"normalizer": planner.normalizer, "horizon": planner.horizon, "conditions": planner.conditions,
                     "history": planner.history, "inverse_dynamics_kwargs": {
                         k: v for k, v in planner.inverse_dynamics.config.items() if k not in ("obs_dim", "act_dim")},
                     **denoiser_arguments(planner, drop=("cond_dim",))}
        settings = sampler_settings(planner, ("schedule", "horizon", "history", "conditions"))
        return arguments, {**settings, "stride": 1}

    def training_constraints(self, x0: torch.Tensor) -> Inpaint:
        """The history and the current state (plan points 0..history) are known."""
        mask = torch.zeros_like(x0, dtype=torch.bool)
        mask[:, : self.history + 1] = True
        return Inpaint(mask, x0)

    def condition(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for name in self.conditions:
            value = condition_value(name, batch, self.normalizer, self.history)
            present = torch.ones(value.shape[0], 1, device=value.device)
            if self.training and self.condition_dropout > 0:
                present = present * (torch.rand_like(present) >= self.condition_dropout)
            parts.append(torch.cat([value * present, present], dim=-1))
        return torch.cat(parts, dim=-1)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = super().losses(batch)
        obs = self.normalizer.normalize("observations", batch["observations"])
        act = self.normalizer.normalize("actions", batch["actions"])
        # pair 0 -> 1 is a real transition in every window (windows start at non-terminal states)
        out["inverse_dynamics"] = F.mse_loss(self.inverse_dynamics(obs[:, 0], obs[:, 1]), act[:, 0])
        out["loss"] = out["loss"] + out["inverse_dynamics"]
        return out


class DecisionDiffuserPlanner(Planner):
    """Plan states from the recent history under guided conditions; act by inverse dynamics.

    Args:
        normalizer, denoiser, inverse_dynamics: trained components.
        schedule, horizon, history, conditions: from training.
        targets: condition name -> target in normalized units; for ``returns`` the range [-1, 1] spans the
            dataset's returns-to-go (1 = the best in the data). Default: ``{"returns": 0.8}`` (0.9 of the range,
            the released code's ``test_ret``) for a return-conditioned model, none (unconditional) otherwise.
        guidance_scale: CFG scale s (one for all conditions, or one per condition name).
        compose: True gives each condition its own guidance term (composition); False guides with all of them
            present in one term.
        num_inference_steps, eta: DDIM steps and stochasticity.
        warm_start: in ``act``, replans skip the first ``warm_start`` DDIM steps: the chain starts from the
            previous plan, shifted by the env steps since it was made and noised to that step's level (0 = off).
        jit: run a traced, frozen copy of the denoiser (faster on CPU at batch 1; same plans up to rounding).
        Actions: ``a = f(s_now, s_plan[k + 1])`` with the *observed* state, also between replans.
    """

    components = ("normalizer", "denoiser", "inverse_dynamics")

    def __init__(self, task: Task, normalizer: Normalizer, denoiser: nn.Module, inverse_dynamics: nn.Module,
                 schedule: dict[str, Any], horizon: int, history: int = 0, conditions: list[str] | None = None,
                 targets: dict[str, float | list[float]] | None = None, guidance_scale: float | dict[str, float] = 1.2,
                 compose: bool = False, num_inference_steps: int = 10, eta: float = 0.0, warm_start: int = 0,
                 jit: bool = False, **planner_kwargs: Any):
        planner_kwargs.setdefault("replan_every", 1)
        super().__init__(task, **planner_kwargs)
        self.save_config(locals())
        self.normalizer, self.denoiser, self.inverse_dynamics = normalizer, denoiser, inverse_dynamics
        self.schedule = NoiseSchedule.from_config(schedule)
        dims = normalizer.config["dims"]
        self.layout = TrajectoryLayout(obs_dim=dims["observations"], act_dim=0)
        self.horizon, self.history = horizon, history
        self.conditions = list(conditions or ["returns"])
        check_conditions(self.conditions, normalizer)
        if targets is None:
            targets = {"returns": 0.8} if "returns" in self.conditions else {}
        targets = dict(targets)
        unknown = set(targets) - set(self.conditions)
        if unknown:
            raise ValueError(f"Targets for {sorted(unknown)} but the model was trained with conditions "
                             f"{self.conditions}.")
        self.targets = {}
        for name, value in targets.items():
            v = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
            if v.numel() != condition_size(name):
                raise ValueError(f"Target {name!r} must have {condition_size(name)} value(s), got shape "
                                 f"{tuple(torch.as_tensor(value).shape)}.")
            self.targets[name] = v
        self.guidance_scale = guidance_scale
        self.compose = compose
        self.num_inference_steps, self.eta = num_inference_steps, eta
        self.schedule.sampling_timesteps(num_inference_steps)  # checks the step count now
        if not 0 <= warm_start < num_inference_steps:
            raise ValueError(f"warm_start must be in [0, num_inference_steps={num_inference_steps}), got {warm_start}.")
        self.warm_start, self.jit = warm_start, jit
        self._traced = TracedCache()
        self.history_length = history  # act keeps this many past observations per env
        self.eval()

    @property
    def guidance_scale(self) -> float | dict[str, float]:
        """The CFG scale(s) as set; setting it after loading changes the plans and what ``save_pretrained`` keeps."""
        return self._guidance_scale

    @guidance_scale.setter
    def guidance_scale(self, value: float | dict[str, float]) -> None:
        scales = value if isinstance(value, dict) else {n: value for n in self.targets}
        unknown = set(scales) - set(self.targets)
        if unknown:
            raise ValueError(f"guidance_scale names {sorted(unknown)}, which have no target; "
                             f"targets: {sorted(self.targets)}.")
        self.scales = {n: float(scales.get(n, 0.0)) for n in self.targets}
        self._guidance_scale = dict(value) if isinstance(value, dict) else float(value)

    @property
    def timesteps(self) -> torch.Tensor:
        """(S,) DDIM timesteps of the current ``num_inference_steps`` (a setting that may change after loading)."""
        return self.schedule.sampling_timesteps(self.num_inference_steps)

    @property
    def obs_dim(self) -> int:
        return self.layout.obs_dim

    # -- conditions -----------------------------------------------------------------------------------------
    def condition_vector(self, present: list[str], b: int) -> torch.Tensor:
        """(b, cond_dim): the targets of ``present`` conditions, the others dropped."""
        parts = []
        for name in self.conditions:
            dim = condition_size(name)
            on = name in present and name in self.targets
            value = self.targets[name].to(self.device) if on else torch.zeros(dim, device=self.device)
            parts.append(torch.cat([value, torch.full((1,), 1.0 if on else 0.0, device=self.device)]))
        return torch.cat(parts).expand(b, -1).clone()

    def condition_guidance(self, b: int) -> ClassifierFreeGuidance:
        null = self.condition_vector([], b)
        if self.compose:
            names = [n for n in self.targets if self.scales[n]]
            return ClassifierFreeGuidance(null, [self.condition_vector([n], b) for n in names],
                                          [self.scales[n] for n in names])
        scale = max(self.scales.values(), default=0.0)
        return ClassifierFreeGuidance(null, [self.condition_vector(list(self.targets), b)], [scale])

    # -- planning -------------------------------------------------------------------------------------------
    def constraints(self, context: PlanContext, like: torch.Tensor) -> Inpaint:
        """Plan points 0..history hold the observed past and the current state; unobserved past points (an
        episode's first steps) stay free, so the model fills them in."""
        now, b = self.history, context.batch_size
        known = context.obs[:, None]
        observed = torch.ones(b, 1, dtype=torch.bool, device=like.device)
        if now and context.history is not None:
            known = torch.cat([context.history[:, -now:], known], dim=1)
            mask = context.history_mask if context.history_mask is not None else torch.ones(known.shape[:2])
            observed = torch.cat([mask[:, -now:].to(like.device).bool(), observed], dim=1)
        n = known.shape[1]
        c = Inpaint.empty(like)
        c.mask[:, now - n + 1: now + 1] = observed[..., None].expand(-1, -1, like.shape[-1])
        c.values[:, now - n + 1: now + 1] = self.normalizer.normalize("observations", known)
        return c

    def chain(self, context: PlanContext, like: torch.Tensor) -> DenoisingChain:
        """The planner's own classifier-free guidance is part of the prediction (it is how the planner samples); its
        condition vectors follow the batch of each call."""
        def prediction(denoiser: nn.Module) -> Any:
            return lambda x, t: self.condition_guidance(x.shape[0]).predict(denoiser, x, t, None)

        return DenoisingChain(self.constraints(context, like), prediction, self.normalizer.is_bounded("observations"))

    def warm_start_from(self, context: PlanContext, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(start sample, timesteps): the previous plan shifted by each row's env steps since it was made and
        noised to the level of DDIM step ``warm_start``, or pure noise over all steps."""
        previous = context.previous.normalized if context.previous is not None else None
        if not self.warm_start or previous is None or previous.shape != noise.shape:
            return noise, self.timesteps
        shift = context.since_previous.to(noise.device).clamp(max=self.horizon - 1)
        index = (torch.arange(self.horizon, device=noise.device)[None] + shift[:, None]).clamp(max=self.horizon - 1)
        warm = previous.gather(1, index[..., None].expand_as(previous))
        timesteps = self.timesteps[self.warm_start:]
        return self.schedule.add_noise(warm, noise, timesteps[0]), timesteps

    @torch.no_grad()
    def sample(self, context: PlanContext, n: int = 1, guidance: Guidance | None = None,
               generator: torch.Generator | None = None) -> Plan:
        """States from the current one (and its history) on; warm-started in ``act`` (see ``warm_start``)."""
        device = self.device
        context = context.to(device)
        context = context.repeat_rows(n)  # n candidates per row, each warm-started from the row's previous plan
        b = context.batch_size
        noise = randn((b, self.horizon, self.obs_dim), generator, device)
        x_start, timesteps = self.warm_start_from(context, noise)
        guidance = steer(self.condition_guidance(b), guidance)
        # the trace also gives gradient guidance its input gradients, faster than the eager denoiser
        model_fn = self._traced.bind(self.denoiser) if self.jit else self.denoiser
        states = denoise(model_fn, self.schedule, x_start, timesteps, constraints=self.constraints(context, x_start),
                         guidance=guidance, eta=self.eta, clip_denoised=self.normalizer.is_bounded("observations"),
                         generator=generator, context={"normalizer": self.normalizer, "layout": self.layout})
        future = states[:, self.history:]
        actions = self.inverse_dynamics(future[:, :-1], future[:, 1:])
        return Plan(observations=self.normalizer.unnormalize("observations", future),
                    actions=self.normalizer.unnormalize("actions", actions), stride=1, normalized=states)

    def action_from_plan(self, plan: Plan, obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``f(observed s_t, planned s_{t+1})``: the observed state corrects for drift between replans."""
        return InverseDynamicsActions(self.inverse_dynamics, self.normalizer)(plan, obs, k)
