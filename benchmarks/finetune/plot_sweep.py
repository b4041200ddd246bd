"""The lambda sweep of issue 14: plan reward, violation, success and the plan-to-path gap against lambda.

    python benchmarks/finetune/plot_sweep.py benchmarks/finetune/validation.csv --out benchmarks/finetune/figures/lambda-sweep.png

Reads the rows ``maze_region.py`` wrote (``base-ddpm`` is lambda = 0, ``am-lam<L>`` lambda = L; ``plan_reward`` and
``plan_gap_m`` from the notes) for one reset seed, and prints them as a table too.
"""

from __future__ import annotations

import argparse
import re

from diffplan.evaluation.plots import save_figure
from diffplan.evaluation.results import read_rows


def sweep_points(rows: list[dict[str, str]], seed: str, prefix: str = "") -> list[dict[str, float]]:
    """One point per lambda (the newest row of each name ``<prefix>am-lam<L>``, ``<prefix>base-ddpm`` for 0),
    sorted by lambda."""
    points: dict[float, dict[str, float]] = {}
    for row in rows:
        match = re.fullmatch(re.escape(prefix) + r"am-lam([0-9.]+)", row["planner"])
        if row["seed"] != seed or not (match or row["planner"] == f"{prefix}base-ddpm"):
            continue
        notes = dict(re.findall(r"(plan_reward|plan_gap_m)=(-?[0-9.]+)", row["notes"]))
        lam = float(match.group(1)) if match else 0.0
        points[lam] = {"lambda": lam, "plan_reward": float(notes["plan_reward"]),
                       "plan_gap_m": float(notes["plan_gap_m"]), "violation": float(row["violation"]),
                       "success": float(row["success"]), "score": float(row["score_mean"]),
                       "episodes": int(row["episodes"])}
    return [points[k] for k in sorted(points)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--seed", default="0", help="first reset seed of the rows to plot (default: validation)")
    parser.add_argument("--prefix", default="", help="row names <prefix>am-lam<L>, e.g. box3- (default: box1's)")
    parser.add_argument("--title", default="HD large, box1")
    parser.add_argument("--out", default="benchmarks/finetune/figures/lambda-sweep.png")
    args = parser.parse_args()

    import matplotlib.pyplot as plt

    points = sweep_points(read_rows(args.results), args.seed, args.prefix)
    if not points:
        raise SystemExit(f"no base-ddpm / am-lam<L> rows with seed {args.seed} in {args.results}")
    print("lambda  plan_reward  plan_gap_m  violation  success  score  episodes")
    for p in points:
        print(f"{p['lambda']:6g}  {p['plan_reward']:11.3f}  {p['plan_gap_m']:10.3f}  {p['violation']:9.2f}  "
              f"{p['success']:7.2f}  {p['score']:5.1f}  {p['episodes']:8d}")
    x = [max(p["lambda"], 1.0) for p in points]  # lambda = 0 drawn at 1 on the log axis
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, key, label in ((axes[0], "plan_reward", "plan reward (box + walls)"),
                           (axes[1], "plan_gap_m", "plan-to-path gap (m)")):
        ax.plot(x, [p[key] for p in points], "o-")
        ax.set(xscale="log", xlabel="lambda (0 drawn at 1)", ylabel=label)
    axes[1].set_ylim(0, max(0.3, 1.2 * max(p["plan_gap_m"] for p in points)))
    axes[2].plot(x, [p["violation"] for p in points], "o-", label="violation")
    axes[2].plot(x, [p["success"] for p in points], "s-", label="success")
    axes[2].set(xscale="log", xlabel="lambda (0 drawn at 1)", ylabel="share of episodes", ylim=(0, 1.05))
    axes[2].legend()
    fig.suptitle(f"Adjoint Matching lambda sweep, {args.title} (seeds {args.seed}+, {points[0]['episodes']} episodes)")
    print(f"plot written to {save_figure(fig, args.out)}")


if __name__ == "__main__":
    main()
