"""Where does a maze planner lose return against the data's controller: arriving later, or leaving the goal after it?

The sparse reward counts the steps within the goal radius, and the noise-free controller never leaves its goal once
there (its return is the episode length minus its arrival step). So a planner's shortfall splits exactly into
arrival (its first reach minus the controller's, on the same reset seeds) and the steps it spends outside the
radius after its first reach. This prints both per episode and on average, with how far from the goal the agent
sits after arriving (mean distance, and the mean offset of its positions from the goal).

    python benchmarks/pointmaze/goal_hold.py pretrained/df-pointmaze-large --task pointmaze-large-hold \\
        --episodes 20 --seed 0 --set goal_loss=approach --set clip_guided=true
    # -> benchmarks/pointmaze/goal_hold.txt (appended), one block per call

Validation seeds only (0-19): it is a diagnosis, not a score.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from diffplan.cli import load_planner
from diffplan.evaluation.protocols import controller_returns
from diffplan.evaluation.results import git_commit
from diffplan.evaluation.rollout import evaluate
from diffplan.tasks import load_task

HERE = Path(__file__).parent
GOAL_RADIUS = 0.45  # m: gymnasium-robotics PointMaze rewards the steps this close to the goal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("--task", default=None)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-envs", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a planner setting (JSON, else a string)")
    parser.add_argument("--guidance", default=None, help="a guidance spec (JSON); default: the folder's")
    parser.add_argument("--out", default=str(HERE / "goal_hold.txt"))
    args = parser.parse_args()

    guidance = json.loads(args.guidance) if args.guidance else None
    try:  # --set as `diffplan evaluate` reads it
        planner, overrides = load_planner(args.planner, args.set, task=args.task, guidance=guidance)
    except ValueError as err:
        parser.error(str(err))
    task = load_task(args.task) if args.task else planner.task
    result = evaluate(planner, task, episodes=args.episodes, seed=args.seed, num_envs=args.num_envs,
                      keep_paths=args.episodes)
    steps = task.eval.max_episode_steps
    controller_reach = steps - controller_returns(task, result.seeds, protocol="task")  # it never leaves its goal

    header = (f"# {datetime.date.today()} {git_commit()} {args.planner} on {task.name}, seeds {args.seed}.."
              f"{args.seed + args.episodes - 1}, settings {overrides or 'as saved'}, guidance "
              f"{json.dumps(guidance) if guidance else 'as saved'}")
    lines = [header,
             f"# {result}",
             "# episode  return  reach  controller_reach  steps_out_after_reach  mean_distance_after  offset_after"]
    late, out, distance = [], [], []
    for i, (path, goal) in enumerate(zip(result.paths, result.goals)):
        reach = int(result.first_reach[i])
        if reach < 0:
            lines.append(f"{i:7d}  {result.returns[i]:6.0f}  never")
            continue
        after = path[reach + 1:, list(task.goal_dims)] - goal  # (T, 2) offsets from the goal after arriving
        d = np.linalg.norm(after, axis=1)
        outside = int((d > GOAL_RADIUS).sum()) if len(d) else 0
        late.append(reach - controller_reach[i])
        out.append(outside)
        distance.append(d.mean() if len(d) else 0.0)
        lines.append(f"{i:7d}  {result.returns[i]:6.0f}  {reach:5d}  {controller_reach[i]:16.0f}  {outside:21d}  "
                     f"{distance[-1]:19.2f}  {np.round(after.mean(0), 2).tolist() if len(d) else '-'}")
    lines.append(f"# mean over the episodes that arrived: {np.mean(late):.1f} steps later than the controller, "
                 f"{np.mean(out):.1f} steps outside the radius after arriving, {np.mean(distance):.2f} m from the goal")
    text = "\n".join(lines) + "\n\n"
    print(text)
    with open(args.out, "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
