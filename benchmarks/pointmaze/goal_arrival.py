"""How fast does the ball arrive at its goal in the maze data, and what do the training windows show after it?

The recipe cuts the controller's stream into an episode at each goal reached. This prints, per dataset, the
ball's speed over the last steps before each cut (does the controller brake into a goal?) and what a window that
runs past the cut shows next: with held padding (the default windows) the velocity jumps to zero in one step; with
``join_episodes`` the window goes on with the stream's real dynamics (the next goal). It answers the data half of
"why do diffused actions overshoot the goal" (issue 12) without training anything.

    python benchmarks/pointmaze/goal_arrival.py pointmaze-umaze pointmaze-medium
    # -> benchmarks/pointmaze/goal_arrival.txt (appended), one block per task
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np

from diffplan.data.episodes import EpisodeArrays, load_episodes
from diffplan.data.windows import TrajectoryWindows
from diffplan.evaluation.results import git_commit
from diffplan.tasks import Task, load_task

HERE = Path(__file__).parent


def speeds_before_cut(task: Task, episodes: EpisodeArrays, last: int) -> tuple[np.ndarray, float, np.ndarray]:
    """(last,) mean speed k = last-1 .. 0 steps before each episode's final state, the mean speed over all states,
    and (E,) the speed at each final state."""
    speed = np.linalg.norm(episodes.observations[:, list(task.velocity_dims)], axis=-1)
    ends = episodes.episode_starts + episodes.episode_lengths - 1
    long_enough = episodes.episode_lengths > last
    window = ends[long_enough, None] - np.arange(last)[None, ::-1]
    return speed[window].mean(0), float(speed.mean()), speed[ends]


def speed_after_cut(task: Task, episodes: EpisodeArrays, join: bool, steps: int) -> np.ndarray:
    """(steps,) mean speed in training windows at an episode's final state (the goal reached) and the steps after."""
    windows = TrajectoryWindows(episodes, horizon=steps + 1, velocity_dims=task.velocity_dims, join_episodes=join)
    ends = episodes.episode_starts + episodes.episode_lengths - 1
    first_state = windows.stream[windows.starts]
    picks = np.flatnonzero(np.isin(first_state, ends - 1))[:2000]  # windows starting one step before a cut
    vel = np.stack([windows[i]["observations"][1:, list(task.velocity_dims)].numpy() for i in picks])
    return np.linalg.norm(vel, axis=-1).mean(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--last", type=int, default=10, help="steps before the cut to show")
    parser.add_argument("--after", type=int, default=5, help="window steps after the cut to show")
    parser.add_argument("--out", type=Path, default=HERE / "goal_arrival.txt")
    args = parser.parse_args()
    command = f"python benchmarks/pointmaze/goal_arrival.py {' '.join(args.tasks)} --last {args.last} --after {args.after}"
    lines = [f"# {datetime.date.today()} {git_commit()}: {command}"]
    for name in args.tasks:
        task = load_task(name)
        episodes = load_episodes(task.dataset.local_id, task, progress=False)
        before, overall, at_end = speeds_before_cut(task, episodes, args.last)
        lines.append(f"{name}: mean speed over all states {overall:.2f}; at the goal-reached state "
                     f"{at_end.mean():.2f} (median {np.median(at_end):.2f}, {100 * np.mean(at_end < 0.5):.1f}% below 0.5)")
        lines.append(f"  speed k steps before the cut, k = {args.last - 1}..0: " + " ".join(f"{v:.2f}" for v in before))
        for join in (False, True):
            label = "joined windows (join_episodes)" if join else "held padding (default windows)"
            lines.append(f"  at the cut and after, {label}: " + " ".join(f"{v:.2f}" for v in speed_after_cut(task, episodes, join, args.after)))
    text = "\n".join(lines)
    print(text)
    with args.out.open("a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
