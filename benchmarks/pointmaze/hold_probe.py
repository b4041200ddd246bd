"""After a maze planner reaches its goal, do its executed actions point back at the goal when the ball strays?

    python benchmarks/pointmaze/hold_probe.py pretrained/df-pointmaze-medium --task pointmaze-medium-hold

Issue 12's medium hold failure, probed in real episodes: ``--episodes`` episodes of the same ``evaluate`` run as
``goal_hold.py`` (reset seeds ``--seed``..., validation by default), recording the executed actions on the way.
After each episode's first reach, the steps where the ball is ``--near`` m from the goal (0.3-0.6 by default, just outside or at the edge of the 0.45 m goal
radius) and slower than 0.5 m/s are collected. It prints the executed actions' mean component toward the goal
there, how many such steps there were, and the same component for the dataset's actions in states like them (the
controller that made the data pushes at nearly full force toward its goal there). A diagnosis, not a score.
"""

from __future__ import annotations

import argparse

import minari
import numpy as np

from diffplan.cli import load_planner
from diffplan.evaluation.rollout import evaluate
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
    executed = []  # (episodes, 2) per step: the batched actions the evaluation executes
    act = planner.act

    def recording_act(obs, goal=None):
        action = act(obs, goal)
        if np.ndim(action) == 2 and len(action) == args.episodes:  # not the batch-1 latency probe
            executed.append(np.asarray(action))
        return action

    planner.act = recording_act
    result = evaluate(planner, task, episodes=args.episodes, seed=args.seed, num_envs=args.episodes,
                      keep_paths=args.episodes, progress=False)
    actions_taken = np.stack(executed, axis=1)  # (episodes, T, 2)
    offsets, actions = [], []
    for i, (path, goal) in enumerate(zip(result.paths, result.goals)):
        reach = int(result.first_reach[i])
        if reach < 0:
            continue
        after = path[reach + 1:]  # the states after the first reach, and the actions taken in them
        to_goal = goal - after[:, list(task.goal_dims)]
        distance = np.linalg.norm(to_goal, axis=1)
        speed = np.linalg.norm(after[:, list(task.velocity_dims)], axis=1)
        keep = (distance > args.near[0]) & (distance < args.near[1]) & (speed < SLOW)
        offsets.append(to_goal[keep])
        actions.append(actions_taken[i, reach + 1:][keep])
    planned = toward_goal(np.concatenate(actions), np.concatenate(offsets))
    print(f"{args.planner} on {task.name}, seeds {args.seed}..{args.seed + args.episodes - 1}: {len(planned)} steps "
          f"after arriving {args.near[0]}-{args.near[1]} m from the goal at < {SLOW} m/s; executed actions toward the "
          f"goal {planned.mean():+.2f} ± {planned.std() / max(len(planned), 1) ** 0.5:.2f} on average")

    offsets, actions = [], []
    for episode in minari.load_dataset(task.dataset.local_id).iterate_episodes():
        states, goals = episode.observations["observation"][:-1], episode.observations["desired_goal"][:-1]
        to_goal = goals - states[:, list(task.goal_dims)]
        distance = np.linalg.norm(to_goal, axis=1)
        speed = np.linalg.norm(states[:, list(task.velocity_dims)], axis=1)
        keep = (distance > args.near[0]) & (distance < args.near[1]) & (speed < SLOW)
        offsets.append(to_goal[keep])
        actions.append(episode.actions[keep])
    data = toward_goal(np.concatenate(actions), np.concatenate(offsets))
    print(f"data ({task.dataset.local_id}): {len(data)} such states, actions toward the goal {data.mean():+.2f} on "
          f"average")


if __name__ == "__main__":
    main()
