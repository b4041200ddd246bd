"""Same-run comparison of two diffplan revisions on shipped planners: actions and cost per ``act``.

Checks that a refactor keeps the shipped planners' behaviour and speed: each revision (the working tree and a git
revision, checked out into a temporary worktree) runs the same episode prefix in a fresh process, alternating
A B A B ..., with the same seeds. It prints, per planner, the largest action difference between the revisions
and the median ms per ``act`` of each with their ratio (pair by pair, so machine drift cancels).

    python benchmarks/compare_revisions.py --base c4c8f86 pretrained/dd-hopper-medium pretrained/hd-pointmaze-large

Time it on a quiet machine (no training beside it); ``--threads`` sets torch's threads in both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Runs inside each revision: only API both sides have (from_pretrained, make_eval_env, reset, act).
CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from diffplan import Planner
from diffplan.environments import make_eval_env
planner = Planner.from_pretrained(sys.argv[1])
env = make_eval_env(planner.task)
obs, _ = env.reset(seed=0)
planner.reset(seed=0)
actions, times = [], []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    a = planner.act(obs)
    times.append(time.perf_counter() - t0)
    actions.append(np.asarray(a, np.float64).tolist())
    obs, _, term, trunc, _ = env.step(np.asarray(a, np.float32))
    if term or trunc:
        break
print(json.dumps({"actions": actions, "ms": [1e3 * t for t in times[1:]]}))
"""


def run(source: Path, planner: str, steps: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO / planner), str(steps), str(threads)],
                         capture_output=True, text=True, env=env, cwd=source, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planners", nargs="+", help="planner folders (paths relative to the repo)")
    parser.add_argument("--base", required=True, help="git revision to compare the working tree against")
    parser.add_argument("--steps", type=int, default=40, help="act calls per episode prefix")
    parser.add_argument("--rounds", type=int, default=5, help="A/B pairs per planner")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="diffplan-base-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(base), args.base], check=True)
        try:
            print(f"{'planner':40s} {'max |a_new - a_base|':>22s} {'new ms':>8s} {'base ms':>8s} {'new/base':>9s}")
            for planner in args.planners:
                new_ms, base_ms, ratios, diff = [], [], [], 0.0
                for _ in range(args.rounds):
                    a, b = run(REPO, planner, args.steps, args.threads), run(base, planner, args.steps, args.threads)
                    n = min(len(a["actions"]), len(b["actions"]))
                    diff = max(diff, float(np.abs(np.subtract(a["actions"][:n], b["actions"][:n])).max()))
                    new_ms.append(np.median(a["ms"]))
                    base_ms.append(np.median(b["ms"]))
                    ratios.append(new_ms[-1] / base_ms[-1])
                print(f"{planner:40s} {diff:22.2e} {np.median(new_ms):8.2f} {np.median(base_ms):8.2f} "
                      f"{np.median(ratios):9.3f}  (ratios {min(ratios):.3f}-{max(ratios):.3f})")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)


if __name__ == "__main__":
    main()
