"""Copy a benchmarked planner folder into pretrained/ with a README giving its score and the commands.

    python benchmarks/pointmaze/release.py runs/diffuser-umaze/planner diffuser-pointmaze-umaze \
        --config benchmarks/pointmaze/configs/diffuser-umaze.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffplan import Planner
from diffplan.evaluation.results import read_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("name")
    parser.add_argument("--config", required=True, help="the fit config that trained it")
    parser.add_argument("--results", default="benchmarks/pointmaze/results.csv")
    parser.add_argument("--speed", default="benchmarks/pointmaze/speed.csv", help="latency rows of speed.py")
    parser.add_argument("--note", default="", help="extra text for the README (e.g. how training was resumed)")
    args = parser.parse_args()
    planner = Planner.from_pretrained(args.planner)
    meta = Planner.read_metadata(args.planner)
    rows = [r for r in read_rows(args.results) if r["planner_path"].rstrip("/") == args.planner.rstrip("/")]
    if not rows:
        parser.error(f"no row for {args.planner} in {args.results}; evaluate it first")
    row = rows[-1]
    task, cfg = planner.task, planner.config
    timed = [r for r in read_rows(args.speed) if r["planner"] == args.planner] if Path(args.speed).exists() else []
    latency = (f"{float(timed[-1]['plan_ms']):.1f} ms (speed.py, eager)" if timed
               else f"{float(row['plan_ms_b1']):.1f} ms (during evaluation)")
    readme = f"""# {args.name}

{type(planner).__name__} for `{task.name}` ({task.eval.env_id}, single-goal evaluation map, {task.eval.max_episode_steps} steps).

| normalized score (x100) | success | first reach (steps) | plan latency, batch 1 | train (CPU) | evaluation |
|---|---|---|---|---|---|
| **{float(row['score_mean']):.1f} ± {float(row['score_se']):.1f}** | {100 * float(row['success']):.0f}% | {float(row['first_reach_mean']):.0f} | {latency} | {row['train_minutes']} min, {row['train_steps']} steps | {row['episodes']} episodes, reset seeds {row['seed']}+ (commit {row['commit']}) |

- Score: 100 x (return - random) / (noise-free waypoint controller - random), reference scores
  {task.ref_min_score} / {task.ref_max_score} (Minari's method, see `envs/{task.name}.yaml`); mean ± standard error.
- Action source: **{cfg['action_source']}** (tracker look-ahead {cfg.get('tracker_lookahead')} env steps, chosen on
  validation seeds 0-19), one open-loop plan per episode (replan_every={cfg['replan_every']}).
- Trained on `{meta.get('dataset_id')}` (regenerated locally with the published recipe, 1M steps); the training
  time is wall-clock on a shared 2-core CPU machine.
{("- " + args.note) if args.note else ""}

## Reproduce
```bash
diffplan data generate {task.name}
diffplan fit --config {args.config}
python benchmarks/pointmaze/select_tracker.py {args.planner}
diffplan evaluate {args.planner} --task {task.name} --episodes {row['episodes']} --seed {row['seed']} \\
    --results {args.results}
python benchmarks/pointmaze/release.py {args.planner} {args.name} --config {args.config}
```

## Use
```python
from diffplan import Planner
planner = Planner.from_pretrained("pretrained/{args.name}")
action = planner.act(obs)   # gymnasium dict observation of {task.eval.env_id}
```
"""
    out = Path("pretrained") / args.name
    planner.save_pretrained(out, readme=readme, **Planner.training_metadata(args.planner))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    print(f"wrote {out} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
