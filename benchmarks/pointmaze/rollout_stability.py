"""Diffusion Forcing rollouts past the training horizon, executed open loop: do plan and world stay together?

From dataset episode starts (position and velocity set in the evaluation env), ``planner.rollout`` plans the
largest multiple of the training horizon H; its diffused actions are executed open loop, one env per start. For
each multiple m (1, 2, 4 by default) the first m * H steps are scored: the mean distance between planned and
reached positions (gap), that gap at the last step, and the share of planned positions inside wall cells. The
first m * H steps of one long rollout are what ``rollout(obs, m * H)`` returns with the same generator (the
windows are sampled in order and each sees only the ones before it), so one rollout serves every multiple.

    python benchmarks/pointmaze/rollout_stability.py runs/df-umaze/planner --starts 20
    # -> a row per multiple in benchmarks/pointmaze/rollout_stability.csv, figures/rollout-stability-<name>.png
"""

from __future__ import annotations

import argparse
import csv
import datetime
from pathlib import Path

import numpy as np
import torch

from diffplan.algorithms.diffusion_forcing import DiffusionForcingPlanner
from diffplan.data.episodes import load_episodes
from diffplan.environments import make_eval_env
from diffplan.evaluation.plots import save_figure
from diffplan.evaluation.results import git_commit
from diffplan.evaluation.rollout import standard_error
from diffplan.maze import in_free_cell
from diffplan.planner import Planner

HERE = Path(__file__).parent
COLUMNS = ["date", "commit", "task", "planner", "horizon", "multiple", "steps", "starts", "gap_mean", "gap_se",
           "gap_final", "wall_share", "goal", "scheduling", "num_inference_steps", "seed"]


def dataset_starts(planner: Planner, dataset_id: str, starts: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, O) first observations and (N, G) goals of ``starts`` dataset episodes drawn without replacement."""
    episodes = load_episodes(dataset_id, planner.task, progress=False)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(episodes.episode_starts), size=min(starts, len(episodes.episode_starts)), replace=False)
    index = episodes.episode_starts[np.sort(pick)]
    return episodes.observations[index], episodes.goals[index]


def execute_open_loop(planner: Planner, starts: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(N, T, 2) positions reached before each of the T actions (index 0: the start), from each start state."""
    env = make_eval_env(planner.task, max_episode_steps=actions.shape[1] + 1)
    point = env.unwrapped.point_env
    reached = np.empty((*actions.shape[:2], 2))
    for i, (start, plan) in enumerate(zip(starts, actions)):
        env.reset(seed=i)
        point.set_state(start[:2].astype(np.float64), start[2:4].astype(np.float64))
        reached[i, 0] = point.data.qpos[:2]
        for t, action in enumerate(plan[:-1]):
            obs, *_ = env.step(np.clip(action, -1.0, 1.0).astype(np.float32))
            reached[i, t + 1] = obs["achieved_goal"]
    env.close()
    return reached


def stability(planner: DiffusionForcingPlanner, starts: np.ndarray, goals: np.ndarray | None,
              multiples: list[int], seed: int) -> tuple[list[dict[str, float]], np.ndarray]:
    """One rollout of ``max(multiples)`` horizons per start, executed open loop; per multiple the gap and wall share.

    Returns:
        one dict per multiple (multiple, steps, gap_mean, gap_se, gap_final, wall_share), and the (N, T) gap.
    """
    steps = max(multiples) * planner.horizon
    generator = torch.Generator(device=planner.device).manual_seed(seed)
    plan = planner.rollout(starts, steps, goal=goals, generator=generator)
    planned = plan.observations[..., list(planner.task.positions)].cpu().numpy()
    reached = execute_open_loop(planner, starts, plan.actions.cpu().numpy())
    gap = np.linalg.norm(planned - reached, axis=-1)  # (N, T)
    walls = ~in_free_cell(planner.task.maze_map, planned)
    rows = []
    for m in multiples:
        n = m * planner.horizon
        rows.append({"multiple": m, "steps": n, "gap_mean": float(gap[:, :n].mean()),
                     "gap_se": standard_error(gap[:, :n].mean(axis=1)), "gap_final": float(gap[:, n - 1].mean()),
                     "wall_share": float(walls[:, :n].mean())})
    return rows, gap


