"""Search TFG's strengths (rho, mu, gamma) for one planner and objective on VALIDATION seeds; print the best spec.

    python benchmarks/guidance/search.py pretrained/hd-pointmaze-large \\
        --objective '{"type": "avoid_box", "lo": [1.5, -0.5], "hi": [2.5, 0.5]}' --score rollout --metric success \\
        --episodes 20 --csv runs/guidance-search/hd-large-box1.csv

The search is ``diffplan.guidance.search.beam_search`` (TFG's grid and beam, ANCHORS §16.2). Each candidate spec
``{"method": "tfg", "rho", "mu", "gamma", **--base, "objective"}`` (wrapped in ``{"method": "select", "n": N,
"guidance": ...}`` with ``--select N``) is scored by one of two scorers:

- ``rollout``: ``diffplan.evaluation.rollout.evaluate`` on reset seeds ``--seed .. --seed + episodes - 1``; the
  searched metric is a key of its summary (``score_mean``, ``success``, ``return_mean``; with an avoid-region
  objective also ``violation`` and ``safe_success``, success without entering the region); costly, exact.
- ``plan``: one guided plan from each of those seeds' first observations, scored by the objective itself (mean
  value, env units); cheap, but blind to what closed-loop control does with the plan.

Seeds 1000 and up are the test seeds (``diffplan evaluate``'s default): the script refuses them. Every candidate
(and an unguided reference row, round -1) is written to ``--csv`` as it is scored; the best spec is printed last
as one JSON line, ready for ``diffplan evaluate ... --guidance '<json>'``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffplan.cli import load_planner
from diffplan.environments import make_eval_vector_env
from diffplan.evaluation.rollout import evaluate
from diffplan.guidance.search import Axis, Candidate, beam_search
from diffplan.guidance.spec import guidance_from_spec
from diffplan.objectives import objective_from_spec
from diffplan.planner import Planner
from diffplan.tasks import Task, load_task

TEST_SEEDS = 1000  # reset seeds from here on are reserved for reported (test) rows
Scorer = Callable[[dict[str, Any] | None], dict[str, float]]


def tfg_spec(params: dict[str, float], objective: Any, base: dict[str, Any] | None = None,
             select: int | None = None) -> dict[str, Any]:
    """The guidance spec of one searched point: TFG with ``params`` over ``base``, optionally inside a select."""
    spec = {"method": "tfg", **(base or {}), **params, "objective": objective}
    return {"method": "select", "n": select, "guidance": spec, "objective": objective} if select else spec


def rollout_scorer(planner: Planner, task: Task, episodes: int, seed: int, num_envs: int,
                   objective: Any = None, protocol: str = "task") -> Scorer:
    """``spec -> evaluate(...).summary()`` with ``planner`` steered by ``spec`` (None: unguided), on the episodes
    of ``protocol`` (``"random_pairs"``: per-episode start and goal cells, e.g. for ``{"type": "reach", "target":
    "goal"}``; the summary then has ``controller_share``).

    When ``objective`` has avoid-region terms, the summary also has ``violation`` (share of episodes whose path
    enters a region) and ``safe_success`` (share that reach the goal without entering one).
    """
    entries = objective if isinstance(objective, list) else [objective]
    has_regions = any(isinstance(e, dict) and e.get("type") in ("avoid_box", "avoid_disc") for e in entries)
    regions = objective if has_regions else None

    def score(spec: dict[str, Any] | None) -> dict[str, float]:
        saved = planner.guidance
        planner.guidance = guidance_from_spec(spec, planner) if spec is not None else None
        try:
            result = evaluate(planner, task, episodes=episodes, seed=seed, num_envs=num_envs, progress=False,
                              violation=regions, protocol=protocol)
        finally:
            planner.guidance = saved
        summary = {k: float(v) for k, v in result.summary().items() if isinstance(v, (int, float))}  # not protocol
        if result.violations is not None:
            summary["safe_success"] = float(np.mean(result.success.astype(bool) & ~result.violations))
        return summary

    return score


def plan_scorer(planner: Planner, task: Task, objective: Any, episodes: int, seed: int) -> Scorer:
    """``spec -> {"objective": mean objective of one plan per seed's first observation, "plan_ms": per plan}``."""
    envs = make_eval_vector_env(task, episodes)
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    envs.close()
    measure = objective_from_spec(objective, task).to(planner.device)

    def score(spec: dict[str, Any] | None) -> dict[str, float]:
        planner.reset(seed=seed)
        start = time.perf_counter()
        plan = planner.plan(obs, generator=torch.Generator().manual_seed(seed), guidance=spec or None)
        ms = 1e3 * (time.perf_counter() - start) / episodes
        with torch.no_grad():
            values = measure({"observations": plan.observations, "actions": plan.actions})
        return {"objective": float(values.mean()), "plan_ms": ms}

    return score


class CsvLog:
    """One row per scored spec, flushed as it comes (a killed search keeps what it scored)."""

    def __init__(self, path: Path, metric: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", newline="")
        self.metric, self.writer = metric, None

    def write(self, round_: int, params: dict[str, float], parent: dict[str, float] | None,
              metrics: dict[str, float], spec: dict[str, Any] | None) -> None:
        row = {"round": round_, **{k: params.get(k, "") for k in ("rho", "mu", "gamma")},
               "parent": json.dumps(parent) if parent else "", "metric": self.metric,
               "value": metrics[self.metric], **metrics, "spec": json.dumps(spec) if spec else ""}
        if self.writer is None:
            self.writer = csv.DictWriter(self.file, fieldnames=list(row))
            self.writer.writeheader()
        self.writer.writerow(row)
        self.file.flush()


def search(scorer: Scorer, metric: str, make_spec: Callable[[dict[str, float]], dict[str, Any]], log: CsvLog,
           top_k: int = 2, max_rounds: int = 6, space: dict[str, Axis] | None = None) -> Candidate:
    """Score the unguided planner (round -1), then beam-search ``make_spec(params)``; returns the best candidate."""
    reference = scorer(None)
    if metric not in reference:
        raise ValueError(f"metric {metric!r} is not one the scorer reports: {sorted(reference)}.")
    log.write(-1, {}, None, reference, None)
    metrics: dict[tuple[float, ...], dict[str, float]] = {}

    def score(params: dict[str, float]) -> float:
        metrics[tuple(params.values())] = scorer(make_spec(params))
        value = metrics[tuple(params.values())][metric]
        return float("nan") if not np.isfinite(value) else value

    def record(c: Candidate) -> None:
        log.write(c.round, c.params, c.parent, metrics[tuple(c.params.values())], make_spec(c.params))

    return beam_search(score, space, top_k=top_k, max_rounds=max_rounds, on_candidate=record).best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("planner", help="planner folder")
    p.add_argument("--objective", required=True, help="objective spec (JSON), diffplan.objectives")
    p.add_argument("--task", default=None, help="task card (default: the planner's)")
    p.add_argument("--score", choices=("rollout", "plan"), default="rollout")
    p.add_argument("--metric", default=None, help="rollout: a summary key (default score_mean); plan: objective")
    p.add_argument("--episodes", type=int, default=10, help="validation seeds per candidate")
    p.add_argument("--seed", type=int, default=0, help="first validation reset seed (below 1000)")
    p.add_argument("--num-envs", type=int, default=10)
    p.add_argument("--protocol", default="task", help="rollout episodes: task or random_pairs (diffplan evaluate)")
    p.add_argument("--set", nargs="*", default=[],
                   help="planner overrides KEY=VALUE (as evaluate --set), e.g. replan_every=60")
    p.add_argument("--base", default='{"recur_steps": 1, "iter_steps": 4}', help="fixed TFG settings (JSON)")
    p.add_argument("--select", type=int, default=None, help="search TFG inside a select over N samples")
    p.add_argument("--space", default=None,
                   help='grid per parameter, JSON {"rho": [start, factor, max], ...} (default: TFG\'s, rho and mu '
                        'from 0.25); objectives in metres summed over plan points often need smaller starts')
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--csv", default="runs/guidance-search/search.csv")
    args = p.parse_args(argv)
    if args.episodes < 1 or args.seed < 0 or args.seed + args.episodes > TEST_SEEDS:
        p.error(f"validation seeds are 0..{TEST_SEEDS - 1}; --seed {args.seed} with --episodes {args.episodes} "
                f"reaches into the test seeds ({TEST_SEEDS}+), which are kept for the reported rows.")
    objective, base = json.loads(args.objective), json.loads(args.base)
    try:
        planner, _ = load_planner(args.planner, args.set, task=args.task)
    except ValueError as err:
        p.error(str(err))
    task = load_task(args.task) if args.task else planner.task
    if args.score == "rollout":
        scorer = rollout_scorer(planner, task, args.episodes, args.seed, args.num_envs, objective, args.protocol)
    else:
        scorer = plan_scorer(planner, task, objective, args.episodes, args.seed)
    metric = args.metric or {"rollout": "score_mean", "plan": "objective"}[args.score]
    log = CsvLog(Path(args.csv), metric)
    try:
        space = {k: Axis(*v) for k, v in json.loads(args.space).items()} if args.space else None
        best = search(scorer, metric, lambda params: tfg_spec(params, objective, base, args.select), log,
                      args.top_k, args.rounds, space)
    finally:
        log.file.close()
    print(f"best {metric} {best.score:.4g} at {best.params}; every candidate in {args.csv}", file=sys.stderr)
    print(json.dumps(tfg_spec(best.params, objective, base, args.select)))


if __name__ == "__main__":
    main()
