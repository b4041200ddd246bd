"""Differentiable objectives on plans in environment units, shared by test-time guidance and fine-tuning.

An objective maps a plan ``{"observations": (B, H, O), "actions": (B, H, A)}`` (metres, m/s: what
``GuidanceContext.to_env`` or a :class:`~diffplan.planner.Plan` gives) to **(B,) values to maximize**: higher
is better, 0 is the best a penalty can reach. TFG reads a value as ``log f``; sample-and-select keeps the
argmax. Hinges are smoothed with ``softplus(sharpness * z) / sharpness`` so gradients exist everywhere.

Aggregation over plan points: region penalties are summed (one deep intrusion is not diluted by a long
horizon), tracking errors (speed, path) are averaged (they read as a mean squared error).

JSON form (``objective_from_spec``)::

    {"type": "reach", "target": [x, y], "radius": 0.1, "at": "final" | "any" | "all"}
    {"type": "reach", "target": "goal"}                    # the episode's own goal (a dict observation's goal)
    {"type": "reach", "target": "goal", "metric": "corridors"}  # distance through a maze's free cells
    {"type": "reach", "target": "goal", "metric": "corridors", "closed": [{"lo": [x, y], "hi": [x, y]}]}  # round a box
    {"type": "avoid_box", "lo": [x, y], "hi": [x, y], "margin": 0.0, "between": 0}
    {"type": "avoid_disc", "center": [x, y], "radius": 0.5, "margin": 0.0, "between": 0}
    {"type": "speed", "target": 1.5}                       # forward speed (task card) or speed norm
    {"type": "near_path", "points": [[x, y], [x, y], ...]}
    {"type": "critic", "path": "critic-folder"}             # diffplan.algorithms.critic's export (load_critic)
    {"type": "maze_walls", "margin": 0.1, "between": 0}    # stay out of the task's maze walls (maze tasks)

Every entry also takes ``"weight"`` (default 1) and, where it reads positions or velocities, ``"dims"`` (default:
the task card's ``positions`` / ``forward_speed_dim`` / ``velocity_dims``); region and reach terms take
``"sharpness"`` (1 / metres, default 10); region terms take ``"between"`` (points scored on each segment between
plan points, for sparse plans). A list of entries is their weighted sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffplan.maze import NORM_EPS, CorridorDistance, cell_centres, smooth_norm
from diffplan.tasks import Task

PlanFields = dict[str, torch.Tensor]
_CHUNK_ELEMENTS = 2**25  # elements of the largest point-by-cell tensor MazeWalls builds at once (128 MB in float32)
_TABLE_NODES_PER_CELL = 32  # MazeWalls' depth table: node spacing 1/32 of a cell (3 cm in PointMaze)



def box_depth(positions: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(..., D) points, (D,) corners -> (...,) distance to the nearest face, > 0 inside the box ``lo <= p <= hi``."""
    return torch.minimum(positions - lo, hi - positions).min(dim=-1).values


def along_segments(positions: torch.Tensor, between: int) -> torch.Tensor:
    """(B, H, D) plan points -> (B, (H - 1) * (between + 1) + 1, D): ``between`` evenly spaced points added on the
    straight segment between each pair of consecutive points (``between = 0`` returns ``positions``)."""
    if between <= 0 or positions.shape[1] < 2:
        return positions
    a = torch.linspace(0, 1, between + 2, dtype=positions.dtype, device=positions.device)[:-1, None]  # (K + 1, 1)
    segments = positions[:, :-1, None] * (1 - a) + positions[:, 1:, None] * a  # (B, H - 1, K + 1, D)
    return torch.cat([segments.flatten(1, 2), positions[:, -1:]], dim=1)


def soft_hinge(z: torch.Tensor, sharpness: float) -> torch.Tensor:
    """A smooth ``max(z, 0)``: ``softplus(sharpness * z) / sharpness``."""
    return F.softplus(sharpness * z) / sharpness


