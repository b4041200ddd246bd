"""Benchmark rows: one CSV row per evaluation run in ``benchmarks/<suite>/results.csv``."""

from __future__ import annotations

import csv
import datetime
import subprocess
from pathlib import Path
from typing import Any

COLUMNS = ["date", "commit", "task", "planner", "planner_path", "action_source", "replan_every",
           "num_inference_steps", "episodes", "seed", "return_mean", "return_se", "score_mean", "score_se",
           "success", "first_reach_mean", "plan_ms_b1", "act_ms_b1", "train_minutes", "train_steps", "notes"]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             check=False)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` (unknown keys are an error, missing ones stay empty); writes the header once."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"Unknown result columns {sorted(unknown)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        _upgrade_header(path)
    row = {"date": datetime.date.today().isoformat(), "commit": git_commit(), **row}
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})


def _upgrade_header(path: Path) -> None:
    """Rewrite a CSV made before a column was added (its columns must be a subset of ``COLUMNS``)."""
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    if header == COLUMNS:
        return
    if not set(header) <= set(COLUMNS):
        raise ValueError(f"{path} has columns {header}, not a results file of this version ({COLUMNS}); "
                         f"write to another --results file.")
    rows = read_rows(path)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def result_row(result: Any, planner: Any, name: str, planner_path: str, seed: int,
               meta: dict[str, Any] | None = None, notes: str = "") -> dict[str, Any]:
    """The results.csv row of one evaluation run (``result``: EvaluationResult, ``planner``: Planner)."""
    s, cfg, meta = result.summary(), planner.config, meta or {}
    return {"task": result.task.name, "planner": name, "planner_path": str(planner_path),
            "action_source": cfg["action_source"], "replan_every": cfg["replan_every"],
            "num_inference_steps": cfg.get("num_inference_steps", ""), "episodes": s["episodes"], "seed": seed,
            "return_mean": s["return_mean"], "return_se": s["return_se"], "score_mean": s["score_mean"],
            "score_se": s["score_se"], "success": s["success"], "first_reach_mean": s["first_reach_mean"],
            "plan_ms_b1": s["plan_ms_b1"], "act_ms_b1": s["act_ms_b1"], "train_minutes": meta.get("train_minutes", ""),
            "train_steps": meta.get("train_steps", ""), "notes": notes}
