"""evaluate(): episode lengths and returns match a plain gymnasium loop on an env that terminates."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from diffplan.evaluation.rollout import evaluate
from diffplan.planner import Plan, PlanContext, Planner
from diffplan.tasks import load_task


class ConstantAction(Planner):
    """Always the same action (a hopper pushed this way falls within a few hundred steps)."""

    def __init__(self, task: Any, action: list[float]):
        super().__init__(task, replan_every=1)
        self.action = torch.tensor(action)

    @property
    def obs_dim(self) -> int:
        return 11

    def sample(self, context: PlanContext, n: int = 1, guidance: Any = None,
               generator: torch.Generator | None = None) -> Plan:
        x = context.obs
        return Plan(observations=x[:, None], actions=self.action.expand(x.shape[0], 1, -1).clone(), stride=1)


def test_evaluate_counts_each_episode_until_it_terminates():
    task = load_task("hopper-medium")
    action = [1.0, -1.0, 0.5]
    result = evaluate(ConstantAction(task, action), task, episodes=3, seed=5, num_envs=3, progress=False)
    for i, seed in enumerate(result.seeds):
        env = gym.make(task.eval.env_id, max_episode_steps=task.eval.max_episode_steps, **task.eval.env_kwargs)
        env.reset(seed=int(seed))
        total, steps, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(np.array(action, np.float32))
            total, steps, done = total + reward, steps + 1, terminated or truncated
        assert result.lengths[i] == steps < task.eval.max_episode_steps  # it fell, and evaluate saw when
        assert abs(result.returns[i] - total) < 1e-6
