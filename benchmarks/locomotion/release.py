"""Release a trained locomotion planner into pretrained/<config> with a README built from its results row.

    python benchmarks/locomotion/release.py hopper-medium --row dd-hopper-medium-fast \
        --set warm_start=5 --set jit=true --train "30000 steps, 54.8 min (12000 on one thread, then resumed)"
    python benchmarks/locomotion/release.py halfcheetah-medium --config dd-transformer-halfcheetah-medium \
        --row dd-transformer-halfcheetah-medium --train "20000 steps, 101 min on one core shared with other jobs"
    python benchmarks/locomotion/release.py hopper-medium --config diffuser-hopper-medium --row diffuser-hopper-medium \
        --set n_samples=8 --set num_inference_steps=5 --train "12000 steps, 68 min on one core shared with other jobs"
    python benchmarks/locomotion/release.py halfcheetah-medium --config diffuser-halfcheetah-medium \
        --row diffuser-halfcheetah-medium-iqlq-select32 --set n_samples=1 --set num_inference_steps=5 \
        --set guidance_scale=0 --critic-config critic-iql-halfcheetah-medium --train "..." \
        --guidance '{"method": "select", "n": 32, "objective": {"type": "critic", "path": "runs/critic-iql-halfcheetah-medium/critic"}}'
    python benchmarks/locomotion/release.py walker2d-medium --config diffuser-walker2d-medium \
        --source pretrained/diffuser-walker2d-medium --row diffuser-walker2d-medium-iqlq-mpgd0.05 --set n_samples=1 \
        --critic-config critic-iql-walker2d-medium --train "..." --note "..." \
        --guidance '{"method": "mpgd", "mu": 0.05, "objective": {"type": "critic", "path": "runs/critic-iql-walker2d-medium/critic"}}'
    python benchmarks/locomotion/release.py walker2d-medium --config diffuser-walker2d-medium \
        --source pretrained/diffuser-walker2d-medium --row diffuser-walker2d-medium-iql150kq-mpgd0.05-avg8 \
        --set n_samples=1 --critic-config critic-iql-walker2d-medium-150k --train "..." --note "..." \
        --guidance '{"method": "average", "n": 8, "guidance": {"method": "mpgd", "mu": 0.05, "objective": {"type": "critic", "path": "runs/critic-iql-walker2d-medium-150k/critic"}}}'

The planner settings given with ``--set`` (and ``--guidance``) become the folder's defaults; they must be the ones
the row was evaluated with (the row's notes say which). A guidance that reads a critic ships with a copy of it in the
folder's ``critic/``.
"""

from __future__ import annotations

import argparse
import json

from diffplan import Planner
from diffplan.evaluation.results import read_rows
from diffplan.tasks import load_task


def describe(cfg: dict, guidance: dict | None = None) -> str:
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
    if guidance is not None:
        parts.append(describe_guidance(guidance))
    return ", ".join(parts)


def describe_guidance(guidance: dict) -> str:
    """A guidance spec in words (``average`` and ``select`` name the guidance their candidates are drawn with)."""
    if guidance.get("method") == "average":
        inner = guidance.get("guidance")
        return f"the mean of {guidance.get('n', 8)} plans" + (f", each {describe_guidance(inner)}" if inner else "")
    objective = guidance.get("objective", {})
    by = "the critic in `critic/`" if objective.get("type") == "critic" else f"a {objective.get('type')} objective"
    if guidance.get("method") == "select":
        return f"best of {guidance.get('n', 8)} plans by {by}"
    knobs = ", ".join(f"{k} {v}" for k, v in guidance.items() if k not in ("method", "objective"))
    return f"{guidance.get('method', '?').upper()} ({knobs}) up {by}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--source", help="planner folder (default runs/dd-<task>/planner)")
    parser.add_argument("--row", help="results.csv planner name of the evaluation (default dd-<task>)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--train", required=True, help="training steps and time, for the README")
    parser.add_argument("--note", default="", help="a paragraph for the README (e.g. other settings' rows)")
    parser.add_argument("--config", help="configs/<name>.yaml that trained it (default dd-<task>)")
    parser.add_argument("--guidance", type=json.loads, help="guidance spec (JSON) the row was evaluated with")
    parser.add_argument("--critic-config", help="configs/<name>.yaml that trained the critic the guidance reads")
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
    planner = Planner.from_pretrained(source, guidance=args.guidance, **overrides)
    cfg = planner.config
    out = f"pretrained/{config}"
    critic_fit = f"\ndiffplan fit --config benchmarks/locomotion/configs/{args.critic_config}.yaml" \
        if args.critic_config else ""
    guidance = f" \\\n    --guidance '{json.dumps(args.guidance)}'" if args.guidance else ""
    readme = f"""# {config}

{type(planner).__name__} for `{task.name}` ({task.env_id}, 1000 steps), trained on the locally regenerated dataset
(`diffplan data generate {task.name}`; recipe and behaviour policy in `envs/{task.name}.yaml`).

| normalized score (x100) | cost per action, batch 1 | settings | train (CPU) | evaluation |
|---|---|---|---|---|
| **{float(row['score_mean']):.1f} ± {float(row['score_se']):.1f}** | {float(row['act_ms_b1']):.0f} ms (measured during evaluation) | {describe(cfg, args.guidance)} | {args.train} | {row['episodes']} episodes, reset seeds {row['seed']}+ (commit {row['commit']}) |

Score: 100 x (return - random) / (expert - random) with the task card's references (Minari-method random,
D4RL's expert constant). Where the settings come from: {row['notes']} (validation runs:
`benchmarks/locomotion/validation.csv`).
`benchmarks/locomotion/RESULTS.md` has the dataset's own score and the other methods on the same seeds.
{args.note}

## Reproduce
```bash
diffplan data generate {task.name}
diffplan fit --config benchmarks/locomotion/configs/{config}.yaml{critic_fit}
diffplan evaluate runs/{config}/planner --task {task.name} --episodes {row['episodes']} --seed 1000 --num-envs 10 \\
    --results benchmarks/locomotion/results.csv {' '.join(f'--set {o}' for o in args.overrides)}{guidance}
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
