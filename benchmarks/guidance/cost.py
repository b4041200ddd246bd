"""Issue 13's speed target: each guidance method's cost per plan against the unguided plan, timed in one run.

    python benchmarks/guidance/cost.py pretrained/hd-pointmaze-large \\
        --objective '{"type": "avoid_box", "lo": [0.0, -0.5], "hi": [1.0, 0.5]}'
    python benchmarks/guidance/cost.py pretrained/dd-hopper-medium --objective '{"type": "speed", "target": 2.73}'

Batch 1, the median of ``--repeats`` plans after a warm-up (``plan_latency_ms``), rounds interleaved so that drift
of a shared machine hits every method alike. Target: TFG with N_recur = N_iter = 1 (``tfg-1-1``) at most 3x the
unguided plan. Rows are appended to ``--out``; run it on a quiet machine (nothing else running).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
from pathlib import Path

import torch
from methods import PRESETS, method_spec  # benchmarks/guidance/methods.py

from diffplan import Planner
from diffplan.environments import make_eval_env
from diffplan.evaluation.results import git_commit
from diffplan.evaluation.rollout import interleaved_plan_latency_ms
from diffplan.tasks import load_task

HERE = Path(__file__).parent
TFG_1_1 = {"rho": 0.1, "mu": 0.1, "recur_steps": 1, "iter_steps": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("--objective", required=True, help="objective spec (JSON)")
    parser.add_argument("--methods", nargs="+", default=["none", *PRESETS, "tfg-1-1", "tfg", "select8", "select32"])
    parser.add_argument("--tfg", default='{"recur_steps": 1, "iter_steps": 4}', help="the 'tfg' row's settings")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(HERE / "cost.csv"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base = Planner.from_pretrained(args.planner)
    task = load_task(base.task.name)  # today's card (older folders may lack dims an objective needs)
    objective, tfg = json.loads(args.objective), json.loads(args.tfg)
    obs, _ = make_eval_env(task).reset(seed=0)
    planners = {}
    for method in args.methods:
        spec = (method_spec("tfg", objective, TFG_1_1) if method == "tfg-1-1"
                else method_spec(method, objective, tfg))
        planners[method] = (Planner.from_pretrained(args.planner, task=task, guidance=spec), spec)
    # plan() steers with the planner's own guidance
    times = interleaved_plan_latency_ms({m: p for m, (p, _) in planners.items()}, obs, args.rounds, args.repeats)
    unguided = times.get("none", float("nan"))
    out = Path(args.out)
    new_file = not out.exists()
    with out.open("a", newline="") as f:
        writer = None
        for method, (planner, spec) in planners.items():
            ms = times[method]
            row = {"date": datetime.date.today().isoformat(), "commit": git_commit(), "task": task.name,
                   "planner": args.planner, "method": method, "plan_ms": round(ms, 2),
                   "x_unguided": round(ms / unguided, 2), "threads": torch.get_num_threads(),
                   "spec": json.dumps(spec) if spec else ""}
            print(f"{method:14s} {ms:8.1f} ms  {ms / unguided:5.2f}x unguided", flush=True)
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new_file:
                    writer.writeheader()
            writer.writerow(row)


if __name__ == "__main__":
    main()
