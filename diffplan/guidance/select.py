"""Sample-and-select (Diffusion Veteran's Monte-Carlo sampling with selection): draw n candidate plans per row in
one batched ``Planner.sample`` call and keep the one with the best objective (or learned critic) value.

Selection compares whole plans, so it is no per-step hook: a :class:`Select` in a planner's guidance (alone or
inside a ``Compose``) is honoured by ``Planner.sample_steered`` (what ``plan`` and ``act`` call), which samples the
candidates with the remaining per-step guidance (e.g. TFG) and picks the best. Passed straight to ``denoise`` it
fails clearly instead of being ignored. :class:`Average` (sample-and-average) is the same kind of guidance: it
returns the candidates' mean instead of the best.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from diffplan.guidance.base import Compose, Guidance, GuidanceContext, ModelFn, compose
from diffplan.objectives import objective_from_spec

if TYPE_CHECKING:
    from diffplan.guidance.tfg import ObjectiveFn
    from diffplan.planner import Plan, PlanContext, Planner


class Candidates(Guidance):
    """A guidance over whole plans: ``n`` candidates per row, drawn in one batched ``Planner.sample`` call with
    ``guidance``, reduced to one plan by ``choose`` (subclasses: select the best, or average them).

    Args:
        n: candidates per row.
        guidance: per-step guidance the candidates are sampled with (e.g. TFG).
    """

    method = "candidates"

    def __init__(self, n: int = 8, guidance: Guidance | None = None):
        super().__init__()
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"{self.method}: 'n' must be an integer >= 1, got {n!r}.")
        if guidance is not None and split_select(guidance)[0] is not None:
            raise ValueError(f"{self.method}: the candidates' guidance cannot itself select or average; use one.")
        self.n, self.guidance = n, guidance

    def condition(self, context: PlanContext) -> PlanContext:
        return context if self.guidance is None else self.guidance.condition(context)

    def predict(self, model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, ctx: GuidanceContext) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} chooses among whole plans and is no per-step hook; pass it to "
                        f"Planner.plan / act (or call its choose), not to denoise or Planner.sample.")

    def choose(self, planner: Planner, context: PlanContext, generator: torch.Generator | None = None,
               guidance: Guidance | None = None) -> Plan:
        """One plan per context row from ``n`` candidates drawn with ``guidance`` and this one's own."""
        raise NotImplementedError


class Select(Candidates):
    """Keep the best of ``n`` candidates per row by ``objective`` (values to maximize, in environment units).

    Args:
        objective: ``{"observations": (B, H, O), "actions": (B, H, A)} -> (B,)``; e.g. an objective or a
            ``diffplan.objectives.Critic``.
        n: candidates per row (DV uses 50 on mazes, 150 on Kitchen; default 8 keeps a plan about 8 x one sample).
        guidance: per-step guidance the candidates are sampled with (e.g. TFG: select over guided samples).
    """

    method = "select"

    def __init__(self, objective: ObjectiveFn, n: int = 8, guidance: Guidance | None = None):
        super().__init__(n, guidance)
        self.objective = objective

    @torch.no_grad()
    def choose(self, planner: Planner, context: PlanContext, generator: torch.Generator | None = None,
               guidance: Guidance | None = None) -> Plan:
        """One plan per context row: the best of ``n`` drawn by ``planner.sample`` with ``guidance`` and this
        selection's own per-step guidance."""
        plans = planner.sample(context, self.n, compose(guidance, self.guidance), generator)
        goal = context.to(plans.observations.device).repeat_rows(self.n).goal  # the candidates' rows
        scores = self.scores(plans, goal).view(-1, self.n)
        best = torch.arange(scores.shape[0], device=scores.device) * self.n + scores.argmax(dim=1)
        return plans.rows(best)

    def scores(self, plans: Plan, goal: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) objective values of plans; ``goal`` (B, goal_dim) for objectives that read the episode's goal."""
        fields = {"observations": plans.observations, "actions": plans.actions}
        return self.objective(fields if goal is None else {**fields, "goal": goal})


