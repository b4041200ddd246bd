"""How much of a high-level planner's mass crosses a box, per evaluation context: the room a reward tilt has.

    python benchmarks/finetune/route_mass.py --box box1 --samples 32 --seeds 0-19 \\
        --row base=runs/finetune/hd-large-box1/lam0-high --row am=runs/finetune/hd-large-box1/env-lam20-high

For each reset seed (start and goal of one evaluation episode) it samples ``--samples`` subgoal plans from every
``--row`` (a single-chain planner folder, e.g. a Hierarchical Diffuser's ``high/``) and prints the share whose
subgoals enter the box. A tilt ``p_base exp(lam r)`` can only move mass onto routes the base samples: where the
base crosses the box in 32 of 32 samples, the detour has well under 1/32 of its mass, and a fine-tune has to find it
from its own samples and local reward gradients.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "guidance"))
from region import BOXES  # benchmarks/guidance/region.py: the boxes of issue 13's table 2

from diffplan import Planner
from diffplan.environments import make_eval_env
from diffplan.objectives import along_segments
from diffplan.planner import PlanContext


def seed_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--box", default="box1")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seeds", default="0-19", help="reset seeds FIRST-LAST (default: validation 0-19)")
    parser.add_argument("--between", type=int, default=0,
                        help="also count the straight segments between subgoals, K points each (default: 0)")
    args = parser.parse_args()

    rows = {name: Planner.from_pretrained(folder) for name, _, folder in (r.partition("=") for r in args.row)}
    task = next(iter(rows.values())).task
    spec = BOXES.get(task.name, {}).get(args.box) or json.loads(args.box)
    lo, hi = torch.tensor(spec["lo"]), torch.tensor(spec["hi"])
    env = make_eval_env(task)
    seeds = seed_range(args.seeds)
    resets = [env.reset(seed=s)[0] for s in seeds]
    context = PlanContext(obs=torch.tensor(np.stack([o[task.observation_key] for o in resets]), dtype=torch.float32),
                          goal=torch.tensor(np.stack([o[task.goal_key] for o in resets]), dtype=torch.float32))
    print(f"share of {args.samples} subgoal plans entering {args.box} {spec['lo']}..{spec['hi']}, per reset seed")
    print("seed " + " ".join(f"{s:>5d}" for s in seeds) + "   mean")
    for name, planner in rows.items():
        torch.manual_seed(0)
        positions = planner.sample(context, n=args.samples).observations[..., :2]  # (seeds * samples, H, 2)
        positions = along_segments(positions, args.between)
        inside = ((positions > lo) & (positions < hi)).all(-1).any(-1).float().view(len(seeds), args.samples)
        share = inside.mean(1)
        print(f"{name:5s}" + " ".join(f"{v:5.2f}" for v in share.tolist()) + f"  {share.mean():5.2f}")


if __name__ == "__main__":
    main()
