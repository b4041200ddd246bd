"""Planner.plan latency at batch 1: a shipped planner against Diffuser's paper configuration, in one run.

The paper configuration (Janner et al. 2022, maze2d): temporal U-Net dim 32, mults (1, 4, 8), horizon
128/256/384 and 64/256/256 DDPM steps for umaze/medium/large, one plan point per env step. It runs through the
same sampler with random weights (its cost does not depend on the weights); timings alternate between the two
planners so machine noise hits both alike.

    python benchmarks/pointmaze/speed.py pretrained/diffuser-pointmaze-umaze
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

PAPER = {  # task: (horizon, DDPM steps, published maze2d score, D4RL reference scores)
    "pointmaze-umaze": (128, 64, 113.9),
    "pointmaze-medium": (256, 256, 121.5),
    "pointmaze-large": (384, 256, 123.0),
}


def paper_planner(ours: DiffuserPlanner) -> DiffuserPlanner:
    horizon, steps, _ = PAPER[ours.task.name]
    torch.manual_seed(0)
    denoiser = TemporalUnet(ours.layout.transition_dim, horizon, dim=32, dim_mults=(1, 4, 8))
    return DiffuserPlanner(ours.task, ours.normalizer, denoiser,
                           schedule={"num_train_timesteps": steps, "beta_schedule": "squaredcos_cap_v2",
                                     "prediction_type": "sample"},
                           horizon=horizon, stride=1, num_inference_steps=steps, eta=1.0)


def time_plan(planner: Planner, obs: np.ndarray, goal: np.ndarray) -> float:
    t0 = time.perf_counter()
    planner.plan(obs, goal=goal, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner", help="planner folder to compare")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--results", default="benchmarks/pointmaze/results.csv", help="where our score is read")
    parser.add_argument("--out", default="benchmarks/pointmaze/speed.csv")
    args = parser.parse_args()

    ours = Planner.from_pretrained(args.planner)
    paper = paper_planner(ours)
    obs, goal = np.array([1.0, -1.0, 0.0, 0.0]), np.array([-1.0, 1.0])
    if ours.task.name != "pointmaze-umaze":  # a free cell and the evaluation goal of the larger mazes
        cells = [(r, c) for r, row in enumerate(ours.task.maze_map) for c, v in enumerate(row) if v == 0]
        rows, cols = len(ours.task.maze_map), len(ours.task.maze_map[0])
        to_xy = lambda rc: np.array([rc[1] + 0.5 - cols / 2, rows / 2 - rc[0] - 0.5])
        obs = np.concatenate([to_xy(cells[0]), [0.0, 0.0]])
        g = [(r, c) for r, row in enumerate(ours.task.eval.env_kwargs["maze_map"]) for c, v in enumerate(row) if v == "g"]
        goal = to_xy(g[0])
    ours_jit = Planner.from_pretrained(args.planner, jit=True)
    for p in (ours, ours_jit, paper):  # warm-up (and tracing for the jit copy)
        time_plan(p, obs, goal)
    t_ours, t_jit, t_paper = [], [], []
    for _ in range(args.repeats):
        t_ours.append(time_plan(ours, obs, goal))
        t_jit.append(time_plan(ours_jit, obs, goal))
        t_paper.append(time_plan(paper, obs, goal))
    ms_ours, ms_jit, ms_paper = (1e3 * np.median(t) for t in (t_ours, t_jit, t_paper))
    rows = [r for r in read_rows(args.results) if r["planner_path"].rstrip("/") == args.planner.rstrip("/")] \
        if Path(args.results).exists() else []
    score = f"{float(rows[-1]['score_mean']):.1f} ± {float(rows[-1]['score_se']):.1f}" if rows else "n/a"
    horizon, steps, published = PAPER[ours.task.name]
    print(f"{ours.task.name}, torch threads {torch.get_num_threads()}, median of {args.repeats}:")
    print(f"  ours  ({ours.horizon} points x stride {ours.stride}, {ours.num_inference_steps} DDIM steps): "
          f"{ms_ours:.1f} ms per plan eager, {ms_jit:.1f} ms with jit=True, score {score} (results.csv)")
    print(f"  paper (H {horizon}, {steps} DDPM steps, dim 32 x (1,4,8)): {ms_paper:.1f} ms per plan, "
          f"published score {published} (D4RL maze2d, not trained here)")
    print(f"  speed-up: {ms_paper / ms_ours:.1f}x eager, {ms_paper / ms_jit:.1f}x with jit")
    out = Path(args.out)
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "commit", "task", "planner", "ours_ms", "ours_jit_ms", "paper_ms", "speedup",
                        "speedup_jit", "ours_score",
                        "paper_published_score", "threads"])
        w.writerow([datetime.date.today().isoformat(), git_commit(), ours.task.name, args.planner, f"{ms_ours:.2f}",
                    f"{ms_jit:.2f}", f"{ms_paper:.2f}", f"{ms_paper / ms_ours:.2f}", f"{ms_paper / ms_jit:.2f}", score, published, torch.get_num_threads()])


if __name__ == "__main__":
    main()
