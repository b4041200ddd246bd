"""Composing skills with Decision Diffuser on a real task: command each feature alone, then both at once.

    python benchmarks/locomotion/composition.py runs/dd-skills-hopper-medium/planner --features speed=5 height=0

The planner must be trained with one ``obs_mean:<d>`` condition per feature (configs/dd-skills-hopper-medium.yaml).
For each feature, "low" and "high" targets are the 10th and 90th percentiles of that dimension in the training data
(normalized units); settings: unconditional, each feature low/high alone, and the two off-diagonal compositions
(first feature high + second low, and the reverse). Each setting runs the same evaluation seeds; the executed
feature means (over the steps each episode lived) go to composition.csv and figures/composition.png.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from diffplan import Planner
from diffplan.data.episodes import load_episodes
from diffplan.evaluation.rollout import evaluate, standard_error

HERE = Path(__file__).parent


def settings(features: dict[str, int], low: dict[str, float], high: dict[str, float]) -> dict[str, dict[str, float]]:
    """Setting name -> targets (condition name -> normalized target)."""
    out: dict[str, dict[str, float]] = {"unconditional": {}}
    for name, dim in features.items():
        out[f"{name} low"] = {f"obs_mean:{dim}": low[name]}
        out[f"{name} high"] = {f"obs_mean:{dim}": high[name]}
    (a, da), (b, db) = list(features.items())[:2]
    out[f"{a} high + {b} low"] = {f"obs_mean:{da}": high[a], f"obs_mean:{db}": low[b]}
    out[f"{a} low + {b} high"] = {f"obs_mean:{da}": low[a], f"obs_mean:{db}": high[b]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner")
    parser.add_argument("--features", nargs=2, default=["speed=5", "height=0"], help="name=observation_dim, two")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--guidance-scale", type=float, default=1.2)
    parser.add_argument("--out", default=str(HERE / "composition.csv"))
    parser.add_argument("--figure", default=str(HERE / "figures" / "composition.png"))
    args = parser.parse_args()
    features = {k: int(v) for k, v in (f.split("=") for f in args.features)}

    base = Planner.from_pretrained(args.planner)
    missing = [f"obs_mean:{d}" for d in features.values() if f"obs_mean:{d}" not in base.conditions]
    if missing:
        raise SystemExit(f"{args.planner} was not trained with conditions {missing} (it has {base.conditions}).")
    task, norm = base.task, base.normalizer
    obs = load_episodes(task.dataset.local_id, task, progress=False).observations
    low, high = {}, {}
    for name, dim in features.items():
        p10, p90 = np.percentile(obs[:, dim], [10, 90])
        low[name], high[name] = (float(norm.normalize("observations", torch.tensor([v]), dims=[dim])) for v in (p10, p90))

    rows = []
    for label, targets in settings(features, low, high).items():
        planner = Planner.from_pretrained(args.planner, targets=targets, compose=True,
                                          guidance_scale=args.guidance_scale if targets else 0.0)
        result = evaluate(planner, task, episodes=args.episodes, seed=args.seed, num_envs=args.episodes,
                          keep_paths=args.episodes)
        row = {"setting": label, "targets": " ".join(f"{k}={v:.2f}" for k, v in targets.items()),
               "score_mean": round(float(result.scores.mean()), 1),
               "score_se": round(standard_error(result.scores), 1),
               "length_mean": round(float(result.lengths.mean()), 0)}
        for name, dim in features.items():
            per_episode = [path[:n, dim].mean() for path, n in zip(result.paths, result.lengths)]
            row[f"{name}_mean"] = round(float(np.mean(per_episode)), 3)
            row[f"{name}_se"] = round(standard_error(per_episode), 3)
            row[f"{name}_target"] = ("" if f"obs_mean:{dim}" not in targets else
                                     round(float(norm.unnormalize("observations", torch.tensor([targets[f"obs_mean:{dim}"]]),
                                                                  dims=[dim])), 3))
        print(row)
        rows.append(row)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, list(features), Path(args.figure))
    print(f"wrote {args.out}")


def plot(rows: list[dict], names: list[str], path: Path) -> None:
    """Executed feature means per setting (with SE), against the targets each setting commanded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = names[:2]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for row in rows:
        bars = ax.errorbar(row[f"{a}_mean"], row[f"{b}_mean"], xerr=row[f"{a}_se"], yerr=row[f"{b}_se"], fmt="o",
                           capsize=3, label=f"{row['setting']} (score {row['score_mean']})")
        tx, ty = row[f"{a}_target"], row[f"{b}_target"]
        if tx != "" and ty != "":
            ax.plot(tx, ty, "x", color=bars[0].get_color(), ms=10)
    ax.set_xlabel(f"executed mean {a}")
    ax.set_ylabel(f"executed mean {b}")
    ax.set_title("Decision Diffuser, composed conditions (x: composed targets)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
