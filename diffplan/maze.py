"""Maze geometry of gymnasium-robotics maps (cell size 1, map centred on the origin)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


def xy_to_cell(maze_map: list[list], xy: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(..., 2) xy -> (row, col) integer arrays, as ``Maze.cell_xy_to_rowcol``."""
    rows, cols = len(maze_map), len(maze_map[0])
    xy = np.asarray(xy, dtype=np.float64)
    col = np.floor((xy[..., 0] + cols / 2 * scale) / scale).astype(int)
    row = np.floor((rows / 2 * scale - xy[..., 1]) / scale).astype(int)
    return row, col


def flat_cells(maze_map: Sequence[Sequence[Any]], xy: np.ndarray) -> np.ndarray:
    """(..., 2) xy -> (...,) row-major cell indices, clamped into the map (off-map points use the nearest edge cell)."""
    rows, cols = len(maze_map), len(maze_map[0])
    row, col = xy_to_cell(maze_map, xy)
    return np.clip(row, 0, rows - 1) * cols + np.clip(col, 0, cols - 1)


@functools.lru_cache(maxsize=32)
def _free_grid(rows: tuple[tuple, ...]) -> np.ndarray:
    return np.array([[c != 1 for c in r] for r in rows], dtype=bool)


def cell_centres(maze_map: Sequence[Sequence[Any]]) -> np.ndarray:
    """(rows, cols, 2) xy of every cell's centre (the inverse of ``xy_to_cell`` at cell centres)."""
    rows, cols = len(maze_map), len(maze_map[0])
    r, c = np.mgrid[:rows, :cols]
    return np.stack([c + 0.5 - cols / 2, rows / 2 - r - 0.5], -1).astype(np.float64)


MOVES = ((0, 1), (1, 0), (0, -1), (-1, 0))  # 4-connected steps between cells, (d_row, d_col)


def open_cells(maze_map: Sequence[Sequence[Any]],
               closed: Sequence[tuple[Sequence[float], Sequence[float]]] = ()) -> np.ndarray:
    """(rows, cols) bool: free cells of the map, minus those whose centres lie in a closed box ``(lo, hi)``."""
    free = np.array([[c != 1 for c in row] for row in maze_map], dtype=bool)
    centres = cell_centres(maze_map)
    for lo, hi in closed:
        free &= ~((centres >= np.asarray(lo)) & (centres <= np.asarray(hi))).all(-1)
    return free


def neighbour_cells(free: np.ndarray) -> np.ndarray:
    """(cells, 4) flat indices of each cell's neighbours in ``MOVES`` order, -1 where that neighbour is off the map or
    not ``free`` (rows, cols)."""
    rows, cols = free.shape
    out = np.full((rows * cols, len(MOVES)), -1)
    for r in range(rows):
        for c in range(cols):
            for j, (dr, dc) in enumerate(MOVES):
                r2, c2 = r + dr, c + dc
                if 0 <= r2 < rows and 0 <= c2 < cols and free[r2, c2]:
                    out[r * cols + c, j] = r2 * cols + c2
    return out


def cell_hops(free: np.ndarray) -> np.ndarray:
    """(cells, cells) moves between every pair of open cells (flat row-major indices) by breadth-first search over
    ``free`` (rows, cols); inf where no route exists (from or to a closed cell, or another component)."""
    neighbours = neighbour_cells(free)
    hops = np.full((free.size, free.size), np.inf)
    for source in np.flatnonzero(free):
        hops[source, source] = 0.0
        frontier = [source]
        while frontier:
            nxt = []
            for cell in frontier:
                for n in neighbours[cell]:
                    if n >= 0 and hops[source, n] == np.inf:
                        hops[source, n] = hops[source, cell] + 1
                        nxt.append(n)
            frontier = nxt
    return hops


NORM_EPS = 1e-9  # keeps norms differentiable at 0


