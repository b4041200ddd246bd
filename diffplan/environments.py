"""Gymnasium environments of a task: the data-collection env and the evaluation env."""

from __future__ import annotations

import contextlib
import io

import gymnasium as gym

from diffplan.tasks import Task

_registered = False


def register_envs() -> None:
    """Register gymnasium-robotics envs once (its import prints an unrelated Adroit warning; we hide it)."""
    global _registered
    if not _registered:
        with contextlib.redirect_stdout(io.StringIO()):
            import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        _registered = True


def make_env(task: Task, max_episode_steps: int) -> gym.Env:
    """The environment the dataset is collected in (e.g. PointMaze with random goals, never reset)."""
    register_envs()
    return gym.make(task.env_id, max_episode_steps=max_episode_steps, **task.env_kwargs)


def make_eval_env(task: Task) -> gym.Env:
    """The evaluation environment: single-goal map, continuing task, the task's episode length."""
    register_envs()
    return gym.make(task.eval.env_id, max_episode_steps=task.eval.max_episode_steps, **task.eval.env_kwargs)


def make_eval_vector_env(task: Task, num_envs: int) -> gym.vector.VectorEnv:
    """``num_envs`` evaluation envs stepped in lock-step (all episodes have the same length)."""
    register_envs()
    return gym.vector.SyncVectorEnv([lambda: make_eval_env(task) for _ in range(num_envs)])
