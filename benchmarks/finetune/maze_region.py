"""Issue 14, PointMaze large: a forbidden region baked into the planner by Adjoint Matching, against the base planner
and TFG on the same box and reset seeds.

    python benchmarks/finetune/maze_region.py --box box1 --walls 0.3 --episodes 100 --seed 1000 \\
        --row base=pretrained/hd-pointmaze-large \\
        --row tfg=pretrained/hd-pointmaze-large:tfg --tfg '{"rho": 0.01, "mu": 0.03, "gamma": 0.001}' \\
        --row am-lam20=runs/finetune/hd-large-box1-lam20 --results benchmarks/finetune/results.csv

Each ``--row NAME=FOLDER[:METHOD]`` is one planner folder steered by a method of ``benchmarks/guidance/methods.py``
(default ``none``). ``FOLDER`` may be ``HD+HIGH``: the Hierarchical Diffuser folder HD with its high level replaced
by the fine-tuned folder HIGH (assembled under ``runs/finetune/assembled/NAME``). Besides the score, success and violation rate (executed path enters the box) every row records
what the lambda sweep plots, in its notes:

- ``plan_reward``: the objective (box + walls terms) of each episode's first plan, averaged;
- ``plan_gap_m``: how far the executed path stays from the plan, the mean over planned points of the distance (m)
  to the nearest executed position. A plan pushed through walls or off the data cannot be followed, so the gap
  grows where fine-tuning over-optimises the reward.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guidance"))
from methods import method_spec  # benchmarks/guidance/methods.py
from region import BOXES  # benchmarks/guidance/region.py: the boxes of issue 13's table 2

from diffplan import Planner
from diffplan.evaluation.results import append_row, result_row
from diffplan.evaluation.rollout import EvaluationResult, evaluate
from diffplan.objectives import objective_from_spec


def assemble(base: str | Path, high: str | Path, out: Path) -> Path:
    """A Hierarchical Diffuser folder ``out``: the base folder with its ``high/`` level replaced by ``high``."""
    if out.exists():
        shutil.rmtree(out)  # only ever a folder this script assembled (under runs/finetune/assembled)
    shutil.copytree(base, out)
    shutil.rmtree(out / "high")
    shutil.copytree(high, out / "high")
    return out


def plan_gap(result: EvaluationResult) -> float:
    """Mean over episodes and planned points of the distance (m) from the point to the nearest executed position."""
    gaps = []
    for plan, path, length in zip(result.plans, result.paths, result.lengths):
        planned = torch.as_tensor(plan[:, :2], dtype=torch.float64)
        executed = torch.as_tensor(path[: max(int(length), 1), :2], dtype=torch.float64)
        gaps.append(torch.cdist(planned, executed).min(dim=1).values.mean().item())
    return float(np.mean(gaps))


def plan_reward(result: EvaluationResult, objective: torch.nn.Module) -> float:
    """The objective of each episode's first plan (env units), averaged over episodes."""
    plans = torch.as_tensor(np.stack(result.plans), dtype=torch.float32)
    with torch.no_grad():
        return float(objective({"observations": plans}).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", action="append", required=True, metavar="NAME=FOLDER[:METHOD]")
    parser.add_argument("--box", default="box1", help="a box of benchmarks/guidance/region.py, or objective JSON")
    parser.add_argument("--walls", type=float, default=0.3, help="weight of the maze_walls term in the objective")
    parser.add_argument("--between", type=int, default=0,
                        help="the box term also scores K points on each segment between plan points (default: 0)")
    parser.add_argument("--tfg", default="{}", help="TFG hyper-parameters (JSON) for METHOD tfg")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--results", default="runs/eval/finetune/results.csv")
    parser.add_argument("--notes", default="")
    args = parser.parse_args()

    for row in args.row:
        name, _, target = row.partition("=")
        folder, _, method = target.partition(":")
        if "+" in folder:
            folder = str(assemble(*folder.split("+"), Path("runs/finetune/assembled") / name))
        meta = Planner.read_metadata(folder)
        task_name = meta["task"]["name"]
        region = BOXES.get(task_name, {}).get(args.box) or json.loads(args.box)
        term = {**region, "between": args.between} if args.between else region
        objective_spec = [term, {"type": "maze_walls", "weight": args.walls}] if args.walls else term
        spec = method_spec(method or "none", objective_spec, json.loads(args.tfg))
        planner = Planner.from_pretrained(folder, guidance=spec)
        result = evaluate(planner, planner.task, episodes=args.episodes, seed=args.seed, num_envs=args.num_envs,
                          progress=False, violation=region)
        s = result.summary()
        reward = plan_reward(result, objective_from_spec(objective_spec, planner.task))
        gap = plan_gap(result)
        print(f"{name:24s} violation {s['violation']:.2f} success {s['success']:.2f} score {s['score_mean']:.1f} "
              f"plan reward {reward:.3f} gap {gap:.3f} m plan {s['plan_ms_b1']:.0f} ms", flush=True)
        high = Planner.read_metadata(Path(folder) / "high") if (Path(folder) / "high").is_dir() else meta
        tuned = high.get("finetune")
        notes = " ".join(filter(None, [f"plan_reward={reward:.4f} plan_gap_m={gap:.4f}", args.notes, f"box={args.box}", f"guidance={json.dumps(spec)}" if spec else "",
                                       f"finetune={json.dumps(tuned)}" if tuned else "",
                                       f"violation={json.dumps(region)}"]))
        append_row(args.results, result_row(result, planner, name, folder, args.seed, meta, notes))


if __name__ == "__main__":
    main()
