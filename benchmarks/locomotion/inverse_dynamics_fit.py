"""How well a Decision Diffuser's inverse dynamics recovers the dataset's actions (R^2 per action dimension).

    python benchmarks/locomotion/inverse_dynamics_fit.py pretrained/dd-hopper-medium runs/dd-walker2d-medium/planner

A diagnostic for failures: a high R^2 on the data means bad scores come from the planned states, not the actions.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from diffplan import Planner
from diffplan.data.episodes import load_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planners", nargs="+")
    parser.add_argument("--pairs", type=int, default=20000, help="random (s_t, s_t+1, a_t) pairs from the dataset")
    args = parser.parse_args()
    for path in args.planners:
        planner = Planner.from_pretrained(path)
        task, n = planner.task, planner.normalizer
        e = load_episodes(task.dataset.local_id, task, progress=False)
        last = e.episode_starts + e.episode_lengths - 1  # an episode's last state has no action
        idx = np.random.default_rng(0).choice(len(e.observations) - 1, args.pairs, replace=False)
        idx = idx[~np.isin(idx, last)]
        s, s_next, a = (torch.tensor(v) for v in (e.observations[idx], e.observations[idx + 1], e.actions[idx]))
        with torch.no_grad():
            pred = n.unnormalize("actions", planner.inverse_dynamics(n.normalize("observations", s),
                                                                     n.normalize("observations", s_next)))
        r2 = 1 - ((pred - a) ** 2).mean(0) / a.var(0)
        print(f"{task.name} ({path}): inverse dynamics R^2 per action dim {[round(float(v), 3) for v in r2]}")


if __name__ == "__main__":
    main()
