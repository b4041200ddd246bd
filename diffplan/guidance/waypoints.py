"""Waypoints: lead a goal-conditioned maze planner round regions closed at test time by giving it a waypoint on a
route that avoids them, in place of the goal.

Gradient guidance moves plans locally: a box that fills a corridor of the usual route needs a different route,
often many cells longer, which a planner's samples rarely contain (issue 13, table 2). This steering works at the
route level instead: breadth-first search over the maze's cells, with the closed cells removed, gives the route
to the goal; the planner is conditioned on the farthest cell of that route it reaches safely on its own, i.e.
whose shortest route through the open maze is shorter than any route through a closed cell (by more than
``margin`` moves). Once the goal itself is safe, the planner gets the goal. With ``ahead`` the waypoint is also at
most that many cells along the route (with no closed cells: route following for planners whose window cannot
span the whole way to a far goal). As the agent moves the waypoint moves along, so the planner must replan
(``replan_every`` > 0).

It changes what a plan is conditioned on (``Guidance.condition``), not the denoising steps, so it composes with
every per-step guidance and with sample-and-select (``"guidance"`` in its spec).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from diffplan.guidance.base import Guidance, compose
from diffplan.maze import cell_centres, cell_hops, flat_cells, neighbour_cells, open_cells

if TYPE_CHECKING:
    from collections.abc import Sequence

    from diffplan.planner import PlanContext, Planner


class Waypoints(Guidance):
    """Replace each row's goal by a waypoint on a route round the ``closed`` boxes.

    Args:
        maze_map: rows of cells, 1 = wall (gymnasium-robotics layout).
        closed: boxes ``(lo, hi)`` in metres; cells whose centres lie in one are not routed through.
        positions: the observation dims of the agent's xy.
        margin: every route to a waypoint through a closed cell must be longer than its shortest route by more than
            this many moves (0: strictly longer; more keeps a planner that strays from the shortest route safe).
        ahead: the waypoint is at most this many cells along the route (None: no limit).
    """

    def __init__(self, maze_map: Sequence[Sequence[Any]], closed: Sequence[tuple[Sequence[float], Sequence[float]]],
                 positions: Sequence[int], margin: int = 0, ahead: int | None = None):
        super().__init__()
        if not isinstance(margin, int) or margin < 0:
            raise ValueError(f"waypoints: 'margin' must be an integer >= 0 (moves), got {margin!r}.")
        if ahead is not None and (not isinstance(ahead, int) or ahead < 1):
            raise ValueError(f"waypoints: 'ahead' must be an integer >= 1 (cells) or null, got {ahead!r}.")
        self.maze_map, self.positions, self.margin, self.ahead = maze_map, list(positions), margin, ahead
        walls_only, routable = open_cells(maze_map), open_cells(maze_map, closed)
        self.cols = routable.shape[1]
        self.centres = cell_centres(maze_map).reshape(-1, 2)
        hops = cell_hops(walls_only)  # (cells, cells) through the whole maze
        around = cell_hops(routable)  # (cells, cells) with the closed cells removed
        shut = np.flatnonzero(walls_only & ~routable)
        self.neighbours = [[int(n) for n in row if n >= 0] for row in neighbour_cells(routable)]
        for cell in shut:  # an agent inside a closed cell leaves it by an open neighbour
            exits = self.neighbours[cell]
            around[cell] = 1 + around[exits].min(0) if exits else np.inf
        self.around = around
        through_shut = (hops[:, shut, None] + hops[None, shut, :]).min(1) if len(shut) else np.full_like(hops, np.inf)
        self.safe = hops + margin < through_shut  # (cells, cells): no route via a closed cell competes

    def waypoint_cells(self, here: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """(B,) flat cells of the agent and of the goal -> (B,) the cell to head for (the goal's own where the goal
        is safe and near enough, or cannot be reached round the closed cells)."""
        out = goal.copy()
        reach = np.inf if self.ahead is None else self.ahead
        for b, (a, g) in enumerate(zip(here, goal)):
            if not np.isfinite(self.around[a, g]) or (self.safe[a, g] and self.around[a, g] <= reach):
                continue
            route, cell = [a], a
            while cell != g:  # down the closed maze's distance field
                cell = next(n for n in self.neighbours[cell] if self.around[n, g] == self.around[cell, g] - 1)
                route.append(cell)
            safe = [i for i, cell in enumerate(route) if self.safe[a, cell]]
            out[b] = route[int(min(max(1, safe[-1] if safe else 1), reach))]
        return out

    def condition(self, context: PlanContext) -> PlanContext:
        if context.goal is None:
            raise ValueError("waypoints replaces the goal of goal-conditioned planners; this plan has no goal "
                             "(pass one to plan/act, or use an avoid_box objective with TFG).")
        here = context.obs[:, self.positions].detach().cpu().numpy()
        goal = context.goal.detach().cpu().numpy()
        goal_cells = flat_cells(self.maze_map, goal)
        cells = self.waypoint_cells(flat_cells(self.maze_map, here), goal_cells)
        waypoint = np.where((cells == goal_cells)[:, None], goal, self.centres[cells])
        final = context.goal if context.final_goal is None else context.final_goal
        return replace(context, goal=torch.as_tensor(waypoint, dtype=context.goal.dtype, device=context.goal.device),
                       final_goal=final)


def from_spec(spec: dict[str, Any], planner: Planner) -> Guidance:
    """``{"method": "waypoints", "closed": [{"lo": [x, y], "hi": [x, y]}, ...], "margin": 0, "ahead": null,
    "guidance": <spec>}``; ``closed`` may be empty when ``ahead`` is given; ``guidance`` (optional) steers the plans
    toward each waypoint (e.g. TFG, or select)."""
    from diffplan.guidance.spec import guidance_from_spec

    unknown = set(spec) - {"method", "closed", "margin", "ahead", "guidance"}
    closed = spec.get("closed", [] if spec.get("ahead") is not None else None)
    boxes = isinstance(closed, list) and all(isinstance(b, dict) and set(b) == {"lo", "hi"} for b in closed) \
        and (closed or spec.get("ahead") is not None)
    if unknown or not boxes:
        raise ValueError("Guidance 'waypoints' takes \"closed\" (a list of boxes {\"lo\": [x, y], \"hi\": [x, y]}; "
                         "may be empty with \"ahead\") and optionally \"margin\", \"ahead\" and \"guidance\"; "
                         + (f"unknown {sorted(unknown)}." if unknown else f"got closed={closed!r}."))
    task = planner.task
    if task.maze_map is None or len(task.positions or ()) != 2:
        raise ValueError(f"Guidance 'waypoints' routes through a maze map; task {task.name!r} has "
                         f"{'no maze map' if task.maze_map is None else 'no 2 position dims'}.")
    waypoints = Waypoints(task.maze_map, [(b["lo"], b["hi"]) for b in closed], task.positions, spec.get("margin", 0),
                          spec.get("ahead"))
    inner = guidance_from_spec(spec["guidance"], planner) if spec.get("guidance") is not None else None
    return compose(waypoints, inner)
