"""Planner: what users call inside control loops. ``plan`` / ``act`` / ``predict`` / ``reset``, save and load.

Every planner implements one sampling API, ``sample(context, n, guidance, generator) -> Plan``; the base class turns
user input into a :class:`PlanContext`, keeps the per-env state of a control loop (current plan, steps since it,
recent observations) and picks actions with an action source (``diffplan.action_sources``).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import diffplan
from diffplan.action_sources import make_action_source
from diffplan.configurable import Configurable, resolve_saved_class
from diffplan.guidance.base import Guidance, compose
from diffplan.io import PlannerFolderError, atomic_folder, load_module, read_json, save_module, write_json
from diffplan.tasks import Task, load_task


@dataclass
class Plan:
    """A batch of plans in environment units, on the planner's device.

    Attributes:
        observations: (B, H, obs_dim) planned states; plan point j is ``j * stride`` env steps ahead.
        actions: (B, H, act_dim) planned actions.
        stride: env steps between plan points.
        values: (B,) predicted value of each plan, when the planner has a value head.
        subgoals: (B, K, obs_dim) the high-level plan of hierarchical planners.
        normalized: (B, H', C) the sample in normalized units (warm starts; H' may include history points).
    """

    observations: torch.Tensor
    actions: torch.Tensor
    stride: int = 1
    values: torch.Tensor | None = None
    subgoals: torch.Tensor | None = None
    normalized: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.observations.shape[0]

    def _map(self, fn: Any) -> Plan:
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})

    def rows(self, index: torch.Tensor) -> Plan:
        """The plans of some rows (index: (B,) bool mask or integer indices)."""
        return self._map(lambda v: v[index.to(v.device)])

    def with_rows(self, index: torch.Tensor, other: Plan) -> Plan:
        """A copy whose rows ``index`` (bool mask) are replaced by ``other``'s (same shapes otherwise)."""
        def put(name: str, v: torch.Tensor) -> torch.Tensor:
            new = getattr(other, name)
            if new is None or new.shape[1:] != v.shape[1:]:
                raise ValueError(f"Cannot splice plans with different {name} shapes.")
            out = v.clone()
            out[index.to(v.device)] = new.to(v.device, v.dtype)
            return out

        return replace(self, **{f.name: put(f.name, getattr(self, f.name)) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})


@dataclass
class DenoisingChain:
    """What one of a planner's sampling chains is made of, for code that runs the chain itself (fine-tuning).

    Attributes:
        constraints: the inpainting of a (B, H, C) sample for the context it was built for.
        prediction: ``denoiser -> (x_t, t) -> prediction``: a denoiser (the planner's own or a copy) called as the
            planner calls it, with its prediction-level guidance (e.g. classifier-free) included.
        clip_denoised: whether the sampler clamps predicted x0 to [-1, 1].
    """

    constraints: Any
    prediction: Any
    clip_denoised: bool


@dataclass
class PlanContext:
    """What a plan is conditioned on, as checked tensors in environment units.

    Attributes:
        obs: (B, obs_dim) current observations.
        goal: (B, goal_dim) goals, or None.
        final_goal: (B, goal_dim) the task's own goals when ``goal`` holds waypoints toward them (set by the
            ``waypoints`` guidance), else None: ``goal`` is final.
        history: (B, K, obs_dim) past observations, oldest first, or None.
        history_mask: (B, K) bool, which history entries were observed (an episode's first steps have fewer).
        history_actions: (B, K, act_dim) the actions taken at the history's observations, for planners that set
            ``history_actions`` (filled by ``act``), or None.
        previous: the last plan of these rows (for warm starts), or None.
        since_previous: (B,) env steps since ``previous`` was made.
    """

    obs: torch.Tensor
    goal: torch.Tensor | None = None
    final_goal: torch.Tensor | None = None
    history: torch.Tensor | None = None
    history_mask: torch.Tensor | None = None
    history_actions: torch.Tensor | None = None
    previous: Plan | None = None
    since_previous: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.obs.shape[0]

    def _map(self, fn: Any) -> PlanContext:
        """``fn`` applied to every tensor field and to the previous plan's tensors."""
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)},
                       previous=None if self.previous is None else self.previous._map(fn))

    def to(self, device: torch.device) -> PlanContext:
        return self._map(lambda v: v.to(device))

    def repeat_rows(self, n: int) -> PlanContext:
        """Each row repeated ``n`` times in place (row b becomes rows b*n .. b*n + n - 1), every field and the
        previous plan with it: the context of ``n`` candidates per row."""
        return self if n == 1 else self._map(lambda v: v.repeat_interleave(n, 0))