class Average(Candidates):
    """Sample-and-average: the mean of ``n`` candidate plans per row, drawn in one batched call.

    The mean estimates the model's expected plan given the context (e.g. of guided samples, whose guidance moves
    each sample differently). Modes are averaged too, so use it where the plans agree on the way.

    Args:
        n: candidates per row.
        guidance: per-step guidance the candidates are sampled with.
        radius: metres; average only the rows whose agent is within it of its final goal (the task's goal, not a
            waypoint; straight distance over the task's ``goal_dims``), where plans agree on staying; the others keep
            their first candidate. None: average every row.
    """

    method = "average"

    def __init__(self, n: int = 8, guidance: Guidance | None = None, radius: float | None = None):
        super().__init__(n, guidance)
        if radius is not None and not (isinstance(radius, (int, float)) and radius > 0):
            raise ValueError(f"average: 'radius' must be > 0 metres or null, got {radius!r}.")
        self.radius = radius

    @torch.no_grad()
    def choose(self, planner: Planner, context: PlanContext, generator: torch.Generator | None = None,
               guidance: Guidance | None = None) -> Plan:
        """One plan per context row: the mean of ``n`` drawn by ``planner.sample`` (in the rows ``radius`` picks)."""
        plans = planner.sample(context, self.n, compose(guidance, self.guidance), generator)
        mean = plans._map(lambda v: v.view(-1, self.n, *v.shape[1:]).mean(1))
        if self.radius is None:
            return mean
        goal = context.final_goal if context.final_goal is not None else context.goal
        if goal is None:
            raise ValueError("average with a 'radius' needs a goal; pass one to plan/act, or drop the radius.")
        here = context.obs[:, list(planner.task.goal_dims)]
        near = (here - goal.to(here)).norm(dim=-1) <= self.radius
        first = plans.rows(torch.arange(context.batch_size, device=near.device) * self.n)
        return first.with_rows(near, mean.rows(near)) if bool(near.any()) else first


def split_select(guidance: Guidance | None) -> tuple[Candidates | None, Guidance | None]:
    """The Select or Average in ``guidance`` (itself or a member of a Compose) and the rest of it; (None, guidance)
    if none."""
    if isinstance(guidance, Candidates):
        return guidance, None
    if isinstance(guidance, Compose):
        selects = [g for g in guidance.guidances if isinstance(g, Candidates)]
        if len(selects) > 1:
            raise ValueError("A guidance can hold one select or average; merge the objectives into one (a weighted "
                             "sum).")
        if selects:
            return selects[0], compose(*[g for g in guidance.guidances if not isinstance(g, Candidates)])
    return None, guidance


def from_spec(spec: dict[str, Any], planner: Planner) -> Select:
    """``{"method": "select", "n": 8, "objective": <objective spec>, "guidance": <guidance spec>}``; ``n`` defaults
    to 8 and ``guidance`` to none (plain samples)."""
    from diffplan.guidance.spec import guidance_from_spec

    unknown = set(spec) - {"method", "n", "objective", "guidance"}
    if unknown or "objective" not in spec:
        raise ValueError("Guidance 'select' takes \"objective\" and optionally \"n\" and \"guidance\"; "
                         + (f"unknown {sorted(unknown)}." if unknown else "the objective is missing."))
    inner = guidance_from_spec(spec["guidance"], planner) if spec.get("guidance") is not None else None
    objective = objective_from_spec(spec["objective"], planner.task).to(planner.device)
    return Select(objective, n=spec.get("n", 8), guidance=inner)


def average_from_spec(spec: dict[str, Any], planner: Planner) -> Average:
    """``{"method": "average", "n": 8, "guidance": <guidance spec>, "radius": null}``; ``n`` defaults to 8,
    ``guidance`` to none and ``radius`` to null (every row)."""
    from diffplan.guidance.spec import guidance_from_spec

    unknown = set(spec) - {"method", "n", "guidance", "radius"}
    if unknown:
        raise ValueError("Guidance 'average' takes optionally \"n\", \"guidance\" and \"radius\"; "
                         f"unknown {sorted(unknown)}.")
    inner = guidance_from_spec(spec["guidance"], planner) if spec.get("guidance") is not None else None
    return Average(n=spec.get("n", 8), guidance=inner, radius=spec.get("radius"))
