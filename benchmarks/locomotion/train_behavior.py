"""Train a small SAC behaviour policy (stable-baselines3) and ship its actor as safetensors + JSON.

    python benchmarks/locomotion/train_behavior.py Hopper-v5 --target-return 1400 \
        --out pretrained/behavior/hopper-medium

The published medium policies come from 4-6M SAC steps (hours here). This trains SAC with a 64x64 network and
stops at the first evaluation whose mean return (stochastic actions, as the recipe samples them) reaches
``--target-return`` (a D4RL-"medium"-like level, about 1/3 of expert), then writes the actor with
``BehaviorPolicy.from_sb3``. Only this script touches SB3's pickled zip format; the shipped folder loads without
pickles. Needs ``pip install stable-baselines3`` (the ``locomotion`` extra).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from diffplan.data.recipes.behavior import BehaviorPolicy
from diffplan.io import atomic_folder, save_module


def mean_return(policy: BehaviorPolicy, env_id: str, episodes: int, seed: int) -> float:
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, r, terminated, truncated, _ = env.step(policy.act(obs, rng))
            total += float(r)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_id")
    parser.add_argument("--out", required=True)
    parser.add_argument("--target-return", type=float, required=True)
    parser.add_argument("--max-steps", type=int, default=400_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--net", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a 64x64 MLP is faster on one thread

    history: list[tuple[int, float]] = []
    t0 = time.perf_counter()

    class StopAtTarget(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every:
                return True
            ret = mean_return(BehaviorPolicy.from_sb3(self.model), args.env_id, args.eval_episodes, 10_000)
            history.append((self.num_timesteps, ret))
            print(f"step {self.num_timesteps}: mean return {ret:.1f} ({(time.perf_counter() - t0) / 60:.1f} min)",
                  flush=True)
            return ret < args.target_return

    model = SAC("MlpPolicy", args.env_id, learning_starts=10_000, gamma=0.99, seed=args.seed, verbose=0,
                policy_kwargs={"net_arch": args.net})
    model.learn(total_timesteps=args.max_steps, callback=StopAtTarget(), progress_bar=True)
    if not history or history[-1][1] < args.target_return:
        raise SystemExit(f"SAC did not reach {args.target_return} in {args.max_steps} steps (last: {history[-1:]}).")
    policy = BehaviorPolicy.from_sb3(model)
    steps, ret = history[-1]
    command = "python " + " ".join(["benchmarks/locomotion/train_behavior.py", args.env_id, "--out", args.out,
                                    "--target-return", f"{args.target_return:g}", "--seed", str(args.seed),
                                    "--net", *map(str, args.net)])
    with atomic_folder(args.out) as tmp:
        save_module(policy, Path(tmp))
        (Path(tmp) / "training.json").write_text(json.dumps(
            {"env_id": args.env_id, "sac_steps": steps, "eval_return": ret, "eval_episodes": args.eval_episodes,
             "minutes": (time.perf_counter() - t0) / 60, "history": history, "command": command}, indent=2))
        (Path(tmp) / "README.md").write_text(
            f"# SAC behaviour policy for {args.env_id}\n\nActor of a stable-baselines3 SAC run (net {args.net}, "
            f"learning_starts 10000, gamma 0.99, seed {args.seed}), stopped after {steps} steps when the mean "
            f"return of {args.eval_episodes} stochastic episodes reached {ret:.1f} (target {args.target_return:g}).\n"
            f"Stored as safetensors + JSON (`diffplan.data.recipes.behavior.BehaviorPolicy`); no pickles.\n\n"
            f"Made with:\n\n    {command}\n")
    print(f"wrote {args.out}: {steps} SAC steps, return {ret:.1f}")


if __name__ == "__main__":
    main()
