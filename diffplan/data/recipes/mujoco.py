"""The Minari ``mujoco/<env>/<proficiency>`` recipe, regenerated locally with a shipped behaviour policy.

Episodes of up to ``max_episode_steps``; reset with ``seed`` and ``seed + 1`` for every next episode; the
trailing partial episode is dropped (the loop stops when fewer than ``max_episode_steps`` steps remain).
Actions are sampled from the policy (SB3 ``predict``'s default, ``deterministic=False``), or uniformly for
``policy: null`` (the random datasets). A ``policy`` folder with a ``schedule.json`` (written by
``benchmarks/locomotion/train_behavior.py --replay-out``) gives the medium-replay analogue: each snapshot of the
SAC run is rolled out, in order, for the steps SAC collected with it (whole episodes, the last one may run past
its share). ``ref_min_score`` follows Minari's method (RandomPolicy on the env);
``ref_max_score`` is given by the task card (D4RL's expert constant or a local expert), see its comment.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.utils import RandomPolicy
from tqdm.auto import tqdm

from diffplan.data.recipes.behavior import BehaviorPolicy
from diffplan.data.recipes.reference import reference_score
from diffplan.data.writer import write_dataset
from diffplan.environments import make_env, make_eval_env
from diffplan.io import load_module
from diffplan.tasks import ENVS_DIR, Task

DESCRIPTION = ("Locally regenerated with diffplan's implementation of the Minari mujoco recipe: {steps} steps of "
               "{policy} on {env}, reset seed {seed} (+1 per episode), {ending}.")


Segment = tuple[BehaviorPolicy | None, int]  # (policy, or None for uniform random actions; env steps)


def resolve(path: str) -> Path:
    """Relative policy paths are resolved from the repository root."""
    folder = Path(path)
    return folder if folder.is_absolute() else ENVS_DIR.parent / folder


def load_policy(path: str) -> BehaviorPolicy:
    """A behaviour policy folder (safetensors + JSON)."""
    folder = resolve(path)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"Behaviour policy {folder} not found; train one with "
                                f"`python benchmarks/locomotion/train_behavior.py` or fix the task card's `policy`.")
    policy = load_module(folder)
    if not isinstance(policy, BehaviorPolicy):
        raise TypeError(f"{folder} holds a {type(policy).__name__}, not a BehaviorPolicy.")
    return policy.eval()


def load_segments(path: str | None, steps: int) -> tuple[list[Segment], bool]:
    """The (policy, steps) segments to roll out, at most ``steps`` in all, and whether it is a replay schedule."""
    if path is None or not (resolve(path) / "schedule.json").exists():
        return [(load_policy(path) if path else None, steps)], False
    schedule = json.loads((resolve(path) / "schedule.json").read_text())
    segments, left = [], steps
    for segment in schedule["segments"]:
        n = min(int(segment["steps"]), left)
        if n > 0:
            name = segment["policy"]
            segments.append((load_policy(str(resolve(path) / name)) if name else None, n))
        left -= n
    return segments, True


def collect(task: Task, steps: int, seed: int, policy: BehaviorPolicy | None, max_episode_steps: int,
            progress: bool = True) -> list[EpisodeBuffer]:
    """Roll out ``policy`` (uniform random actions if None) into whole episodes, at most ``steps`` steps."""
    return collect_segments(task, [(policy, steps)], seed, max_episode_steps, progress, drop_partial=True)


def collect_segments(task: Task, segments: list[Segment], seed: int, max_episode_steps: int, progress: bool = True,
                     drop_partial: bool = True) -> list[EpisodeBuffer]:
    """Roll out each segment's policy into whole episodes; reset seeds continue across segments.

    ``drop_partial``: Minari's rule, start no episode with fewer than ``max_episode_steps`` steps left in the
    segment; otherwise start episodes while the segment has steps left (a replay buffer keeps them all).
    """
    env = make_env(task, max_episode_steps=max_episode_steps)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    buffers: list[EpisodeBuffer] = []
    episode_seed = seed
    bar = tqdm(total=sum(n for _, n in segments), desc=f"collect {task.name}", unit="step", disable=not progress,
               mininterval=1.0, unit_scale=True)
    for policy, steps in segments:
        done_steps = 0
        while (steps - done_steps >= max_episode_steps) if drop_partial else (done_steps < steps):
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
                                         terminations=np.asarray(terminations),
                                         truncations=np.asarray(truncations)))
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
    segments, replay = load_segments(policy, steps)
    buffers = collect_segments(task, segments, seed, max_episode_steps, progress, drop_partial=not replay)
    eval_env = make_eval_env(task)
    eval_env.action_space.seed(seed)
    ref_min = reference_score(eval_env, RandomPolicy(eval_env), reference_episodes, "reference: random policy",
                              progress)
    ref_max = task.ref_max_score if ref_max_score is None else ref_max_score
    if progress:
        returns = [float(b.rewards.sum()) for b in buffers]
        print(f"{len(buffers)} episodes, mean return {np.mean(returns):.1f}; reference scores: random {ref_min:.2f} "
              f"(Minari's method, {reference_episodes} episodes), max {ref_max:.2f} (task card)")
    return write_dataset(
        dataset_id, overwrite, buffer=buffers, env=make_env(task, max_episode_steps=max_episode_steps),
        eval_env=make_eval_env(task), author="diffplan",
        algorithm_name=("SAC replay" if replay else "SAC") if policy else "RandomPolicy", author_email="diffplan@localhost", code_permalink="diffplan.data.recipes.mujoco", ref_min_score=ref_min,
        ref_max_score=ref_max, num_episodes_average_score=reference_episodes,
        description=DESCRIPTION.format(steps=sum(len(b.actions) for b in buffers),
                                       policy=policy or "uniform random actions", env=task.env_id,
                                       ending=("replay schedule: each SAC snapshot for the steps SAC collected with it"
                                               if replay else "trailing partial episode dropped"),
                                       seed=seed))
