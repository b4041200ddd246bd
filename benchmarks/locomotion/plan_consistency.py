"""Are a Decision Diffuser's planned next states physically reachable, and do its actions look like the data's?

    python benchmarks/locomotion/plan_consistency.py pretrained/dd-hopper-medium runs/dd-halfcheetah-medium/planner

For dataset states s_t (with their history), the planner plans once; its first action a = f(s_t, planned s_t+1) is
run in the simulator from exactly s_t (MuJoCo state set from the observation; the x position these envs leave out
of the observation does not change the dynamics). Reported, in normalized state units (RMS over dims):
  plan vs data       planned s_t+1 against the data's own s_t+1 (includes the behaviour policy's randomness),
  plan vs reached    planned s_t+1 against where its own action leads: > 0 means the plan is not reachable,
  data reached       the data's action replayed from s_t against the data's s_t+1 (~0 checks the state setting),
and the action error |a - a_data| against the spread of the data's actions (RMS, normalized units).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

from diffplan import Planner
from diffplan.data.episodes import load_episodes
from diffplan.data.normalizer import Normalizer


def reached_states(env: gym.Env, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """(N, obs_dim): one simulator step from each observed state (x position set to 0) under each action."""
    sim = env.unwrapped
    nq = sim.model.nq
    out = []
    for s, a in zip(states, actions):
        qpos = np.concatenate([[0.0], s[: nq - 1]])
        sim.set_state(qpos, s[nq - 1:])
        obs, *_ = env.step(a)
        out.append(obs)
    return np.stack(out)


def rms(norm: Normalizer, a: np.ndarray, b: np.ndarray, field: str = "observations") -> float:
    """Root mean square of the difference, in normalized units."""
    diff = norm.normalize(field, torch.as_tensor(a)) - norm.normalize(field, torch.as_tensor(b))
    return float(diff.pow(2).mean().sqrt())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("planners", nargs="+")
    parser.add_argument("--states", type=int, default=256, help="dataset time points (batched into one plan call)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in args.planners:
        planner = Planner.from_pretrained(path)
        task, norm, k = planner.task, planner.normalizer, planner.history
        e = load_episodes(task.dataset.local_id, task, progress=False)
        # time points with a full history and a next state inside the same episode
        ok = np.concatenate([s + np.arange(k, n - 1) for s, n in zip(e.episode_starts, e.episode_lengths)])
        idx = np.random.default_rng(args.seed).choice(ok, args.states, replace=False)
        obs = e.observations
        history = np.stack([obs[idx - k + j] for j in range(k)], axis=1)
        plan = planner.plan(obs[idx], history=history, generator=torch.Generator().manual_seed(args.seed))
        planned_next = plan.observations[:, 1].numpy()
        action = plan.actions[:, 0].numpy()
        env = gym.make(task.eval.env_id, **task.eval.env_kwargs)
        env.reset(seed=args.seed)
        reached = reached_states(env, obs[idx], np.clip(action, -1, 1))
        replayed = reached_states(env, obs[idx], e.actions[idx])

        spread = float(norm.normalize("actions", torch.as_tensor(e.actions[idx])).std(0).pow(2).mean().sqrt())
        print(f"{task.name} ({path}), {args.states} states: "
              f"plan vs data {rms(norm, planned_next, obs[idx + 1]):.3f}, "
              f"plan vs reached {rms(norm, planned_next, reached):.3f}, "
              f"data reached {rms(norm, replayed, obs[idx + 1]):.3f}; "
              f"action error {rms(norm, action, e.actions[idx], 'actions'):.3f} (data's action spread {spread:.3f})")


if __name__ == "__main__":
    main()
