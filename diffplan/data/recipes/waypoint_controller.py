"""The PD waypoint controller that collects the PointMaze datasets (and defines the 100-point score)."""

from __future__ import annotations

from typing import Any

import numpy as np

from diffplan.data.recipes.maze_solver import QIterationSolver


class WaypointController:
    """Drive the ball through cell waypoints to ``desired_goal``: ``a = p (w - x) + d v``.

    The first waypoint is the next cell's exact centre, later ones are jittered by ``-jitter * U(0, 1)``
    per axis, the last one is the exact goal. Paths are re-solved when the goal moves by more than 1e-3.

    Args:
        maze: ``env.unwrapped.maze`` of a gymnasium-robotics maze env (cell <-> xy conversions).
        rng: the generator for waypoint jitter (the published script used the unseeded global one).
    """

    def __init__(self, maze: Any, rng: np.random.Generator, p_gain: float = 10.0, d_gain: float = -1.0,
                 waypoint_jitter: float = 0.2, waypoint_threshold: float = 0.1, q_iterations: int = 50,
                 q_discount: float = 0.99):
        self.maze = maze
        self.rng = rng
        self.p_gain, self.d_gain = p_gain, d_gain
        self.jitter, self.threshold = waypoint_jitter, waypoint_threshold
        self.solver = QIterationSolver(maze.maze_map, q_iterations, q_discount)
        self._goal_xy: np.ndarray | None = None

    def _cell(self, xy: np.ndarray) -> tuple[int, int]:
        rc = self.maze.cell_xy_to_rowcol(xy)
        return int(rc[0]), int(rc[1])

    def _centre(self, cell: tuple[int, int]) -> np.ndarray:
        return np.asarray(self.maze.cell_rowcol_to_xy(np.array(cell)), dtype=np.float64)

    def _replan(self, position: np.ndarray, goal: np.ndarray) -> None:
        self._goal_xy = goal.copy()
        self._goal_cell = self._cell(goal)
        start = self._cell(position)
        if start == self._goal_cell:
            self._target_cell, self._target_xy = self._goal_cell, self._goal_xy
        else:
            self._target_cell = self.solver.next_cell(start, self._goal_cell)
            self._target_xy = self._goal_xy if self._target_cell == self._goal_cell else self._centre(self._target_cell)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        position, goal, velocity = obs["achieved_goal"], obs["desired_goal"], obs["observation"][2:]
        if self._goal_xy is None or _dist2(goal, self._goal_xy) > 1e-6:
            self._replan(position, goal)
        reached = _dist2(self._target_xy, position) <= self.threshold**2
        if reached and self._target_cell != self._goal_cell:
            self._target_cell = self.solver.next_cell(self._target_cell, self._goal_cell)
            if self._target_cell == self._goal_cell:
                self._target_xy = self._goal_xy
            else:
                self._target_xy = self._centre(self._target_cell) - self.rng.uniform(size=2) * self.jitter
        action = self.p_gain * (self._target_xy - position) + self.d_gain * velocity
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def _dist2(a: np.ndarray, b: np.ndarray) -> float:
    """Squared distance of two 2-vectors (np.linalg.norm costs more than the env step here)."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    return dx * dx + dy * dy
