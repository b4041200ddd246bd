"""Plan cost of fine-tuned planners against their base (and a guided base), timed in one process, interleaved.

    python benchmarks/finetune/plan_cost.py --row base=pretrained/dd-hopper-medium \\
        --row am=runs/finetune/dd-hopper/lam0.003 --row select8=pretrained/dd-hopper-medium:select8 \\
        --objective '{"type": "critic", "path": "runs/critic-hopper-medium/critic"}' --out benchmarks/finetune/plan_cost.csv

Run it alone on a quiet machine: the ratio to the first row is the number to quote, not the milliseconds. Each
``--row NAME=FOLDER[:METHOD]`` (METHOD as in ``benchmarks/guidance/methods.py``, steered toward ``--objective``)
is timed ``--repeats`` times per round, rounds interleaved so that drift of the machine hits every row alike.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guidance"))
from methods import method_spec  # benchmarks/guidance/methods.py

from diffplan import Planner
from diffplan.environments import make_eval_env
from diffplan.evaluation.results import git_commit
from diffplan.evaluation.rollout import interleaved_plan_latency_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", action="append", required=True, metavar="NAME=FOLDER[:METHOD]")
    parser.add_argument("--objective", default=None, help="objective JSON for rows with a METHOD")
    parser.add_argument("--tfg", default="{}", help="TFG hyper-parameters (JSON) for METHOD tfg")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default="runs/eval/finetune/plan_cost.csv")
    args = parser.parse_args()

    planners = {}
    for row in args.row:
        name, _, target = row.partition("=")
        folder, _, method = target.partition(":")
        objective = json.loads(args.objective) if args.objective else None
        spec = method_spec(method, objective, json.loads(args.tfg)) if method else None
        planners[name] = (folder, spec, Planner.from_pretrained(folder, guidance=spec))
    task = next(iter(planners.values()))[2].task
    obs, _ = make_eval_env(task).reset(seed=0)
    times = interleaved_plan_latency_ms({name: p for name, (_, _, p) in planners.items()}, obs, args.rounds,
                                        args.repeats)
    first = times[next(iter(planners))]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["date", "commit", "task", "name", "folder", "guidance", "plan_ms_b1", "ratio_to_first",
                             "torch_threads"])
        for name, (folder, spec, _) in planners.items():
            ms = times[name]
            print(f"{name:20s} {ms:8.1f} ms  x{ms / first:.2f}")
            writer.writerow([datetime.date.today().isoformat(), git_commit(), task.name, name, folder,
                             json.dumps(spec) if spec else "", f"{ms:.2f}", f"{ms / first:.3f}",
                             torch.get_num_threads()])


if __name__ == "__main__":
    main()
