"""Where fine-tuning draws its plan contexts: dataset states (default) or resets of the task's evaluation env."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, StackDataset

from diffplan.environments import make_eval_env
from diffplan.tasks import Task

# Reset seeds of env contexts start here, far from the validation (0-99) and test (1000+) seeds of the benchmarks.
CONTEXT_SEED = 10_000_000


def env_contexts(task: Task, count: int, seed: int = CONTEXT_SEED) -> dict[str, torch.Tensor]:
    """The first observations (and goals) of ``count`` evaluation episodes, reset seeds ``seed, seed + 1, ...``.

    Returns:
        ``observations`` (count, O) and, for goal tasks, ``goal`` (count, G), float32.
    """
    if count < 1:
        raise ValueError(f"env contexts: count must be at least 1, got {count}.")
    env = make_eval_env(task)
    observations, goals = [], []
    try:
        for i in range(count):
            obs, _ = env.reset(seed=seed + i)
            observations.append(obs[task.observation_key] if isinstance(obs, dict) else obs)
            if task.goal_dims:
                goals.append(obs[task.goal_key])
    finally:
        env.close()
    out = {"observations": torch.as_tensor(np.stack(observations), dtype=torch.float32)}
    if goals:
        out["goal"] = torch.as_tensor(np.stack(goals), dtype=torch.float32)
    return out


def env_context_loader(task: Task, count: int, batch_size: int, seed: int = CONTEXT_SEED) -> DataLoader:
    """Shuffled batches of ``env_contexts`` (dicts of (B, ...) tensors), the order drawn from ``seed``."""
    contexts = env_contexts(task, count, seed)
    return DataLoader(StackDataset(**contexts), batch_size=batch_size, shuffle=True, drop_last=False,
                      generator=torch.Generator().manual_seed(seed))
