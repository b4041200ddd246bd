"""Benchmark rows: one CSV row per evaluation run in ``benchmarks/<suite>/results.csv``."""

from __future__ import annotations

import csv
import datetime
import fcntl
import math
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from diffplan import __version__

COLUMNS = ["date", "commit", "task", "planner", "planner_path", "action_source", "replan_every",
           "num_inference_steps", "episodes", "seed", "protocol", "return_mean", "return_se", "score_mean",
           "score_se", "success", "first_reach_mean", "controller_share", "controller_share_se", "violation",
           "plan_ms_b1", "act_ms_b1", "train_minutes", "train_steps", "notes"]
# Rows written before a column existed read as empty there: protocol "" is "task", no controller share, no violation.
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _git(repo: Path, *args: str) -> str | None:
    """``git -C repo args`` stdout, or None when git is missing or fails."""
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def source_repo() -> Path | None:
    """The git checkout that holds the imported diffplan package (None when installed from a wheel)."""
    top = _git(PACKAGE_DIR, "rev-parse", "--show-toplevel")
    # a site-packages inside some other repository is not diffplan's checkout
    return Path(top).resolve() if top and Path(top).resolve() / "diffplan" == PACKAGE_DIR else None


def git_commit() -> str:
    """Short commit of diffplan's own source, whatever the working directory; ``v<version>`` outside a checkout."""
    repo = source_repo()
    return (_git(repo, "rev-parse", "--short", "HEAD") if repo else None) or f"v{__version__}"


def is_tracked_benchmark_file(path: str | Path) -> bool:
    """Whether ``path`` is a file git tracks under ``benchmarks/`` of diffplan's own checkout (a committed record)."""
    repo, target = source_repo(), Path(path).resolve()
    if repo is None or not target.is_relative_to(repo / "benchmarks"):
        return False
    return _git(repo, "ls-files", "--error-unmatch", "--", str(target)) is not None


@contextmanager
def _locked(path: Path) -> Iterator[TextIO]:
    """``path`` opened for appending under an exclusive flock; re-opened if a writer replaced it while we waited."""
    while True:
        with open(path, "a+", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
            try:
                same = os.path.samestat(os.fstat(f.fileno()), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                yield f
                return


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` (unknown keys are an error, missing ones stay empty); writes the header once.

    Safe for several processes appending to the same file at once (an exclusive lock covers check and write).
    """
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"Unknown result columns {sorted(unknown)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"date": datetime.date.today().isoformat(), "commit": git_commit(), **row}
    row = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
    with _locked(path) as f:
        f.seek(0)
        header = next(csv.reader(f), None)
        if header is not None and header != COLUMNS:
            _rewrite_with_new_columns(path, f, header, row)
            return
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if header is None:
            writer.writeheader()
        writer.writerow(row)


def _rewrite_with_new_columns(path: Path, f: TextIO, header: list[str], row: dict[str, Any]) -> None:
    """Rewrite a CSV made before a column was added (its columns must be a subset of ``COLUMNS``), plus ``row``."""
    if not set(header) <= set(COLUMNS):
        raise ValueError(f"{path} has columns {header}, not a results file of this version ({COLUMNS}); "
                         f"write to another --results file.")
    f.seek(0)
    rows = list(csv.DictReader(f))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows([*rows, row])
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
            "protocol": s["protocol"], "return_mean": s["return_mean"], "return_se": s["return_se"], "score_mean": s["score_mean"],
            "score_se": s["score_se"], "success": s["success"], "first_reach_mean": s["first_reach_mean"],
            **{k: _blank_nan(s[k]) for k in ("controller_share", "controller_share_se", "violation")},
            "plan_ms_b1": s["plan_ms_b1"], "act_ms_b1": s["act_ms_b1"], "train_minutes": meta.get("train_minutes", ""),
            "train_steps": meta.get("train_steps", ""), "notes": notes}


def _blank_nan(value: float) -> float | str:
    """An empty cell for a summary value that does not apply (NaN)."""
    return "" if math.isnan(value) else value
