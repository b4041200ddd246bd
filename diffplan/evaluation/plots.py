"""Figures: planned and executed paths over the maze."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from diffplan.evaluation.rollout import EvaluationResult


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """tight_layout, create the folder, save as PNG, close."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_maze(ax: plt.Axes, maze_map: list[list]) -> None:
    rows, cols = len(maze_map), len(maze_map[0])
    for r in range(rows):
        for c in range(cols):
            if maze_map[r][c] == 1:
                x, y = c - cols / 2, rows / 2 - r - 1
                ax.add_patch(plt.Rectangle((x, y), 1, 1, color="0.25"))
    ax.set_xlim(-cols / 2, cols / 2)
    ax.set_ylim(-rows / 2, rows / 2)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_paths(result: EvaluationResult, path: str | Path, title: str = "") -> Path:
    """One panel per kept episode: the first plan (dashed), the executed path (solid), start and goal."""
    n = len(result.paths)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        draw_maze(ax, result.task.maze_map)
        plan, exe = result.plans[i], result.paths[i]
        ax.plot(plan[:, 0], plan[:, 1], "--", color="tab:orange", lw=1.5, label="plan")
        ax.plot(exe[:, 0], exe[:, 1], "-", color="tab:blue", lw=1.2, label="executed")
        ax.plot(exe[0, 0], exe[0, 1], "o", color="tab:green", ms=6)
        if i < len(result.subgoals):
            sub = result.subgoals[i]
            ax.plot(sub[:, 0], sub[:, 1], "s", color="tab:purple", ms=3.5, label="subgoals")
        if i < len(result.goals):
            ax.add_patch(plt.Circle(result.goals[i], 0.45, color="tab:red", alpha=0.3))
        ax.set_title(f"seed {result.seeds[i]}: score {result.scores[i]:.0f}", fontsize=9)
    axes.flat[0].legend(loc="lower left", fontsize=7)
    fig.suptitle(title or result.task.name, fontsize=10)
    return save_figure(fig, path)
