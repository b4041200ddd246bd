"""Action sources: how a planner turns its current plan into the next action (chosen by name in the config).

- ``"diffused"``: execute the planned actions (the plan point the env has reached).
- ``"tracker"``: a PD controller ``a = kp (x* - x) + kd (v* - v)`` along the planned positions, looking
  ``lookahead`` env steps ahead on the plan (Diffuser's maze numbers use such a controller).

Planners whose actions come from a model (Decision Diffuser's inverse dynamics) override
``Planner.action_from_plan`` with ``InverseDynamicsActions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from collections.abc import Callable

    from diffplan.data.normalizer import Normalizer
    from diffplan.planner import Plan
    from diffplan.tasks import Task

ACTION_SOURCES = ("diffused", "tracker")


def _as_slice(dims: list[int]) -> slice | list[int]:
    """Consecutive dims as a slice (a view; indexing by a list copies and costs more than the PD law itself)."""
    dims = list(dims)
    if dims and dims == list(range(dims[0], dims[0] + len(dims))):
        return slice(dims[0], dims[0] + len(dims))
    return dims


def _rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, H, D), index (B,) -> (B, D): row b's point index[b]."""
    return values[torch.arange(values.shape[0], device=values.device), index.to(values.device)]


class DiffusedActions:
    """The planned action of the plan point ``k // stride`` (held at the plan's last point)."""

    def __call__(self, plan: Plan, obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        j = (k // plan.stride).clamp(max=plan.actions.shape[1] - 1)
        return _rows(plan.actions, j)


class PDTracker:
    """Track the planned positions (``position_dims``) and velocities (``velocity_dims``) with a PD law.

    The target is the plan, linearly interpolated between plan points, ``k + 1 + lookahead`` env steps after it was
    made; actions are clipped to [-1, 1].
    """

    def __init__(self, position_dims: list[int], velocity_dims: list[int], kp: float = 10.0, kd: float = 1.0,
                 lookahead: float = 0.0):
        self.position_dims, self.velocity_dims = position_dims, velocity_dims
        self.kp, self.kd, self.lookahead = kp, kd, lookahead
        self._pos, self._vel = _as_slice(position_dims), _as_slice(velocity_dims)

    def __call__(self, plan: Plan, obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        last = plan.observations.shape[1] - 1
        if bool((k == k[0]).all()):  # the usual case, every env at the same step of its plan: plain slicing
            s0 = min((int(k[0]) + 1 + self.lookahead) / plan.stride, last)
            lo0, w0 = int(s0), s0 - int(s0)
            target = (1 - w0) * plan.observations[:, lo0] + w0 * plan.observations[:, min(lo0 + 1, last)]
        else:
            s = ((k.to(torch.float64) + 1 + self.lookahead) / plan.stride).clamp(max=last)
            lo = s.floor().long()
            w = (s - lo).to(plan.observations.dtype)[:, None]
            target = (1 - w) * _rows(plan.observations, lo) + w * _rows(plan.observations, (lo + 1).clamp(max=last))
        obs = obs.to(target.device)
        pos, vel = self._pos, self._vel
        action = self.kp * (target[:, pos] - obs[:, pos]) + self.kd * (target[:, vel] - obs[:, vel])
        return action.clamp(-1.0, 1.0)


class InverseDynamicsActions:
    """``f(observed s_t, planned s_{t+1})`` by an inverse-dynamics model ``f`` in normalized units (Decision Diffuser;
    the observed state corrects for drift between replans). Plans with ``stride`` 1 only."""

    def __init__(self, model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], normalizer: Normalizer):
        self.model, self.normalizer = model, normalizer

    def __call__(self, plan: Plan, obs: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        target = _rows(plan.observations, (k + 1).clamp(max=plan.observations.shape[1] - 1))
        with torch.no_grad():
            a = self.model(self.normalizer.normalize("observations", obs.to(target.device)),
                           self.normalizer.normalize("observations", target))
        return self.normalizer.unnormalize("actions", a)


def make_action_source(name: str, task: Task, kp: float, kd: float, lookahead: float) -> DiffusedActions | PDTracker:
    """The action source called ``name`` for ``task`` (the tracker needs the task's position and velocity dims)."""
    if name not in ACTION_SOURCES:
        raise ValueError(f"action_source must be one of {ACTION_SOURCES}, got {name!r}.")
    if name == "diffused":
        return DiffusedActions()
    if not (task.goal_dims and task.velocity_dims):
        raise ValueError(f"The tracker needs position (goal_dims) and velocity dims in task {task.name!r}; "
                         f"use action_source='diffused'.")
    return PDTracker(list(task.goal_dims), list(task.velocity_dims), kp, kd, lookahead)
