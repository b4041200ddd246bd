"""Planner.plan latency at batch 1: shipped planners against Diffuser's paper configuration, in one run.

The paper configuration (Janner et al. 2022, maze2d): temporal U-Net dim 32, mults (1, 4, 8), horizon
128/256/384 and 64/256/256 DDPM steps for umaze/medium/large, one plan point per env step. It runs through the
same sampler with random weights (its cost does not depend on the weights). Each planner is also timed with
``jit=True`` (traced, frozen denoisers). Timings alternate between planners so machine noise hits all alike.

    python benchmarks/pointmaze/speed.py runs/diffuser-large/planner runs/hd-large/planner
"""

from __future__ import annotations

import argparse
import csv
import datetime
import time
from pathlib import Path

import numpy as np
import torch

from diffplan import Planner
from diffplan.algorithms.diffuser import DiffuserPlanner
from diffplan.evaluation.results import git_commit, read_rows
from diffplan.nn.unet import TemporalUnet

PAPER = {  # task: (horizon, DDPM steps, published maze2d score)
    "pointmaze-umaze": (128, 64, 113.9),
    "pointmaze-medium": (256, 256, 121.5),
    "pointmaze-large": (384, 256, 123.0),
}


def paper_planner(like: Planner) -> DiffuserPlanner:
    """Diffuser's maze2d configuration for ``like``'s task, with ``like``'s normalizer."""
    base = getattr(like, "high", like)
    horizon, steps, _ = PAPER[like.task.name]
    torch.manual_seed(0)
    denoiser = TemporalUnet(base.layout.transition_dim, horizon, dim=32, dim_mults=(1, 4, 8))
    return DiffuserPlanner(like.task, base.normalizer, denoiser,
                           schedule={"num_train_timesteps": steps, "beta_schedule": "squaredcos_cap_v2",
                                     "prediction_type": "sample"},
                           horizon=horizon, stride=1, num_inference_steps=steps, eta=1.0)


def start_and_goal(task) -> tuple[np.ndarray, np.ndarray]:
    """The first free cell's centre (at rest) and the evaluation goal cell's centre."""
    grid = task.eval.env_kwargs["maze_map"]
    rows, cols = len(grid), len(grid[0])

    def to_xy(rc: tuple[int, int]) -> np.ndarray:
        return np.array([rc[1] + 0.5 - cols / 2, rows / 2 - rc[0] - 0.5])

    free = [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v == 0]
    goal = [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v == "g"]
    return np.concatenate([to_xy(free[-1]), [0.0, 0.0]]), to_xy(goal[0])


def time_plan(planner: Planner, obs: np.ndarray, goal: np.ndarray) -> float:
    t0 = time.perf_counter()
    planner.plan(obs, goal=goal, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - t0


def score_of(results: str, folder: str) -> str:
    rows = [r for r in read_rows(results) if r["planner_path"].rstrip("/") == folder.rstrip("/")] \
        if Path(results).exists() else []
    return f"{float(rows[-1]['score_mean']):.1f} ± {float(rows[-1]['score_se']):.1f}" if rows else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planners", nargs="+", help="planner folders of one task")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--results", default="benchmarks/pointmaze/results.csv", help="where scores are read")
    parser.add_argument("--out", default="benchmarks/pointmaze/speed.csv")
    args = parser.parse_args()

    contenders = {}
    for folder in args.planners:
        contenders[folder] = Planner.from_pretrained(folder)
        contenders[f"{folder} (jit)"] = Planner.from_pretrained(folder, jit=True) if isinstance(
            contenders[folder], DiffuserPlanner) else _jit_levels(folder)
    task = contenders[args.planners[0]].task
    if any(p.task.name != task.name for p in contenders.values()):
        parser.error("all planners must be made for the same task")
    paper = contenders["paper configuration"] = paper_planner(contenders[args.planners[0]])
    obs, goal = start_and_goal(task)
    for p in contenders.values():  # warm-up (and tracing of the jit copies)
        time_plan(p, obs, goal)
    times = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, p in contenders.items():
            times[name].append(time_plan(p, obs, goal))
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    horizon, steps, published = PAPER[task.name]
    print(f"{task.name}: batch-1 plan, median of {args.repeats}, torch threads {torch.get_num_threads()}")
    print(f"  paper configuration (H {horizon}, {steps} DDPM steps, dim 32 x (1,4,8)): {ms['paper configuration']:.1f} ms;"
          f" published score {published} (D4RL maze2d, not trained here)")
    out = Path(args.out)
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "commit", "task", "planner", "plan_ms", "paper_ms", "speedup_vs_paper", "score",
                        "paper_published_score", "threads"])
        for name in contenders:
            if name == "paper configuration":
                continue
            folder = name.removesuffix(" (jit)")
            score = score_of(args.results, folder)
            print(f"  {name}: {ms[name]:.1f} ms, {ms['paper configuration'] / ms[name]:.1f}x faster than the paper "
                  f"configuration; score {score}")
            w.writerow([datetime.date.today().isoformat(), git_commit(), task.name, name, f"{ms[name]:.2f}",
                        f"{ms['paper configuration']:.2f}", f"{ms['paper configuration'] / ms[name]:.2f}", score,
                        published, torch.get_num_threads()])
    del paper


def _jit_levels(folder: str) -> Planner:
    """A composed planner whose levels run traced denoisers."""
    planner = Planner.from_pretrained(folder)
    for name in planner.components:
        level = getattr(planner, name)
        if isinstance(level, DiffuserPlanner):
            level.jit = True
    return planner


if __name__ == "__main__":
    main()