class Planner(nn.Module, Configurable):
    """Base class: observation checks, the act/replan loop, the action source and the folder format.

    Subclasses implement ``sample(context, n, guidance, generator)`` and ``obs_dim``, list their ``nn.Module``
    arguments in ``components``, and set ``history_length`` if they condition on past observations (and
    ``history_actions`` if also on the actions taken there); every other ``__init__`` argument is JSON and lands in
    ``planner.json``.

    Args:
        task: the task card the planner was trained for (stored in the folder).
        replan_every: env steps between plans in ``act``; 0 = plan once per episode (open loop).
        action_source: ``"diffused"`` executes the planned actions; ``"tracker"`` drives a PD controller along the
            planned positions (``tracker_kp``, ``tracker_kd``, ``tracker_lookahead``; see ``action_sources``).
        seed: seeds the generator that ``act`` uses, so whole episodes reproduce.
        action_ensemble: temporal ensembling of diffused actions (ACT, Zhao et al. 2023): each plan's actions for its
            next ``action_ensemble`` env steps are kept, and ``act`` executes the mean of the ones kept for the
            current step (with ``replan_every=1``, the last ``action_ensemble`` plans'). Averaging independent samples
            damps the sampled action noise of the data that replanning every step otherwise executes; 1 = off.

    Attributes:
        guidance: a :class:`~diffplan.guidance.base.Guidance` that ``act`` (and ``plan`` when given none) steers
            with, on top of the planner's own; None by default.
    """

    components: tuple[str, ...] = ()
    history_length: int = 0
    history_actions: bool = False

    def __init__(self, task: Task, replan_every: int = 0, action_source: str = "diffused", tracker_kp: float = 10.0,
                 tracker_kd: float = 1.0, tracker_lookahead: float = 0.0, seed: int = 0, action_ensemble: int = 1):
        super().__init__()
        if not isinstance(action_ensemble, int) or isinstance(action_ensemble, bool) or action_ensemble < 1:
            raise ValueError(f"action_ensemble must be an integer >= 1 (1: off), got {action_ensemble!r}.")
        self.action_ensemble = action_ensemble
        self.task = task
        self.replan_every = int(replan_every)
        self.tracker_kp, self.tracker_kd, self.tracker_lookahead = tracker_kp, tracker_kd, tracker_lookahead
        self.action_source = action_source
        self.seed = seed
        self.guidance: Guidance | None = None
        self._goals_checked: torch.Tensor | None = None  # the last goals found inside the maze
        Planner.reset(self)

    @property
    def action_source(self) -> str:
        return self._action_source_name

    @action_source.setter
    def action_source(self, name: str) -> None:
        self._actions = make_action_source(name, self.task, self.tracker_kp, self.tracker_kd, self.tracker_lookahead)
        self._action_source_name = name

    def save_config(self, local_vars: dict[str, Any]) -> None:
        """Subclass arguments plus the base control-loop settings (with their defaults) form the config."""
        super().save_config({k: v for k, v in local_vars.items() if k not in (*self.components, "task")})
        self.config.update(replan_every=self.replan_every, action_source=self.action_source,
                           tracker_kp=self.tracker_kp, tracker_kd=self.tracker_kd,
                           tracker_lookahead=self.tracker_lookahead, seed=self.seed,
                           action_ensemble=self.action_ensemble)

    def __repr__(self) -> str:
        """One line: the class, the task and the settings that differ from their defaults (as scikit-learn)."""
        defaults = {}
        for cls in reversed(type(self).__mro__):
            if issubclass(cls, Planner):
                defaults.update({name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                                 if p.default is not inspect.Parameter.empty})
        settings = "".join(f", {k}={v!r}" for k, v in self.config.items()
                           if k != "schedule" and not (k in defaults and defaults[k] == v))
        return f"{type(self).__name__}(task={self.task.name!r}{settings})"

    @property
    def device(self) -> torch.device:
        """Where the planner's weights live; plans, noise and generators follow it."""
        device = self.__dict__.get("_device")
        if device is None:  # looked up once per move: walking the modules costs ~50 us, more than a tracker step
            tensor = next(itertools.chain(self.parameters(), self.buffers()), None)
            device = self.__dict__["_device"] = tensor.device if tensor is not None else torch.device("cpu")
        return device

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Planner:
        self.__dict__.pop("_device", None)  # .to() / .cuda() / .half() may move the weights
        return super()._apply(fn, *args, **kwargs)

    # -- to override ----------------------------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        raise NotImplementedError

    def sample(self, context: PlanContext, n: int = 1, guidance: Guidance | None = None,
               generator: torch.Generator | None = None) -> Plan:
        """``n`` plans per context row (rows repeated in place: output row ``i * n + j``), steered by ``guidance``
        on top of the planner's own."""
        raise NotImplementedError

    def chain(self, context: PlanContext, like: torch.Tensor) -> DenoisingChain:
        """The constraints and prediction function of a chain for ``context`` (rows of ``like`` (B, H, C)); planners
        that are one denoising chain define it (fine-tuning needs it)."""
        raise NotImplementedError(f"{type(self).__name__} is not one denoising chain; fine-tune one of its levels.")

    # -- planning -------------------------------------------------------------------------------------------
    def plan(self, obs: Any, goal: Any = None, generator: torch.Generator | None = None,
             guidance: Guidance | dict | None = None, history: Any = None) -> Plan:
        """Plan from ``obs`` (one or a batch; numpy, torch or a gymnasium dict) to ``goal`` (or the dict's goal).

        Args:
            generator: the randomness of this plan (None: torch's global generator).
            guidance: steer this plan, a Guidance object or its JSON spec (default: ``self.guidance``).
            history: (B, K, obs_dim) past observations, oldest first, for planners that condition on them.
        """
        x, g, _ = self.parse_observation(obs, goal)
        context = PlanContext(obs=x, goal=g)
        if history is not None:
            if not self.history_length:
                raise ValueError(f"{type(self).__name__} does not condition on past observations; drop `history`.")
            h = self._as_tensor(history, "history")
            if h.dim() != 3 or h.shape[0] != x.shape[0] or h.shape[2] != self.obs_dim:
                raise ValueError(f"history must have shape (B, K, {self.obs_dim}) with B = {x.shape[0]}, "
                                 f"got {tuple(h.shape)}.")
            context.history = h[:, -self.history_length:]
            context.history_mask = torch.ones(context.history.shape[:2], dtype=torch.bool)
        return self._checked(self.sample_steered(context.to(self.device), guidance, generator), context)

    def sample_steered(self, context: PlanContext, guidance: Guidance | dict | None = None,
                       generator: torch.Generator | None = None) -> Plan:
        """One plan per row, steered by ``guidance`` (default ``self.guidance``): its ``condition`` hook may change the
        context first (e.g. ``waypoints``); a sample-and-select in it (``diffplan.guidance.select.Select``) draws its
        candidates in one ``sample`` call and keeps the best."""
        from diffplan.guidance.select import split_select

        steering = self._steering(guidance)
        if steering is not None:
            context = steering.condition(context)
        select, rest = split_select(steering)
        if select is None:
            return self.sample(context, 1, rest, generator)
        return select.choose(self, context, generator, rest)

    def _steering(self, guidance: Guidance | dict | None) -> Guidance | None:
        """The guidance to sample with: ``guidance`` or else ``self.guidance``, either a Guidance or its JSON spec."""
        guidance = guidance if guidance is not None else self.guidance
        if guidance is None:
            return None
        from diffplan.guidance.spec import guidance_from_spec

        return guidance_from_spec(guidance, self)

    def _checked(self, plan: Plan, context: PlanContext) -> Plan:
        """Fail clearly on non-finite plans, naming the rows (an extreme observation or corrupt weights)."""
        bad = ~(torch.isfinite(plan.observations).flatten(1).all(1) & torch.isfinite(plan.actions).flatten(1).all(1))
        if bad.any():
            rows = bad.nonzero().flatten().tolist()
            extreme = context.obs.abs().amax(1)[bad.to(context.obs.device)].tolist()
            raise ValueError(f"The plan of batch row(s) {rows[:10]}{' ...' if len(rows) > 10 else ''} is NaN or "
                             f"inf; their observations reach |x| = {[f'{v:.3g}' for v in extreme[:10]]}. Check the "
                             f"observations are in the task's units, and the planner's weights.")
        return plan

    # -- inputs ---------------------------------------------------------------------------------------------
    def parse_observation(self, obs: Any, goal: Any = None) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        """Accept one observation or a batch, numpy or torch, or a gymnasium dict observation.

        Returns:
            obs (B, obs_dim) float32, goal (B, goal_dim) float32 or None, and whether the input was batched.
        """
        if isinstance(obs, dict):
            if goal is None and self.task.goal_key and self.task.goal_key in obs:
                goal = obs[self.task.goal_key]
            if self.task.observation_key not in obs:
                raise ValueError(f"Dict observation has keys {sorted(obs)}, expected {self.task.observation_key!r}.")
            obs = obs[self.task.observation_key]
        x = self._as_tensor(obs, "observation")
        batched = x.dim() == 2
        if x.dim() not in (1, 2) or x.shape[-1] != self.obs_dim:
            raise ValueError(f"Observation must have shape ({self.obs_dim},) or (B, {self.obs_dim}) for task "
                             f"{self.task.name!r}, got {tuple(x.shape)}.")
        x = x.reshape(-1, self.obs_dim)
        if goal is not None:
            g = self._as_tensor(goal, "goal").reshape(-1, len(self.task.goal_dims)) if self.task.goal_dims else None
            if g is None or g.shape[0] not in (1, x.shape[0]):
                raise ValueError(f"Goal must have shape ({len(self.task.goal_dims)},) or (B, "
                                 f"{len(self.task.goal_dims)}) matching the observations, got {tuple(np.shape(goal))}.")
            if not self._same_goals(g):
                self.task.check_goals(g.cpu().numpy())
                self._goals_checked = g.clone()
            goal = g.expand(x.shape[0], -1)
        return x, goal, batched

    def _same_goals(self, g: torch.Tensor) -> bool:
        """Whether ``g`` equals the goals checked last (a control loop passes the same goal at every step)."""
        checked = self._goals_checked
        return checked is not None and checked.shape == g.shape and bool(torch.equal(checked, g))

    @staticmethod
    def _as_tensor(value: Any, what: str) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            t = value
        else:
            arr = np.asarray(value)
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(f"The {what} must be numeric (float), got dtype {arr.dtype}.")
            t = torch.from_numpy(arr.astype(np.float32, copy=False))
        if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"The {what} must be numeric (float), got dtype {t.dtype}.")
        t = t.float()
        bad = ~torch.isfinite(t)
        if bad.any():
            where = bad.reshape(bad.shape[0], -1).any(1).nonzero().flatten().tolist() if t.dim() > 1 else []
            rows = f" in batch row(s) {where[:10]}{' ...' if len(where) > 10 else ''}" if where else ""
            raise ValueError(f"The {what} contains NaN or inf{rows}.")
        return t

    # -- control loop ---------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, envs: Any = None) -> None:
        """Start new episodes.

        Args:
            seed: reseed the generator that ``act`` samples with (None: the planner's ``seed``). Only for a full reset.
            envs: (B,) bool mask of the envs whose episode starts (stable-baselines3's ``episode_start``); their plan
                and history are dropped, the others' kept. None resets every env.
        """
        if envs is not None and getattr(self, "_since_plan", None) is not None:
            mask = torch.as_tensor(np.asarray(envs, dtype=bool), device=self.device)
            if mask.shape == self._needs_plan.shape:
                self._needs_plan |= mask.to(self._needs_plan.device)
                self._observed_count[mask.to(self._observed_count.device)] = 0
                return
        self.current_plan: Plan | None = None
        self._since_plan: torch.Tensor | None = None  # (B,) env steps since each env's plan
        self._needs_plan = torch.zeros(0, dtype=torch.bool, device=self.device)
        self._observed: torch.Tensor | None = None  # (B, history_length + 1, obs_dim), newest last
        self._acted: torch.Tensor | None = None  # (B, history_length, act_dim), the actions taken, newest last
        self._observed_count = torch.zeros(0, dtype=torch.long, device=self.device)
        self._ensemble: tuple[torch.Tensor, torch.Tensor] | None = None  # (B, E, act_dim) sums, (B, E) counts
        self._seed_now = self.seed if seed is None else seed
        self._generator = torch.Generator(device=self.device).manual_seed(self._seed_now)

    def _act_generator(self) -> torch.Generator:
        if self._generator.device != self.device:  # the planner moved (planner.to("cuda")) since the reset
            self._generator = torch.Generator(device=self.device).manual_seed(self._seed_now)
        return self._generator

    def _observe(self, x: torch.Tensor) -> None:
        """Per-env state follows the batch; the newest observation is appended to each env's history."""
        b = x.shape[0]
        device = self._since_plan.device if self._since_plan is not None else self.device
        if self._since_plan is None or self._since_plan.shape[0] != b:
            self.current_plan = None
            self._since_plan = torch.zeros(b, dtype=torch.long, device=device)
            self._needs_plan = torch.ones(b, dtype=torch.bool, device=device)
            self._observed = torch.zeros(b, self.history_length + 1, self.obs_dim, device=device)
            self._acted = None
            self._observed_count = torch.zeros(b, dtype=torch.long, device=device)
        self._observed = torch.cat([self._observed[:, 1:], x.to(device)[:, None]], dim=1)
        self._observed_count = (self._observed_count + 1).clamp(max=self.history_length + 1)

    def _context_for(self, rows: torch.Tensor, x: torch.Tensor, g: torch.Tensor | None) -> PlanContext:
        context = PlanContext(obs=x.to(self.device)[rows], goal=None if g is None else g.to(self.device)[rows])
        if self.history_length:
            k = self.history_length
            context.history = self._observed[rows, :-1]
            context.history_mask = torch.arange(k, device=self.device)[None] >= (k + 1 - self._observed_count[rows])[:, None]
            if self.history_actions:
                context.history_actions = None if self._acted is None else self._acted[rows]
        if self.current_plan is not None and bool(rows.all()) and not bool(self._needs_plan.any()):
            context.previous, context.since_previous = self.current_plan, self._since_plan.clone()
        return context

    def act(self, obs: Any, goal: Any = None) -> Any:
        """Next action(s); plans at the first call and every ``replan_every`` steps. Output mirrors the input."""
        x, g, batched = self.parse_observation(obs, goal)
        self._observe(x)
        rows = self._needs_plan | ((self._since_plan >= self.replan_every) if self.replan_every > 0 else False)
        starts = self._needs_plan.clone()
        if rows.any():
            context = self._context_for(rows, x, g)
            plan = self._checked(self.sample_steered(context, None, self._act_generator()), context)
            self.current_plan = plan if bool(rows.all()) else self.current_plan.with_rows(rows, plan)
            self._since_plan[rows] = 0
            self._needs_plan[rows] = False
        if self.action_ensemble > 1:
            action = self._ensembled_action(x.to(self.device), rows, starts)
        else:
            action = self.action_from_plan(self.current_plan, x.to(self.device), self._since_plan)
        self._since_plan += 1
        if self.history_actions and self.history_length:
            self._record_action(action)
        action = action if batched else action[0]
        raw = self._raw(obs)
        return action.to(raw.device) if isinstance(raw, torch.Tensor) else action.cpu().numpy()

    def _ensembled_action(self, x: torch.Tensor, planned: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """(B, act_dim): the mean of the kept predictions for this step, after adding the ``planned`` rows' new plan
        (B,) bool; ``starts`` (B,) bool rows begin an episode and drop what they kept."""
        if self.action_source != "diffused":
            raise ValueError(f"action_ensemble={self.action_ensemble} averages diffused actions; it cannot average "
                             f"action_source={self.action_source!r}. Set action_source='diffused' or action_ensemble=1.")
        now = self.action_from_plan(self.current_plan, x, self._since_plan)
        if self._ensemble is None or self._ensemble[0].shape[0] != x.shape[0]:
            self._ensemble = (now.new_zeros(now.shape[0], self.action_ensemble, now.shape[1]),
                              now.new_zeros(now.shape[0], self.action_ensemble))
        sums, counts = self._ensemble
        keep = (~starts).to(sums)[:, None]
        sums, counts = sums * keep[..., None], counts * keep
        if bool(planned.any()):  # a new plan adds its predictions for the next action_ensemble steps
            ahead = torch.stack([now, *(self.action_from_plan(self.current_plan, x, self._since_plan + j)
                                        for j in range(1, self.action_ensemble))], 1)
            new = planned.to(sums)[:, None]
            sums, counts = sums + ahead * new[..., None], counts + new
        # a row whose plan is older than the ensemble (replan_every > action_ensemble) acts on that plan alone
        action = torch.where(counts[:, :1] > 0, sums[:, 0] / counts[:, :1].clamp(min=1), now)
        self._ensemble = (torch.cat([sums[:, 1:], sums.new_zeros(sums[:, :1].shape)], 1),
                          torch.cat([counts[:, 1:], counts.new_zeros(counts[:, :1].shape)], 1))
        return action

    def _record_action(self, action: torch.Tensor) -> None:
        """Append each env's action (B, act_dim) to its action history (aligned with the observation history)."""
        b, k = action.shape[0], self.history_length
        if self._acted is None or self._acted.shape[0] != b:
            self._acted = action.new_zeros(b, k, action.shape[-1])
        self._acted = torch.cat([self._acted[:, 1:], action[:, None].to(self._acted)], dim=1)

    def _raw(self, obs: Any) -> Any:
        return obs[self.task.observation_key] if isinstance(obs, dict) else obs

    def action_from_plan(self, plan: Plan, obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(B, act_dim) actions, row b ``k[b]`` env steps after its plan was made, by the action source."""
        return self._actions(plan, obs, k)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        """stable-baselines3 ``PolicyPredictor`` protocol: ``(action, state)``; only envs whose ``episode_start``
        is true start over."""
        if episode_start is not None and np.any(episode_start):
            self.reset(envs=np.asarray(episode_start, dtype=bool).reshape(-1))
        return self.act(observation), state

    # -- folders --------------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path, readme: str | None = None, overwrite: bool = False,
                        **metadata: Any) -> None:
        """Write the planner folder atomically: planner.json, one subfolder per component, README.md.

        Replaces an existing planner folder (a re-export); ``overwrite=True`` also deletes files diffplan did not
        write inside one. Any other existing path is refused (``diffplan.io.check_replaceable``). The planner's
        ``guidance`` is saved as its JSON spec (``guidance=`` in ``metadata`` overrides it), with copies of the
        critic folders it reads, so a steered planner ships as one folder; a Guidance built in Python, without a
        spec, is not saved."""
        spec = self.guidance if isinstance(self.guidance, dict) else getattr(self.guidance, "spec", None)
        with atomic_folder(path, overwrite) as tmp:
            if spec is not None and "guidance" not in metadata:
                from diffplan.guidance.spec import carry_critics

                metadata["guidance"] = carry_critics(spec, tmp, set(self.components))
            for name in self.components:
                module = getattr(self, name)
                if isinstance(module, Planner):  # composed planners (e.g. hierarchical levels) nest folders
                    module.save_pretrained(tmp / name)
                elif module is not None:
                    save_module(module, tmp / name)
            write_json(tmp / "planner.json", {
                "_class_name": f"{type(self).__module__}.{type(self).__qualname__}",
                "_diffplan_version": diffplan.__version__, "task": self.task.to_dict(), "config": self.settings(),
                "components": [n for n in self.components if getattr(self, n) is not None], **metadata})
            if readme:
                (tmp / "README.md").write_text(readme)

    def settings(self) -> dict[str, Any]:
        """The constructor arguments a folder saves: ``config`` with each plain setting (a number, string, bool or
        None, or a dict of them) read from the planner now, so ``planner.num_inference_steps = 5`` before
        ``save_pretrained`` is kept."""
        plain = (bool, int, float, str, type(None))

        def is_plain(value: Any) -> bool:  # a plain value, or a dict of them (e.g. a scale per condition)
            if isinstance(value, dict):
                return all(isinstance(v, plain) for v in value.values())
            return isinstance(value, plain)

        settings = {}
        for key, saved in self.config.items():
            now = getattr(self, key, saved)
            settings[key] = now if is_plain(saved) and is_plain(now) else saved
        return settings

    @classmethod
    def from_pretrained(cls, path: str | Path, task: str | Task | None = None,
                        guidance: Guidance | dict | str | None = None, allowed_classes: Iterable[str | type] = (),
                        **overrides: Any) -> Planner:
        """Load any planner folder.

        Args:
            task: optional; must name the task it was trained for. Its card then replaces the folder's copy (e.g. a
                newer card that names the dims an objective needs); default: the card saved in the folder.
            guidance: a Guidance object (or its JSON spec) that ``act`` steers with; default: the folder's own
                ``"guidance"`` spec, if it has one (a relative critic path in it that the folder holds, e.g.
                ``"critic"``, is read inside the folder); ``"none"``: no guidance (the folder's is not even built).
            allowed_classes: trust these classes outside diffplan that the folder names (import paths or classes).
            overrides: replace config values (e.g. ``num_inference_steps=5``, ``replan_every=10``).
        """
        path = Path(path)
        if not path.is_dir():
            raise PlannerFolderError(f"Planner folder {path} does not exist.")
        meta = read_json(path / "planner.json")
        try:
            planner_cls = resolve_saved_class(meta["_class_name"], Planner, allowed_classes, str(path / "planner.json"))
            saved_task = Task.from_dict(meta["task"])
            config = dict(meta["config"])
            names = list(meta["components"])
        except (KeyError, TypeError) as err:
            raise PlannerFolderError(f"{path / 'planner.json'} lacks {err}; the folder is corrupt.") from err
        if not issubclass(planner_cls, cls):
            raise PlannerFolderError(f"{path} holds a {planner_cls.__name__}, not a {cls.__name__}.")
        wanted = saved_task
        if task is not None:
            wanted = load_task(task)
            if wanted.name != saved_task.name:
                raise PlannerFolderError(f"Planner {path} was trained for task {saved_task.name!r}, not "
                                         f"{wanted.name!r}; pick a planner made for {wanted.name!r}.")
        known = (set(inspect.signature(planner_cls.__init__).parameters)
                 | set(inspect.signature(Planner.__init__).parameters)) - {"self", "task", "planner_kwargs", *names}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"Unknown planner settings {sorted(unknown)}; known: {sorted(known)}.")
        config.update(overrides)
        modules = {name: Planner.from_pretrained(path / name, allowed_classes=allowed_classes)
                   if (path / name / "planner.json").exists() else load_module(path / name, allowed_classes)
                   for name in names}
        planner = planner_cls(task=wanted, **modules, **config)
        if isinstance(guidance, str) and guidance != "none":
            raise ValueError(f"guidance is a Guidance, a JSON spec dict or \"none\", got {guidance!r}.")
        if guidance is None:
            from diffplan.guidance.spec import read_in_folder

            own = meta.get("guidance")
            guidance = read_in_folder(own, path) if isinstance(own, dict) else own  # a bad one fails when built
        if guidance is not None and guidance != "none":
            from diffplan.guidance.spec import guidance_from_spec

            planner.guidance = guidance_from_spec(guidance, planner)
        return planner

    @staticmethod
    def read_metadata(path: str | Path) -> dict[str, Any]:
        return read_json(Path(path) / "planner.json")

    @staticmethod
    def training_metadata(path: str | Path) -> dict[str, Any]:
        """What ``fit --export`` recorded beside the config (train time, steps, dataset, command)."""
        reserved = ("_class_name", "_diffplan_version", "task", "config", "components", "guidance")
        return {k: v for k, v in Planner.read_metadata(path).items() if k not in reserved}


def steer(own: Guidance | None, extra: Guidance | None) -> Guidance | None:
    """The guidance a planner samples with: the user's (outermost) around its own (innermost: it may call the raw
    conditional model, as classifier-free guidance does)."""
    return compose(extra, own)
