"""Maze geometry of gymnasium-robotics maps (cell size 1, map centred on the origin)."""

from __future__ import annotations

import functools

import numpy as np


def xy_to_cell(maze_map: list[list], xy: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(..., 2) xy -> (row, col) integer arrays, as ``Maze.cell_xy_to_rowcol``."""
    rows, cols = len(maze_map), len(maze_map[0])
    xy = np.asarray(xy, dtype=np.float64)
    col = np.floor((xy[..., 0] + cols / 2 * scale) / scale).astype(int)
    row = np.floor((rows / 2 * scale - xy[..., 1]) / scale).astype(int)
    return row, col


@functools.lru_cache(maxsize=32)
def _free_grid(rows: tuple[tuple, ...]) -> np.ndarray:
    return np.array([[c != 1 for c in r] for r in rows], dtype=bool)


def in_free_cell(maze_map: list[list], xy: np.ndarray) -> np.ndarray:
    """(..., 2) xy -> (...,) bool: inside the map and not in a wall cell (called on every ``act``)."""
    free = _free_grid(tuple(tuple(r) for r in maze_map))
    row, col = xy_to_cell(maze_map, xy)
    inside = (row >= 0) & (row < free.shape[0]) & (col >= 0) & (col < free.shape[1])
    return inside & free[np.clip(row, 0, free.shape[0] - 1), np.clip(col, 0, free.shape[1] - 1)]
