"""Planner.plan latency at batch 1: shipped planners against their paper's configuration, in one run.

Without a Diffusion Forcing folder: Diffuser's paper configuration (Janner et al. 2022, maze2d): temporal U-Net
dim 32, mults (1, 4, 8), horizon 128/256/384 and 64/256/256 DDPM steps for umaze/medium/large, one plan point per
env step. Each planner is also timed with ``jit=True`` (traced, frozen denoisers). Rows go to ``--out``.

With a Diffusion Forcing folder (or ``--df-paper``): a replan (``plan`` at batch 1) and the mean ``act`` cost per
env step at batch 1 of each DF planner, against the other folders (the baseline, e.g. HD large) and DF's paper
configuration (v1.5: non-causal transformer, 12 layers, d 128, 4 heads, feed-forward 512, 1000 linear levels, x0,
50 DDIM steps, pyramid, the whole episode planned, goal guidance, a replan every 10 steps), with ratios. Rows go to
``--df-out``. ``--df-paper`` without a DF folder times the paper configuration against the baseline alone. The
paper configuration is built in diffplan's transformer: its attention and feed-forward layers have DF's sizes (2.4 M
parameters), and its blocks add adaLN conditioning on the per-token level (3.7 M parameters in all, about 1.5x the
per-token compute of DF's own layers), so its time is an upper bound on DF's network's and the ratios against it
lean in the DF planner's favour by up to that factor.

Paper configurations run through the same sampler with random weights (their cost does not depend on the
weights), so they need no training. Timings alternate between planners so machine noise hits all alike.

    python benchmarks/pointmaze/speed.py runs/diffuser-large/planner runs/hd-large/planner
    python benchmarks/pointmaze/speed.py runs/df-large/planner pretrained/hd-pointmaze-large
    python benchmarks/pointmaze/speed.py pretrained/hd-pointmaze-large --df-paper   # no DF weights needed
"""

from __future__ import annotations

import argparse
import csv
import datetime
import time
from pathlib import Path

import numpy as np
import torch

from diffplan import Planner
from diffplan.algorithms.diffuser import DiffuserPlanner
from diffplan.algorithms.diffusion_forcing import DiffusionForcingPlanner
from diffplan.evaluation.results import git_commit, read_rows
from diffplan.evaluation.rollout import act_latency_ms
from diffplan.nn.transformer import TransformerDenoiser
from diffplan.nn.unet import TemporalUnet

PAPER = {  # task: (horizon, DDPM steps, published maze2d score)
    "pointmaze-umaze": (128, 64, 113.9),
    "pointmaze-medium": (256, 256, 121.5),
    "pointmaze-large": (384, 256, 123.0),
}


def paper_planner(like: Planner) -> DiffuserPlanner:
    """Diffuser's maze2d configuration for ``like``'s task, with ``like``'s normalizer."""
    base = getattr(like, "high", like)
    horizon, steps, _ = PAPER[like.task.name]
    torch.manual_seed(0)
    denoiser = TemporalUnet(base.layout.transition_dim, horizon, dim=32, dim_mults=(1, 4, 8))
    return DiffuserPlanner(like.task, base.normalizer, denoiser,
                           schedule={"num_train_timesteps": steps, "beta_schedule": "squaredcos_cap_v2",
                                     "prediction_type": "sample"},
                           horizon=horizon, stride=1, num_inference_steps=steps, eta=1.0)


# DF v1.5's maze2d settings (ANCHORS 5.2, 16.1); horizon None = the task's episode length (the whole episode).
DF_PAPER = {"frame_stack": 10, "d_model": 128, "depth": 12, "heads": 4, "emb_dim": 128, "causal": False,
            "num_train_timesteps": 1000, "num_inference_steps": 50, "scheduling": "pyramid", "guidance_scale": 3.0,
            "replan_every": 10, "horizon": None}