class Objective(nn.Module):
    """Base class: ``forward(plan) -> (B,)`` values to maximize (see the module docstring)."""

    def forward(self, plan: PlanFields) -> torch.Tensor:
        raise NotImplementedError


class _OnDims(Objective):
    """An objective on some observation dims; its constants are buffers (they follow ``.to(device)``)."""

    def __init__(self, dims: Sequence[int]):
        super().__init__()
        self.dims = [int(d) for d in dims]

    def select(self, plan: PlanFields) -> torch.Tensor:
        """(B, H, len(dims)) observation dims of the plan."""
        return plan["observations"][..., self.dims]

    def const(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return getattr(self, name).to(like.dtype)


class Reach(_OnDims):
    """``-soft_hinge(d - radius)``: d is the distance to ``target`` at the last plan point (``at="final"``), the
    soft minimum over plan points (``at="any"``), or each point's distance averaged over the plan (``at="all"``:
    get there early and stay, as Diffusion Forcing's goal guidance scores every planned step).

    Args:
        target: (D,) point in environment units; ``dims`` the D observation dims it is compared with. ``"goal"``:
            each row's own goal, read from the plan's ``"goal"`` field (B, D), which planners fill from the
            episode's goal (``GuidanceContext.goal``): a planner with no goal input can then be steered to
            whatever goal each episode gives.
        corridors: measure distances through a maze's free cells (``diffplan.maze.CorridorDistance``; spec
            ``"metric": "corridors"``) instead of straight: the pull then leads round walls, not into them.
    """

    def __init__(self, target: Sequence[float] | str, dims: Sequence[int], radius: float = 0.0, at: str = "final",
                 sharpness: float = 10.0, corridors: CorridorDistance | None = None):
        super().__init__(dims)
        self.corridors = corridors
        if at not in ("final", "any", "all"):
            raise ValueError(f"reach: 'at' is 'final', 'any' or 'all', got {at!r}.")
        if isinstance(target, str) and target != "goal":
            raise ValueError(f"reach: 'target' is a point or \"goal\" (the episode's goal), got {target!r}.")
        self.episode_goal = target == "goal"
        self.register_buffer("target", torch.zeros(len(self.dims)) if self.episode_goal
                             else torch.tensor(target, dtype=torch.float32))
        self.radius, self.at, self.sharpness = float(radius), at, float(sharpness)

    def goal(self, plan: PlanFields) -> torch.Tensor:
        """(B, 1, D) or (D,) target the plan points are compared with."""
        if not self.episode_goal:
            return self.const("target", plan["observations"])
        if "goal" not in plan:
            raise ValueError("reach: target \"goal\" needs the episode's goal, and this plan has none; plan from a "
                             "dict observation that holds the goal, or pass goal= to plan / act.")
        goal = plan["goal"].to(plan["observations"].dtype)
        if goal.shape[-1] != len(self.dims):
            raise ValueError(f"reach: the goal has {goal.shape[-1]} coordinates but the reach dims are {self.dims}; "
                             f"give \"dims\" matching the task's goal.")
        return goal[:, None]

    def distances(self, plan: PlanFields) -> torch.Tensor:
        """(B, H) each plan point's distance to the target (straight, or through the maze's corridors)."""
        if self.corridors is not None:
            return self.corridors(self.select(plan), self.goal(plan))
        return smooth_norm(self.select(plan) - self.goal(plan))

    def distance(self, plan: PlanFields) -> torch.Tensor:
        """(B,) distance to the target (final point, soft minimum or mean over the plan)."""
        d = self.distances(plan)
        if self.at == "final":
            return d[:, -1]
        if self.at == "all":
            return d.mean(dim=1)
        return -torch.logsumexp(-self.sharpness * d, dim=1) / self.sharpness

    def forward(self, plan: PlanFields) -> torch.Tensor:
        if self.at == "all":  # the hinge per point: points inside the radius cost nothing, whatever the others do
            return -soft_hinge(self.distances(plan) - self.radius, self.sharpness).mean(dim=1)
        return -soft_hinge(self.distance(plan) - self.radius, self.sharpness)


class _Penalty(_OnDims):
    """``-sum_h soft_hinge(depth_h + margin)``; depth > 0 inside the penalized set (metres), < 0 outside.

    ``between > 0`` also scores ``between`` points on the straight segment between consecutive plan points, each
    counting ``1 / (between + 1)`` of a plan point: sparse plans (a Hierarchical Diffuser's subgoals, 15 env steps
    apart) cannot then step over the set with points on either side of it.
    """

    def __init__(self, dims: Sequence[int], margin: float, sharpness: float, between: int = 0):
        super().__init__(dims)
        if between < 0:
            raise ValueError(f"'between' must be >= 0 (points added per segment), got {between}.")
        self.margin, self.sharpness, self.between = float(margin), float(sharpness), int(between)

    def depth(self, positions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, plan: PlanFields) -> torch.Tensor:
        depth = self.depth(along_segments(self.select(plan), self.between))
        return -soft_hinge(depth + self.margin, self.sharpness).sum(dim=1) / (self.between + 1)


class _Avoid(_Penalty):
    """A region to keep out of; entering it is a violation."""

    def inside(self, plan: PlanFields) -> torch.Tensor:
        """(B,) bool: some plan point (or segment point, with ``between``) lies inside the region (a violation)."""
        return (self.depth(along_segments(self.select(plan), self.between)) > 0).any(dim=1)


class AvoidBox(_Avoid):
    """Keep out of the axis-aligned box ``lo <= p <= hi``; depth = distance to the nearest face, inside."""

    def __init__(self, lo: Sequence[float], hi: Sequence[float], dims: Sequence[int], margin: float = 0.0,
                 sharpness: float = 10.0, between: int = 0):
        super().__init__(dims, margin, sharpness, between)
        lo_t, hi_t = torch.tensor(lo, dtype=torch.float32), torch.tensor(hi, dtype=torch.float32)
        if not bool((lo_t < hi_t).all()):
            raise ValueError(f"avoid_box: every 'lo' must be below 'hi', got lo={list(lo)}, hi={list(hi)}.")
        self.register_buffer("lo", lo_t)
        self.register_buffer("hi", hi_t)

    def depth(self, positions: torch.Tensor) -> torch.Tensor:
        return box_depth(positions, self.const("lo", positions), self.const("hi", positions))


class AvoidDisc(_Avoid):
    """Keep out of the disc (ball) of ``radius`` around ``center``; depth = radius - distance."""

    def __init__(self, center: Sequence[float], radius: float, dims: Sequence[int], margin: float = 0.0,
                 sharpness: float = 10.0, between: int = 0):
        super().__init__(dims, margin, sharpness, between)
        if radius <= 0:
            raise ValueError(f"avoid_disc: 'radius' must be positive, got {radius}.")
        self.register_buffer("center", torch.tensor(center, dtype=torch.float32))
        self.radius = float(radius)

    def depth(self, positions: torch.Tensor) -> torch.Tensor:
        return self.radius - smooth_norm(positions - self.const("center", positions))


class MazeWalls(_Penalty):
    """``-sum_h soft_hinge(depth_h + margin)``, depth the signed intrusion into the walls of a maze map.

    A feasibility term: guidance that pushes a plan away from a region can push it through a wall, where no
    controller can follow; adding this term keeps the plan in the corridors. It is not a region whose entry counts
    as a violation (the ball cannot enter walls).

    Depth (``exact_depth``): inside the walls, the distance to the nearest free cell (so the gradient points out of
    a wall block, however thick); in a free cell, minus the distance to the nearest wall cell (L-infinity, as
    ``AvoidBox``). ``depth`` reads it from a table built once per map (see there).

    Args:
        maze_map: rows of cells, 1 = wall (gymnasium-robotics layout: cell size 1, map centred on the origin).
        between: points added on each segment between consecutive plan points, as for the avoid regions: a plan
            that jumps across a wall between two steps (no point inside it) is then scored as crossing it.
    """

    def __init__(self, maze_map: Sequence[Sequence[Any]], dims: Sequence[int], margin: float = 0.1,
                 sharpness: float = 10.0, between: int = 0):
        super().__init__(dims, margin, sharpness, between)
        rows, cols = len(maze_map), len(maze_map[0])
        wall = np.array([[c == 1 for c in row] for row in maze_map], dtype=bool)
        if wall.all() or not wall.any():
            raise ValueError("maze_walls: the maze map needs wall cells and free cells.")
        for name, cells in (("walls", wall), ("free", ~wall)):
            centres = torch.tensor(cell_centres(maze_map)[cells], dtype=torch.float32)  # row-major order
            self.register_buffer(f"{name}_lo", centres - 0.5)  # (N, 2)
            self.register_buffer(f"{name}_hi", centres + 0.5)
        self.register_buffer("extent", torch.tensor([cols / 2, rows / 2]))
        n = _TABLE_NODES_PER_CELL
        xs = torch.linspace(-cols / 2, cols / 2, cols * n + 1, dtype=torch.float64)
        ys = torch.linspace(-rows / 2, rows / 2, rows * n + 1, dtype=torch.float64)
        nodes = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (Y, X, 2): row i is y = ys[i]
        with torch.no_grad():
            table = self.exact_depth(nodes.to(torch.float32).reshape(1, -1, 2)).reshape(1, 1, len(ys), len(xs))
        self.register_buffer("table", table)  # (1, 1, Y, X), grid_sample's layout

    def depth(self, positions: torch.Tensor) -> torch.Tensor:
        """(..., 2) points -> (...,) signed intrusion into the walls (metres, > 0 inside a wall).

        Read from a table of ``exact_depth`` on a grid of ``_TABLE_NODES_PER_CELL`` nodes per cell side, bilinearly
        interpolated (``grid_sample``): one lookup per point instead of one comparison per point and cell, which
        made this term most of a guided replan's cost. Cell edges are grid lines, so the sign (inside a wall or not)
        is exact; the value is within about a node spacing of the exact one. Outside the map, the distance to the
        map's edge is added, so points far outside are still pushed back.
        """
        extent = self.const("extent", positions)
        inside_map = torch.maximum(torch.minimum(positions, extent), -extent)
        grid = (inside_map / extent).reshape(1, -1, 1, 2)  # x, y in [-1, 1]: grid_sample's (width, height) order
        table = self.const("table", positions)
        depth = F.grid_sample(table, grid, mode="bilinear", padding_mode="border", align_corners=True)
        beyond = smooth_norm(positions - inside_map) - NORM_EPS**0.5
        return depth.reshape(positions.shape[:-1]) + beyond

    def exact_depth(self, positions: torch.Tensor) -> torch.Tensor:
        """(B, H, 2) -> (B, H): the definition ``depth`` tabulates, every point against every cell."""
        # (B, H, cells, 2) at once: a large grid or a few thousand plans would need tens of GB, so long point
        # lists are scored in chunks.
        cells = self.walls_lo.shape[0] + self.free_lo.shape[0]
        rows = max(1, _CHUNK_ELEMENTS // (positions.shape[1] * cells * 2))
        if positions.shape[0] > rows:
            return torch.cat([self._exact_depth(chunk) for chunk in positions.split(rows)])
        return self._exact_depth(positions)

    def _exact_depth(self, positions: torch.Tensor) -> torch.Tensor:
        p = positions[..., None, :]  # (B, H, 1, 2)
        outside = (self.const("free_lo", p) - p).clamp(min=0) + (p - self.const("free_hi", p)).clamp(min=0)
        to_free = smooth_norm(outside).min(dim=-1).values - NORM_EPS**0.5  # 0 in a free cell (up to the norm's epsilon)
        in_walls = box_depth(p, self.const("walls_lo", p), self.const("walls_hi", p))  # (B, H, W), as AvoidBox
        return torch.where(to_free > 1e-6, to_free, in_walls.max(dim=-1).values)


class Speed(_OnDims):
    """``-mean_h (v_h - target)^2``: v is the signed velocity of one dim (a forward speed), or the norm of
    several (a planar speed)."""

    def __init__(self, target: float, dims: Sequence[int]):
        super().__init__(dims)
        if not self.dims:
            raise ValueError("speed: needs at least one velocity dim.")
        self.target = float(target)

    def speed(self, plan: PlanFields) -> torch.Tensor:
        """(B, H) speed at every plan point."""
        v = self.select(plan)
        return v[..., 0] if len(self.dims) == 1 else smooth_norm(v)

    def forward(self, plan: PlanFields) -> torch.Tensor:
        return -(self.speed(plan) - self.target).pow(2).mean(dim=1)


class NearPath(_OnDims):
    """``-mean_h dist(p_h, path)^2`` to the polyline through ``points`` (K, D), K >= 2."""

    def __init__(self, points: Sequence[Sequence[float]], dims: Sequence[int]):
        super().__init__(dims)
        pts = torch.tensor(points, dtype=torch.float32)
        if pts.dim() != 2 or pts.shape[0] < 2 or pts.shape[1] != len(self.dims):
            raise ValueError(f"near_path: 'points' must be K >= 2 points of {len(self.dims)} coordinates, got shape "
                             f"{tuple(pts.shape)}.")
        self.register_buffer("points", pts)

    def distance(self, plan: PlanFields) -> torch.Tensor:
        """(B, H) distance from every plan point to the nearest segment."""
        p = self.select(plan)[..., None, :]  # (B, H, 1, D)
        pts = self.const("points", p)
        a, ab = pts[:-1], pts[1:] - pts[:-1]  # (K - 1, D)
        s = (((p - a) * ab).sum(-1) / ab.pow(2).sum(-1).clamp(min=NORM_EPS)).clamp(0, 1)  # (B, H, K - 1)
        return smooth_norm(p - (a + s[..., None] * ab)).min(dim=-1).values

    def forward(self, plan: PlanFields) -> torch.Tensor:
        return -self.distance(plan).pow(2).mean(dim=1)


class Critic(Objective):
    """A learned value of the plan: ``critic(observations (B, H, O)) -> (B,)`` (or (B, 1)), or
    ``critic(observations, actions (B, H, A))`` for a critic whose ``reads_actions`` is true (a Q)."""

    def __init__(self, critic: nn.Module):
        super().__init__()
        self.critic = critic

    def forward(self, plan: PlanFields) -> torch.Tensor:
        obs = plan["observations"]
        values = self.critic(obs, plan["actions"]) if getattr(self.critic, "reads_actions", False) \
            else self.critic(obs)
        return values.reshape(obs.shape[0])


class WeightedSum(Objective):
    """``sum_i weight_i * term_i(plan)``."""

    def __init__(self, terms: Sequence[Objective], weights: Sequence[float]):
        super().__init__()
        if len(terms) != len(weights) or not terms:
            raise ValueError(f"WeightedSum needs one weight per term and at least one term, got {len(terms)} terms "
                             f"and {len(weights)} weights.")
        self.terms = nn.ModuleList(terms)
        self.weights = [float(w) for w in weights]

    def forward(self, plan: PlanFields) -> torch.Tensor:
        return sum(w * term(plan) for w, term in zip(self.weights, self.terms))


# -- JSON form --------------------------------------------------------------------------------------------------
_ARGS = {  # type -> (required, optional) keys besides "type" and "weight"
    "reach": ({"target"}, {"radius", "at", "sharpness", "dims", "metric", "closed"}),
    "avoid_box": ({"lo", "hi"}, {"margin", "sharpness", "dims", "between"}),
    "avoid_disc": ({"center", "radius"}, {"margin", "sharpness", "dims", "between"}),
    "speed": ({"target"}, {"dims"}),
    "near_path": ({"points"}, {"dims"}),
    "critic": ({"path"}, set()),
    "maze_walls": (set(), {"margin", "sharpness", "dims", "between"}),
}


def _dims(kind: str, args: dict[str, Any], task: Task, default: Sequence[int], what: str) -> list[int]:
    dims = args.get("dims", default)
    if dims is None or (isinstance(dims, Sequence) and not dims):
        raise ValueError(f"Objective {kind!r} needs {what} dims: task {task.name!r} names none in its card; "
                         f"give \"dims\" in the spec.")
    return [int(dims)] if isinstance(dims, int) else [int(d) for d in dims]


def _one(spec: Any, task: Task) -> tuple[Objective, float]:
    if not isinstance(spec, dict) or spec.get("type") not in _ARGS:
        got = spec.get("type") if isinstance(spec, dict) else spec
        raise ValueError(f"An objective spec is a dict with \"type\" one of {sorted(_ARGS)}, got {got!r}.")
    kind = spec["type"]
    required, optional = _ARGS[kind]
    args = {k: v for k, v in spec.items() if k not in ("type", "weight")}
    missing, unknown = required - set(args), set(args) - required - optional
    if missing or unknown:
        raise ValueError(f"Objective {kind!r}: missing {sorted(missing)}, unknown {sorted(unknown)}; it takes "
                         f"{sorted(required)} and optionally {sorted(optional | {'weight'})}.")
    numbers = {"target", "lo", "hi", "center", "points", "radius", "margin", "sharpness"}
    if kind == "reach" and args.get("target") == "goal":
        numbers.discard("target")
    for key in set(args) & numbers:
        try:
            value = np.asarray(args[key], dtype=np.float64)
        except (TypeError, ValueError):
            value = np.array(np.nan)
        if not np.isfinite(value).all():
            also = " or \"goal\" (the episode's goal)" if (kind, key) == ("reach", "target") else ""
            raise ValueError(f"Objective {kind!r}: {key!r} must be finite numbers{also}, got {args[key]!r}.")
    if "between" in args and (isinstance(args["between"], bool) or not isinstance(args["between"], int)
                              or args["between"] < 0):
        raise ValueError(f"Objective {kind!r}: 'between' is a whole number of points per segment (>= 0), got "
                         f"{args['between']!r}.")
    return _build(kind, args, task), float(spec.get("weight", 1.0))


def _build(kind: str, args: dict[str, Any], task: Task) -> Objective:
    opts = {k: args[k] for k in ("radius", "at", "sharpness", "margin", "between") if k in args}
    if kind in ("reach", "avoid_box", "avoid_disc", "near_path"):
        dims = _dims(kind, args, task, task.positions, "position")
        coords = {"reach": ["target"], "avoid_box": ["lo", "hi"], "avoid_disc": ["center"],
                  "near_path": []}[kind]
        for key in coords:
            if args[key] == "goal" and kind == "reach":
                continue
            if len(args[key]) != len(dims):
                raise ValueError(f"Objective {kind!r}: {key!r} has {len(args[key])} coordinates but the position dims "
                                 f"are {dims}.")
    if kind == "reach":
        metric = args.get("metric", "straight")
        if metric not in ("straight", "corridors"):
            raise ValueError(f"Objective 'reach': 'metric' is \"straight\" or \"corridors\", got {metric!r}.")
        if metric == "corridors" and (task.maze_map is None or len(dims) != 2):
            raise ValueError(f"Objective 'reach': metric \"corridors\" needs a maze task and 2 position dims; task "
                             f"{task.name!r} has {'no maze map' if task.maze_map is None else f'dims {dims}'}.")
        closed = args.get("closed", [])
        boxes = isinstance(closed, list) and all(isinstance(b, dict) and set(b) == {"lo", "hi"} for b in closed)
        if not boxes or (closed and metric != "corridors"):
            raise ValueError(f"Objective 'reach': 'closed' is a list of boxes {{\"lo\": [x, y], \"hi\": [x, y]}} "
                             f"closed to the \"corridors\" metric, got {closed!r} with metric {metric!r}.")
        corridors = CorridorDistance(task.maze_map, [(b["lo"], b["hi"]) for b in closed]) \
            if metric == "corridors" else None
        obj: Objective = Reach(args["target"], dims, **opts, corridors=corridors)
    elif kind == "avoid_box":
        obj = AvoidBox(args["lo"], args["hi"], dims, **opts)
    elif kind == "avoid_disc":
        obj = AvoidDisc(args["center"], dims=dims, **opts)
    elif kind == "near_path":
        obj = NearPath(args["points"], dims)
    elif kind == "maze_walls":
        if task.maze_map is None:
            raise ValueError(f"Objective 'maze_walls': task {task.name!r} has no maze map.")
        obj = MazeWalls(task.maze_map, _dims(kind, args, task, task.positions, "position"), **opts)
    elif kind == "speed":
        default = [task.forward_speed_dim] if task.forward_speed_dim is not None else task.velocity_dims
        obj = Speed(args["target"], _dims(kind, args, task, default, "velocity"))
    else:
        obj = Critic(load_critic(args["path"]))
    return obj


def load_critic(path: str | Path) -> nn.Module:
    """The critic in a folder that ``diffplan fit --model diffplan.algorithms.critic.CriticTraining --export``
    (or ``diffplan.io.save_module``) wrote, or in the ``critic/`` subfolder of a planner folder; loaded through
    ``diffplan.io.load_module`` (diffplan classes only, weights checked against their hash).

    Raises:
        ValueError: the folder is missing, holds no critic, or holds something that is not a critic.
    """
    from diffplan.io import CONFIG, load_module
    from diffplan.nn.critic import ActionCritic, StateCritic

    folder = Path(path)
    if not (folder / CONFIG).exists() and (folder / "critic" / CONFIG).exists():
        folder = folder / "critic"
    if not (folder / CONFIG).exists():
        what = "does not exist" if not folder.exists() else f"holds no {CONFIG}"
        raise ValueError(f"Objective 'critic': {folder} {what}; \"path\" is the folder that `diffplan fit --model "
                         f"diffplan.algorithms.critic.CriticTraining ... --export DIR` wrote.")
    module = load_module(folder)
    if not isinstance(module, (StateCritic, ActionCritic)):  # a bad spec: ValueError, like every spec error
        raise ValueError(f"Objective 'critic': {folder} holds a {type(module).__name__}, not a critic "  # noqa: TRY004
                         f"(diffplan.nn.critic.StateCritic or ActionCritic).")
    return module


def avoid_terms(objective: Objective) -> list[Objective]:
    """The avoid-region terms (``avoid_box``, ``avoid_disc``) of ``objective``: itself, or those among a weighted
    sum's terms. Each has ``depth(positions)`` (> 0 inside the region) and ``inside(plan) -> (B,) bool``."""
    terms = objective.terms if isinstance(objective, WeightedSum) else [objective]
    return [term for term in terms if isinstance(term, _Avoid)]


def objective_from_spec(spec: dict[str, Any] | list[dict[str, Any]] | Objective, task: Task) -> Objective:
    """The objective a JSON spec describes (see the module docstring); an Objective passes through.

    Raises:
        ValueError: in one line, naming the bad entry and what it takes.
    """
    if isinstance(spec, Objective):
        return spec
    entries = spec if isinstance(spec, list) else [spec]
    if not entries:
        raise ValueError("An objective spec list needs at least one entry.")
    built = [_one(entry, task) for entry in entries]
    if len(built) == 1 and built[0][1] == 1.0:
        return built[0][0]
    return WeightedSum([o for o, _ in built], [w for _, w in built])
