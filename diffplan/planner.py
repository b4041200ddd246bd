"""Planner: what users call inside control loops. ``plan`` / ``act`` / ``predict`` / ``reset``, save and load."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import diffplan
from diffplan.configurable import Configurable, resolve_saved_class
from diffplan.io import PlannerFolderError, atomic_folder, load_module, read_json, save_module, write_json
from diffplan.maze import in_free_cell
from diffplan.tasks import Task, load_task

ACTION_SOURCES = ("diffused", "tracker")


@dataclass
class Plan:
    """A batch of plans in environment units.

    Attributes:
        observations: (B, H, obs_dim) planned states; plan point j is ``j * stride`` env steps ahead.
        actions: (B, H, act_dim) diffused actions.
        stride: env steps between plan points.
        values: (B,) predicted value of each plan, when the planner has a value head.
        subgoals: (B, K, obs_dim) the high-level plan of hierarchical planners.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    stride: int = 1
    values: torch.Tensor | None = None
    subgoals: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.observations.shape[0]


class Planner(nn.Module, Configurable):
    """Base class: observation checks, the act/replan loop, the action source and the folder format.

    Subclasses implement ``plan(obs, goal, generator)`` and list their ``nn.Module`` arguments in
    ``components``; every other ``__init__`` argument is JSON and lands in ``planner.json``.

    Args:
        task: the task card the planner was trained for (stored in the folder).
        replan_every: env steps between plans in ``act``; 0 = plan once per episode (open loop).
        action_source: ``"diffused"`` executes the planned actions; ``"tracker"`` drives a PD controller
            ``a = kp (x* - x) + kd (v* - v)`` along the planned positions (as Diffuser's maze numbers do),
            looking ``tracker_lookahead`` env steps ahead on the plan.
        seed: seeds the generator that ``act`` uses, so whole episodes reproduce.
    """

    components: tuple[str, ...] = ()

    def __init__(self, task: Task, replan_every: int = 0, action_source: str = "diffused", tracker_kp: float = 10.0,
                 tracker_kd: float = 1.0, tracker_lookahead: float = 0.0, seed: int = 0):
        super().__init__()
        if action_source not in ACTION_SOURCES:
            raise ValueError(f"action_source must be one of {ACTION_SOURCES}, got {action_source!r}.")
        if action_source == "tracker" and not (task.goal_dims and task.velocity_dims):
            raise ValueError(f"The tracker needs position (goal_dims) and velocity dims in task {task.name!r}; "
                             f"use action_source='diffused'.")
        self.task = task
        self.replan_every, self.action_source = int(replan_every), action_source
        self.tracker_kp, self.tracker_kd, self.tracker_lookahead = tracker_kp, tracker_kd, tracker_lookahead
        self.seed = seed
        self.reset()

    def save_config(self, local_vars: dict[str, Any]) -> None:
        """Subclass arguments plus the base control-loop settings (with their defaults) form the config."""
        super().save_config({k: v for k, v in local_vars.items() if k not in (*self.components, "task")})
        self.config.update(replan_every=self.replan_every, action_source=self.action_source,
                           tracker_kp=self.tracker_kp, tracker_kd=self.tracker_kd,
                           tracker_lookahead=self.tracker_lookahead, seed=self.seed)

    # -- to override ----------------------------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        raise NotImplementedError

    def plan(self, obs: Any, goal: Any = None, generator: torch.Generator | None = None) -> Plan:
        raise NotImplementedError

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
            if self.task.maze_map is not None:
                outside = ~in_free_cell(self.task.maze_map, g.cpu().numpy())
                if outside.any():
                    raise ValueError(f"Goal {g[outside.argmax()].tolist()} lies in a wall or outside the maze of "
                                     f"{self.task.name!r}; goals must be in a free cell.")
            goal = g.expand(x.shape[0], -1)
        return x, goal, batched

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
        if not torch.isfinite(t).all():
            raise ValueError(f"The {what} contains NaN or inf: {t.tolist()}.")
        return t

    # -- control loop ---------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: forget the current plan; reseed the generator that ``act`` samples with."""
        self.current_plan: Plan | None = None
        self._step = 0
        self._since_plan = 0
        self._goal: torch.Tensor | None = None
        self._generator = torch.Generator().manual_seed(self.seed if seed is None else seed)

    def act(self, obs: Any, goal: Any = None) -> Any:
        """Next action(s); plans at the first call and every ``replan_every`` steps. Output mirrors the input."""
        x, g, batched = self.parse_observation(obs, goal)
        needs_plan = (self.current_plan is None or self.current_plan.batch_size != x.shape[0]
                      or (self.replan_every > 0 and self._since_plan >= self.replan_every))
        if needs_plan:
            self.current_plan = self.plan(x, g, generator=self._generator)
            self._since_plan = 0
        action = self.action_from_plan(self.current_plan, x, self._since_plan)
        self._since_plan += 1
        self._step += 1
        action = action if batched else action[0]
        return action if isinstance(self._raw(obs), torch.Tensor) else action.numpy()

    def _raw(self, obs: Any) -> Any:
        return obs[self.task.observation_key] if isinstance(obs, dict) else obs

    def action_from_plan(self, plan: Plan, obs: torch.Tensor, k: int) -> torch.Tensor:
        """(B, act_dim) action ``k`` env steps after the plan was made."""
        if self.action_source == "diffused":
            j = min(k // plan.stride, plan.actions.shape[1] - 1)
            return plan.actions[:, j]
        pos_dims, vel_dims = list(self.task.goal_dims), list(self.task.velocity_dims)
        # fractional plan index of the target, linearly interpolated between plan points
        s = min((k + 1 + self.tracker_lookahead) / plan.stride, plan.observations.shape[1] - 1)
        lo, w = int(np.floor(s)), s - np.floor(s)
        hi = min(lo + 1, plan.observations.shape[1] - 1)
        target = (1 - w) * plan.observations[:, lo] + w * plan.observations[:, hi]
        action = (self.tracker_kp * (target[:, pos_dims] - obs[:, pos_dims])
                  + self.tracker_kd * (target[:, vel_dims] - obs[:, vel_dims]))
        return action.clamp(-1.0, 1.0)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, Any]:
        """stable-baselines3 ``PolicyPredictor`` protocol: ``(action, state)``."""
        if episode_start is not None and np.any(episode_start):
            self.reset()
        return self.act(observation), state

    # -- folders --------------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path, readme: str | None = None, overwrite: bool = False,
                        **metadata: Any) -> None:
        """Write the planner folder atomically: planner.json, one subfolder per component, README.md.

        Replaces an existing planner folder (a re-export); ``overwrite=True`` also deletes files diffplan did not
        write inside one. Any other existing path is refused (``diffplan.io.check_replaceable``)."""
        with atomic_folder(path, overwrite) as tmp:
            for name in self.components:
                module = getattr(self, name)
                if isinstance(module, Planner):  # composed planners (e.g. hierarchical levels) nest folders
                    module.save_pretrained(tmp / name)
                elif module is not None:
                    save_module(module, tmp / name)
            write_json(tmp / "planner.json", {
                "_class_name": f"{type(self).__module__}.{type(self).__qualname__}",
                "_diffplan_version": diffplan.__version__, "task": self.task.to_dict(), "config": self.config,
                "components": [n for n in self.components if getattr(self, n) is not None], **metadata})
            if readme:
                (tmp / "README.md").write_text(readme)

    @classmethod
    def from_pretrained(cls, path: str | Path, task: str | Task | None = None,
                        allowed_classes: Iterable[str | type] = (), **overrides: Any) -> Planner:
        """Load any planner folder. ``task`` (optional) must match the task it was trained for;
        ``allowed_classes`` trusts classes outside diffplan that the folder names (import paths or classes);
        ``overrides`` replace config values (e.g. ``num_inference_steps=5``, ``replan_every=10``)."""
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
        return planner_cls(task=saved_task, **modules, **config)

    @staticmethod
    def read_metadata(path: str | Path) -> dict[str, Any]:
        return read_json(Path(path) / "planner.json")

    @staticmethod
    def training_metadata(path: str | Path) -> dict[str, Any]:
        """What ``fit --export`` recorded beside the config (train time, steps, dataset, command)."""
        reserved = ("_class_name", "_diffplan_version", "task", "config", "components")
        return {k: v for k, v in Planner.read_metadata(path).items() if k not in reserved}
