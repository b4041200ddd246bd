"""Classical offline-RL rows (behaviour cloning, IQL) from d3rlpy, on the planners' data and evaluation seeds.

    pip install --no-deps d3rlpy==2.8.1 && pip install structlog colorama dataclasses-json h5py scikit-learn gym
    python benchmarks/locomotion/baselines.py hopper-medium --algo bc --steps 50000
    python benchmarks/locomotion/baselines.py walker2d-medium --algo iql --steps 100000 --eval-every 25000 \
        --train-seed 1 --episodes 30

With ``--eval-every K`` the policy is scored every K gradient steps during the one training run (a learning curve:
has the score stopped rising?): each checkpoint writes a row on the validation seeds 0..9 to
``benchmarks/locomotion/validation.csv`` and a row on ``--episodes`` test seeds to ``--results``, each with its
step count. Every checkpoint's row is kept; none is picked as "the best". ``--score-from S`` extends such a curve
in a later run: training restarts from scratch under the same ``--train-seed`` and only checkpoints >= S are scored
(score S again to check that the retrain reproduced the earlier row).

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
    parser.add_argument("--validation", default="benchmarks/locomotion/validation.csv")
    parser.add_argument("--train-seed", type=int, default=0, help="d3rlpy.seed of the training run")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="also score every K gradient steps (a learning curve; 0: only at the end)")
    parser.add_argument("--score-from", type=int, default=0,
                        help="skip the checkpoints before this step (to extend a learning curve whose earlier rows "
                             "exist: d3rlpy retrains them bit-identically under the same --train-seed)")
    args = parser.parse_args()
    if args.eval_every and (args.eval_every < 0 or args.steps % args.eval_every):
        parser.error(f"--eval-every {args.eval_every} must divide --steps {args.steps}.")
    import d3rlpy

    task = load_task(args.task)
    d3rlpy.seed(args.train_seed)
    torch.set_num_threads(1)
    data = mdp_dataset(task)
    algo = make_algo(args.algo)
    name = f"{args.algo}-{task.name}"
    source = f"d3rlpy {d3rlpy.__version__}"
    planner = ReactivePolicy(task, data.episodes[0].observations.shape[1], algo.predict, name)
    t0 = time.perf_counter()
    training = [0.0]  # minutes spent training, evaluations excluded

    def score(steps: int) -> None:
        training[0] += (time.perf_counter() - t0) / 60
        meta = {"train_minutes": round(training[0], 2), "train_steps": steps}
        notes = f"d3rlpy {args.algo.upper()}, {steps} gradient steps, training seed {args.train_seed}"
        runs = [(args.validation, 0, 10, "validation: ")] if args.eval_every else []
        for path, seed, episodes, prefix in [*runs, (args.results, args.seed, args.episodes, "")]:
            result = evaluate(planner, task, episodes=episodes, seed=seed, num_envs=args.num_envs, progress=False)
            print(f"{steps} steps, seeds {seed}+: {result}", flush=True)
            append_row(path, result_row(result, planner, name, source, seed, meta, notes=prefix + notes))

    def at_epoch_end(algo: Any, epoch: int, total_step: int) -> None:
        nonlocal t0
        if args.eval_every and total_step % args.eval_every == 0 and total_step >= args.score_from:
            score(total_step)
            t0 = time.perf_counter()

    algo.fit(data, n_steps=args.steps, n_steps_per_epoch=args.eval_every or min(args.steps, 10_000),
             show_progress=True, logger_adapter=d3rlpy.logging.NoopAdapterFactory(), save_interval=10**9,
             epoch_callback=at_epoch_end)
    if not args.eval_every:
        score(args.steps)


if __name__ == "__main__":
    main()
