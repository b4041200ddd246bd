"""Evaluation protocols: which start and goal each episode gets, and the noise-free controller's return on them.

- ``"task"``: the task card's evaluation env as is (PointMaze: the single goal cell of the evaluation map, a random
  start cell), scored against the card's reference scores.
- ``"random_pairs"`` (maze tasks): start and goal cells drawn per episode from the free cells, distinct, as a
  function of the episode's reset seed alone (:func:`random_pair`); an episode is scored as a share of the return
  the noise-free waypoint controller (the one that collected the data, without its action noise) earns on the same
  pair and seed (:func:`controller_returns`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from diffplan.tasks import Task

PROTOCOLS = ("task", "random_pairs")
_CONTROLLER_KEYS = ("p_gain", "d_gain", "waypoint_jitter", "waypoint_threshold", "q_iterations", "q_discount")


def check_protocol(protocol: str, task: Task) -> None:
    """Raise ValueError for an unknown protocol, or for ``random_pairs`` on a task without a maze."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    if protocol == "random_pairs" and task.maze_map is None:
        raise ValueError(f"protocol 'random_pairs' needs a maze task; {task.name!r} has no maze_map.")


def free_cells(maze_map: list[list[Any]]) -> list[tuple[int, int]]:
    """(row, col) of every cell that is not a wall (``1``), in row-major order."""
    return [(r, c) for r, row in enumerate(maze_map) for c, v in enumerate(row) if v != 1]


def random_pair(maze_map: list[list[Any]], seed: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The (start cell, goal cell) of the episode with reset seed ``seed``: two distinct free cells."""
    cells = free_cells(maze_map)
    if len(cells) < 2:
        raise ValueError("random_pairs needs a maze with at least two free cells.")
    start, goal = np.random.default_rng([seed, 0x5A17]).choice(len(cells), size=2, replace=False)
    return cells[int(start)], cells[int(goal)]


class RandomPairs(gym.Wrapper):
    """Reset a gymnasium-robotics maze env to the start and goal cells that :func:`random_pair` gives for the reset
    seed (``options={"reset_cell", "goal_cell"}``; the env adds its usual ±0.25 position noise to both).

    A reset without a seed (a vector env's autoreset) continues a generator seeded by the last seed. ``pair`` holds
    the cells of the current episode, also put in the reset info as ``reset_cell`` and ``goal_cell``.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.maze_map = env.unwrapped.maze.maze_map
        self.pair: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        pair_seed = int(seed) if seed is not None else int(self._rng.integers(2**31))
        self.pair = random_pair(self.maze_map, pair_seed)
        cells = {"reset_cell": np.array(self.pair[0]), "goal_cell": np.array(self.pair[1])}
        obs, info = self.env.reset(seed=seed, options={**(options or {}), **cells})
        return obs, {**info, **cells}


def wrap_protocol(env: gym.Env, protocol: str) -> gym.Env:
    """``env`` set up for ``protocol`` (``"task"`` leaves it as it is)."""
    return RandomPairs(env) if protocol == "random_pairs" else env


def controller_returns(task: Task, seeds: list[int] | np.ndarray, protocol: str = "random_pairs") -> np.ndarray:
    """(len(seeds),) returns of the noise-free waypoint controller on the episodes with these reset seeds.

    It runs on the same env, protocol and seeds as ``evaluate``, for the task's episode length, with the recipe's
    gains and waypoint jitter (the jitter drawn from a generator seeded by the episode's seed) and no action noise:
    Minari's ``ref_max_score`` policy.
    """
    from diffplan.data.recipes.waypoint_controller import WaypointController
    from diffplan.environments import make_eval_env

    check_protocol(protocol, task)
    if task.maze_map is None:
        raise ValueError(f"The waypoint controller needs a maze task; {task.name!r} has no maze_map.")
    kwargs = {k: v for k, v in task.dataset.recipe_params.items() if k in _CONTROLLER_KEYS}
    env = make_eval_env(task, protocol=protocol)
    out = np.zeros(len(seeds))
    for i, seed in enumerate(seeds):
        controller = WaypointController(env.unwrapped.maze, np.random.default_rng(int(seed)), **kwargs)
        obs, _ = env.reset(seed=int(seed))
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(controller(obs))
            out[i] += reward
            done = terminated or truncated
    env.close()
    return out


def share_of(returns: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """100 * mean(returns) / mean(reference) over paired episodes, and its standard error (delta method for a
    ratio of paired means: ``SE(returns - r * reference) / mean(reference)``)."""
    returns, reference = np.asarray(returns, np.float64), np.asarray(reference, np.float64)
    denominator = reference.mean()
    if denominator <= 0:
        return float("nan"), float("nan")
    ratio = returns.mean() / denominator
    n = len(returns)
    se = (returns - ratio * reference).std(ddof=1) / np.sqrt(n) / denominator if n > 1 else 0.0
    return float(100 * ratio), float(100 * se)
