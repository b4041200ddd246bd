"""Issue 13, table 3: steer a locomotion planner to a commanded forward speed at test time, with no retraining.

    python benchmarks/guidance/speed_command.py pretrained/dd-hopper-medium --episodes 10 \\
        --methods none dps mpgd tfg select8 --tfg '{"rho": 0.5, "mu": 1.0}'

For each target speed (default: the 10th and 90th percentiles of the dataset's forward speed, the targets of the
skill-conditioned DD in ``benchmarks/locomotion/composition.csv``) and each method, the planner is steered by
``{"type": "speed", "target": v}`` and evaluated on reset seeds ``--seed ..``; the row records the executed
forward speed (mean over the steps each episode lived), its tracking error ``|executed - target|``, the
normalized score and the batch-1 plan cost measured in the same run. Rows are appended to ``--out``; plan costs
compare only within one run on a quiet machine.

Methods: see ``methods.py`` (``none``, the presets, ``tfg`` with ``--tfg``, ``select<N>``, ``tfg+select<N>``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
from pathlib import Path

import numpy as np
from methods import ALL_METHODS, method_spec  # benchmarks/guidance/methods.py

from diffplan import Planner
from diffplan.data.episodes import load_episodes
from diffplan.evaluation.results import git_commit
from diffplan.evaluation.rollout import evaluate, standard_error
from diffplan.tasks import load_task

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("--targets", type=float, nargs="*", help="m/s (default: data's 10th/90th percentiles)")
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS))
    parser.add_argument("--tfg", default="{}", help="TFG hyper-parameters (JSON), e.g. the searched setting")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--out", default=str(HERE / "speed_command.csv"))
    parser.add_argument("--notes", default="")
    args = parser.parse_args()

    base = Planner.from_pretrained(args.planner)
    task = load_task(base.task.name)  # today's card: folders saved before it named forward_speed_dim
    dim = task.forward_speed_dim
    if dim is None:
        raise SystemExit(f"Task {task.name!r} names no forward_speed_dim in its card; a speed command needs one.")
    targets = args.targets
    if not targets:
        speeds = load_episodes(task.dataset.local_id, task, progress=False).observations[:, dim]
        targets = [round(float(v), 3) for v in np.percentile(speeds, [10, 90])]
    tfg = json.loads(args.tfg)
    revision = git_commit()

    out = Path(args.out)
    new_file = not out.exists()
    with out.open("a", newline="") as f:
        writer = None
        for target in targets:
            objective = {"type": "speed", "target": target}
            for method in args.methods:
                spec = method_spec(method, objective, tfg)
                planner = Planner.from_pretrained(args.planner, task=task, guidance=spec)
                result = evaluate(planner, task, episodes=args.episodes, seed=args.seed, num_envs=args.num_envs,
                                  keep_paths=args.episodes, progress=True)
                executed = [float(path[:n, dim].mean()) for path, n in zip(result.paths, result.lengths)]
                errors = [abs(v - target) for v in executed]
                row = {"date": datetime.date.today().isoformat(), "commit": revision, "task": task.name,
                       "planner": args.planner, "method": method, "target": target,
                       "speed_mean": round(float(np.mean(executed)), 3), "speed_se": round(standard_error(executed), 3),
                       "error_mean": round(float(np.mean(errors)), 3), "error_se": round(standard_error(errors), 3),
                       "score_mean": round(float(result.scores.mean()), 1),
                       "score_se": round(standard_error(result.scores), 1),
                       "length_mean": round(float(result.lengths.mean()), 0), "episodes": args.episodes,
                       "seed": args.seed, "plan_ms": round(result.plan_ms_batch1, 1),
                       "act_ms": round(result.act_ms_batch1, 1), "spec": json.dumps(spec) if spec else "",
                       "notes": args.notes}
                print({k: row[k] for k in ("method", "target", "speed_mean", "error_mean", "score_mean", "plan_ms")},
                      flush=True)
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(row))
                    if new_file:
                        writer.writeheader()
                writer.writerow(row)
                f.flush()


if __name__ == "__main__":
    main()
