"""Make the locomotion table from results.csv (newest row per task and planner), with each dataset's own score.

    python benchmarks/locomotion/table.py        # writes benchmarks/locomotion/RESULTS.md
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffplan.data.episodes import load_episodes
from diffplan.data.writer import dataset_exists
from diffplan.evaluation.results import read_rows
from diffplan.tasks import load_task

HERE = Path(__file__).parent
DATASET_SCORES = HERE / "dataset_scores.csv"


@dataclass(frozen=True)
class DatasetScore:
    """A dataset's own normalized score over its episodes."""

    mean: float
    se: float
    episodes: int


def dataset_scores(tasks: list[str]) -> dict[str, DatasetScore]:
    """Each task's dataset score, computed where the dataset is generated here, else read from ``DATASET_SCORES``
    (written whenever one is computed, so the table can be regenerated on a machine without every dataset)."""
    known = {r["task"]: DatasetScore(float(r["mean"]), float(r["se"]), int(r["episodes"]))
             for r in read_rows(DATASET_SCORES)} if DATASET_SCORES.exists() else {}
    for name in tasks:
        task = load_task(name)
        if not dataset_exists(task.dataset.local_id):
            continue
        e = load_episodes(task.dataset.local_id, task, progress=False)
        # an episode of T steps holds T + 1 rows; its last row repeats the last reward
        returns = np.array([e.rewards[s: s + n - 1].sum() for s, n in zip(e.episode_starts, e.episode_lengths)])
        scores = task.normalized_score(returns)
        known[name] = DatasetScore(float(scores.mean()), float(scores.std(ddof=1) / np.sqrt(len(scores))), len(scores))
    with DATASET_SCORES.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "mean", "se", "episodes"])
        for name, d in sorted(known.items()):
            writer.writerow([name, f"{d.mean:.4g}", f"{d.se:.4g}", d.episodes])
    return known


def describe(score: DatasetScore | None) -> str:
    if score is None:
        return "n/a"
    return f"{score.mean:.1f} ± {score.se:.1f} ({score.episodes} episodes)"


def plot(rows: dict[tuple[str, str], dict[str, str]], data: dict[str, DatasetScore], path: Path) -> None:
    """Grouped bars per task (mean ± SE), the dataset's own mean score as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({t for t, _ in rows})
    labels = sorted({method_label(t, m) for t, m in rows})
    width = 0.8 / max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(2.2 + 2.0 * len(tasks), 3.6))
    for j, label in enumerate(labels):
        xs, ys, es = [], [], []
        for i, task in enumerate(tasks):
            r = next((r for (t, m), r in rows.items() if t == task and method_label(t, m) == label), None)
            if r is not None:
                xs.append(i + (j - (len(labels) - 1) / 2) * width)
                ys.append(float(r["score_mean"]))
                es.append(float(r["score_se"]))
        ax.bar(xs, ys, width, yerr=es, label=label, color=f"C{j}", capsize=2)
    for i, task in enumerate(tasks):
        if data.get(task) is not None:
            ax.hlines(data[task].mean, i - 0.45, i + 0.45, colors="k", linestyles="dashed",
                      label="dataset" if i == 0 else None)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("normalized score (x100)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Locomotion, unseen test episodes (mean ± SE)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def method_label(task: str, planner: str) -> str:
    """``dd-hopper-medium-fast`` -> ``dd-fast``: the method with the task name taken out."""
    return planner.replace(f"-{task}", "").replace(task, "") or planner


FAMILIES = ("diffuser", "dd (U-Net)", "dd (transformer)", "bc", "iql")
ENVS = ("hopper", "walker2d", "halfcheetah")
DATASETS = ("random", "medium", "medium-replay")


def family(planner: str) -> str:
    """The method family of a planner name: ``dd-transformer-hopper-medium`` -> ``dd (transformer)``."""
    if planner.startswith("dd-transformer"):
        return "dd (transformer)"
    if planner.startswith("dd-"):
        return "dd (U-Net)"
    return planner.split("-")[0]


def summary(all_rows: list[dict[str, str]], data: dict[str, DatasetScore]) -> list[str]:
    """Env x dataset grid, one cell per family: its newest row (the final settings of that method, not the best
    of several), so that re-runs replace cells instead of cherry-picking."""
    newest: dict[tuple[str, str], dict[str, str]] = {}
    for r in all_rows:
        newest[(r["task"], family(r["planner"]))] = r
    lines = ["| task | dataset's own | " + " | ".join(FAMILIES) + " |", "|" + "---|" * (len(FAMILIES) + 2)]
    for env in ENVS:
        for kind in DATASETS:
            task = f"{env}-{kind}"
            own = data.get(task)
            cells = [f"{own.mean:.1f}" if own is not None else "n/a"]
            for fam in FAMILIES:
                r = newest.get((task, fam))
                cells.append(f"{float(r['score_mean']):.1f} ± {float(r['score_se']):.1f}" if r else "—")
            lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def settings(r: dict[str, str]) -> str:
    if r["planner_path"].startswith("d3rlpy"):
        return "reactive policy"
    return f"replan {r['replan_every']}, {r['num_inference_steps']} steps" + (f"; {r['notes']}" if r["notes"] else "")


def ms(value: str) -> str:
    return f"{float(value):.1f}" if value else "n/a"


def main() -> None:
    all_rows = read_rows(HERE / "results.csv")
    rows = {(r["task"], r["planner"]): r for r in all_rows}
    header = ("| task | method | normalized score (x100) | return | dataset's own score | ms per action (b1) | "
              "plan ms (b1) | settings | train min | steps | episodes | commit |")
    lines = [header, "|" + "---|" * 12]
    data = dataset_scores(sorted({t for t, _ in rows} | {f"{e}-{k}" for e in ENVS for k in DATASETS}))
    for (task, _), r in sorted(rows.items()):
        lines.append(f"| {task} | {r['planner']} | **{float(r['score_mean']):.1f} ± {float(r['score_se']):.1f}** | "
                     f"{float(r['return_mean']):.0f} ± {float(r['return_se']):.0f} | {describe(data.get(task))} | "
                     f"{ms(r.get('act_ms_b1', ''))} | {ms(r['plan_ms_b1'])} | {settings(r)} | {r['train_minutes']} | "
                     f"{r['train_steps']} | {r['episodes']} (seeds {r['seed']}+) | {r['commit']} |")
    (HERE / "RESULTS.md").write_text(
        "# Locomotion results (generated by table.py from results.csv)\n\n"
        "Normalized score: 100 x (return - Minari-method random) / (D4RL expert constant - random); see README.md.\n"
        "ms per action: mean `Planner.act` time at batch 1 in a live episode (replans, warm starts and the actions "
        "between replans included; measured during evaluation, so other jobs on the machine add noise; "
        "`speed.py` times contenders side by side). Rows before this column existed show n/a.\n\n"
        "## Summary (normalized score x100, mean ± SE over the row's unseen test episodes; — = not run)\n\n"
        "Each cell is the newest row of that method on that task; every row is in the table below.\n\n"
        + "\n".join(summary(all_rows, data)) + "\n\n## All rows\n\n"
        + "\n".join(lines) + "\n\n![scores](figures/scores.png)\n")
    plot(rows, data, HERE / "figures" / "scores.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
