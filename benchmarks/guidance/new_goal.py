"""Issue 13, table 1: steer a maze planner trained with no goal input to each episode's own goal at test time.

    diffplan fit --config benchmarks/pointmaze/configs/diffuser-medium-nogoal.yaml
    python benchmarks/guidance/new_goal.py runs/diffuser-medium-nogoal/planner --episodes 100 \\
        --methods none dps tfg select8 --tfg '{"mu": 0.3}' --results benchmarks/guidance/results.csv

Episodes follow the ``random_pairs`` protocol (start and goal cells drawn from each reset seed, the same pairs in
every row), and every method steers by ``{"type": "reach", "target": "goal"}`` (or ``--objective``): the objective
reads each episode's goal from the observation, the planner never sees it. The rows report success and the share of
the noise-free controller's return on the same pairs; the unguided row shows what the planner does on its own. Rows
go to ``--results`` (default ``runs/eval/guidance/results.csv``, untracked) as ``<planner>-goal-<method>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from methods import ALL_METHODS, run_methods  # benchmarks/guidance/methods.py

from diffplan.cli import load_planner

REACH_GOAL = {"type": "reach", "target": "goal"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS))
    parser.add_argument("--tfg", default="{}", help="TFG hyper-parameters (JSON), e.g. the searched setting")
    parser.add_argument("--objective", default=json.dumps(REACH_GOAL),
                        help="the objective (JSON); it should read the episode's goal (\"target\": \"goal\")")
    parser.add_argument("--walls", type=float, default=0.0,
                        help="add the maze_walls term with this weight to the objective (keeps plans out of walls)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--set", nargs="*", default=[],
                        help="planner overrides KEY=VALUE (as evaluate --set), e.g. replan_every=100")
    parser.add_argument("--name", default=None, help="row name prefix (default: the folder's name)")
    parser.add_argument("--results", default="runs/eval/guidance/results.csv")
    parser.add_argument("--notes", default="")
    args = parser.parse_args()

    objective = json.loads(args.objective)
    if args.walls:
        objective = [*(objective if isinstance(objective, list) else [objective]),
                     {"type": "maze_walls", "weight": args.walls}]
    try:  # checked once here, as `diffplan evaluate` checks --set; each method loads the folder with them
        _, overrides = load_planner(args.planner, args.set)
    except ValueError as err:
        parser.error(str(err))
    run_methods(args.planner, objective, args.methods, json.loads(args.tfg), "goal",
                args.name or Path(args.planner).name, args.results, args.notes, overrides, episodes=args.episodes,
                seed=args.seed, num_envs=args.num_envs, protocol="random_pairs")


if __name__ == "__main__":
    main()
