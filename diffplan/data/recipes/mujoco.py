"""The Minari ``mujoco/<env>/<proficiency>`` recipe, regenerated locally with a shipped behaviour policy.

Episodes of up to ``max_episode_steps``; reset with ``seed`` and ``seed + 1`` for every next episode; the
trailing partial episode is dropped (the loop stops when fewer than ``max_episode_steps`` steps remain).
Actions are sampled from the policy (SB3 ``predict``'s default, ``deterministic=False``), or uniformly for
``policy: null`` (the random datasets). ``ref_min_score`` follows Minari's method (RandomPolicy on the env);
``ref_max_score`` is given by the task card (D4RL's expert constant or a local expert), see its comment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.utils import RandomPolicy, get_average_reference_score
from tqdm.auto import tqdm

from diffplan.data.recipes.behavior import BehaviorPolicy
from diffplan.data.writer import write_dataset
from diffplan.environments import make_env, make_eval_env
from diffplan.io import load_module
from diffplan.tasks import ENVS_DIR, Task

DESCRIPTION = ("Locally regenerated with diffplan's implementation of the Minari mujoco recipe: {steps} steps of "
               "{policy} on {env}, reset seed {seed} (+1 per episode), trailing partial episode dropped.")


def load_policy(path: str) -> BehaviorPolicy:
    """A behaviour policy folder (relative paths are resolved from the repository root)."""
    folder = Path(path)
    if not folder.is_absolute():
        folder = ENVS_DIR.parent / folder
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"Behaviour policy {folder} not found; train one with "
                                f"`python benchmarks/locomotion/train_behavior.py` or fix the task card's `policy`.")
    policy = load_module(folder)
    if not isinstance(policy, BehaviorPolicy):
        raise TypeError(f"{folder} holds a {type(policy).__name__}, not a BehaviorPolicy.")
    return policy.eval()


def collect(task: Task, steps: int, seed: int, policy: BehaviorPolicy | None, max_episode_steps: int,
            progress: bool = True) -> list[EpisodeBuffer]:
    """Roll out ``policy`` (uniform random actions if None) into whole episodes, at most ``steps`` steps."""
    env = make_env(task, max_episode_steps=max_episode_steps)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    buffers: list[EpisodeBuffer] = []
    done_steps, episode_seed = 0, seed
    bar = tqdm(total=steps, desc=f"collect {task.name}", unit="step", disable=not progress, mininterval=1.0,
               unit_scale=True)
    while steps - done_steps >= max_episode_steps:
        obs, _ = env.reset(seed=episode_seed)
        observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
        while True:
            a = env.action_space.sample() if policy is None else policy.act(obs, rng)
            obs, r, terminated, truncated, _ = env.step(a)
            observations.append(obs)
            actions.append(np.asarray(a, np.float32))
            rewards.append(r)
            terminations.append(terminated)
            truncations.append(truncated)
            if terminated or truncated:
                break
        buffers.append(EpisodeBuffer(id=len(buffers), seed=episode_seed, observations=np.asarray(observations),
                                     actions=np.asarray(actions), rewards=np.asarray(rewards),
                                     terminations=np.asarray(terminations), truncations=np.asarray(truncations)))
        done_steps += len(actions)
        episode_seed += 1
        bar.update(len(actions))
    bar.close()
    env.close()
    return buffers


def generate(task: Task, steps: int, seed: int, dataset_id: str, overwrite: bool = False, progress: bool = True,
             policy: str | None = None, max_episode_steps: int = 1000, reference_episodes: int = 100,
             ref_max_score: float | None = None):
    """Collect, score and write the dataset (all-or-nothing); returns the loaded ``MinariDataset``."""
    behavior = load_policy(policy) if policy else None
    buffers = collect(task, steps, seed, behavior, max_episode_steps, progress)
    eval_env = make_eval_env(task)
    eval_env.action_space.seed(seed)
    ref_min = get_average_reference_score(eval_env, RandomPolicy(eval_env), reference_episodes)
    ref_max = task.ref_max_score if ref_max_score is None else ref_max_score
    if progress:
        returns = [float(b.rewards.sum()) for b in buffers]
        print(f"{len(buffers)} episodes, mean return {np.mean(returns):.1f}; reference scores: random {ref_min:.2f} "
              f"(Minari's method, {reference_episodes} episodes), max {ref_max:.2f} (task card)")
    return write_dataset(
        dataset_id, overwrite, buffer=buffers, env=make_env(task, max_episode_steps=max_episode_steps),
        eval_env=make_eval_env(task), algorithm_name="SAC" if policy else "RandomPolicy", author="diffplan",
        author_email="diffplan@localhost", code_permalink="diffplan.data.recipes.mujoco", ref_min_score=ref_min,
        ref_max_score=ref_max, num_episodes_average_score=reference_episodes,
        description=DESCRIPTION.format(steps=steps, policy=policy or "uniform random actions", env=task.env_id,
                                       seed=seed))
