"""After a maze planner reaches its goal, do its executed actions point back at the goal when the ball strays?

    python benchmarks/pointmaze/hold_probe.py pretrained/df-pointmaze-medium --task pointmaze-medium-hold

Issue 12's medium hold failure, probed in real episodes: ``--episodes`` evaluation episodes (reset seeds
``--seed``..., validation by default) run with the planner's own ``act``; after each episode's first reach, the steps
where the ball is ``--near`` m from the goal (0.3-0.6 by default, just outside or at the edge of the 0.45 m goal
radius) and slower than 0.5 m/s are collected. It prints the executed actions' mean component toward the goal
there, how many such steps there were, and the same component for the dataset's actions in states like them (the
controller that made the data pushes at nearly full force toward its goal there). A diagnosis, not a score.
"""

from __future__ import annotations

import argparse

import minari
import numpy as np

from diffplan.cli import load_planner
from diffplan.environments import make_eval_env
from diffplan.tasks import load_task

SLOW = 0.5  # m/s


def toward_goal(actions: np.ndarray, to_goal: np.ndarray) -> np.ndarray:
    """(N,) the component of actions (N, 2) along the unit directions of to_goal (N, 2)."""
    return (actions * to_goal / np.linalg.norm(to_goal, axis=1, keepdims=True)).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("--task", default=None)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--near", type=float, nargs=2, default=[0.3, 0.6], metavar=("MIN", "MAX"))
    args = parser.parse_args()
    planner, _ = load_planner(args.planner, [], task=args.task)
    task = load_task(args.task) if args.task else planner.task
    envs = [make_eval_env(task) for _ in range(args.episodes)]
    obs = [env.reset(seed=args.seed + i)[0] for i, env in enumerate(envs)]
    planner.reset()
    reached = np.zeros(args.episodes, bool)
    offsets, actions = [], []
    for _ in range(task.eval.max_episode_steps):
        batch = {k: np.stack([o[k] for o in obs]).astype(np.float32) for k in obs[0]}
        action = np.asarray(planner.act(batch))
        to_goal = batch["desired_goal"] - batch["achieved_goal"]
        distance = np.linalg.norm(to_goal, axis=1)
        reached |= distance <= 0.45
        speed = np.linalg.norm(batch["observation"][:, 2:4], axis=1)
        keep = reached & (distance > args.near[0]) & (distance < args.near[1]) & (speed < SLOW)
        offsets.append(to_goal[keep])
        actions.append(action[keep])
        obs = [env.step(a)[0] for env, a in zip(envs, action)]
    planned = toward_goal(np.concatenate(actions), np.concatenate(offsets))
    print(f"{args.planner} on {task.name}, seeds {args.seed}..{args.seed + args.episodes - 1}: {len(planned)} steps "
          f"after arriving {args.near[0]}-{args.near[1]} m from the goal at < {SLOW} m/s; executed actions toward the "
          f"goal {planned.mean():+.2f} ± {planned.std() / max(len(planned), 1) ** 0.5:.2f} on average")

    offsets, actions = [], []
    for episode in minari.load_dataset(task.dataset.local_id).iterate_episodes():
        states, goals = episode.observations["observation"][:-1], episode.observations["desired_goal"][:-1]
        to_goal = goals - states[:, :2]
        distance = np.linalg.norm(to_goal, axis=1)
        keep = (distance > args.near[0]) & (distance < args.near[1]) & (np.linalg.norm(states[:, 2:], axis=1) < SLOW)
        offsets.append(to_goal[keep])
        actions.append(episode.actions[keep])
    data = toward_goal(np.concatenate(actions), np.concatenate(offsets))
    print(f"data ({task.dataset.local_id}): {len(data)} such states, actions toward the goal {data.mean():+.2f} on "
          f"average")


if __name__ == "__main__":
    main()
