"""Classical offline-RL rows (behaviour cloning, IQL) from d3rlpy, on the planners' data and evaluation seeds.

    pip install --no-deps d3rlpy==2.8.1 && pip install structlog colorama dataclasses-json h5py scikit-learn gym
    python benchmarks/locomotion/baselines.py hopper-medium --algo bc --steps 50000
    python benchmarks/locomotion/baselines.py hopper-medium --algo iql --steps 100000

d3rlpy pins gymnasium 1.0, which the MuJoCo v5 envs here do not use, hence the ``--no-deps`` install (it is
not a dependency of diffplan). The data comes from the same local Minari dataset (``minari.load_dataset``),
the evaluation is diffplan's (same vector env, reset seeds, termination masking and normalized score), and the
row lands in ``benchmarks/locomotion/results.csv``. The trained d3rlpy models are not kept (their format is a
pickle-based torch file).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import minari
import numpy as np
import torch

from diffplan.evaluation.results import append_row, result_row
from diffplan.evaluation.rollout import evaluate
from diffplan.planner import Plan, PlanContext, Planner
from diffplan.tasks import Task, load_task


class ReactivePolicy(Planner):
    """A feed-forward policy ``obs (B, obs_dim) -> action (B, act_dim)`` behind the Planner interface, so it
    runs through the same evaluation as the planners (a "plan" is one action)."""

    def __init__(self, task: Task, obs_dim: int, policy: Any, name: str):
        super().__init__(task, replan_every=1)
        self.save_config({"obs_dim": obs_dim, "name": name})
        self._obs_dim, self.policy = obs_dim, policy

    @property
    def obs_dim(self) -> int:
        return self._obs_dim

    def sample(self, context: PlanContext, n: int = 1, guidance: Any = None,
               generator: torch.Generator | None = None) -> Plan:
        x = context.obs.cpu()
        actions = torch.as_tensor(np.asarray(self.policy(x.numpy()), np.float32))
        return Plan(observations=x[:, None], actions=actions[:, None], stride=1)


def mdp_dataset(task: Task) -> Any:
    """The task's local Minari dataset as a d3rlpy MDPDataset (terminal = the env terminated, else a timeout)."""
    import d3rlpy

    dataset = minari.load_dataset(task.dataset.local_id)
    obs, act, rew, term, timeout = [], [], [], [], []
    for ep in dataset.iterate_episodes():
        t = len(ep)
        obs.append(ep.observations[:t])
        act.append(ep.actions)
        rew.append(ep.rewards)
        term.append(np.zeros(t, np.float32))
        term[-1][-1] = float(ep.terminations[-1])
        timeout.append(np.zeros(t, np.float32))
        timeout[-1][-1] = float(not ep.terminations[-1])
    return d3rlpy.dataset.MDPDataset(np.concatenate(obs).astype(np.float32), np.concatenate(act).astype(np.float32),
                                     np.concatenate(rew).astype(np.float32), np.concatenate(term),
                                     np.concatenate(timeout))


def make_algo(name: str) -> Any:
    """BC (d3rlpy defaults, deterministic policy) or IQL with the paper's locomotion settings: expectile 0.7,
    temperature 3, rewards scaled by 1000 / (max - min episode return), 256x256 networks."""
    import d3rlpy

    if name == "bc":
        return d3rlpy.algos.BCConfig(batch_size=256, learning_rate=1e-3).create(device="cpu:0")
    if name == "iql":
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4, critic_learning_rate=3e-4, batch_size=256, expectile=0.7, weight_temp=3.0,
            max_weight=100.0, reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
        ).create(device="cpu:0")
    raise ValueError(f"Unknown algorithm {name!r}; use bc or iql.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--algo", choices=["bc", "iql"], required=True)
    parser.add_argument("--steps", type=int, required=True, help="gradient steps")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1000, help="reset seed of the first evaluation episode")
    parser.add_argument("--num-envs", type=int, default=5)
    parser.add_argument("--results", default="benchmarks/locomotion/results.csv")
    args = parser.parse_args()
    import d3rlpy

    task = load_task(args.task)
    d3rlpy.seed(0)
    torch.set_num_threads(1)
    data = mdp_dataset(task)
    algo = make_algo(args.algo)
    t0 = time.perf_counter()
    algo.fit(data, n_steps=args.steps, n_steps_per_epoch=min(args.steps, 10_000), show_progress=True,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory(), save_interval=10**9)
    minutes = (time.perf_counter() - t0) / 60
    name = f"{args.algo}-{task.name}"
    planner = ReactivePolicy(task, data.episodes[0].observations.shape[1], algo.predict, name)
    result = evaluate(planner, task, episodes=args.episodes, seed=args.seed, num_envs=args.num_envs)
    print(result)
    append_row(args.results, result_row(result, planner, name, f"d3rlpy {d3rlpy.__version__}", args.seed,
                                        {"train_minutes": round(minutes, 2), "train_steps": args.steps},
                                        notes=f"d3rlpy {args.algo.upper()}, {args.steps} gradient steps, seed 0"))


if __name__ == "__main__":
    main()
