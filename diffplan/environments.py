"""Gymnasium environments of a task: the data-collection env and the evaluation env."""

from __future__ import annotations

import contextlib
import io
import sys
from types import ModuleType

import gymnasium as gym

from diffplan.tasks import Task

_registered = False
ADROIT_NOTICE = "AdroitHandRelocateDense-v1, AdroitHandHammerDense-v1, AdroitHandDoorDense-v1 environment's reward"


def import_gymnasium_robotics() -> ModuleType:
    """Import gymnasium-robotics without its notice about Adroit envs we never use; other output passes."""
    if "gymnasium_robotics" in sys.modules:
        return sys.modules["gymnasium_robotics"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        import gymnasium_robotics
    for captured, stream in ((out, sys.stdout), (err, sys.stderr)):
        text = "".join(line for line in captured.getvalue().splitlines(keepends=True) if ADROIT_NOTICE not in line)
        stream.write(text)
    return gymnasium_robotics


def register_envs() -> None:
    """Register gymnasium-robotics envs once."""
    global _registered
    if not _registered:
        gym.register_envs(import_gymnasium_robotics())
        _registered = True


def make_env(task: Task, max_episode_steps: int) -> gym.Env:
    """The environment the dataset is collected in (e.g. PointMaze with random goals, never reset)."""
    register_envs()
    return gym.make(task.env_id, max_episode_steps=max_episode_steps, **task.env_kwargs)


def make_eval_env(task: Task, protocol: str = "task", max_episode_steps: int | None = None) -> gym.Env:
    """The evaluation environment: single-goal map, continuing task, the task's episode length.

    Args:
        protocol: ``"task"``, or ``"random_pairs"`` (start and goal cells drawn from the reset seed, see
            ``diffplan.evaluation.protocols``).
        max_episode_steps: another step limit (default: the task's).
    """
    from diffplan.evaluation.protocols import check_protocol, wrap_protocol

    check_protocol(protocol, task)
    register_envs()
    steps = task.eval.max_episode_steps if max_episode_steps is None else max_episode_steps
    return wrap_protocol(gym.make(task.eval.env_id, max_episode_steps=steps, **task.eval.env_kwargs), protocol)


def make_eval_vector_env(task: Task, num_envs: int, protocol: str = "task") -> gym.vector.VectorEnv:
    """``num_envs`` evaluation envs stepped in lock-step (all episodes have the same length)."""
    register_envs()
    return gym.vector.SyncVectorEnv([lambda: make_eval_env(task, protocol) for _ in range(num_envs)])
