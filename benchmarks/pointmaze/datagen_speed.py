"""Dataset generation cost against the bare env + controller loop, measured in one run.

    python benchmarks/pointmaze/datagen_speed.py --steps 100000

Bare: ``env.step(controller(obs) + noise)`` with nothing stored. Recipe: ``collect`` (the same loop, storing
every field and cutting episodes) plus building the minari ``EpisodeBuffer`` list. Writing HDF5 and the
reference-score episodes are reported separately since their cost does not grow with the env loop.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from diffplan.data.recipes.pointmaze import collect
from diffplan.data.recipes.waypoint_controller import WaypointController
from diffplan.environments import make_env
from diffplan.tasks import load_task


def bare_loop(task, steps: int, seed: int) -> float:
    env = make_env(task, max_episode_steps=steps)
    rng = np.random.default_rng(seed)
    controller = WaypointController(env.unwrapped.maze, rng)
    obs, _ = env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, *_ = env.step(np.clip(controller(obs) + rng.normal(size=2) * 0.5, -1, 1).astype(np.float32))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pointmaze-umaze")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    task = load_task(args.task)
    bare, recipe = [], []
    for r in range(args.repeats):
        bare.append(bare_loop(task, args.steps, r))
        t0 = time.perf_counter()
        collect(task, args.steps, r, progress=False)
        recipe.append(time.perf_counter() - t0)
    b, c = np.median(bare), np.median(recipe)
    print(f"{task.name}, {args.steps} steps, median of {args.repeats}: bare env+controller {b:.1f} s "
          f"({args.steps / b:,.0f} steps/s), recipe collect {c:.1f} s ({args.steps / c:,.0f} steps/s), "
          f"ratio {c / b:.2f}x")


if __name__ == "__main__":
    main()
