"""Cost per action at batch 1 on hopper: shipped planners against Diffuser's paper configuration, in one run.

Diffuser's locomotion configuration (Janner et al. 2022, `config/locomotion.py`): temporal U-Net dim 32 x
(1, 2, 4, 8) over [actions, observations] with horizon 32, 20 DDPM steps, 64 samples per plan, value guidance
(2 gradient steps per denoising step) and the best-valued sample kept, a plan at every env step. It runs
through diffplan's own sampler with random weights (its cost does not depend on them). Each contender acts in
a live Hopper-v5 episode through ``Planner.act``, so replans, warm starts and actions between replans count.

    python benchmarks/locomotion/speed.py pretrained/dd-hopper-medium \
        --set "fast: warm_start=5 jit=true" --set "paper-like: num_inference_steps=10"
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
from pathlib import Path

import torch

from diffplan import Planner
from diffplan.algorithms.diffuser import DiffuserPlanner
from diffplan.evaluation.results import git_commit
from diffplan.evaluation.rollout import act_latency_ms
from diffplan.nn.unet import TemporalUnet
from diffplan.nn.value import TemporalValue


def paper_planner(like: Planner) -> DiffuserPlanner:
    """Diffuser's hopper configuration with ``like``'s task and normalizer (random weights)."""
    dims = like.normalizer.config["dims"]
    transition = dims["observations"] + dims["actions"]
    torch.manual_seed(0)
    denoiser = TemporalUnet(transition, 32, dim=32, dim_mults=(1, 2, 4, 8))
    value = TemporalValue(transition, 32, dim=32, dim_mults=(1, 2, 4, 8))
    return DiffuserPlanner(like.task, like.normalizer, denoiser, value=value,
                           schedule={"num_train_timesteps": 20, "beta_schedule": "squaredcos_cap_v2",
                                     "prediction_type": "sample"},
                           horizon=32, stride=1, num_inference_steps=20, eta=1.0, guidance_scale=0.1,
                           n_guide_steps=2, t_stopgrad=2, n_samples=64, replan_every=1)


def parse_setting(text: str) -> tuple[str, dict]:
    """``"name: key=value key=value"`` -> (name, overrides); values are JSON (true, 5, 0.8) or strings."""
    name, _, rest = text.partition(":")
    overrides = {}
    for item in rest.split():
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name.strip(), overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner", help="a hopper planner folder")
    parser.add_argument("--set", action="append", default=[], dest="settings",
                        help='"name: key=value ..." planner overrides to time (repeatable)')
    parser.add_argument("--steps", type=int, default=50, help="env steps timed per contender")
    parser.add_argument("--paper-steps", type=int, default=5, help="env steps timed for the paper configuration")
    parser.add_argument("--out", default="benchmarks/locomotion/speed.csv")
    args = parser.parse_args()

    settings = [parse_setting(s) for s in args.settings] or [("shipped", {})]
    contenders = {name: Planner.from_pretrained(args.planner, **overrides) for name, overrides in settings}
    base = next(iter(contenders.values()))
    paper_ms = act_latency_ms(paper_planner(base), base.task, steps=args.paper_steps)
    ms = {name: act_latency_ms(p, base.task, steps=args.steps) for name, p in contenders.items()}
    print(f"{base.task.name}: ms per action at batch 1, torch threads {torch.get_num_threads()}")
    print(f"  Diffuser paper configuration (H32, 20 steps, 64 samples, value guidance): {paper_ms:.0f} ms")
    out = Path(args.out)
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "commit", "task", "planner", "setting", "overrides", "ms_per_action", "paper_ms",
                        "speedup_vs_paper", "threads"])
        for (name, overrides), value in zip(settings, ms.values()):
            print(f"  {args.planner} [{name}] {overrides}: {value:.1f} ms, {paper_ms / value:.1f}x faster")
            w.writerow([datetime.date.today().isoformat(), git_commit(), base.task.name, args.planner, name,
                        json.dumps(overrides), f"{value:.2f}", f"{paper_ms:.1f}", f"{paper_ms / value:.2f}",
                        torch.get_num_threads()])


if __name__ == "__main__":
    main()