def smooth_norm(v: torch.Tensor) -> torch.Tensor:
    """(..., D) -> (...,) ``sqrt(|v|^2 + NORM_EPS)``: a Euclidean norm with a gradient everywhere."""
    return (v.pow(2).sum(-1) + NORM_EPS).sqrt()


def in_free_cell(maze_map: list[list], xy: np.ndarray) -> np.ndarray:
    """(..., 2) xy -> (...,) bool: inside the map and not in a wall cell (called on every ``act``)."""
    free = _free_grid(tuple(tuple(r) for r in maze_map))
    row, col = xy_to_cell(maze_map, xy)
    inside = (row >= 0) & (row < free.shape[0]) & (col >= 0) & (col < free.shape[1])
    return inside & free[np.clip(row, 0, free.shape[0] - 1), np.clip(col, 0, free.shape[1] - 1)]


class CorridorDistance(nn.Module):
    """Distance from points to targets through the free cells of a maze map (metres), not straight through walls.

    An upper bound on the shortest free path, exact enough to steer by: a point reaches the target directly when
    both lie in the same or in adjacent free cells (their union is convex), and otherwise through the centre of its
    own cell or of a free neighbour, then from centre to centre along the free cells (4-connected, 1 m per move,
    all pairs by breadth-first search), then from the target cell's centre to the target. Points in walls use their
    free neighbours; where no such route exists (a wall cell without free neighbours, another component, off the
    map) the straight distance is used. Differentiable in the points almost everywhere (a minimum of norms).

    Args:
        maze_map: rows of cells, 1 = wall (gymnasium-robotics layout: cell size 1, map centred on the origin).
        closed: boxes ``(lo, hi)`` in metres; cells whose centres lie in one are closed to routes, as walls (a
            region to keep out of: the distance then leads round it).
    """

    def __init__(self, maze_map: Sequence[Sequence[Any]],
                 closed: Sequence[tuple[Sequence[float], Sequence[float]]] = ()):
        super().__init__()
        free = open_cells(maze_map, closed)
        rows, cols = free.shape
        self.rows, self.cols = rows, cols
        centres = cell_centres(maze_map)
        hops = cell_hops(free)
        own = np.where(free.reshape(-1), np.arange(rows * cols), -1)
        routes = np.concatenate([own[:, None], neighbour_cells(free)], axis=1)  # a cell's own index if free, and its free neighbours'
        self.register_buffer("hops", torch.tensor(hops, dtype=torch.float32))  # (cells, cells), inf: no route
        self.register_buffer("routes", torch.tensor(routes))  # (cells, 5), -1: none
        self.register_buffer("centres", torch.tensor(centres.reshape(-1, 2), dtype=torch.float32))  # (cells, 2)

    def cell(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) -> (...,) flat cell index, clamped into the map."""
        col = torch.floor(xy[..., 0] + self.cols / 2).long().clamp(0, self.cols - 1)
        row = torch.floor(self.rows / 2 - xy[..., 1]).long().clamp(0, self.rows - 1)
        return row * self.cols + col

    def forward(self, points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(..., 2) points, (..., 2) targets (broadcastable) -> (...,) corridor distances."""
        points, targets = torch.broadcast_tensors(points, targets)
        centres = self.centres.to(points.dtype)
        via = self.routes[self.cell(points)]  # (..., 5)
        goal_cell = self.cell(targets)[..., None]
        found = via >= 0
        safe = via.clamp(min=0)
        straight = smooth_norm(points - targets)
        around = (smooth_norm(points[..., None, :] - centres[safe]) + self.hops[safe, goal_cell].to(points.dtype)
                  + smooth_norm(centres[goal_cell] - targets[..., None, :]))
        candidates = torch.where(safe == goal_cell, straight[..., None], around)
        candidates = torch.where(found & candidates.isfinite(), candidates, torch.full_like(candidates, torch.inf))
        best = candidates.min(dim=-1).values
        return torch.where(best.isfinite(), best, straight)
