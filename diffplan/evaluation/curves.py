"""Learning curves from Lightning's CSVLogger ``metrics.csv`` files."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from diffplan.evaluation.plots import save_figure


def read_metrics(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a metrics.csv as float arrays (rows missing a value are NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) if r.get(k) not in (None, "") else np.nan for r in rows]) for k in rows[0]}


def plot_learning_curves(runs: dict[str, str | Path], path: str | Path, smooth: int = 10) -> Path:
    """One panel per logged loss, one line per run (moving average over ``smooth`` logged points)."""
    metrics = {name: read_metrics(p) for name, p in runs.items()}
    keys = sorted({k for m in metrics.values() for k in m if k.startswith("train/")})
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for name, m in metrics.items():
            if key in m:
                ok = ~np.isnan(m[key])
                y = np.convolve(m[key][ok], np.ones(smooth) / smooth, mode="valid") if ok.sum() > smooth else m[key][ok]
                ax.plot(m["step"][ok][: len(y)], y, label=name)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    return save_figure(fig, path)
