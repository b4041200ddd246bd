"""Issue 13, table 2: keep a maze planner out of a region placed at test time (a box it never saw in training).

    python benchmarks/guidance/region.py pretrained/hd-pointmaze-large --box box1 --episodes 20 \\
        --methods none dps tfg select8 --tfg '{"rho": 1.0, "mu": 1.0}' --results benchmarks/guidance/results.csv

Every method (``methods.py``) is evaluated on the same reset seeds with ``{"type": "avoid_box", ...}`` as its
objective (plus ``{"type": "maze_walls"}`` with ``--walls W``: a strong push off the box moves plans through
walls, where the tracker cannot follow), and every row, the unguided one included, carries the violation rate: the share of episodes whose
executed path enters the box. Rows go to ``--results`` (default: ``runs/eval/guidance/results.csv``, untracked) as
``<planner>-<box>-<method>``; the plan costs compare within one run on a quiet machine.

Boxes on PointMaze large (cells as (row, col) of the task card's map), each on a corridor of the usual route to the
goal cell (7, 9), with another way round:
- ``box1``: cell (4, 6), the passage from the left half down to row 5; the detour runs over the top and down the
  right column.
- ``box2``: cell (4, 10), the right column; the detour runs through (4, 6).
- ``box4``: cell (5, 7), the corridor after box1's passage, on the shortest route of 30 cells (the most used); the
  detour runs over the top and down the right column, as box1's.
- ``box3``: the left half of box1's cell. Unlike box1 and box2 (whole corridor cells, which only another route
  avoids), it can be passed on the right half of the same corridor (issue 14: what a fine-tune can bake in locally).

Boxes on PointMaze medium (goal cell (6, 6), reached only through (4, 4)):
- ``box1``: cell (3, 3), on the usual route of the 8 cells left of it (top-left room, left column); the detour runs
  down the left column and along the bottom row.
- ``box2``: cell (5, 4), on the usual route of the 5 bottom-left cells; the detour runs up the left column and
  through (3, 3).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from methods import ALL_METHODS, run_methods  # benchmarks/guidance/methods.py

from diffplan import Planner
from diffplan.cli import load_planner
from diffplan.environments import make_eval_vector_env
from diffplan.evaluation.rollout import entered, violation_regions
from diffplan.tasks import Task

BOXES = {
    "pointmaze-large": {
        "box1": {"type": "avoid_box", "lo": [0.0, -0.5], "hi": [1.0, 0.5]},
        "box2": {"type": "avoid_box", "lo": [4.0, -0.5], "hi": [5.0, 0.5]},
        "box3": {"type": "avoid_box", "lo": [0.0, -0.5], "hi": [0.5, 0.5]},
        "box4": {"type": "avoid_box", "lo": [1.0, -1.5], "hi": [2.0, -0.5]},
    },
    "pointmaze-medium": {
        "box1": {"type": "avoid_box", "lo": [-1.0, 0.0], "hi": [0.0, 1.0]},
        "box2": {"type": "avoid_box", "lo": [0.0, -2.0], "hi": [1.0, -1.0]},
    },
}
BOXES["pointmaze-medium-hold"] = BOXES["pointmaze-medium"]  # same maps, goal-hold data
BOXES["pointmaze-large-hold"] = BOXES["pointmaze-large"]


def starts_inside(task: Task, region: dict, episodes: int, seed: int, num_envs: int) -> int:
    """Episodes (reset seeds as ``evaluate`` draws them) that start inside ``region``: counted as violations, though
    no planner can avoid them."""
    envs = make_eval_vector_env(task, min(num_envs, episodes))
    regions = violation_regions(region, task)
    count = 0
    for first in range(0, episodes, envs.num_envs):
        obs, _ = envs.reset(seed=[seed + first + i for i in range(envs.num_envs)])
        starts = np.asarray(obs[task.observation_key])[:, None]
        take = min(envs.num_envs, episodes - first)
        count += int(entered(regions, starts, np.zeros(len(starts), dtype=int))[:take].sum())
    envs.close()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("--box", nargs="+", default=["box1", "box2"], help="names in BOXES, or objective JSON")
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS))
    parser.add_argument("--tfg", default="{}", help="TFG hyper-parameters (JSON), e.g. the searched setting")
    parser.add_argument("--waypoints", default="{}", help="waypoints hyper-parameters (JSON), e.g. '{\"margin\": 2}'")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--walls", type=float, default=0.0,
                        help="add the maze_walls term with this weight to the guidance objective (keeps guided "
                             "plans out of the walls; the violation is still the box alone)")
    parser.add_argument("--walls-between", type=int, default=0,
                        help="points scored on each segment between plan points by the maze_walls term (catches "
                             "sparse plans, e.g. HD's subgoals, that jump across a wall)")
    parser.add_argument("--reach-corridors", type=float, default=0.0,
                        help="add, with this weight, the episode's goal reached through the maze's corridors with the "
                             "box's cells closed ({\"type\": \"reach\", \"metric\": \"corridors\", \"closed\": "
                             "[box]}): its gradient leads round the box instead of only off it")
    parser.add_argument("--set", nargs="*", default=[],
                        help="planner overrides KEY=VALUE (as evaluate --set), e.g. replan_every=100")
    parser.add_argument("--name", default=None, help="row name prefix (default: the folder's name)")
    parser.add_argument("--results", default="runs/eval/guidance/results.csv")
    parser.add_argument("--notes", default="")
    args = parser.parse_args()

    try:  # checked once here, as `diffplan evaluate` checks --set; each method loads the folder with them
        _, overrides = load_planner(args.planner, args.set)
    except ValueError as err:
        parser.error(str(err))
    task = Task.from_dict(Planner.read_metadata(args.planner)["task"])
    boxes = BOXES.get(task.name, {})
    prefix = args.name or Path(args.planner).name
    for box in args.box:
        region = boxes[box] if box in boxes else json.loads(box)
        inside = starts_inside(task, region, args.episodes, args.seed, args.num_envs)
        print(f"{box}: {inside} of {args.episodes} episodes start inside the box (violations no planner avoids)")
        walls = {"type": "maze_walls", "weight": args.walls, "between": args.walls_between}
        reach = {"type": "reach", "target": "goal", "at": "all", "metric": "corridors",
                 "closed": [{"lo": region["lo"], "hi": region["hi"]}], "weight": args.reach_corridors}
        objective = [region, *([walls] if args.walls else []), *([reach] if args.reach_corridors else [])]
        objective = objective[0] if len(objective) == 1 else objective
        notes = " ".join(filter(None, [args.notes, f"box={box}", f"starts_inside={inside}"]))
        run_methods(args.planner, objective, args.methods, json.loads(args.tfg), box, prefix, args.results, notes,
                    overrides, json.loads(args.waypoints), episodes=args.episodes, seed=args.seed,
                    num_envs=args.num_envs, violation=region)

if __name__ == "__main__":
    main()
