"""Shortest paths between maze cells by Q-iteration, as in Minari's pointmaze generation scripts."""

from __future__ import annotations

import numpy as np

# (row, col) moves in the tie-break order of the published recipe.
MOVES = np.array([(0, 1), (0, -1), (-1, 0), (1, 0)])


class QIterationSolver:
    """Q-iteration over the free cells of a 0/1 maze map (reward 1 for entering the goal cell).

    ``next_cell(cell, goal)`` follows ``argmax_a Q`` with ties broken in :data:`MOVES` order. Tables are
    cached per goal cell, so a long data-collection run solves each goal once.
    """

    def __init__(self, maze_map: list[list], iterations: int = 50, discount: float = 0.99):
        self.free = np.array([[c != 1 for c in row] for row in maze_map], dtype=bool)
        self.iterations = iterations
        self.discount = discount
        self._policies: dict[tuple[int, int], np.ndarray] = {}

    def _policy(self, goal: tuple[int, int]) -> np.ndarray:
        if goal not in self._policies:
            rows, cols = self.free.shape
            r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
            nr = np.clip(r[..., None] + MOVES[:, 0], 0, rows - 1)
            nc = np.clip(c[..., None] + MOVES[:, 1], 0, cols - 1)
            blocked = ~self.free[nr, nc]
            nr, nc = np.where(blocked, r[..., None], nr), np.where(blocked, c[..., None], nc)
            reward = ((nr == goal[0]) & (nc == goal[1])).astype(float)
            value = np.zeros(self.free.shape)
            for _ in range(self.iterations):
                q = reward + self.discount * value[nr, nc]
                value = q.max(-1)
            self._policies[goal] = np.argmax(q, axis=-1)  # first maximum = published tie-break
        return self._policies[goal]

    def next_cell(self, cell: tuple[int, int], goal: tuple[int, int]) -> tuple[int, int]:
        move = MOVES[self._policy(goal)[cell]]
        return int(cell[0] + move[0]), int(cell[1] + move[1])