def df_paper_planner(like: Planner) -> DiffusionForcingPlanner:
    """DF's paper configuration (``DF_PAPER``; feed-forward 4 x d = 512) for ``like``'s task with ``like``'s
    normalizer, random weights."""
    cfg = DF_PAPER
    base = getattr(like, "high", like)
    fs = cfg["frame_stack"]
    horizon = cfg["horizon"] or -(-like.task.eval.max_episode_steps // fs) * fs
    torch.manual_seed(0)
    denoiser = TransformerDenoiser(fs * base.layout.transition_dim, horizon // fs, d_model=cfg["d_model"],
                                   depth=cfg["depth"], heads=cfg["heads"], emb_dim=cfg["emb_dim"], causal=cfg["causal"])
    schedule = {"num_train_timesteps": cfg["num_train_timesteps"], "beta_schedule": "linear",
                "prediction_type": "sample"}
    return DiffusionForcingPlanner(like.task, base.normalizer, denoiser, schedule, horizon=horizon, frame_stack=fs,
                                   num_inference_steps=cfg["num_inference_steps"], scheduling=cfg["scheduling"],
                                   guidance_scale=cfg["guidance_scale"], replan_every=cfg["replan_every"],
                                   action_source="diffused")


def start_and_goal(task) -> tuple[np.ndarray, np.ndarray]:
    """The first free cell's centre (at rest) and the evaluation goal cell's centre."""
    grid = task.eval.env_kwargs["maze_map"]
    rows, cols = len(grid), len(grid[0])

    def to_xy(rc: tuple[int, int]) -> np.ndarray:
        return np.array([rc[1] + 0.5 - cols / 2, rows / 2 - rc[0] - 0.5])

    free = [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v == 0]
    goal = [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v == "g"]
    return np.concatenate([to_xy(free[-1]), [0.0, 0.0]]), to_xy(goal[0])


def time_plan(planner: Planner, obs: np.ndarray, goal: np.ndarray) -> float:
    t0 = time.perf_counter()
    planner.plan(obs, goal=goal, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - t0


def score_of(results: str, folder: str) -> str:
    rows = [r for r in read_rows(results) if r["planner_path"].rstrip("/") == folder.rstrip("/")] \
        if Path(results).exists() else []
    return f"{float(rows[-1]['score_mean']):.1f} ± {float(rows[-1]['score_se']):.1f}" if rows else "n/a"


def median_plan_ms(contenders: dict[str, Planner], repeats: int) -> dict[str, float]:
    """Median batch-1 ``plan`` wall time per contender (ms), after a warm-up, the contenders taking turns."""
    starts = {name: start_and_goal(p.task) for name, p in contenders.items()}
    for name, p in contenders.items():  # warm-up (and tracing of jit copies)
        time_plan(p, *starts[name])
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, p in contenders.items():
            times[name].append(time_plan(p, *starts[name]))
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planners", nargs="+", help="planner folders (of one task for the Diffuser comparison)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--results", default="benchmarks/pointmaze/results.csv", help="where scores are read")
    parser.add_argument("--out", default="benchmarks/pointmaze/speed.csv")
    parser.add_argument("--df-paper", action="store_true",
                        help="time DF's paper configuration against the folders even without a DF folder")
    parser.add_argument("--act-steps", type=int, default=40, help="env steps of the act timing (default: %(default)s)")
    parser.add_argument("--df-out", default="benchmarks/pointmaze/speed-df.csv")
    args = parser.parse_args(argv)
    loaded = {folder: Planner.from_pretrained(folder) for folder in args.planners}
    if args.df_paper or any(isinstance(p, DiffusionForcingPlanner) for p in loaded.values()):
        df_comparison(args, loaded)
    else:
        diffuser_comparison(args)


def df_comparison(args: argparse.Namespace, loaded: dict[str, Planner]) -> None:
    """DF planners against the other folders (baseline: the first of them) and DF's paper configuration."""
    df = [name for name, p in loaded.items() if isinstance(p, DiffusionForcingPlanner)]
    baseline = next((name for name in loaded if name not in df), None)
    like = loaded[df[0] if df else next(iter(loaded))]
    paper = f"DF paper configuration ({like.task.name})"
    contenders = {**loaded, paper: df_paper_planner(like)}
    plan_ms = median_plan_ms(contenders, args.repeats)
    act_ms = {name: act_latency_ms(p, p.task, steps=args.act_steps) for name, p in contenders.items()}
    print(f"batch-1 replan (median of {args.repeats}) and mean act per env step ({args.act_steps} steps), torch "
          f"threads {torch.get_num_threads()}")
    rows = []
    for name, p in contenders.items():
        role = "df" if name in df else "paper" if name == paper else "baseline"
        over_base = [plan_ms[name] / plan_ms[baseline], act_ms[name] / act_ms[baseline]] if baseline else ["", ""]
        paper_over = [plan_ms[paper] / plan_ms[name], act_ms[paper] / act_ms[name]]
        cfg = p.config
        print(f"  {name} [{role}, {p.task.name}]: replan {plan_ms[name]:.1f} ms, act {act_ms[name]:.2f} ms"
              + (f"; x{over_base[0]:.2f} the baseline's plan (issue 12: <= 5)" if role == "df" and baseline else "")
              + (f"; paper configuration x{paper_over[0]:.1f} its plan (issue 12: >= 20)" if role == "df" else ""))
        rows.append([datetime.date.today().isoformat(), git_commit(), p.task.name, name, role, f"{plan_ms[name]:.2f}",
                     f"{act_ms[name]:.3f}", cfg.get("replan_every"), cfg.get("num_inference_steps", ""),
                     sum(t.numel() for t in p.parameters()),
                     *(f"{v:.3g}" if v != "" else "" for v in over_base), *(f"{v:.3g}" for v in paper_over),
                     torch.get_num_threads()])
    append_csv(args.df_out, ["date", "commit", "task", "planner", "role", "plan_ms", "act_ms", "replan_every",
                             "num_inference_steps", "params", "plan_over_baseline", "act_over_baseline",
                             "paper_plan_over", "paper_act_over", "threads"], rows)


def append_csv(path: str | Path, header: list[str], rows: list[list]) -> None:
    """Append ``rows`` to the CSV at ``path``, writing ``header`` first when the file is new."""
    path = Path(path)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(header)
        w.writerows(rows)


def diffuser_comparison(args: argparse.Namespace) -> None:
    """Diffuser-family folders (and their jit copies) against Diffuser's paper configuration."""
    contenders = {}
    for folder in args.planners:
        contenders[folder] = Planner.from_pretrained(folder)
        contenders[f"{folder} (jit)"] = Planner.from_pretrained(folder, jit=True) if isinstance(
            contenders[folder], DiffuserPlanner) else _jit_levels(folder)
    task = contenders[args.planners[0]].task
    if any(p.task.name != task.name for p in contenders.values()):
        raise SystemExit("speed.py: error: all planners must be made for the same task")
    paper = contenders["paper configuration"] = paper_planner(contenders[args.planners[0]])
    ms = median_plan_ms(contenders, args.repeats)
    horizon, steps, published = PAPER[task.name]
    print(f"{task.name}: batch-1 plan, median of {args.repeats}, torch threads {torch.get_num_threads()}")
    print(f"  paper configuration (H {horizon}, {steps} DDPM steps, dim 32 x (1,4,8)): {ms['paper configuration']:.1f} ms;"
          f" published score {published} (D4RL maze2d, not trained here)")
    rows = []
    for name in contenders:
        if name == "paper configuration":
            continue
        folder = name.removesuffix(" (jit)")
        score = score_of(args.results, folder)
        print(f"  {name}: {ms[name]:.1f} ms, {ms['paper configuration'] / ms[name]:.1f}x faster than the paper "
              f"configuration; score {score}")
        rows.append([datetime.date.today().isoformat(), git_commit(), task.name, name, f"{ms[name]:.2f}",
                     f"{ms['paper configuration']:.2f}", f"{ms['paper configuration'] / ms[name]:.2f}", score,
                     published, torch.get_num_threads()])
    append_csv(args.out, ["date", "commit", "task", "planner", "plan_ms", "paper_ms", "speedup_vs_paper", "score",
                          "paper_published_score", "threads"], rows)
    del paper


def _jit_levels(folder: str) -> Planner:
    """A composed planner whose levels run traced denoisers."""
    planner = Planner.from_pretrained(folder)
    for name in planner.components:
        level = getattr(planner, name)
        if isinstance(level, DiffuserPlanner):
            level.jit = True
    return planner


if __name__ == "__main__":
    main()
