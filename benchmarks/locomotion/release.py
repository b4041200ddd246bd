"""Release a trained locomotion planner into pretrained/<config> with a README built from its results row.

    python benchmarks/locomotion/release.py hopper-medium --row dd-hopper-medium-fast \
        --set warm_start=5 --set jit=true --train "30000 steps, 54.8 min (12000 on one thread, then resumed)"
    python benchmarks/locomotion/release.py halfcheetah-medium --config dd-transformer-halfcheetah-medium \
        --row dd-transformer-halfcheetah-medium --train "20000 steps, 101 min on one core shared with other jobs"
    python benchmarks/locomotion/release.py hopper-medium --config diffuser-hopper-medium --row diffuser-hopper-medium \
        --set n_samples=8 --set num_inference_steps=5 --train "12000 steps, 68 min on one core shared with other jobs"

The planner settings given with ``--set`` become the folder's defaults; they must be the ones the row was
evaluated with (the row's notes say which).
"""

from __future__ import annotations

import argparse
import json

from diffplan import Planner
from diffplan.evaluation.results import read_rows
from diffplan.tasks import load_task


def describe(cfg: dict) -> str:
    """The planning settings that a reader needs, in words."""
    parts = [f"replan every {cfg['replan_every']} step(s)", f"{cfg['num_inference_steps']} DDIM steps"]
    if cfg.get("warm_start"):
        parts.append(f"{cfg['num_inference_steps'] - cfg['warm_start']} per replan (warm start from the previous plan)")
    if cfg.get("n_samples", 1) > 1:
        parts.append(f"best of {cfg['n_samples']} samples by the value head")
    if "targets" in cfg:
        parts.append(f"CFG {cfg['guidance_scale']}, return target {cfg['targets'].get('returns')}")
    elif cfg.get("guidance_scale"):
        parts.append(f"value guidance {cfg['guidance_scale']} x {cfg['n_guide_steps']} steps (t >= {cfg['t_stopgrad']})")
    if cfg.get("jit"):
        parts.append("traced denoiser")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--source", help="planner folder (default runs/dd-<task>/planner)")
    parser.add_argument("--row", help="results.csv planner name of the evaluation (default dd-<task>)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--train", required=True, help="training steps and time, for the README")
    parser.add_argument("--note", default="", help="a paragraph for the README (e.g. other settings' rows)")
    parser.add_argument("--config", help="configs/<name>.yaml that trained it (default dd-<task>)")
    args = parser.parse_args()
    task = load_task(args.task)
    name = args.row or f"dd-{task.name}"
    config = args.config or f"dd-{task.name}"
    source = args.source or f"runs/{config}/planner"
    rows = [r for r in read_rows("benchmarks/locomotion/results.csv") if r["planner"] == name]
    if not rows:
        raise SystemExit(f"No results row named {name!r}; evaluate the planner first.")
    row = rows[-1]
    overrides = {k: json.loads(v) for k, _, v in (o.partition("=") for o in args.overrides)}
    planner = Planner.from_pretrained(source, **overrides)
    cfg = planner.config
    out = f"pretrained/{config}"
    readme = f"""# {config}

{type(planner).__name__} for `{task.name}` ({task.env_id}, 1000 steps), trained on the locally regenerated dataset
(`diffplan data generate {task.name}`; recipe and behaviour policy in `envs/{task.name}.yaml`).

| normalized score (x100) | cost per action, batch 1 | settings | train (CPU) | evaluation |
|---|---|---|---|---|
| **{float(row['score_mean']):.1f} ± {float(row['score_se']):.1f}** | {float(row['act_ms_b1']):.0f} ms (measured during evaluation) | {describe(cfg)} | {args.train} | {row['episodes']} episodes, reset seeds {row['seed']}+ (commit {row['commit']}) |

Score: 100 x (return - random) / (expert - random) with the task card's references (Minari-method random,
D4RL's expert constant). Where the settings come from: {row['notes']} (validation runs:
`benchmarks/locomotion/validation.csv`).
`benchmarks/locomotion/RESULTS.md` has the dataset's own score and the other methods on the same seeds.
{args.note}

## Reproduce
```bash
diffplan data generate {task.name}
diffplan fit --config benchmarks/locomotion/configs/{config}.yaml
diffplan evaluate runs/{config}/planner --task {task.name} --episodes {row['episodes']} --seed 1000 --num-envs 10 \\
    --results benchmarks/locomotion/results.csv {' '.join(f'--set {o}' for o in args.overrides)}
```

## Use
```python
from diffplan import Planner
planner = Planner.from_pretrained("pretrained/{config}")
planner.reset(seed=0)
action = planner.act(obs)   # one plan per action (replan_every={cfg['replan_every']})
```
"""
    planner.save_pretrained(out, readme=readme, **Planner.training_metadata(source))
    print(f"released {out}")


if __name__ == "__main__":
    main()