def plot(gap: np.ndarray, rows: list[dict[str, float]], horizon: int, path: Path, title: str) -> Path:
    """Left: the gap along the rollout (mean over starts, horizon multiples marked); right: gap and wall share."""
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4))
    mean = gap.mean(axis=0)
    ax.plot(np.arange(len(mean)), mean, color="tab:blue")
    for r in rows:
        ax.axvline(r["steps"], color="0.6", ls=":", lw=0.8)
    ax.set_xlabel(f"env step (training horizon H = {horizon})")
    ax.set_ylabel("|planned - reached| position (m)")
    labels = [f"{r['multiple']}H" for r in rows]
    x = np.arange(len(rows))
    bx.bar(x - 0.2, [r["gap_mean"] for r in rows], 0.4, yerr=[r["gap_se"] for r in rows], label="mean gap (m)")
    bx2 = bx.twinx()
    bx2.bar(x + 0.2, [100 * r["wall_share"] for r in rows], 0.4, color="tab:red", alpha=0.6,
            label="planned points in walls (%)")
    bx.set_xticks(x, labels)
    bx.set_ylabel("mean gap (m)")
    bx2.set_ylabel("planned points in walls (%)")
    fig.legend(loc="upper right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planner", help="a Diffusion Forcing planner folder")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 2, 4], help="horizon multiples (default: 1 2 4)")
    parser.add_argument("--starts", type=int, default=20, help="dataset episode starts (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="picks the starts and seeds the rollout")
    parser.add_argument("--goal", choices=("none", "episode"), default="none",
                        help="roll out unconditioned, or guided to each episode's goal (default: %(default)s)")
    parser.add_argument("--dataset-id", default=None, help="starts from this Minari id (default: the planner's)")
    parser.add_argument("--name", default=None, help="planner name in the CSV and figure (default: the folder's)")
    parser.add_argument("--csv", default=str(HERE / "rollout_stability.csv"), help="CSV to append rows to")
    parser.add_argument("--plot", default=None, help="PNG (default: figures/rollout-stability-<name>.png beside the CSV)")
    args = parser.parse_args(argv)
    if args.starts < 1 or min(args.multiples) < 1:
        parser.error("--starts and every --multiples value must be at least 1")

    planner = Planner.from_pretrained(args.planner)
    if not isinstance(planner, DiffusionForcingPlanner):
        parser.error(f"{args.planner} holds a {type(planner).__name__}; rollouts past the horizon are DF's")
    if planner.task.maze_map is None:
        parser.error(f"{planner.task.name} is not a maze task")
    meta = Planner.read_metadata(args.planner)
    dataset_id = args.dataset_id or meta.get("dataset_id") or planner.task.dataset.local_id
    starts, goals = dataset_starts(planner, dataset_id, args.starts, args.seed)
    multiples = sorted(set(args.multiples))
    rows, gap = stability(planner, starts, goals if args.goal == "episode" else None, multiples, args.seed)

    folder = Path(args.planner).resolve()
    name = args.name or (folder.parent.name if folder.name == "planner" else folder.name)
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with open(out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for r in rows:
            writer.writerow({"date": datetime.date.today().isoformat(), "commit": git_commit(),
                             "task": planner.task.name, "planner": name, "horizon": planner.horizon,
                             **{k: f"{v:.4g}" if isinstance(v, float) else v for k, v in r.items()},
                             "starts": len(starts), "goal": args.goal, "scheduling": planner.scheduling,
                             "num_inference_steps": planner.num_inference_steps, "seed": args.seed})
    for r in rows:
        print(f"{r['multiple']}H ({r['steps']} steps): gap {r['gap_mean']:.3f} ± {r['gap_se']:.3f} m, final "
              f"{r['gap_final']:.3f} m, planned points in walls {100 * r['wall_share']:.1f}%")
    first, last = rows[0], rows[-1]
    print(f"{last['multiple']}H gap / {first['multiple']}H gap = {last['gap_mean'] / max(first['gap_mean'], 1e-9):.2f} "
          f"(issue 12's target: <= 2 for 4H / 1H)")
    figure = Path(args.plot) if args.plot else out.parent / "figures" / f"rollout-stability-{name}.png"
    title = f"{name} on {planner.task.name}: {len(starts)} dataset starts, diffused actions open loop"
    print(f"plot written to {plot(gap, rows, planner.horizon, figure, title)}")


if __name__ == "__main__":
    main()
